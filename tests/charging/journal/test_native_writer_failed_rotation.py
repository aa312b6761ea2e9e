"""Review (session 4): after a native group write failed, nothing more may be written to the
journal -- in particular the idle (time-based) rotation must not write and seal the segment.

The native writer claims a group's bytes at dispatch (SegmentWriter.reserve advances the data
end) while the Python writer advances it only after a successful write. So after a failed
native write the data end lies past a hole (zeros of the preallocated file). If the idle timer
then rotates (Journal._idle_check -> _Allocator.rotate -> _mark_rotation -> Python writer), the
pending group's bytes -- records whose callers were told the write FAILED -- are written after
the hole and the segment is sealed: the next start finds a sealed segment with a bad frame in
the middle, takes it for corruption and refuses to start (JournalCorruptError, quarantine).
The server does not exit on a journal failure and rotate_seconds defaults to 300 (idle check
every 75 s), so this follows any transient write error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import cython_ext
from charging.journal import Journal, JournalError, JournalReader
from tests.charging.journal.native_faults import fail_second_native_write

_io = cython_ext.load("journal_io")


def rec(i: int) -> dict[str, object]:
    return {"v": 1, "type": "rated", "id": f"n-{i}", "idem": f"ro:n:{i}"}


@pytest.mark.skipif(_io is None, reason="cython_ext.journal_io not built/enabled")
def test_no_rotation_and_clean_restart_after_a_failed_native_write(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    Failing = fail_second_native_write(monkeypatch)

    async def run() -> None:
        j = await Journal.open(tmp_path, writer_threads=2, rotate_seconds=3600.0)
        await j.wait_preallocated(full=True)  # steady state: the native fast path applies
        Failing.n = 0
        futs = []
        for i in range(3):  # group 1 durable, group 2 fails (nothing written), 3 pending
            _pos, g = j.append_nowait(rec(i))
            futs.append(g)
            if i < 2:
                j._dispatch()
        await asyncio.wait(futs, timeout=5)
        assert futs[0].result() is None and j.failed
        for g in futs[1:]:
            with pytest.raises(JournalError):
                g.result()
        # the idle timer finds the segment old enough (as after rotate_seconds)
        j._alloc.started -= 7200.0
        j._idle_check()
        rot = j._group
        if rot is not None:
            await asyncio.wait([rot], timeout=5)
        await j.close()

    asyncio.run(run())
    monkeypatch.undo()  # the real writer again

    async def reopen() -> list[str]:
        j = await Journal.open(tmp_path)  # must not find corruption
        await j.close()
        return [r["id"] for _pos, r in JournalReader(tmp_path).iter_from()]

    ids = asyncio.run(reopen())  # reading the sealed segment must not find corruption
    # n-1 was never written; n-2 (pending when n-1 failed) may be there (its store op ran;
    # its key replays on retry) but never after a hole
    assert ids in (["n-0"], ["n-0", "n-2"])


@pytest.mark.skipif(_io is None, reason="cython_ext.journal_io not built/enabled")
def test_seal_after_a_failed_native_write_leaves_a_readable_segment(tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    """close(seal=True) after a failed native write (settlement/generate.py seals its journal
    on close): the sealed segment must end at the last good record, as with the Python writer
    (which advances the data end only after a successful write)."""
    Failing = fail_second_native_write(monkeypatch)

    async def run() -> None:
        j = await Journal.open(tmp_path, writer_threads=2, rotate_seconds=0)
        await j.wait_preallocated(full=True)
        Failing.n = 0
        futs = []
        for i in range(2):  # group 1 durable, group 2 fails (nothing written)
            _pos, g = j.append_nowait(rec(i))
            futs.append(g)
            j._dispatch()
        await asyncio.wait(futs, timeout=5)
        assert futs[0].result() is None and j.failed
        with pytest.raises(JournalError):
            futs[1].result()
        await j.close(seal=True)

    asyncio.run(run())
    ids = [r["id"] for _pos, r in JournalReader(tmp_path).iter_from()]
    assert ids == ["n-0"]
