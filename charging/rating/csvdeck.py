"""Read the CSV rate decks carriers exchange into :class:`DeckData` (issue 3, "Import").

Accepted shapes: header synonyms (see ``_SYNONYMS``), comma / semicolon / tab separators,
decimal commas, preamble lines before the header, code lists (``"49152, 49162"`` or
``234803; 234806``), ranges (``49172-49174``), codes written with spaces (``336 07``), a
leading ``+``, ISO or day-first dates (``23/09/2026``, ``23.09.2026``), billing ``60/1`` or
separate initial/subsequent increment columns, closed / discontinued / end-dated rows.

Every problem is reported as ``file:line: what is wrong``. :func:`read_deck` raises
:class:`DeckError` with all of them unless ``skip_bad`` is set, in which case the bad rows
are returned in ``rejects`` and the good ones are kept.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from charging.rating.deckdata import DeckData
from charging.rating.model import (
    DEFAULT_INCREMENTS,
    DEFAULT_RATE_UNIT,
    MB_OCTETS,
    NEVER,
    DeckError,
    Service,
    Tier,
)
from charging.rating.numbers import normalise_prefix

MAX_RANGE = 10_000
"""Most codes one range cell (``a-b``) may expand to."""

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "prefix": ("prefix", "code", "codes", "dial code", "dial codes", "dialcode", "dialcodes",
               "dial prefix", "destination code", "destination prefix", "area code", "area codes",
               "area"),
    "cc": ("country code", "cc", "country dial code", "country prefix"),
    "name": ("destination", "destination name", "description", "code name", "name", "dest"),
    "country": ("country",),
    "network": ("network", "operator"),
    "rate": ("rate", "price", "rate per min", "rate min", "rate per minute", "per minute cost",
             "price per minute", "price per min", "cost", "new rate", "price n", "rate n",
             "next rate", "subsequent rate", "rate cost", "rate eur", "rate usd"),
    "current_rate": ("current rate", "old rate"),
    "rate_first": ("price 1", "rate 1", "first rate", "initial rate"),
    "effective": ("effective", "effective date", "effective from", "valid from", "start date",
                  "effective since", "from date"),
    "end": ("end date", "effective to", "expires", "expiration", "expiration date",
            "valid to", "valid until", "end"),
    "billing": ("billing", "billing increment", "billing increments", "bi type", "increments",
                "billing interval", "interval", "increment"),
    "inc_first": ("initial increment", "min", "initial", "interval 1", "initial block",
                  "initial interval", "first interval", "min duration", "minimum duration"),
    "inc_next": ("subsequent increment", "int", "next interval", "interval n", "subsequent",
                 "next increment"),
    "fee": ("connection fee", "connection", "setup fee", "setup", "connect cost", "connect fee",
            "sf", "connection charge", "connect charge", "surcharge"),
    "min_charge": ("minimum charge", "min charge", "minimum cost", "min cost"),
    "change": ("change", "status", "action"),
    "discontinued": ("discontinued", "closed", "forbidden"),
    "service": ("service", "service type"),
    "origin": ("origin", "origin prefix", "a prefix", "from prefix", "origin code", "a number prefix"),
    "band": ("band", "time band", "time profile", "period", "timeband"),
    "unit": ("unit", "rate unit", "per"),
    "tiers": ("tiers", "volume tiers"),
}
_LOOKUP = {syn: canon for canon, syns in _SYNONYMS.items() for syn in syns}
_CLOSED = {"closed", "removed", "withdrawn", "discontinued", "blocked", "delete", "deleted"}
_NONALNUM = re.compile(r"[^a-z0-9]+")
_DATE_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_DATE_DMY = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_ASAP = {"", "asap", "now", "immediate", "immediately"}


@dataclass(slots=True)
class ImportOptions:
    """How to read a deck file. ``effective`` is the default start for rows without one
    (ISO date/time in ``timezone``, or None = always); ``hyphen`` says whether ``a-b`` in a
    code cell is a range (``"range"``) or a country-area pair to concatenate (``"concat"``)."""

    service: Service = Service.VOICE
    timezone: str = "UTC"
    effective: str | None = None
    skip_bad: bool = False
    hyphen: str = "range"


@dataclass(slots=True)
class ReadResult:
    data: DeckData
    lines: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)


class _Bad(ValueError):
    """One cell or row is wrong; the message says what."""


def _canon(cell: str) -> str:
    return _NONALNUM.sub(" ", cell.strip().lower()).strip()


def _find_header(lines: list[str]) -> tuple[int, str]:
    """Index of the header line and its delimiter."""
    for i, line in enumerate(lines[:200]):
        for delim in (",", ";", "\t", "|"):
            if delim not in line:
                continue
            cells = next(csv.reader([line], delimiter=delim))
            canon = {_LOOKUP.get(_canon(c)) for c in cells}
            if ("prefix" in canon or "cc" in canon) and ("rate" in canon or "rate_first" in canon or "current_rate" in canon):
                return i, delim
    raise _Bad("no header line found (needs a prefix/code column and a rate/price column)")


def parse_scaled(text: str, scale_digits: int, what: str) -> int:
    """A non-negative decimal cell (``"0.0495"``, ``"0,0495"``) as an integer of
    10**-scale_digits units; more decimals than the scale is an error, not a rounding."""
    s = text.strip().replace(" ", "")
    if not s:
        raise _Bad(f"{what} is empty")
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
        raise _Bad(f"{what} is not a non-negative decimal number: {text.strip()!r}")
    frac = frac.rstrip("0")
    if len(frac) > scale_digits:
        raise _Bad(f"{what} has more than {scale_digits} decimals: {text.strip()!r}")
    return int(whole) * 10**scale_digits + (int(frac.ljust(scale_digits, "0")) if frac else 0)


def _expand_codes(cell: str, hyphen: str) -> list[str]:
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
                raise _Bad(f"bad code range {item!r} (ends must have equal length, low <= high)")
            n = int(hi) - int(lo) + 1
            if n > MAX_RANGE:
                raise _Bad(f"code range {item!r} expands to {n} codes (max {MAX_RANGE})")
            width = len(lo)
            out.extend(str(v).zfill(width) for v in range(int(lo), int(hi) + 1))
            continue
        p = normalise_prefix(item)
        if p and not p.isdigit() and item.replace(" ", "").lstrip("+").isdigit() is False:
            # A text key (APN, content id): kept lower-case.
            pass
        out.append(p)
    if not out:
        raise _Bad("no prefix/code")
    return out


def _parse_increments(text: str) -> tuple[int, int]:
    s = text.strip().lower().replace(" ", "")
    if "/" in s:
        a, _, b = s.partition("/")
    elif "+" in s:
        a, _, b = s.partition("+")
    else:
        raise _Bad(f"billing {text.strip()!r} is not A/B (e.g. 60/60, 30/6, 1/1)")
    return _int_units(a, "initial increment"), _int_units(b, "subsequent increment")


def _int_units(text: str, what: str) -> int:
    s = text.strip().lower().rstrip("s")
    if not s.isdigit() or int(s) <= 0:
        raise _Bad(f"{what} must be a positive integer, got {text.strip()!r}")
    return int(s)


def _parse_unit(text: str, service: Service) -> int:
    s = _canon(text).replace(" ", "")
    if not s:
        return DEFAULT_RATE_UNIT[service]
    table = {"min": 60, "minute": 60, "60s": 60, "60": 60, "s": 1, "sec": 1, "second": 1, "1s": 1,
             "mb": MB_OCTETS, "1mb": MB_OCTETS, "kb": 1000, "gb": 1000 * MB_OCTETS,
             "octet": 1, "byte": 1, "event": 1, "sms": 1, "item": 1, "1": 1}
    if s in table:
        return table[s]
    if s.isdigit() and int(s) > 0:
        return int(s)
    raise _Bad(f"unknown rate unit {text.strip()!r}")


def _parse_tiers(text: str) -> tuple[Tier, ...]:
    """``"1000:0.010; 5000:0.008"``: after N units the rate becomes R."""
    out = []
    for part in re.split(r"[;|]", text):
        if not part.strip():
            continue
        n, sep, r = part.partition(":")
        if not sep:
            raise _Bad(f"tier {part.strip()!r} is not UNITS:RATE")
        out.append(Tier(after_units=_int_units(n, "tier threshold"), rate=parse_scaled(r, 9, "tier rate")))
    return tuple(sorted(out, key=lambda t: t.after_units))


class _Dates:
    """Date cells to epoch seconds at local midnight (or the given time) in the deck's zone."""

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self.cache: dict[str, int | None] = {}

    def parse(self, text: str) -> int | None:
        """None for empty/ASAP; raise _Bad for nonsense."""
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
                    raise _Bad(f"bad date {s!r} (use YYYY-MM-DD or DD/MM/YYYY)")
                d, mo, y = int(m[1]), int(m[2]), int(m[3])
            hh, mm, ss = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
            try:
                local = dt.datetime(y, mo, d, hh, mm, ss, tzinfo=self.zone)
            except ValueError as exc:
                raise _Bad(f"bad date {s!r}: {exc}") from None
            value = int(local.timestamp())
        self.cache[text] = value
        return value


def read_deck(
    text_or_path: str,
    opts: ImportOptions,
    *,
    is_text: bool = False,
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReadResult:
    """Parse a deck (a path, or the CSV text when ``is_text``) into columns.

    *progress* is called with the number of input lines consumed, every 65536 lines.
    Raises DeckError (``file:line: ...``) on the first structural problem, or with every bad
    row unless ``opts.skip_bad``.
    """
    label = name or ("<text>" if is_text else text_or_path)
    if is_text:
        raw = text_or_path
    else:
        with open(text_or_path, encoding="utf-8-sig", newline="") as fh:
            raw = fh.read()
    head_lines = raw[:65536].splitlines()
    try:
        hline, delim = _find_header(head_lines)
    except _Bad as exc:
        raise DeckError([f"{label}:1: {exc}"]) from None
    # Skip the preamble: position of the header line in the text.
    pos = 0
    for _ in range(hline):
        nl = raw.find("\n", pos)
        pos = nl + 1
    reader = csv.reader(io.StringIO(raw[pos:], newline=""), delimiter=delim)
    header = next(reader)
    cols: dict[str, int] = {}
    for i, cell in enumerate(header):
        canon = _LOOKUP.get(_canon(cell))
        if canon and canon not in cols:
            cols[canon] = i
    if "prefix" not in cols:
        cols["prefix"] = cols["cc"]
        del cols["cc"]
    if "rate" not in cols:
        if "current_rate" in cols:
            cols["rate"] = cols["current_rate"]
        else:
            cols["rate"] = cols["rate_first"]
    return _read_rows(reader, cols, hline, label, opts, progress)


def _read_rows(
    reader: object,
    cols: dict[str, int],
    hline: int,
    label: str,
    opts: ImportOptions,
    progress: Callable[[int], None] | None,
) -> ReadResult:
    data = DeckData()
    result = ReadResult(data=data)
    problems: list[str] = []
    dates = _Dates(opts.timezone)
    default_from = -NEVER
    if opts.effective:
        try:
            got = dates.parse(opts.effective)
        except _Bad as exc:
            raise DeckError([f"{label}:--effective: {exc}"]) from None
        default_from = got if got is not None else -NEVER
    c_prefix = cols["prefix"]
    c_rate = cols["rate"]
    c_cc = cols.get("cc")
    c_name = cols.get("name")
    c_country = cols.get("country")
    c_network = cols.get("network")
    c_first = cols.get("rate_first")
    c_eff = cols.get("effective")
    c_end = cols.get("end")
    c_billing = cols.get("billing")
    c_incf = cols.get("inc_first")
    c_incn = cols.get("inc_next")
    c_fee = cols.get("fee")
    c_min = cols.get("min_charge")
    c_change = cols.get("change")
    c_disc = cols.get("discontinued")
    c_service = cols.get("service")
    c_origin = cols.get("origin")
    c_band = cols.get("band")
    c_unit = cols.get("unit")
    c_tiers = cols.get("tiers")
    seen: dict[str, int] = {}
    ncols = max(cols.values()) + 1
    d_service, d_prefix, d_origin, d_dest = data.service, data.prefix, data.origin, data.dest
    d_band, d_blocked, d_rate, d_rate_first = data.band, data.blocked, data.rate, data.rate_first
    d_incf, d_incn, d_unit, d_fee, d_min = (
        data.inc_first, data.inc_next, data.rate_unit, data.fee, data.min_charge)
    d_from, d_to = data.eff_from, data.eff_to
    name_index, band_index = data.name_index, data.band_index
    default_service = opts.service
    parse_date = dates.parse
    line = hline + 1
    count = 0
    for cells in reader:  # type: ignore[attr-defined]
        line = hline + reader.line_num  # type: ignore[attr-defined]
        count += 1
        if progress is not None and count & 0xFFFF == 0:
            progress(count)
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) < ncols:
            if len(cells) == 1:
                continue  # a footer note such as "Rates are subject to change"
            cells = cells + [""] * (ncols - len(cells))
        try:
            if not cells[c_prefix].strip():
                raise _Bad("no prefix/code")
            service = Service.parse(cells[c_service]) if c_service is not None and cells[c_service].strip() else default_service
            code_cell = cells[c_prefix]
            if code_cell.isdigit():
                codes = [code_cell]
            else:
                codes = _expand_codes(code_cell, opts.hyphen)
            if c_cc is not None:
                cc = normalise_prefix(cells[c_cc])
                if not cc.isdigit():
                    raise _Bad(f"bad country code {cells[c_cc].strip()!r}")
                codes = [cc + c for c in codes]
            rate = parse_scaled(cells[c_rate], 9, "rate")
            rate_first = parse_scaled(cells[c_first], 9, "first rate") if c_first is not None and cells[c_first].strip() else rate
            inc_f, inc_n = DEFAULT_INCREMENTS[service]
            if c_billing is not None and cells[c_billing].strip():
                bcell = cells[c_billing]
                if "/" in bcell or "+" in bcell:
                    inc_f, inc_n = _parse_increments(bcell)
                else:
                    inc_n = _int_units(bcell, "increment")
            if c_incf is not None and cells[c_incf].strip():
                inc_f = _int_units(cells[c_incf], "initial increment")
            if c_incn is not None and cells[c_incn].strip():
                inc_n = _int_units(cells[c_incn], "subsequent increment")
            unit = _parse_unit(cells[c_unit], service) if c_unit is not None else DEFAULT_RATE_UNIT[service]
            fee = parse_scaled(cells[c_fee], 6, "connection fee") if c_fee is not None and cells[c_fee].strip() else 0
            minc = parse_scaled(cells[c_min], 6, "minimum charge") if c_min is not None and cells[c_min].strip() else 0
            eff = parse_date(cells[c_eff]) if c_eff is not None else None
            eff_from = eff if eff is not None else default_from
            end = parse_date(cells[c_end]) if c_end is not None else None
            eff_to = end if end is not None else NEVER
            closed = False
            if c_change is not None and cells[c_change].strip().lower() in _CLOSED:
                closed = True
            if c_disc is not None and cells[c_disc].strip().lower() in ("1", "yes", "y", "true", "x"):
                closed = True
            if eff_to <= eff_from:
                raise _Bad("end date is not after the effective date")
            if c_name is not None:
                name = cells[c_name].strip()
            else:
                parts = [cells[c].strip() for c in (c_country, c_network) if c is not None and cells[c].strip()]
                name = " ".join(parts)
            origin = normalise_prefix(cells[c_origin]) if c_origin is not None else ""
            band = cells[c_band].strip().lower() if c_band is not None else ""
            tiers = _parse_tiers(cells[c_tiers]) if c_tiers is not None and cells[c_tiers].strip() else ()
        except (_Bad, ValueError, IndexError) as exc:
            msg = str(exc) if not isinstance(exc, IndexError) else "too few columns"
            problems.append(f"{label}:{line}: {msg}")
            if opts.skip_bad:
                result.rejects.append((line, msg, (",".join(cells))))
            continue
        name_ix = name_index(name)
        band_ix = band_index(band) if band else 0
        scode = service.code
        # A closed code: priced until its date, blocked from it (a "Closed" notice row names the
        # date the code is withdrawn; a longest-prefix fallback to a shorter code would misprice).
        spans = [(eff_from, eff_to, 0)] if not closed else (
            [(-NEVER, eff_from, 0), (eff_from, eff_to, 1)] if eff_from > -NEVER else [(eff_from, eff_to, 1)])
        bad = None
        keys = []
        for code in codes:
            for s_from, _s_to, _blk in spans:
                key = f"{scode}|{origin}|{code}|{band}|{s_from}"
                first = seen.get(key)
                if first is not None:
                    bad = f"duplicate row for prefix {code!r} (first at line {first})"
                keys.append(key)
        if bad is None and len(set(keys)) != len(keys):
            bad = "the same prefix twice in one row"
        if bad is None:
            for key in keys:
                seen[key] = line
            for code in codes:
                for s_from, s_to, blk in spans:
                    d_service.append(scode)
                    d_prefix.append(code)
                    d_origin.append(origin)
                    d_dest.append(name_ix)
                    d_band.append(band_ix)
                    d_blocked.append(blk)
                    d_rate.append(rate)
                    d_rate_first.append(rate_first)
                    d_incf.append(inc_f)
                    d_incn.append(inc_n)
                    d_unit.append(unit)
                    d_fee.append(fee)
                    d_min.append(minc)
                    d_from.append(s_from)
                    d_to.append(s_to)
                    if tiers:
                        data.tiers[len(d_prefix) - 1] = tiers
        if bad:
            problems.append(f"{label}:{line}: {bad}")
            if opts.skip_bad:
                result.rejects.append((line, bad, ",".join(cells)))
    result.lines = line
    if problems and not opts.skip_bad:
        raise DeckError(problems)
    if not len(data):
        raise DeckError([f"{label}:{line}: no rows"])
    return result
