"""A journal opened on a segment that is not zero-filled to its size yet (a new journal, or
one whose open segment was created without a prepared file) uses the native writer for
the bytes the filler has already zero-filled -- not the Python writer until the whole
segment is filled -- and never writes where the filler is still writing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import cython_ext
from charging.journal import Journal, JournalReader
from charging.journal.prealloc import Preallocator
from charging.journal.segments import FIRST_FILL

_io = cython_ext.load("journal_io")
native = pytest.mark.skipif(_io is None, reason="cython_ext.journal_io not built/enabled")


def _counting_writer(monkeypatch: Any) -> Any:
    assert _io is not None

    class Counting(_io.GroupWriter):  # type: ignore[misc, name-defined]
        submits: list[tuple[int, int]] = []  # (offset, length)

        def submit(self, fd: int, data: Any, offset: int, sync: bool) -> int:
            Counting.submits.append((offset, len(data)))
            return super().submit(fd, data, offset, sync)  # type: ignore[no-any-return]

    monkeypatch.setattr(_io, "GroupWriter", Counting)
    return Counting


async def _until(cond: Any, timeout: float = 10.0) -> None:
    stop = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < stop, "timed out"
        await asyncio.sleep(0.01)


@native
def test_native_writer_while_the_segment_is_partly_filled(tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    counting = _counting_writer(monkeypatch)
    records = [{"i": i, "pad": "x" * 200} for i in range(300)]

    async def go() -> None:
        j = await Journal.open(tmp_path, segment_bytes=64 << 20, preallocate=True)
        assert j.native_writers > 0
        pre = j._writer.preallocator
        assert pre is not None
        # the first fill (FIRST_FILL) is done; the segment is far from its 64 MiB
        await _until(lambda: not pre.filling() and pre.active_end >= FIRST_FILL)
        assert j._writer._fill_to < pre.size
        for k in range(0, 300, 30):
            await j.append_many(records[k:k + 30])
        # every group went to the native writer, each inside what the filler had filled
        assert len(counting.submits) == 10
        assert all(off + n <= pre.active_end for off, n in counting.submits)
        await j.close()

    asyncio.run(go())
    got = [r for _pos, r in JournalReader(tmp_path).iter_from(None)]
    assert got == records


@native
def test_no_native_write_past_what_the_filler_has_filled(tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    """While the filler is still on its first zeros, a group past them goes to the Python
    writer (which holds the filler's lock); the bytes are the same either way."""
    counting = _counting_writer(monkeypatch)
    # Hold the filler before it writes anything: active_end stays 0.
    orig = Preallocator._fill
    started: list[int] = []

    def slow_fill(self: Preallocator, path: Path, gen: int, target: int) -> None:
        started.append(1)
        while not getattr(self, "_test_go", False):
            time.sleep(0.005)
        orig(self, path, gen, target)

    monkeypatch.setattr(Preallocator, "_fill", slow_fill)
    records = [{"i": i} for i in range(40)]

    async def go() -> None:
        j = await Journal.open(tmp_path, segment_bytes=64 << 20, preallocate=True)
        pre = j._writer.preallocator
        assert pre is not None and pre.active_end == 0
        await _until(lambda: bool(started))
        for k in range(0, 40, 10):
            await j.append_many(records[k:k + 10])
        assert counting.submits == []  # the filler holds the file: the Python writer wrote
        pre._test_go = True  # type: ignore[attr-defined]
        await _until(lambda: not pre.filling() and pre.active_end >= FIRST_FILL)
        await j.append_many([{"i": 40}])
        assert len(counting.submits) == 1  # now the native writer takes it
        await j.close()

    asyncio.run(go())
    got = [r for _pos, r in JournalReader(tmp_path).iter_from(None)]
    assert got == records + [{"i": 40}]
