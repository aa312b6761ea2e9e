"""Cell parsers of the CSV deck importer (charging/rating/csvdeck.py): amounts, code lists
and ranges, increments, units, volume tiers, dates. Each raises :class:`BadCell` with a text
that becomes ``file:line: <text>``."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from charging.rating.model import DEFAULT_RATE_UNIT, MB_OCTETS, Service, Tier
from charging.rating.numbers import normalise_prefix

MAX_RANGE = 10_000
"""Most codes one range cell (``a-b``) may expand to."""
MAX_CELL = 2**63 - 1
"""Largest number a cell may give (rates in 1e-9, fees in micro-units, increments, tier
thresholds): the deck's columns are 64-bit; beyond it a store raised OverflowError."""

_NONALNUM = re.compile(r"[^a-z0-9]+")
CLOSED = {"closed", "removed", "withdrawn", "discontinued", "blocked", "delete", "deleted"}
_DATE_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_DATE_DMY = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_ASAP = {"", "asap", "now", "immediate", "immediately"}


class BadCell(ValueError):
    """One cell or row is wrong; the message says what."""


def canon(cell: str) -> str:
    """A header cell reduced to lower-case words (``"Rate/Min"`` -> ``"rate min"``)."""
    return _NONALNUM.sub(" ", cell.strip().lower()).strip()


def parse_scaled(text: str, scale_digits: int, what: str) -> int:
    """A non-negative decimal cell (``"0.0495"``, ``"0,0495"``) as an integer of
    10**-scale_digits units; more decimals than the scale is an error, not a rounding."""
    s = text.strip().replace(" ", "")
    if not s:
        raise BadCell(f"{what} is empty")
    if "," in s:
        if "." in s:
            s = s.replace(",", "")  # 1,234.5 thousands separator
        else:
            s = s.replace(",", ".")  # decimal comma
    if s[0] in "$€£":
        s = s[1:]
    whole, dot, frac = s.partition(".")
    if not whole:
        whole = "0"
    if not whole.isdigit() or (dot and frac and not frac.isdigit()):
        raise BadCell(f"{what} is not a non-negative decimal number: {text.strip()!r}")
    frac = frac.rstrip("0")
    if len(frac) > scale_digits:
        raise BadCell(f"{what} has more than {scale_digits} decimals: {text.strip()!r}")
    value = int(whole) * 10**scale_digits + (int(frac.ljust(scale_digits, "0")) if frac else 0)
    if value > MAX_CELL:
        raise BadCell(f"{what} is too large: {text.strip()!r}")
    return value


def expand_codes(cell: str, hyphen: str) -> list[str]:
    """A code cell to its list of prefixes (lists, ranges, embedded spaces, ``+``)."""
    out: list[str] = []
    for part in re.split(r"[,;]", cell):
        item = part.strip()
        if not item:
            continue
        if "-" in item and item.lstrip("+").replace(" ", "").replace("-", "").isdigit():
            lo, _, hi = item.partition("-")
            lo = lo.replace(" ", "").lstrip("+")
            hi = hi.replace(" ", "").lstrip("+")
            if hyphen == "concat":
                out.append(lo + hi)
                continue
            if len(lo) != len(hi) or int(lo) > int(hi):
                raise BadCell(f"bad code range {item!r} (ends must have equal length, low <= high)")
            n = int(hi) - int(lo) + 1
            if n > MAX_RANGE:
                raise BadCell(f"code range {item!r} expands to {n} codes (max {MAX_RANGE})")
            width = len(lo)
            out.extend(str(v).zfill(width) for v in range(int(lo), int(hi) + 1))
            continue
        p = normalise_prefix(item)
        if p and not p.isdigit() and item.replace(" ", "").lstrip("+").isdigit() is False:
            # A text key (APN, content id): kept lower-case.
            pass
        out.append(p)
    if not out:
        raise BadCell("no prefix/code")
    return out


def parse_increments(text: str) -> tuple[int, int]:
    s = text.strip().lower().replace(" ", "")
    if "/" in s:
        a, _, b = s.partition("/")
    elif "+" in s:
        a, _, b = s.partition("+")
    else:
        raise BadCell(f"billing {text.strip()!r} is not A/B (e.g. 60/60, 30/6, 1/1)")
    return int_units(a, "initial increment"), int_units(b, "subsequent increment")


def int_units(text: str, what: str) -> int:
    s = text.strip().lower().rstrip("s")
    if not s.isdigit() or int(s) <= 0:
        raise BadCell(f"{what} must be a positive integer, got {text.strip()!r}")
    if int(s) > MAX_CELL:
        raise BadCell(f"{what} is too large: {text.strip()!r}")
    return int(s)


def parse_unit(text: str, service: Service) -> int:
    s = canon(text).replace(" ", "")
    if not s:
        return DEFAULT_RATE_UNIT[service]
    table = {"min": 60, "minute": 60, "60s": 60, "60": 60, "s": 1, "sec": 1, "second": 1, "1s": 1,
             "mb": MB_OCTETS, "1mb": MB_OCTETS, "kb": 1000, "gb": 1000 * MB_OCTETS,
             "octet": 1, "byte": 1, "event": 1, "sms": 1, "item": 1, "1": 1}
    if s in table:
        return table[s]
    if s.isdigit() and int(s) > 0:
        return int(s)
    raise BadCell(f"unknown rate unit {text.strip()!r}")


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """``"1000:0.010; 5000:0.008"``: after N units the rate becomes R."""
    out = []
    for part in re.split(r"[;|]", text):
        if not part.strip():
            continue
        n, sep, r = part.partition(":")
        if not sep:
            raise BadCell(f"tier {part.strip()!r} is not UNITS:RATE")
        out.append(Tier(after_units=int_units(n, "tier threshold"), rate=parse_scaled(r, 9, "tier rate")))
    return tuple(sorted(out, key=lambda t: t.after_units))


class Dates:
    """Date cells to epoch seconds at local midnight (or the given time) in the deck's zone."""

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self.cache: dict[str, int | None] = {}

    def parse(self, text: str) -> int | None:
        """None for empty/ASAP; raise BadCell for nonsense."""
        got = self.cache.get(text, -1)
        if got != -1:
            return got
        s = text.strip()
        value: int | None
        if s.lower() in _ASAP:
            value = None
        else:
            m = _DATE_ISO.match(s)
            if m:
                y, mo, d = int(m[1]), int(m[2]), int(m[3])
            else:
                m = _DATE_DMY.match(s)
                if not m:
                    raise BadCell(f"bad date {s!r} (use YYYY-MM-DD or DD/MM/YYYY)")
                d, mo, y = int(m[1]), int(m[2]), int(m[3])
            hh, mm, ss = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
            try:
                local = dt.datetime(y, mo, d, hh, mm, ss, tzinfo=self.zone)
            except ValueError as exc:
                raise BadCell(f"bad date {s!r}: {exc}") from None
            value = int(local.timestamp())
        self.cache[text] = value
        return value
