"""The native group-commit writer (cython_ext/journal_io.pyx) and the Journal's use of it:
two groups in flight, released strictly in order; a failure fails everything after it; the
bytes on disk are the Python writer's bytes."""

from __future__ import annotations

import asyncio
import os
import random
import select
from pathlib import Path
from typing import Any

import pytest

import cython_ext
from charging.journal import Journal, JournalError, JournalReader, Position, list_segments
from tests.charging.journal.native_faults import fail_second_native_write

_io = cython_ext.load("journal_io")
native = pytest.mark.skipif(_io is None, reason="cython_ext.journal_io not built/enabled")


def rec(i: int, pad: int = 0) -> dict[str, object]:
    return {"v": 1, "type": "rated", "id": f"n-{i}", "idem": f"ro:n:{i}", "pad": "p" * pad}


def _reap_all(gw: Any, n: int) -> list[tuple[int, int, float, float]]:
    got: list[tuple[int, int, float, float]] = []
    while len(got) < n:
        select.select([gw.fd], [], [], 5.0)
        got += gw.reap()
    return got


@native
def test_group_writer_reports_in_submission_order(tmp_path: Path) -> None:
    """Jobs with and without a sync race on two threads: a later job often ends first, but
    reap() reports a job only after every earlier one, with its own errno."""
    assert _io is not None
    gw = _io.GroupWriter(2)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    rng = random.Random(7)
    want = bytearray()
    bad = set()
    reported: list[tuple[int, int, float, float]] = []
    try:
        for seq in range(300):
            data = bytes([rng.randrange(256)]) * rng.randrange(1, 3000)
            if rng.random() < 0.05:
                bad.add(seq)
                assert gw.submit(-1, data, 0, True) == seq  # EBADF
            else:
                assert gw.submit(fd, data, len(want), rng.random() < 0.5) == seq
                want += data
            while gw.in_flight >= 8:
                select.select([gw.fd], [], [], 5.0)
                reported += gw.reap()
        reported += _reap_all(gw, gw.in_flight)
        assert gw.in_flight == 0
    finally:
        gw.close()
        os.close(fd)
    assert [r[0] for r in reported] == list(range(300))  # each once, in submission order
    assert {r[0] for r in reported if r[1]} == bad  # errno where the fd was bad only
    assert (tmp_path / "f").read_bytes() == bytes(want)


@native
def test_group_writer_errno_and_times(tmp_path: Path) -> None:
    assert _io is not None
    gw = _io.GroupWriter(1)
    try:
        gw.submit(-1, b"x", 0, False)
        (seq, err, t0, t1), = _reap_all(gw, 1)
        assert (seq, err) == (0, 9) and 0 < t0 <= t1  # EBADF
        with pytest.raises(TypeError):
            gw.submit(-1, "text", 0, False)
    finally:
        gw.close()
    with pytest.raises(ValueError):
        gw.submit(-1, b"x", 0, False)
    with pytest.raises(ValueError):
        _io.GroupWriter(0)


async def _fill(j: Journal) -> None:
    await j.wait_preallocated(full=True)  # steady state: the native fast path applies


@native
def test_two_groups_in_flight_released_in_order(tmp_path: Path, monkeypatch: Any) -> None:
    """Group 2 completes while group 1 is held back: nothing of group 2 is reported durable
    (no callback, no future, no durable position) until group 1 is; then both, in order."""
    assert _io is not None
    real = _io.GroupWriter
    held: list[tuple[int, int, float, float]] = []
    hold = [True]

    class Holding(real):  # type: ignore[misc, valid-type]
        def reap(self) -> list[tuple[int, int, float, float]]:
            held.extend(super().reap())
            if hold[0] and len(held) < 2:
                return []  # group 1 is "still syncing"
            out = list(held)
            held.clear()
            return out

    monkeypatch.setattr(_io, "GroupWriter", Holding)

    async def main() -> None:
        j = await Journal.open(tmp_path, writer_threads=2)
        await _fill(j)
        start = j.durable
        order: list[str] = []
        p1, g1 = j.append_nowait(rec(1))
        j.call_when_durable(p1, lambda e: order.append(f"1:{e}"))
        j._dispatch()  # group 1 goes now
        p2, g2 = j.append_nowait(rec(2))
        j.call_when_durable(p2, lambda e: order.append(f"2:{e}"))
        j._dispatch()  # group 2 goes while group 1 is in flight
        assert len(j._inflight) == 2 and j._busy
        for _ in range(200):  # both writes complete; reap holds them until both are in
            await asyncio.sleep(0.005)
            if g1.done():
                break
        assert order == ["1:None", "2:None"] and g1.done() and g2.done()
        assert j.durable == p2 > p1 > start
        await j.close()

    asyncio.run(main())
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == ["n-1", "n-2"]


@native
def test_held_first_group_blocks_later_release(tmp_path: Path, monkeypatch: Any) -> None:
    """While group 1's completion is withheld, group 2's own completion (reaped already by
    the C side in order, so also withheld) leaves durable where it was."""
    assert _io is not None
    real = _io.GroupWriter

    class Gated(real):  # type: ignore[misc, valid-type]
        open_ = False

        def reap(self) -> list[tuple[int, int, float, float]]:
            if not Gated.open_:
                return []
            return super().reap()  # type: ignore[no-any-return]

    monkeypatch.setattr(_io, "GroupWriter", Gated)

    async def main() -> None:
        j = await Journal.open(tmp_path, writer_threads=2)
        await _fill(j)
        Gated.open_ = False
        before = j.durable
        seen: list[Position] = []
        def note(p: Position) -> Any:
            return lambda _e: seen.append(p)

        for i in range(2):
            pos, _g = j.append_nowait(rec(i))
            j.call_when_durable(pos, note(pos))
            j._dispatch()
        await asyncio.sleep(0.2)  # both writes are long done on disk
        assert j.durable == before and seen == [] and j._busy
        # a third group cannot be sent: two are in flight
        p3, g3 = j.append_nowait(rec(2))
        j.call_when_durable(p3, lambda _e: seen.append(p3))
        j._dispatch()
        assert len(j._inflight) == 2
        Gated.open_ = True  # the eventfd is still readable: the loop reaps again
        await asyncio.wait_for(g3, 5)
        assert seen == sorted(seen) and len(seen) == 3 and j.durable == p3
        await j.close()

    asyncio.run(main())


@native
def test_native_failure_fails_the_group_and_everything_after(tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    """The 2nd native write fails (EBADF) while the 1st is in flight and a 3rd group waits:
    2 and 3 fail, 1 is durable, durable stays at 1, the journal refuses further appends."""
    Failing = fail_second_native_write(monkeypatch)

    async def main() -> None:
        j = await Journal.open(tmp_path, writer_threads=2)
        await _fill(j)
        Failing.n = 0
        got: list[BaseException | None] = []
        futs = []
        for i in range(3):
            pos, g = j.append_nowait(rec(i))
            j.call_when_durable(pos, got.append)
            futs.append((pos, g))
            if i < 2:
                j._dispatch()
        await asyncio.wait([g for _, g in futs], timeout=5)
        assert futs[0][1].result() is None
        for _pos, g in futs[1:]:
            with pytest.raises(JournalError):
                g.result()
        assert got[0] is None and all(isinstance(e, JournalError) for e in got[1:])
        assert j.durable == futs[0][0] and j.failed
        with pytest.raises(JournalError):
            j.append_nowait(rec(9))
        await j.close()

    asyncio.run(main())


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_same_bytes_as_the_python_writer(tmp_path: Path, threads: int) -> None:
    """Concurrent appends across rotations (small segments, preallocated) give the same
    segment files whichever writer wrote them (0 = the Python writer thread)."""

    async def main(d: Path, t: int) -> None:
        j = await Journal.open(d, segment_bytes=64 << 10, writer_threads=t)
        rng = random.Random(3)
        group = None
        for k in range(300):  # record order = call order; group boundaries vary with timing
            recs = [rec(k * 10 + x, pad=rng.randrange(300)) for x in range(5)]
            _pos, group = j.append_many_nowait(recs, positions=bool(k % 2))
            if k % 3 == 0:
                await asyncio.sleep(0)  # let groups go (two in flight with the native writer)
            if k % 50 == 0 and group is not None:
                await group
        await j.close(seal=True)

    asyncio.run(main(tmp_path / "ref", 0))
    asyncio.run(main(tmp_path / "x", threads))
    ref = [(s.path.name, s.path.read_bytes()) for s in list_segments(tmp_path / "ref")]
    got = [(s.path.name, s.path.read_bytes()) for s in list_segments(tmp_path / "x")]
    assert len(ref) > 3 and got == ref
