"""The settlement state kept between runs: journal checkpoint, live buckets, closed periods.

``<data-dir>/settlement/state.json`` (written atomically). Each run continues the journal from
the checkpoint and merges the new records into the live buckets, so a draft run on a long
journal only reads what is new. Closing a period for a partner freezes a snapshot of its
buckets (and the issue date); a closed invoice is re-rendered from that snapshot, never from
the live buckets, so it never changes. Live buckets of a closed period that differ from its
snapshot (plus what was already adjusted) are *late records*: they become adjustment lines on
the next invoice that is built, referencing the closed invoice number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charging import pidlock
from settlement.aggregate import KEY_FIELDS, Buckets
from settlement.writers import write_atomic

_NK = len(KEY_FIELDS)
_P = KEY_FIELDS.index("partner")
_PER = KEY_FIELDS.index("period")


def _dump(b: Buckets) -> list[list[Any]]:
    return [[*k, *v] for k, v in sorted(b.items())]


def _load(rows: list[list[Any]]) -> Buckets:
    return {tuple(r[:_NK]): [int(x) for x in r[_NK:]] for r in rows}


class DataDirBusy(Exception):
    """A lock of this data dir's settlement work is held by another process (its ``pid:
    command line`` in :attr:`holder`); nothing was read or written. The caller prints the
    message as one line and exits 1."""

    what = "another process"

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        who = f" (pid {holder})" if holder else ""
        super().__init__(f"{path.parent.parent}: {self.what} is using this data dir{who}; "
                         "wait for it to finish")


class SettlementBusy(DataDirBusy):
    """Another settlement run holds this data dir (:func:`run_lock`)."""

    what = "another settlement run"


class ReconcileBusy(DataDirBusy):
    """Another reconciliation holds this data dir (:func:`reconcile_lock`)."""

    what = "another reconciliation"


@contextmanager
def _hold(path: Path, busy: type[DataDirBusy]) -> Iterator[None]:
    try:
        fd = pidlock.acquire(path)
    except pidlock.Held as exc:
        raise busy(path, exc.holder) from None
    try:
        yield
    finally:
        pidlock.release(fd)


@contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``<data-dir>/settlement/run.lock`` for one run (load state ... save state), or
    raise :class:`SettlementBusy` at once. A run saves the state whole, so one that overlapped
    another saved over it: a period the other closed (its final invoice issued) came back
    open. Readers of the journal need no lock; this one guards the state."""
    with _hold(data_dir / "settlement" / "run.lock", SettlementBusy):
        yield


@contextmanager
def reconcile_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``<data-dir>/settlement/reconcile.lock`` for one reconciliation that writes files
    (journal read ... disputes and reports written), or raise :class:`ReconcileBusy` at once.

    Two overlapping reconciliations of a partner's period wrote the same files through the
    same ``<file>.tmp`` (settlement/writers.py ``write_atomic``): one's rename could move the
    other's half-written temp file into place (a torn disputes file, whose operator statuses every
    later run then failed to read) and the other died on its own rename, leaving reports of
    two different runs side by side. Reconciliation shares no file with ``icx settle``
    (state.json, ``out/``), so this is its own lock, not :func:`run_lock`: it runs next to a
    settlement run."""
    with _hold(data_dir / "settlement" / "reconcile.lock", ReconcileBusy):
        yield


@dataclass
class ClosedPeriod:
    invoice_no: str
    issue_date: str
    snapshot: Buckets
    adjusted: Buckets = field(default_factory=dict)  # late deltas already invoiced elsewhere
    invoice: dict[str, Any] = field(default_factory=dict)  # the final document, frozen


@dataclass
class SettlementState:
    checkpoint: Any = None
    records: int = 0
    settled: int = 0
    buckets: Buckets = field(default_factory=dict)
    movements: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # period -> partner -> ClosedPeriod
    closed: dict[str, dict[str, ClosedPeriod]] = field(default_factory=dict)

    @staticmethod
    def path(data_dir: Path) -> Path:
        return data_dir / "settlement" / "state.json"

    @classmethod
    def load(cls, data_dir: Path) -> SettlementState:
        p = cls.path(data_dir)
        if not p.exists():
            return cls()
        doc = json.loads(p.read_text(encoding="utf-8"))
        st = cls(checkpoint=doc.get("checkpoint"), records=doc.get("records", 0),
                 settled=doc.get("settled", 0), buckets=_load(doc.get("buckets", [])))
        st.movements = {(a, c, per): int(m) for a, c, per, m in doc.get("movements", [])}
        for period, partners in doc.get("closed", {}).items():
            st.closed[period] = {
                pid: ClosedPeriod(c["invoice_no"], c["issue_date"], _load(c["snapshot"]),
                                  _load(c.get("adjusted", [])), c.get("invoice", {}))
                for pid, c in partners.items()
            }
        return st

    def save(self, data_dir: Path) -> None:
        doc = {
            "version": 1, "checkpoint": self.checkpoint, "records": self.records,
            "settled": self.settled, "buckets": _dump(self.buckets),
            "movements": [[*k, v] for k, v in sorted(self.movements.items())],
            "closed": {
                period: {pid: {"invoice_no": c.invoice_no, "issue_date": c.issue_date,
                               "snapshot": _dump(c.snapshot), "adjusted": _dump(c.adjusted),
                               "invoice": c.invoice}
                         for pid, c in sorted(partners.items())}
                for period, partners in sorted(self.closed.items())
            },
        }
        write_atomic(self.path(data_dir), json.dumps(doc, sort_keys=True) + "\n")

    # -- queries ----------------------------------------------------------------------------
    def is_closed(self, period: str, partner: str) -> bool:
        return partner in self.closed.get(period, {})

    def of(self, partner: str, period: str) -> Buckets:
        return {k: v for k, v in self.buckets.items() if k[_P] == partner and k[_PER] == period}

    def late(self, partner: str, before: str) -> list[tuple[str, str, tuple[Any, ...], list[int]]]:
        """Late deltas of *partner*'s closed periods earlier than *before* (not yet adjusted)."""
        out = []
        for period in sorted(self.closed):
            c = self.closed[period].get(partner)
            if c is None or period >= before:
                continue
            for k, v in sorted(self.of(partner, period).items()):
                base = [0, 0, 0]
                for src in (c.snapshot, c.adjusted):
                    s = src.get(k)
                    if s is not None:
                        base = [base[i] + s[i] for i in range(3)]
                delta = [v[i] - base[i] for i in range(3)]
                if any(delta):
                    out.append((c.invoice_no, period, k, delta))
        return out

    def close(self, partner: str, period: str, invoice: dict[str, Any],
              late: list[tuple[str, str, tuple[Any, ...], list[int]]]) -> None:
        """Freeze *partner*'s *period* with its final *invoice*; *late* deltas are now invoiced."""
        self.closed.setdefault(period, {})[partner] = ClosedPeriod(
            invoice["invoice_no"], invoice["issue_date"], self.of(partner, period),
            invoice=invoice)
        for _, ref_period, k, delta in late:
            adj = self.closed[ref_period][partner].adjusted
            cur = adj.get(k, [0, 0, 0])
            adj[k] = [cur[i] + delta[i] for i in range(3)]
