"""Settlement reads the open segment of a live journal only as far as it is durable.

The server answers a request once its record is synced, but a reader sees the record as soon
as the group's ``pwrite`` lands -- before the sync. A settlement run that billed such a record
and moved its checkpoint past it would, after an OS crash or power cut had lost the record,
resume in the middle of whatever the restarted server wrote at that offset. So the source
syncs the open segment itself (``fdatasync`` on its own descriptor, after reading: everything
it read is then on disk) before its checkpoint covers those bytes; closed segments are
durable already.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from charging.journal import SyncJournal
from settlement import fastagg
from settlement.aggregate import Aggregator
from settlement.source import JournalSource


def rec(i: int) -> dict[str, Any]:
    return {"v": 1, "type": "rated", "id": f"t-{i}", "ts": 1_700_000_000_000_000 + i,
            "idem": f"ro:s:{i}", "balance_effects": [], "holds": [], "service": "voice",
            "usage": 1, "deck": "nobody", "price": "0.01", "currency": "EUR"}


@pytest.mark.parametrize("fast", [False, True])
def test_the_open_segment_is_synced_before_the_checkpoint_covers_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    if fast and not fastagg.available():
        pytest.skip("compiled settlement path not built (or ICX_NO_EXTENSIONS=1)")
    writer = SyncJournal(tmp_path, fsync=False)  # a live writer: the segment stays .open
    writer.append_many([rec(i) for i in range(5)])
    writer.rotate()
    writer.append_many([rec(i) for i in range(5, 8)])
    synced: list[str] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    try:
        agg = Aggregator({}, {}, None)
        cp = JournalSource(tmp_path, fast=fast).read(None, agg, None)
    finally:
        monkeypatch.undo()
        writer.close()
    assert cp[0] == 2 and agg.result.records == 8
    assert synced == ["000000000002.open"]  # the open one, once; closed ones need none
