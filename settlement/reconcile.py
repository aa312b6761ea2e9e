"""Reconciliation: our journal records of a partner against the partner's CDR file.

Matching (protocol-facts G6: CDR matching tools classify exact / partial / mismatch /
missing): a pair shares the A- and B-number (digits only, international ``00`` prefix
dropped) and starts within ``tolerance_seconds``; among candidates the closest start wins.
A pair is

* ``exact``: same start second, same duration, same amount (when the file has amounts);
* ``within_tolerance``: the durations differ by at most ``max(tolerance_seconds,
  tolerance_pct% of our duration)`` and the amounts by at most ``tolerance_pct%``;
* ``mismatch``: paired, but beyond that tolerance;

and what is left is ``only_ours`` / ``only_theirs``. The money variance is ours - theirs, per
class and in total. Every mismatch and unmatched record opens a dispute (deterministic ids,
``<data-dir>/settlement/disputes/``). The partner's invoice total (``--their-total``, else
the sum of their CDR amounts) is compared with our rounded total.
"""

from __future__ import annotations

import bisect
import csv
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from charging.money import MoneyError, div_round, format_amount, parse_amount
from settlement.config import CdrMapping, SettlementConfig
from settlement.currency import Period, round_invoice, zone_of
from settlement.disputes import open_disputes
from settlement.writers import to_json, write_atomic

CLASSES = ("exact", "within_tolerance", "mismatch", "only_ours", "only_theirs")


class CdrFileError(ValueError):
    """The partner's file cannot be read: ``file:line: what is wrong``."""


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call from either side (ours from the journal, theirs from the CSV)."""

    id: str
    a: str
    b: str
    start_us: int
    duration: int
    amount: int | None  # micro-units
    currency: str | None
    line: int = 0


def digits(number: str) -> str:
    """Digits of a phone number, with the international ``00`` prefix dropped."""
    d = "".join(ch for ch in number if ch.isdigit())
    return d[2:] if d.startswith("00") else d


def _parse_start(text: str, fmt: str, tz: str) -> int:
    text = text.strip()
    if fmt == "epoch":
        return int(Decimal(text) * 1_000_000)
    if fmt == "epoch_ms":
        return int(Decimal(text) * 1_000)
    dt = datetime.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone_of(tz))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def read_partner_cdrs(path: Path, mapping: CdrMapping) -> list[Cdr]:
    """Parse a partner CDR CSV with *mapping*; raise CdrFileError naming file and line."""
    out: list[Cdr] = []
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise CdrFileError(f"{path}:0: cannot open: {exc.strerror}") from exc
    with fh:
        reader = csv.DictReader(fh, delimiter=mapping.delimiter)
        need = [c for c in (mapping.a, mapping.b, mapping.start, mapping.duration,
                            mapping.amount, mapping.currency, mapping.id) if c]
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise CdrFileError(f"{path}:1: missing column(s) {', '.join(missing)} "
                               f"(header has {', '.join(reader.fieldnames or [])})")
        for row in reader:
            line = reader.line_num
            try:
                start = _parse_start(row[mapping.start], mapping.start_format, mapping.timezone)
            except (ValueError, ArithmeticError) as exc:
                raise CdrFileError(f"{path}:{line}: bad {mapping.start} "
                                   f"{row[mapping.start]!r}: {exc}") from exc
            try:
                duration = int(Decimal(row[mapping.duration].strip()))
            except (ValueError, ArithmeticError) as exc:
                raise CdrFileError(f"{path}:{line}: bad {mapping.duration} "
                                   f"{row[mapping.duration]!r}") from exc
            if duration < 0:
                raise CdrFileError(f"{path}:{line}: negative {mapping.duration}")
            amount = None
            if mapping.amount and row[mapping.amount].strip():
                try:
                    amount = parse_amount(row[mapping.amount].strip())
                except MoneyError as exc:
                    raise CdrFileError(f"{path}:{line}: bad {mapping.amount}: {exc}") from exc
            out.append(Cdr(id=row[mapping.id] if mapping.id else f"line-{line}",
                           a=digits(row[mapping.a]), b=digits(row[mapping.b]), start_us=start,
                           duration=duration, amount=amount,
                           currency=row[mapping.currency].strip() if mapping.currency else None,
                           line=line))
    return out


def our_cdrs(records: Iterable[Mapping[str, Any]], partner: str, lo: int, hi: int,
             direction: str = "any", service: str = "voice") -> list[Cdr]:
    """Our side: the partner's records (top level or a leg) of *service* ("any" for all)
    that start in [lo, hi)."""
    out = []
    for rec in records:
        if rec.get("type") not in ("rated", "adjust"):
            continue
        if service != "any" and rec.get("service") != service:
            continue
        start = rec.get("start")
        if type(start) is not int or not lo <= start < hi:
            continue
        srcs = [leg for leg in rec.get("legs") or () if leg.get("partner") == partner]
        if not srcs and rec.get("partner") == partner:
            srcs = [rec]
        for src in srcs:
            if direction != "any" and src.get("direction") != direction:
                continue
            usage = rec.get("usage") or 0
            out.append(Cdr(id=str(rec.get("id")), a=digits(str(rec.get("a") or "")),
                           b=digits(str(rec.get("b") or "")), start_us=start,
                           duration=usage if rec.get("unit", "s") == "s" else 0,
                           amount=parse_amount(src["price"]) if src.get("price") else None,
                           currency=src.get("currency")))
    return out


@dataclass
class Pair:
    cls: str
    ours: Cdr | None
    theirs: Cdr | None

    @property
    def variance(self) -> int:
        return ((self.ours.amount or 0) if self.ours else 0) - \
            ((self.theirs.amount or 0) if self.theirs else 0)


def match(ours: list[Cdr], theirs: list[Cdr], *, tolerance_seconds: int,
          tolerance_pct: Decimal) -> list[Pair]:
    """Pair and classify (see the module docstring). Deterministic for the same inputs."""
    tol_us = tolerance_seconds * 1_000_000
    pct = Fraction(tolerance_pct) / 100
    index: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for i, t in enumerate(theirs):
        index.setdefault((t.a, t.b), []).append((t.start_us, i))
    for lst in index.values():
        lst.sort()
    used = [False] * len(theirs)
    pairs: list[Pair] = []
    for o in sorted(ours, key=lambda c: (c.start_us, c.id)):
        cands = index.get((o.a, o.b), [])
        j = bisect.bisect_left(cands, (o.start_us - tol_us, -1))
        best = None
        while j < len(cands) and cands[j][0] <= o.start_us + tol_us:
            s, i = cands[j]
            if not used[i] and (best is None or abs(s - o.start_us) < abs(best[0] - o.start_us)):
                best = (s, i)
            j += 1
        if best is None:
            pairs.append(Pair("only_ours", o, None))
            continue
        used[best[1]] = True
        t = theirs[best[1]]
        pairs.append(Pair(_classify(o, t, tolerance_seconds, pct), o, t))
    for i, t in enumerate(theirs):
        if not used[i]:
            pairs.append(Pair("only_theirs", None, t))
    return pairs


def _classify(o: Cdr, t: Cdr, tol_s: int, pct: Fraction) -> str:
    same_amount = o.amount is None or t.amount is None or o.amount == t.amount
    if o.start_us // 1_000_000 == t.start_us // 1_000_000 and o.duration == t.duration \
            and same_amount:
        return "exact"
    dur_ok = abs(o.duration - t.duration) <= max(Fraction(tol_s), pct * o.duration)
    amt_ok = (o.amount is None or t.amount is None
              or abs(o.amount - t.amount) <= pct * abs(o.amount))
    return "within_tolerance" if dur_ok and amt_ok else "mismatch"


@dataclass
class ReconcileResult:
    pairs: list[Pair]
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def reconcile(cfg: SettlementConfig, records: Iterable[Mapping[str, Any]], *, partner: str,
              period: Period, their_cdrs: Path, tolerance_seconds: int = 2,
              tolerance_pct: Decimal = Decimal(1), their_total: Decimal | None = None,
              direction: str = "any", service: str = "voice", out_dir: Path | None = None,
              data_dir: Path | None = None) -> ReconcileResult:
    """Reconcile *partner*'s *period*; write CSV/HTML/JSON under *out_dir* when given."""
    p = cfg.partners[partner]
    mapping = cfg.cdr_mappings[p.cdr_mapping or ""]
    theirs_all = read_partner_cdrs(their_cdrs, mapping)
    lo, hi = period.bounds_us(p.timezone)
    theirs = [t for t in theirs_all if lo <= t.start_us < hi]
    ours = our_cdrs(records, partner, lo, hi, direction, service)
    pairs = match(ours, theirs, tolerance_seconds=tolerance_seconds, tolerance_pct=tolerance_pct)
    counts = {c: 0 for c in CLASSES}
    variance = {c: 0 for c in CLASSES}
    for pr in pairs:
        counts[pr.cls] += 1
        variance[pr.cls] += pr.variance
    our_amount = sum(o.amount or 0 for o in ours)
    their_amount = sum(t.amount or 0 for t in theirs)
    ccy = p.currency
    our_total = round_invoice(our_amount, ccy)
    their_inv = parse_amount(their_total) if their_total is not None else round_invoice(
        their_amount, ccy)
    diff = our_total - their_inv
    allowed = Fraction(tolerance_pct) / 100 * abs(our_total)
    disputed = [pr for pr in pairs if pr.cls in ("mismatch", "only_ours", "only_theirs")]
    summary: dict[str, Any] = {
        "partner": partner, "period": str(period), "currency": ccy,
        "tolerance_seconds": tolerance_seconds, "tolerance_pct": str(tolerance_pct),
        "their_file": their_cdrs.name, "their_rows": len(theirs_all),
        "their_rows_outside_period": len(theirs_all) - len(theirs),
        "counts": counts, "variance_by_class": {k: format_amount(v) for k, v in variance.items()},
        "our_amount": format_amount(our_amount), "their_amount": format_amount(their_amount),
        "variance": format_amount(our_amount - their_amount),
        "invoice_compare": {"ours": format_amount(our_total), "theirs": format_amount(their_inv),
                            "difference": format_amount(diff),
                            "within_tolerance": abs(diff) <= allowed},
        "disputes_opened": len(disputed),
    }
    result = ReconcileResult(pairs, summary)
    if out_dir is not None:
        base = out_dir / str(period) / partner
        stem = f"RECON-{period}-{partner.upper()}"
        csv_path, html_path, json_path = (base / f"{stem}.csv", base / f"{stem}.html",
                                          base / f"{stem}.json")
        write_atomic(csv_path, pairs_csv(pairs))
        write_atomic(json_path, to_json(summary))
        disputes = open_disputes(data_dir or out_dir, partner, period, disputed,
                                 summary) if disputed else []
        from settlement.recon_html import report_html

        write_atomic(html_path, report_html(summary, pairs, disputes))
        result.files = [csv_path, html_path, json_path]
    return result


def reconcile_journal(cfg: SettlementConfig, journal_dir: Path, **kw: Any) -> ReconcileResult:
    """:func:`reconcile` over the journal in *journal_dir*."""
    from charging.journal import JournalReader

    def records() -> Iterator[Any]:
        for chunk in JournalReader(journal_dir).chunks():
            yield from chunk.records

    return reconcile(cfg, records(), **kw)


def _us_text(us: int) -> str:
    return datetime.utcfromtimestamp(us // 1_000_000).strftime("%Y-%m-%d %H:%M:%S") + "Z"


PAIR_COLUMNS = ("class", "our_id", "their_id", "their_line", "a", "b", "our_start",
                "their_start", "our_duration", "their_duration", "our_amount", "their_amount",
                "variance")


def pair_row(pr: Pair) -> list[str]:
    o, t = pr.ours, pr.theirs
    ref = o or t
    assert ref is not None
    return [pr.cls, o.id if o else "", t.id if t else "", str(t.line) if t else "", ref.a, ref.b,
            _us_text(o.start_us) if o else "", _us_text(t.start_us) if t else "",
            str(o.duration) if o else "", str(t.duration) if t else "",
            format_amount(o.amount) if o and o.amount is not None else "",
            format_amount(t.amount) if t and t.amount is not None else "",
            format_amount(pr.variance)]


def pairs_csv(pairs: list[Pair]) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PAIR_COLUMNS)
    for pr in pairs:
        w.writerow(pair_row(pr))
    return buf.getvalue()


def write_partner_cdrs(path: Path, records: Sequence[Mapping[str, Any]], mapping: CdrMapping, *,
                       partner: str, seed: int = 1) -> int:
    """Demo helper: the partner's view of *records* with realistic differences: ~3% of
    durations +1 s (within tolerance), ~1% +30 s (mismatch), ~1% missing (only ours) and a
    few calls we never saw (only theirs). Uses the mapping's columns (ISO or strptime)."""
    rng = random.Random(seed)
    cols = [mapping.id or "id", mapping.a, mapping.b, mapping.start, mapping.duration]
    if mapping.amount:
        cols.append(mapping.amount)
    if mapping.currency:
        cols.append(mapping.currency)
    fmt = mapping.start_format
    rows = []
    n = 0
    for rec in records:
        src = next((leg for leg in rec.get("legs") or () if leg.get("partner") == partner), rec)
        if rec.get("unit") != "s" or src.get("partner") != partner or not src.get("price"):
            continue
        r = rng.random()
        if r < 0.01:
            continue
        dur = int(rec["usage"])
        amount = parse_amount(src["price"])
        if r < 0.02:
            dur += 30
        elif r < 0.05:
            dur += 1
        if dur != rec["usage"] and rec["usage"]:
            amount = div_round(amount * dur, int(rec["usage"]))
        rows.append((rec["start"], rec["a"], rec["b"], dur, amount, src.get("currency", "")))
    if rows:
        lo = min(r[0] for r in rows)
        for k in range(max(1, len(rows) // 200)):
            rows.append((lo + k * 7_000_000, "+33140000000", "+4420700000" + str(k % 10),
                         60, 50_000, "EUR"))
    with_tz = zone_of(mapping.timezone)
    lines = []
    for start, a, b, dur, amount, ccy in sorted(rows):
        n += 1
        dt = datetime.fromtimestamp(start // 1_000_000, tz=with_tz)
        when = (dt.replace(tzinfo=None).isoformat() if fmt == "iso" else str(start // 1_000_000)
                if fmt == "epoch" else dt.strftime(fmt))
        row = [f"P{n:08d}", a.lstrip("+"), b.lstrip("+"), when, str(dur)]
        if mapping.amount:
            row.append(format_amount(amount))
        if mapping.currency:
            row.append(ccy)
        lines.append(row)
    import io

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=mapping.delimiter, lineterminator="\n")
    w.writerow(cols)
    w.writerows(lines)
    write_atomic(path, buf.getvalue())
    return n
