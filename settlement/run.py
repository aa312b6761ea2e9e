"""One settlement run: read new journal records, update the state, write invoices.

Callers (``icx settle``) pass a :class:`RecordSource`; :func:`settle` returns a
:class:`RunReport` whose ``problems`` must make the caller exit non-zero. A run with problems
never closes a period (the state's buckets and checkpoint are still saved, so nothing is read
twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from settlement.aggregate import AggregateResult, Aggregator
from settlement.config import SettlementConfig
from settlement.currency import Period
from settlement.integrity import check_invoice, check_prepaid
from settlement.invoice import InvoiceBuilder
from settlement.state import SettlementState, run_lock
from settlement.writers import summary_html, to_json, write_atomic, write_partner

Progress = Callable[[int], None]


class RecordSource(Protocol):
    """Where records come from. ``read`` feeds every record after *checkpoint* into the
    aggregator and returns the new checkpoint (JSON-serialisable)."""

    def read(self, checkpoint: Any, agg: Aggregator, progress: Progress | None) -> Any: ...


class ListSource:
    """Records held in memory (tests, small tools); the checkpoint is the list index."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.records = list(records)

    def read(self, checkpoint: Any, agg: Aggregator, progress: Progress | None) -> Any:
        start = int(checkpoint or 0)
        for rec in self.records[start:]:
            agg.add(rec)
        if progress:
            progress(len(self.records) - start)
        return len(self.records)


@dataclass
class RunReport:
    period: str
    status: str
    records_read: int = 0
    workers: int = 1
    files: list[Path] = field(default_factory=list)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def settle(cfg: SettlementConfig, source: RecordSource, *, data_dir: Path, period: Period,
           out_dir: Path | None = None, partner: str | None = None, close: bool = False,
           issue_date: str | None = None, progress: Progress | None = None) -> RunReport:
    """Settle *period* (all partners, or one); write files under *out_dir* if given. Raises
    SettlementBusy (nothing done) while another run holds *data_dir* (state.run_lock)."""
    report = RunReport(period=str(period), status="final" if close else "draft")
    if partner is not None and partner not in cfg.partners:
        report.problems.append(f"unknown partner {partner!r}")
        return report
    with run_lock(data_dir):
        return _settle(cfg, source, report, data_dir=data_dir, period=period,
                       out_dir=out_dir, partner=partner, close=close, issue_date=issue_date,
                       progress=progress)


def _settle(cfg: SettlementConfig, source: RecordSource, report: RunReport, *, data_dir: Path,
            period: Period, out_dir: Path | None, partner: str | None, close: bool,
            issue_date: str | None, progress: Progress | None) -> RunReport:
    state = SettlementState.load(data_dir)
    agg = Aggregator({p.id: p.timezone for p in cfg.partners.values()},
                     {p.prepaid_account: p.id for p in cfg.partners.values() if p.prepaid_account},
                     target=period, deck_partners=cfg.deck_partners(),
                     shared_decks=cfg.shared_decks())
    state.checkpoint = source.read(state.checkpoint, agg, progress)
    _merge(state, agg.result)
    report.records_read = agg.result.records
    report.workers = agg.result.workers
    report.problems.extend(agg.result.problems)

    pids = [partner] if partner else sorted(cfg.partners)
    rows = []
    to_close = []
    for pid in pids:
        p = cfg.partners[pid]
        if state.is_closed(str(period), pid):
            inv = state.closed[str(period)][pid].invoice
        else:
            builder = InvoiceBuilder(cfg, p, period, status=report.status, issue_date=issue_date)
            late = state.late(pid, before=str(period))
            buckets = state.of(pid, str(period))
            inv = builder.build(buckets, late)
            report.problems.extend(builder.problems)
            report.problems.extend(check_invoice(inv, buckets, late))
            report.problems.extend(check_prepaid(inv, state.movements))
            to_close.append((pid, inv, late))
        report.invoices[pid] = inv
        rows.append({"partner": pid, "invoice_no": inv["invoice_no"], "status": inv["status"],
                     "currency": inv["currency"], **{k: inv["totals"][k] for k in
                     ("receivable", "payable", "net", "net_direction")}})
    report.summary = {"period": str(period), "status": report.status,
                      "records": state.records, "settled": state.settled, "partners": rows}
    if close and not report.problems:
        for pid, inv, late in to_close:
            state.close(pid, str(period), inv, late)
    elif close:
        # nothing was closed: the files and the summary must not say "final"
        report.status = report.summary["status"] = "draft"
        drafts = {pid for pid, _, _ in to_close}
        for pid in drafts:
            report.invoices[pid]["status"] = "draft"
        for row in rows:
            if row["partner"] in drafts:
                row["status"] = "draft"
    if agg.result.problems:
        # A record that could not be settled (unknown partner, bad price, ...) is not in any
        # bucket: keeping the old checkpoint and sums makes every later run read it again and
        # report it (exit 1, no close) until the partners file or the journal is fixed,
        # instead of the next run closing the period without it.
        SettlementState.load(data_dir).save(data_dir)
    else:
        state.save(data_dir)
    if out_dir is not None:
        for pid, inv in report.invoices.items():
            bilateral = any(a.type == "bilateral" for a in cfg.agreements_of(pid))
            report.files += write_partner(out_dir / str(period), inv, bilateral=bilateral)
        name = f"summary-{period}" + (f"-{partner}" if partner else "")
        for path, text in ((out_dir / str(period) / f"{name}.json", to_json(report.summary)),
                           (out_dir / str(period) / f"{name}.html", summary_html(report.summary))):
            write_atomic(path, text)
            report.files.append(path)
    return report


def _merge(state: SettlementState, res: AggregateResult) -> None:
    state.records += res.records
    state.settled += res.settled
    for k, v in res.buckets.items():
        mine = state.buckets.get(k)
        if mine is None:
            state.buckets[k] = list(v)
        else:
            for i in range(3):
                mine[i] += v[i]
    for mk, mv in res.movements.items():
        state.movements[mk] = state.movements.get(mk, 0) + mv
