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
import io
import operator
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import cython_ext
from charging.rating.csvcells import (
    CLOSED,
    BadCell,
    Dates,
    canon,
    expand_codes,
    int_units,
    parse_increments,
    parse_scaled,
    parse_tiers,
    parse_unit,
)
from charging.rating.deckdata import DeckData
from charging.rating.model import (
    DEFAULT_INCREMENTS,
    DEFAULT_RATE_UNIT,
    NEVER,
    DeckError,
    Service,
)
from charging.rating.numbers import normalise_prefix

_ext = cython_ext.load("rating")

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
_LOOKUP = {syn: key for key, syns in _SYNONYMS.items() for syn in syns}
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
    distinct_prefixes: int | None = None  # when a fast path counted them already
    distinct_destinations: int | None = None




def _find_header(lines: list[str]) -> tuple[int, str]:
    """Index of the header line and its delimiter."""
    for i, line in enumerate(lines[:200]):
        for delim in (",", ";", "\t", "|"):
            if delim not in line:
                continue
            cells = next(csv.reader([line], delimiter=delim))
            found = {_LOOKUP.get(canon(c)) for c in cells}
            if ("prefix" in found or "cc" in found) and ("rate" in found or "rate_first" in found or "current_rate" in found):
                return i, delim
    raise BadCell("no header line found (needs a prefix/code column and a rate/price column)")


def read_deck(
    text_or_path: str,
    opts: ImportOptions,
    *,
    is_text: bool = False,
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
    only: str | None = None,
) -> ReadResult:
    """Parse a deck (a path, or the CSV text when ``is_text``) into columns.

    Three paths give identical results: the compiled split (unquoted files), the columnar
    Python path, and the row-by-row path that names every bad line. ``only`` ("compiled",
    "fast", "slow") is a test hook forcing one; a forced fast path that cannot handle the
    file raises LookupError.

    *progress* is called with the number of input lines consumed, every 65536 lines.
    Raises DeckError (``file:line: ...``) on the first structural problem, or with every bad
    row unless ``opts.skip_bad``.
    """
    label = name or ("<text>" if is_text else text_or_path)
    if is_text:
        raw = text_or_path
    else:
        with open(text_or_path, "rb") as fh:
            blob = fh.read()
        try:
            raw = blob.decode("utf-8-sig")
        except UnicodeDecodeError as exc:  # a Latin-1/cp1252 export ("Côte d'Ivoire")
            line = blob.count(b"\n", 0, exc.start) + 1
            raise DeckError([f"{label}:{line}: not UTF-8 text (byte 0x{blob[exc.start]:02x}); "
                             "save the file as UTF-8"]) from None
    head_lines = raw[:65536].splitlines()
    try:
        hline, delim = _find_header(head_lines)
    except BadCell as exc:
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
        key = _LOOKUP.get(canon(cell))
        if key and key not in cols:
            cols[key] = i
    if "prefix" not in cols:
        cols["prefix"] = cols["cc"]
        del cols["cc"]
    if "rate" not in cols:
        if "current_rate" in cols:
            cols["rate"] = cols["current_rate"]
        else:
            cols["rate"] = cols["rate_first"]
    rows = _Rows(cols, opts, label, len(header))
    if rows.fast_ok and _ext is not None and only in (None, "compiled"):
        nl = raw.find("\n", pos)
        compiled = None
        if nl >= 0:  # byte offsets equal str offsets only for ASCII text
            body, start = (raw, nl + 1) if raw.isascii() else (raw[nl + 1:], 0)
            compiled = rows.read_compiled(body, start, delim, hline, header_lines=1)
        if compiled is not None:
            return compiled
        rows = _Rows(cols, opts, label, len(header))
    if only == "compiled":
        raise LookupError("the compiled path cannot read this file")
    if rows.fast_ok and only in (None, "fast"):
        fast = rows.read_fast(reader, hline, progress)
        if fast is not None:
            return fast
        # Something needs the row-by-row path (a bad cell, a closed code, a duplicate): start
        # again so every problem gets its exact line.
        rows = _Rows(cols, opts, label, len(header))
        reader = csv.reader(io.StringIO(raw[pos:], newline=""), delimiter=delim)
        next(reader)
    if only == "fast":
        raise LookupError("the columnar path cannot read this file")
    return rows.read_slow(reader, hline, progress)


_REST = ("service", "billing", "inc_first", "inc_next", "unit", "fee", "min_charge", "effective",
         "end", "change", "discontinued", "name", "country", "network", "origin", "band", "tiers",
         "rate_first", "cc")
_CHUNK = 65536


class _Rows:
    """Parsing state of one file, shared by the columnar fast path and the row-by-row path.

    Every cell except the code and the rate is parsed through :meth:`attrs`, keyed by the
    tuple of those cells (decks repeat them: same billing, dates, names...), so both paths
    run the very same code per distinct combination.
    """

    def __init__(self, cols: dict[str, int], opts: ImportOptions, label: str,
                 nhead: int = 0) -> None:
        self.cols = cols
        self.opts = opts
        self.label = label
        self.dates = Dates(opts.timezone)
        self.default_from = -NEVER
        if opts.effective:
            try:
                got = self.dates.parse(opts.effective)
            except BadCell as exc:
                raise DeckError([f"{label}:--effective: {exc}"]) from None
            self.default_from = got if got is not None else -NEVER
        self.present = [k for k in _REST if k in cols]
        idx = [cols[k] for k in self.present]
        self.getter: Callable[[list[str]], tuple[str, ...]]
        if not idx:
            self.getter = lambda cells: ()
        elif len(idx) == 1:
            one = idx[0]
            self.getter = lambda cells: (cells[one],)
        else:
            self.getter = operator.itemgetter(*idx)  # type: ignore[assignment]
        self.ncols = max(cols.values()) + 1
        # Cells in the header: a row with a non-empty cell past them is shifted (an unquoted
        # decimal comma: "41,0,12,Switzerland" read rate 0 -- free calls), never guessed at.
        self.nhead = max(nhead, self.ncols)
        self.c_prefix = cols["prefix"]
        self.c_rate = cols["rate"]
        self.attr_cache: dict[tuple[str, ...], tuple[object, ...]] = {}
        self.rate_cache: dict[str, int] = {}
        self.data = DeckData()
        self.fast_ok = "cc" not in cols and "tiers" not in cols

    def attrs(self, key: tuple[str, ...]) -> tuple[object, ...]:
        """(service code, inc_first, inc_next, unit, fee, min, eff_from, eff_to, closed,
        name index, origin, band index, band, tiers, rate_first cell, cc) of a row."""
        got = self.attr_cache.get(key)
        if got is not None:
            return got
        c = dict(zip(self.present, key, strict=True))
        opts = self.opts
        svc_cell = c.get("service", "").strip()
        service = Service.parse(svc_cell) if svc_cell else opts.service
        inc_f, inc_n = DEFAULT_INCREMENTS[service]
        bcell = c.get("billing", "").strip()
        if bcell:
            if "/" in bcell or "+" in bcell:
                inc_f, inc_n = parse_increments(bcell)
            else:
                inc_n = int_units(bcell, "increment")
        if c.get("inc_first", "").strip():
            inc_f = int_units(c["inc_first"], "initial increment")
        if c.get("inc_next", "").strip():
            inc_n = int_units(c["inc_next"], "subsequent increment")
        unit = parse_unit(c["unit"], service) if "unit" in c else DEFAULT_RATE_UNIT[service]
        fee = parse_scaled(c["fee"], 6, "connection fee") if c.get("fee", "").strip() else 0
        minc = parse_scaled(c["min_charge"], 6, "minimum charge") if c.get("min_charge", "").strip() else 0
        eff = self.dates.parse(c["effective"]) if "effective" in c else None
        eff_from = eff if eff is not None else self.default_from
        end = self.dates.parse(c["end"]) if "end" in c else None
        eff_to = end if end is not None else NEVER
        closed = (c.get("change", "").strip().lower() in CLOSED
                  or c.get("discontinued", "").strip().lower() in ("1", "yes", "y", "true", "x"))
        if eff_to <= eff_from:
            raise BadCell("end date is not after the effective date")
        if "name" in c:
            name = c["name"].strip()
        else:
            name = " ".join(c[k].strip() for k in ("country", "network") if c.get(k, "").strip())
        origin = normalise_prefix(c["origin"]) if "origin" in c else ""
        band = c["band"].strip().lower() if "band" in c else ""
        tiers = parse_tiers(c["tiers"]) if c.get("tiers", "").strip() else ()
        cc = ""
        if "cc" in c:
            cc = normalise_prefix(c["cc"])
            if not cc.isdigit():
                raise BadCell(f"bad country code {c['cc'].strip()!r}")
        first_cell = c.get("rate_first", "").strip()
        rate_first = parse_scaled(first_cell, 9, "first rate") if first_cell else None
        out = (service.code, inc_f, inc_n, unit, fee, minc, eff_from, eff_to, closed,
               self.data.name_index(name), origin, self.data.band_index(band) if band else 0, band,
               tiers, rate_first, cc)
        if len(self.attr_cache) > 500_000:
            self.attr_cache.clear()
        self.attr_cache[key] = out
        return out

    def rate(self, cell: str) -> int:
        got = self.rate_cache.get(cell)
        if got is None:
            got = parse_scaled(cell, 9, "rate")
            if len(self.rate_cache) > 500_000:
                self.rate_cache.clear()
            self.rate_cache[cell] = got
        return got

    # -- the compiled fast path (cython_ext/rating.pyx split_simple) --------------------------

    def read_compiled(self, body: str, start: int, delim: str, hline: int, header_lines: int) -> ReadResult | None:
        """Unquoted files: lines split in C, attributes parsed here once per distinct
        combination; None when anything needs a Python path."""
        assert _ext is not None
        got = _ext.split_simple(body, start, delim, self.nhead, self.c_prefix, self.c_rate,
                                tuple(self.cols[k] for k in self.present))
        if got is None:
            return None
        prefixes, rates, ids, keys, lines, distinct = got
        if not prefixes:
            return None
        try:
            at = [self.attrs(tuple(k.split("\x1f")) if self.present else ()) for k in keys]
        except (BadCell, ValueError):
            return None
        cols = list(zip(*at, strict=True))
        if any(cols[8]):
            return None
        d = self.data
        take = _ext.take
        d.prefix = prefixes
        d.rate = rates
        if all(f is None for f in cols[14]):
            d.rate_first = array("q", rates)
        else:
            firsts = cols[14]
            d.rate_first = array("q", (r if firsts[i] is None else firsts[i] for i, r in zip(ids, rates, strict=True)))  # type: ignore[misc]
        d.service = take(ids, array("q", cols[0]), "b")  # type: ignore[arg-type]
        d.inc_first = take(ids, array("q", cols[1]))  # type: ignore[arg-type]
        d.inc_next = take(ids, array("q", cols[2]))  # type: ignore[arg-type]
        d.rate_unit = take(ids, array("q", cols[3]))  # type: ignore[arg-type]
        d.fee = take(ids, array("q", cols[4]))  # type: ignore[arg-type]
        d.min_charge = take(ids, array("q", cols[5]))  # type: ignore[arg-type]
        d.eff_from = take(ids, array("q", cols[6]))  # type: ignore[arg-type]
        d.eff_to = take(ids, array("q", cols[7]))  # type: ignore[arg-type]
        d.dest = take(ids, array("q", cols[9]), "i")  # type: ignore[arg-type]
        origins = cols[10]
        d.origin = [""] * len(prefixes) if not any(origins) else [origins[i] for i in ids]  # type: ignore[misc]
        d.band = take(ids, array("q", cols[11]), "b")  # type: ignore[arg-type]
        d.blocked = array("b", bytes(len(prefixes)))
        n = len(prefixes)
        if len(set(prefixes)) != n and len(set(zip(d.service, d.origin, d.prefix, d.band, d.eff_from, strict=False))) != n:
            return None
        return ReadResult(data=d, lines=hline + header_lines + lines)

    # -- the columnar fast path --------------------------------------------------------------

    def read_fast(self, reader: Iterator[list[str]], hline: int,
                  progress: Callable[[int], None] | None) -> ReadResult | None:
        """Whole chunks at a time; None as soon as anything needs the row-by-row path."""
        d = self.data
        ncols, nhead, cp, cr = self.ncols, self.nhead, self.c_prefix, self.c_rate
        getter, attrs, rate = self.getter, self.attrs, self.rate
        count = 0
        while True:
            chunk = list(islice(reader, _CHUNK))
            if not chunk:
                break
            count += len(chunk)
            if progress is not None:
                progress(count)
            rows = [r if len(r) >= ncols else r + [""] * (ncols - len(r)) for r in chunk if len(r) > 1]
            if not rows:
                continue
            if any(len(r) > nhead and any(r[nhead:]) for r in rows):
                return None  # a shifted row: the row-by-row path names its line
            codes = [r[cp] for r in rows]
            if not all(codes) or not "".join(codes).isdigit():
                return None
            try:
                at = [attrs(k) for k in map(getter, rows)]
                rates = [rate(r[cr]) for r in rows]
            except (BadCell, ValueError):
                return None
            cols = list(zip(*at, strict=True))
            if any(cols[8]):  # a closed code: two spans per row
                return None
            firsts = [r if f is None else f for f, r in zip(cols[14], rates, strict=True)]
            d.prefix.extend(codes)
            d.rate.extend(rates)
            d.rate_first.extend(firsts)  # type: ignore[arg-type]
            d.service.extend(cols[0])  # type: ignore[arg-type]
            d.inc_first.extend(cols[1])  # type: ignore[arg-type]
            d.inc_next.extend(cols[2])  # type: ignore[arg-type]
            d.rate_unit.extend(cols[3])  # type: ignore[arg-type]
            d.fee.extend(cols[4])  # type: ignore[arg-type]
            d.min_charge.extend(cols[5])  # type: ignore[arg-type]
            d.eff_from.extend(cols[6])  # type: ignore[arg-type]
            d.eff_to.extend(cols[7])  # type: ignore[arg-type]
            d.dest.extend(cols[9])  # type: ignore[arg-type]
            d.origin.extend(cols[10])  # type: ignore[arg-type]
            d.band.extend(cols[11])  # type: ignore[arg-type]
            d.blocked.extend(bytes(len(rows)))
        n = len(d.prefix)
        if n == 0:
            return None
        if len(set(d.prefix)) != n and len(set(zip(d.service, d.origin, d.prefix, d.band, d.eff_from, strict=False))) != n:
            return None  # duplicates: the slow path names their lines
        return ReadResult(data=d, lines=hline + reader.line_num)  # type: ignore[attr-defined]

    # -- the row-by-row path -----------------------------------------------------------------

    def read_slow(self, reader: Iterator[list[str]], hline: int,
                  progress: Callable[[int], None] | None) -> ReadResult:
        data = self.data
        result = ReadResult(data=data)
        problems: list[str] = []
        skip_bad = self.opts.skip_bad
        seen: dict[tuple[object, ...], int] = {}
        line = hline + 1
        count = 0
        for cells in reader:
            line = hline + reader.line_num  # type: ignore[attr-defined]
            count += 1
            if progress is not None and count & 0xFFFF == 0:
                progress(count)
            if len(cells) <= 1:
                continue  # blank lines, one-cell notes ("Rates are subject to change")
            if len(cells) < self.ncols:
                cells = cells + [""] * (self.ncols - len(cells))
            try:
                if len(cells) > self.nhead and any(c.strip() for c in cells[self.nhead:]):
                    raise BadCell(f"{len(cells)} cells where the header has {self.nhead}: a "
                                  "shifted row (an unquoted decimal comma?)")
                if not cells[self.c_prefix].strip():
                    raise BadCell("no prefix/code")
                a = self.attrs(self.getter(cells))
                code_cell = cells[self.c_prefix]
                codes = [code_cell] if code_cell.isdigit() else expand_codes(code_cell, self.opts.hyphen)
                if a[15]:
                    codes = [str(a[15]) + c for c in codes]
                rate = self.rate(cells[self.c_rate])
            except (BadCell, ValueError) as exc:
                problems.append(f"{self.label}:{line}: {exc}")
                if skip_bad:
                    result.rejects.append((line, str(exc), ",".join(cells)))
                continue
            bad = self._append(a, codes, rate, seen, line)
            if bad:
                problems.append(f"{self.label}:{line}: {bad}")
                if skip_bad:
                    result.rejects.append((line, bad, ",".join(cells)))
        result.lines = line
        if problems and not skip_bad:
            raise DeckError(problems)
        if not len(data):
            raise DeckError([f"{self.label}:{line}: no rows"])
        return result

    def _append(self, a: tuple[object, ...], codes: list[str], rate: int,
                seen: dict[tuple[object, ...], int], line: int) -> str | None:
        """Add the rows of one deck line; a problem text instead when it duplicates a row."""
        (scode, inc_f, inc_n, unit, fee, minc, eff_from, eff_to, closed, name_ix, origin,
         band_ix, band, tiers, rate_first, _cc) = a
        assert isinstance(eff_from, int) and isinstance(eff_to, int)
        # A closed code: priced until its date, blocked from it (a "Closed" notice row names the
        # date the code is withdrawn; a longest-prefix fallback to a shorter code would misprice).
        if not closed:
            spans = [(eff_from, eff_to, 0)]
        elif eff_from > -NEVER:
            spans = [(-NEVER, eff_from, 0), (eff_from, eff_to, 1)]
        else:
            spans = [(eff_from, eff_to, 1)]
        keys = [(scode, origin, code, band, s_from) for code in codes for s_from, _, _ in spans]
        for key in keys:
            first = seen.get(key)
            if first is not None:
                return f"duplicate row for prefix {key[2]!r} (first at line {first})"
        if len(set(keys)) != len(keys):
            return "the same prefix twice in one row"
        for key in keys:
            seen[key] = line
        d = self.data
        first_rate = rate if rate_first is None else rate_first
        for code in codes:
            for s_from, s_to, blk in spans:
                d.service.append(scode)  # type: ignore[arg-type]
                d.prefix.append(code)
                d.origin.append(origin)  # type: ignore[arg-type]
                d.dest.append(name_ix)  # type: ignore[arg-type]
                d.band.append(band_ix)  # type: ignore[arg-type]
                d.blocked.append(blk)
                d.rate.append(rate)
                d.rate_first.append(first_rate)  # type: ignore[arg-type]
                d.inc_first.append(inc_f)  # type: ignore[arg-type]
                d.inc_next.append(inc_n)  # type: ignore[arg-type]
                d.rate_unit.append(unit)  # type: ignore[arg-type]
                d.fee.append(fee)  # type: ignore[arg-type]
                d.min_charge.append(minc)  # type: ignore[arg-type]
                d.eff_from.append(s_from)
                d.eff_to.append(s_to)
                if tiers:
                    d.tiers[len(d.prefix) - 1] = tiers  # type: ignore[assignment]
        return None
