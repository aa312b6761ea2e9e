"""The compiled settlement and reconciliation paths read the open segment only up to its records.

A live server's open segment is preallocated: its file is ``segment_bytes`` (64 MiB by
default) long, records first, then zeros (docs/journal-schema.md, Preallocation). The compiled
paths read the whole file -- every ``icx settle`` and ``icx reconcile`` run copied up to 64 MiB
of zeros to stop at the first zero frame header -- while ``JournalReader`` already read it in
steps. Both now read it with ``read_open_segment``: the same records, the same checkpoint, the
same ``fdatasync`` after the read, a few MiB read instead of the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charging.journal import SyncJournal
from settlement import fastagg
from settlement.aggregate import Aggregator
from settlement.currency import Period
from settlement.generate import TrafficGenerator
from settlement.recon_source import journal_calls
from settlement.source import JournalSource

TAIL = 48 << 20  # the preallocated file size; the records take well under 1 MiB
PERIOD = Period.parse("2026-11")

pytestmark = pytest.mark.skipif(not fastagg.available(),
                                reason="compiled settlement path not built (or ICX_NO_EXTENSIONS=1)")


def _rchar() -> int:
    """Bytes this process has read through read(2) so far (page cache hits included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _preallocated_journal(d: Path) -> Path:
    writer = SyncJournal(d, fsync=False)
    writer.append_many(TrafficGenerator(PERIOD, seed=5).records(800))
    writer.close()  # not sealed: the segment stays .open, as under a live server
    (seg,) = d.glob("*.open")
    with seg.open("r+b") as fh:  # the preallocated zero tail
        fh.truncate(TAIL)
    return seg


def _read_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    before = _rchar()
    out = fn()
    return out, _rchar() - before


def _agg(cfg: Any) -> Aggregator:
    return Aggregator({p.id: p.timezone for p in cfg.partners.values()},
                      {p.prepaid_account: p.id for p in cfg.partners.values()
                       if p.prepaid_account},
                      target=PERIOD, deck_partners=cfg.deck_partners(),
                      shared_decks=cfg.shared_decks())


def _settle_read(cfg: Any, d: Path, fast: bool) -> tuple[Any, Any]:
    agg = _agg(cfg)
    cp = JournalSource(d, fast=fast).read(None, agg, None)
    return cp, (agg.result.records, agg.result.settled, sorted(agg.result.buckets.items()),
                sorted(agg.result.movements.items()), agg.result.problems)


def test_settle_reads_the_records_not_the_zero_tail(cfg: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/proc/self/io").exists():
        pytest.skip("needs Linux /proc/self/io")
    seg = _preallocated_journal(tmp_path)
    assert seg.stat().st_size == TAIL
    want = _settle_read(cfg, tmp_path, fast=False)  # the spec's records and checkpoint
    _settle_read(cfg, tmp_path, fast=True)  # warm: lazy imports read files too
    synced: list[str] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    got, nbytes = _read_bytes(lambda: _settle_read(cfg, tmp_path, fast=True))
    monkeypatch.undo()
    assert got == want and got[0] == [1, got[0][1]] and got[1][0] == 800
    assert synced == [seg.name]  # still synced after the read: the checkpoint is durable
    assert nbytes < 8 << 20, f"read {nbytes} bytes of a {TAIL}-byte preallocated segment"


def test_reconcile_reads_the_records_not_the_zero_tail(tmp_path: Path) -> None:
    if not Path("/proc/self/io").exists():
        pytest.skip("needs Linux /proc/self/io")
    _preallocated_journal(tmp_path)
    lo, hi = 0, 1 << 62
    want = journal_calls(tmp_path, "orange-fr", lo, hi, fast=False)
    journal_calls(tmp_path, "orange-fr", lo, hi, fast=True)  # warm
    got, nbytes = _read_bytes(lambda: journal_calls(tmp_path, "orange-fr", lo, hi, fast=True))
    key = repr  # the compiled path appends the records it hands to the spec: compare as sets
    assert sorted(got, key=key) == sorted(want, key=key) and len(got) > 100
    assert nbytes < 8 << 20, f"read {nbytes} bytes of a {TAIL}-byte preallocated segment"
