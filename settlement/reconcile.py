"""Reconciliation: our journal records of a partner against the partner's CDR file.

Matching (protocol-facts G6: CDR matching tools classify exact / partial / mismatch /
missing): a pair shares the A- and B-number (digits only, international ``00`` prefix
dropped) and starts within ``tolerance_seconds``; among candidates the closest start wins.
A pair is

* ``exact``: same start second, same billed duration, same amount (when the file has amounts);
* ``within_tolerance``: the exact durations differ by at most ``max(tolerance_seconds,
  tolerance_pct% of our duration)`` and the amounts by at most ``tolerance_pct%``;
* ``mismatch``: paired, but beyond that tolerance;

and what is left is ``only_ours`` / ``only_theirs``.

Durations are exact: a partner's ``60.7`` is kept as Decimal seconds (never truncated), and
the agreement's billing rule of the CDR mapping (``duration_rounding`` up|half_up|down to a
multiple of ``billing_increment`` seconds, default: up to whole seconds) gives the billed
seconds both sides are compared on; a sub-second difference is shown exactly and judged
against the tolerance exactly.

Money is compared in the partner's (invoice) currency, converted the way settlement converts
(settlement/fx.py: the record's own ``fx``, else the ``[[fx]]`` period rate; no rate is a
:class:`ReconcileError` naming both currencies; amounts are never added across currencies).
A pair's amounts are converted one by one (rounded once to micro-units, HALF_UP); the totals
convert each source currency's exact sum once, as the invoice does. The money variance is
ours - theirs, per class and in total. Every mismatch and unmatched record opens a dispute
(deterministic ids, ``<data-dir>/settlement/disputes/``). The partner's invoice total
(``--their-total``, else the sum of their CDR amounts) is compared with our rounded total.
"""

from __future__ import annotations

import bisect
import csv
import random
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from charging.money import MoneyError, Rounding, div_round, format_amount, parse_amount
from settlement.config import CdrMapping, SettlementConfig
from settlement.currency import Period, is_currency, round_invoice, zone_of
from settlement.disputes import open_disputes
from settlement.fx import Conversion, FxError, convert, find_rate
from settlement.state import reconcile_lock
from settlement.writers import to_json, write_atomic

CLASSES = ("exact", "within_tolerance", "mismatch", "only_ours", "only_theirs")


class CdrFileError(ValueError):
    """The partner's file cannot be read: ``file:line: what is wrong``."""


class ReconcileError(ValueError):
    """Reconciliation cannot be done consistently (e.g. no FX rate between two currencies)."""


NO_FX = ("", "", "")
_ROUNDINGS = {"up": Rounding.UP, "half_up": Rounding.HALF_UP, "down": Rounding.DOWN}


def billed_seconds(duration: Decimal | int, increment: int = 1, rounding: str = "up") -> int:
    """*duration* (exact seconds) rounded to a multiple of *increment* seconds by *rounding*
    (``up``: a started increment counts; ``half_up``; ``down``)."""
    if type(duration) is int:
        if increment == 1:
            return duration
        num, den = duration, increment
    else:
        f = Fraction(duration) / increment
        num, den = f.numerator, f.denominator
    return div_round(num, den, _ROUNDINGS[rounding]) * increment


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call from either side (ours from the journal, theirs from the CSV).

    ``duration`` is exact seconds (a partner's ``"60.7"`` stays 60.7); ``billed`` the seconds
    after the agreement's rounding (None: the duration rounded up to whole seconds).
    ``amount``/``currency`` are what the record says; :func:`reconcile` compares them in the
    partner's currency (``source_amount``/``source_currency`` then keep the original)."""

    id: str
    a: str
    b: str
    start_us: int
    duration: Decimal | int
    amount: int | None  # micro-units
    currency: str | None
    line: int = 0
    billed: int | None = None
    fx: tuple[str, str, str] = NO_FX  # our record's own fx (from, rate, date)
    source_amount: int | None = None
    source_currency: str | None = None

    @property
    def billed_s(self) -> int:
        return self.billed if self.billed is not None else billed_seconds(self.duration)


def duration_text(d: Decimal | int) -> str:
    """An exact duration as plain decimal text (``60``, ``60.7``), never an exponent."""
    if isinstance(d, int):
        return str(d)
    text = format(d.normalize(), "f")
    return text


def digits(number: str) -> str:
    """Digits of a phone number, with the international ``00`` prefix dropped."""
    if number.isascii() and number.isdigit():
        d = number
    elif number[:1] == "+" and number[1:].isascii() and number[1:].isdigit():
        d = number[1:]  # the usual E.164 form: no per-character work
    else:
        d = "".join(ch for ch in number if ch.isdigit())
    return d[2:] if d.startswith("00") else d


_SQL_TIME = "%Y-%m-%d %H:%M:%S"


def _sql_shaped(t: str) -> bool:
    """``dddd-dd-dd dd:dd:dd`` exactly (ASCII digits)."""
    return (len(t) == 19 and t[4] == "-" and t[7] == "-" and t[10] == " " and t[13] == ":"
            and t[16] == ":" and t.isascii()
            and (t[:4] + t[5:7] + t[8:10] + t[11:13] + t[14:16] + t[17:]).isdigit())


def _parse_start(text: str, fmt: str, tz: str) -> int:
    text = text.strip()
    if fmt == "epoch":
        return int(Decimal(text) * 1_000_000)
    if fmt == "epoch_ms":
        return int(Decimal(text) * 1_000)
    if fmt == "iso":
        dt = datetime.fromisoformat(text)
    elif fmt == _SQL_TIME and _sql_shaped(text):
        # the common "2026-11-10 12:00:00": the C ISO parser (strptime is ~10x slower);
        # the shape test keeps it exactly as strict as the pattern
        dt = datetime.fromisoformat(text)
    else:
        dt = datetime.strptime(text, fmt)
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
                # exact: "60.7" is 60.7 s, never truncated to 60 (the billing rule rounds)
                duration = Decimal(row[mapping.duration].strip())
            except (ValueError, ArithmeticError) as exc:
                raise CdrFileError(f"{path}:{line}: bad {mapping.duration} "
                                   f"{row[mapping.duration]!r}") from exc
            if not duration.is_finite():
                raise CdrFileError(f"{path}:{line}: bad {mapping.duration} "
                                   f"{row[mapping.duration]!r}")
            if duration < 0:
                raise CdrFileError(f"{path}:{line}: negative {mapping.duration}")
            amount = None
            if mapping.amount and row[mapping.amount].strip():
                try:
                    amount = parse_amount(row[mapping.amount].strip())
                except MoneyError as exc:
                    raise CdrFileError(f"{path}:{line}: bad {mapping.amount}: {exc}") from exc
            ccy = (row[mapping.currency].strip() or None) if mapping.currency else None
            if ccy is not None and not is_currency(ccy):
                raise CdrFileError(f"{path}:{line}: bad {mapping.currency} {ccy!r} "
                                   "(an ISO 4217 code such as EUR)")
            out.append(Cdr(id=row[mapping.id] if mapping.id else f"line-{line}",
                           a=digits(row[mapping.a]), b=digits(row[mapping.b]), start_us=start,
                           duration=duration, amount=amount, currency=ccy, line=line,
                           billed=billed_seconds(duration, mapping.billing_increment,
                                                 mapping.duration_rounding),
                           source_amount=amount, source_currency=ccy))
    return out


def our_cdr(rid: str, a: str, b: str, start: int, duration: int, amount: int | None,
            currency: str | None, fx: tuple[str, str, str], inc: int, rounding: str) -> Cdr:
    """One of our calls (both journal paths build them here, so they agree)."""
    return Cdr(id=rid, a=digits(a), b=digits(b), start_us=start, duration=duration,
               amount=amount, currency=currency, billed=billed_seconds(duration, inc, rounding),
               fx=fx, source_amount=amount, source_currency=currency)


def our_cdrs(records: Iterable[Mapping[str, Any]], partner: str, lo: int, hi: int,
             direction: str = "any", service: str = "voice", *,
             mapping: CdrMapping | None = None,
             deck_partners: Mapping[str, tuple[str, str]] | None = None) -> list[Cdr]:
    """Our side: the partner's records (top level or a leg) of *service* ("any" for all)
    that start in [lo, hi). A record without partner or legs (the Ro/Rf path writes only its
    deck) is the partner's when *deck_partners* (deck -> (partner, direction), from the
    bilateral agreements) maps its deck to it, as settlement does. *mapping* gives the
    billing rule of durations (default: up to whole seconds). This is the executable spec of
    the compiled selection (``settle_agg.select_calls``, settlement/recon_source.py)."""
    inc, rounding = (mapping.billing_increment, mapping.duration_rounding) if mapping else (1, "up")
    decks = {d: dr for d, (p, dr) in (deck_partners or {}).items() if p == partner}
    out = []
    for rec in records:
        if rec.get("type") not in ("rated", "adjust"):
            continue
        if service != "any" and rec.get("service") != service:
            continue
        start = rec.get("start")
        if type(start) is not int or not lo <= start < hi:
            continue
        legs = rec.get("legs") or ()
        srcs = [leg for leg in legs if leg.get("partner") == partner]
        if not srcs and rec.get("partner") == partner:
            srcs = [rec]
        if not srcs and not legs and not rec.get("partner") and decks:
            deck = rec.get("deck")
            if isinstance(deck, str) and deck in decks:
                srcs = [{**rec, "partner": partner, "direction": decks[deck]}]
        for src in srcs:
            if direction != "any" and src.get("direction") != direction:
                continue
            usage = rec.get("usage") or 0
            fx = rec.get("fx")
            out.append(our_cdr(
                str(rec.get("id")), str(rec.get("a") or ""), str(rec.get("b") or ""), start,
                usage if rec.get("unit", "s") == "s" else 0,
                parse_amount(src["price"]) if src.get("price") else None, src.get("currency"),
                (str(fx.get("from", "")), str(fx.get("rate", "")), str(fx.get("date", "")))
                if isinstance(fx, Mapping) else NO_FX, inc, rounding))
    return out


class _Converter:
    """Amounts into the partner's currency with the conversion settlement uses
    (settlement/fx.py), one lookup per (currency, record fx)."""

    def __init__(self, cfg: SettlementConfig, period: Period, target: str) -> None:
        self.cfg, self.period, self.target = cfg, str(period), target
        self.used: dict[tuple[str, tuple[str, str, str]], Conversion | None] = {}

    def conversion(self, cdr: Cdr, side: str) -> Conversion | None:
        ccy = cdr.currency or self.target  # a file without a currency column: the invoice's
        key = (ccy, cdr.fx)
        if key not in self.used:
            try:
                self.used[key] = find_rate(self.cfg, self.period, ccy, self.target, *cdr.fx)
            except FxError as exc:
                raise ReconcileError(
                    f"{side} {cdr.id!r} is in {ccy}, the partner invoices in {self.target}: "
                    f"{exc}; amounts in different currencies are never added") from None
        return self.used[key]

    def to_target(self, cdr: Cdr, side: str) -> Cdr:
        """*cdr* with its amount in the target currency (the original kept as source_*)."""
        if cdr.amount is None or cdr.currency is None or cdr.currency == self.target:
            if cdr.source_amount == cdr.amount:
                return cdr  # already in the target currency (no copy: the common case)
            return replace(cdr, source_amount=cdr.amount, source_currency=cdr.currency)
        conv = self.conversion(cdr, side)
        return replace(cdr, amount=convert(cdr.amount, conv), currency=self.target,
                       source_amount=cdr.amount, source_currency=cdr.currency)

    def total(self, cdrs: Iterable[Cdr], side: str) -> tuple[int, dict[str, int]]:
        """(sum in the target currency, exact sums per source currency): each source
        currency's (and record fx's) exact sum is converted once, like an invoice line."""
        groups: dict[tuple[str, tuple[str, str, str]], list[Any]] = {}
        for c in cdrs:
            if c.source_amount is None:
                continue
            k = (c.source_currency or self.target, c.fx)
            have = groups.get(k)
            if have is None:
                groups[k] = [c.source_amount, c]
            else:
                have[0] += c.source_amount
        total = 0
        by_ccy: dict[str, int] = {}
        for (ccy, _), (micros, sample) in sorted(groups.items()):
            total += convert(micros, self.conversion(replace(sample, currency=ccy), side))
            by_ccy[ccy] = by_ccy.get(ccy, 0) + micros
        return total, by_ccy

    def shown(self) -> list[dict[str, str]]:
        return [{"from": ccy, "to": self.target, "rate": c.shown, "date": c.date,
                 "source": c.source} for (ccy, _), c in sorted(self.used.items(),
                                                            key=lambda kv: kv[0])
                if c is not None]


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
    if o.start_us // 1_000_000 == t.start_us // 1_000_000 and o.billed_s == t.billed_s \
            and same_amount:
        return "exact"
    ours = Fraction(o.duration)
    dur_ok = abs(ours - Fraction(t.duration)) <= max(Fraction(tol_s), pct * ours)
    amt_ok = (o.amount is None or t.amount is None
              or abs(o.amount - t.amount) <= pct * abs(o.amount))
    return "within_tolerance" if dur_ok and amt_ok else "mismatch"


@dataclass
class ReconcileResult:
    pairs: list[Pair]
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    fast_path: bool | None = None  # reconcile_journal: the compiled selection read the journal


def reconcile(cfg: SettlementConfig, records: Iterable[Mapping[str, Any]], *, partner: str,
              period: Period, direction: str = "any", service: str = "voice",
              **kw: Any) -> ReconcileResult:
    """Reconcile *partner*'s *period* against our *records* (decoded journal records); see
    :func:`reconcile_calls` for the keywords."""
    p = cfg.partners[partner]
    lo, hi = period.bounds_us(p.timezone)
    ours = our_cdrs(records, partner, lo, hi, direction, service,
                    mapping=cfg.cdr_mappings[p.cdr_mapping or ""],
                    deck_partners=cfg.deck_partners())
    return reconcile_calls(cfg, ours, partner=partner, period=period, **kw)


def _lock(out_dir: Path | None, data_dir: Path | None) -> AbstractContextManager[None]:
    """The reconcile lock of the data dir the disputes go to, when files are written."""
    if out_dir is None:
        return nullcontext()
    return reconcile_lock(data_dir or out_dir)


def reconcile_calls(cfg: SettlementConfig, our_calls: list[Cdr], *, partner: str,
                    period: Period, their_cdrs: Path, tolerance_seconds: int = 2,
                    tolerance_pct: Decimal = Decimal(1), their_total: Decimal | None = None,
                    out_dir: Path | None = None, data_dir: Path | None = None,
                    lock: bool = True) -> ReconcileResult:
    """Reconcile *our_calls* (:func:`our_cdrs` of the period) with the partner's file;
    write CSV/HTML/JSON under *out_dir* when given. Writing holds the data dir's reconcile
    lock (``lock=False``: the caller holds it already): raises
    :class:`~settlement.state.ReconcileBusy` (nothing written) while another reconciliation
    holds it."""
    with _lock(out_dir, data_dir) if lock else nullcontext():
        return _reconcile_calls(cfg, our_calls, partner, period, their_cdrs, tolerance_seconds,
                                tolerance_pct, their_total, out_dir, data_dir)


def _reconcile_calls(cfg: SettlementConfig, our_calls: list[Cdr], partner: str, period: Period,
                     their_cdrs: Path, tolerance_seconds: int, tolerance_pct: Decimal,
                     their_total: Decimal | None, out_dir: Path | None,
                     data_dir: Path | None) -> ReconcileResult:
    p = cfg.partners[partner]
    mapping = cfg.cdr_mappings[p.cdr_mapping or ""]
    theirs_all = read_partner_cdrs(their_cdrs, mapping)
    lo, hi = period.bounds_us(p.timezone)
    ccy = p.currency
    conv = _Converter(cfg, period, ccy)
    theirs = [conv.to_target(t, "their CDR") for t in theirs_all if lo <= t.start_us < hi]
    ours = [conv.to_target(o, "our record") for o in our_calls]
    pairs = match(ours, theirs, tolerance_seconds=tolerance_seconds, tolerance_pct=tolerance_pct)
    counts = {c: 0 for c in CLASSES}
    variance = {c: 0 for c in CLASSES}
    for pr in pairs:
        counts[pr.cls] += 1
        variance[pr.cls] += pr.variance
    our_amount, our_by_ccy = conv.total(ours, "our record")
    their_amount, their_by_ccy = conv.total(theirs, "their CDR")
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
        "our_amount_by_currency": {k: format_amount(v) for k, v in our_by_ccy.items()},
        "their_amount_by_currency": {k: format_amount(v) for k, v in their_by_ccy.items()},
        "fx": conv.shown(),
        "duration_rounding": mapping.duration_rounding,
        "billing_increment": mapping.billing_increment,
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


def reconcile_journal(cfg: SettlementConfig, journal_dir: Path, *, partner: str,
                      period: Period, direction: str = "any", service: str = "voice",
                      fast: bool | None = None, **kw: Any) -> ReconcileResult:
    """:func:`reconcile` over the journal in *journal_dir*: the compiled selection of the
    partner's calls when built (``fast=None``), else the pure reader (same calls). With
    ``out_dir`` the reconcile lock is taken before the journal is read: raises
    :class:`~settlement.state.ReconcileBusy` at once (nothing read or written) while another
    reconciliation holds the data dir."""
    from settlement.recon_source import journal_calls

    p = cfg.partners[partner]
    lo, hi = period.bounds_us(p.timezone)
    import cython_ext

    use = cython_ext.load("settle_agg") is not None if fast is None else fast
    with _lock(kw.get("out_dir"), kw.get("data_dir")):
        ours = journal_calls(journal_dir, partner, lo, hi, direction=direction, service=service,
                             mapping=cfg.cdr_mappings[p.cdr_mapping or ""],
                             deck_partners=cfg.deck_partners(), fast=use)
        result = reconcile_calls(cfg, ours, partner=partner, period=period, lock=False, **kw)
    result.fast_path = use
    return result


def _us_text(us: int) -> str:
    return datetime.utcfromtimestamp(us // 1_000_000).strftime("%Y-%m-%d %H:%M:%S") + "Z"


PAIR_COLUMNS = ("class", "our_id", "their_id", "their_line", "a", "b", "our_start",
                "their_start", "our_duration", "their_duration", "our_amount", "their_amount",
                "variance", "our_billed", "their_billed", "duration_difference",
                "our_source_amount", "their_source_amount")


def _source(c: Cdr | None) -> str:
    if c is None or c.source_amount is None or c.source_currency == c.currency:
        return ""
    return f"{format_amount(c.source_amount)} {c.source_currency}"


def pair_row(pr: Pair) -> list[str]:
    """One CSV row: durations exact (``60.7``), billed seconds after the agreement's rounding,
    amounts in the partner's currency (the original currency's amount when converted)."""
    o, t = pr.ours, pr.theirs
    ref = o or t
    assert ref is not None
    diff = ""
    if o and t:
        diff = duration_text(Decimal(o.duration) - Decimal(t.duration))
    return [pr.cls, o.id if o else "", t.id if t else "", str(t.line) if t else "", ref.a, ref.b,
            _us_text(o.start_us) if o else "", _us_text(t.start_us) if t else "",
            duration_text(o.duration) if o else "", duration_text(t.duration) if t else "",
            format_amount(o.amount) if o and o.amount is not None else "",
            format_amount(t.amount) if t and t.amount is not None else "",
            format_amount(pr.variance), str(o.billed_s) if o else "",
            str(t.billed_s) if t else "", diff, _source(o), _source(t)]


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
