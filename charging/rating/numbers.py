"""Destination/origin normalisation and destination names (protocol-facts G1).

Order of :func:`normalise` (the spec the compiled twin follows):

1. a ``sip:``/``sips:``/``tel:`` URI gives its user part (before ``@`` and ``;`` parameters);
2. visual separators (space, ``-``, ``.``, ``(``, ``)``, ``/``) are removed;
3. the longest configured technical prefix is stripped (e.g. ``"1010"``, ``"#31#"``);
4. a leading ``+`` or, failing that, a leading ``00`` is stripped.

A result made of digits is an E.164 number matched by longest digit prefix. Anything else
(an APN such as ``internet.example``, a content id) is lower-cased and matched the same way
on its characters, so data decks can key rows by APN prefix; ``*`` in a deck means "".
"""

from __future__ import annotations

import functools

_SEPARATORS = str.maketrans("", "", " -.()/\t")


def normalise(raw: str, technical_prefixes: tuple[str, ...] = ()) -> str:
    """Return the matching key of a destination or origin (see the module docstring)."""
    s = raw.strip()
    if s.isdigit() and not technical_prefixes:
        return s[2:] if s.startswith("00") else s
    low = s.lower()
    if low.startswith(("sip:", "sips:", "tel:")):
        s = s.split(":", 1)[1]
        s = s.split("@", 1)[0].split(";", 1)[0]
    candidate = s.translate(_SEPARATORS)
    if not candidate.lstrip("+").replace("#", "").replace("*", "").isdigit():
        # Not a number: an APN or a content key, matched as lower-case text.
        return s.strip().lower()
    s = candidate
    for tp in sorted(technical_prefixes, key=len, reverse=True):
        if tp and s.startswith(tp):
            s = s[len(tp):]
            break
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    return s


def normalise_prefix(raw: str) -> str:
    """A deck's prefix cell: ``*`` and empty mean the catch-all ""; ``+`` and spaces go."""
    s = raw.strip()
    if s in ("", "*"):
        return ""
    s = s.translate(_SEPARATORS)
    if s.startswith("+"):
        s = s[1:]
    if s.isdigit():
        return s
    return raw.strip().lower()


@functools.lru_cache(maxsize=65536)
def name_for_prefix(prefix: str) -> str:
    """A destination name for a digit prefix from ``phonenumbers`` (country, or country and
    area/carrier where the prefix is long enough); "" when unknown. Used for rows whose deck
    gave no name."""
    if not prefix.isdigit():
        return ""
    import phonenumbers
    from phonenumbers import geocoder

    for cc_len in (1, 2, 3):
        cc = int(prefix[:cc_len]) if len(prefix) >= cc_len else -1
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc)
        if not regions:
            continue
        region = regions[0]
        country = geocoder._region_display_name(region, "en") if region != "001" else ""
        if not country:
            return ""
        rest = prefix[cc_len:]
        if len(rest) >= 2:
            try:
                num = phonenumbers.parse("+" + prefix + "0" * max(0, 10 - len(prefix)))
                desc = geocoder.description_for_number(num, "en")
            except phonenumbers.NumberParseException:
                desc = ""
            if desc and desc != country:
                return f"{country} - {desc}"
        return str(country)
    return ""
