"""Journal writer, reader, rotation and recovery, on real files."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from charging.journal import (
    Journal,
    JournalCorruptError,
    JournalError,
    JournalReader,
    Position,
    SyncJournal,
    list_segments,
)
from charging.journal.framing import HEADER_LEN


def rec(i: int) -> dict[str, object]:
    return {"v": 1, "type": "rated", "id": f"t-{i}", "ts": 1_700_000_000_000_000 + i,
            "idem": f"ro:s:{i}", "balance_effects": [], "holds": []}


def test_append_read_concurrent(tmp_path: Path) -> None:
    async def main() -> list[Position]:
        j = await Journal.open(tmp_path)
        positions = await asyncio.gather(*(j.append(rec(i)) for i in range(500)))
        assert j.groups < 500  # group commit: many records per fsync
        assert j.durable == j.position == max(positions)
        await j.close()
        return positions

    positions = asyncio.run(main())
    got = list(JournalReader(tmp_path).iter_from())
    assert [r["id"] for _, r in got] == [f"t-{i}" for i in range(500)]  # call order kept
    assert [p for p, _ in got] == positions


def test_checkpoint_resume(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path, segment_bytes=2000)
    pos = j.append_many([rec(i) for i in range(100)])
    j.close()
    assert len(list_segments(tmp_path)) > 3  # rotated by size
    assert all(s.closed for s in list_segments(tmp_path)[:-1])
    reader = JournalReader(tmp_path)
    for k in (0, 1, 37, 99):
        after = [r["id"] for _, r in reader.iter_from(pos[k])]
        assert after == [f"t-{i}" for i in range(k + 1, 100)]
    raw = list(reader.iter_raw(pos[10]))
    assert len(raw) == 89 and isinstance(raw[0][1], memoryview)
    chunks = list(reader.chunks(pos[50]))
    assert sum(len(c.records) for c in chunks) == 49
    assert chunks[-1].end == pos[-1]
    closed_only = JournalReader(tmp_path, include_open=False)
    assert all(c.closed for c in closed_only.chunks())


def test_reopen_appends_to_open_segment(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path)
    j.append_many([rec(i) for i in range(3)])
    j.close()
    j = SyncJournal(tmp_path)
    p = j.append(rec(3))
    j.close()
    assert p.segment == 1
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == [f"t-{i}" for i in range(4)]


def test_torn_tail_truncated(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path)
    positions = j.append_many([rec(i) for i in range(10)])
    j.close()
    path = list_segments(tmp_path)[-1].path
    with open(path, "ab") as fh:  # a group commit cut short by a crash
        fh.write(b"\xce\x00\x00\x01\x00\xce\x12\x34\x56\x78partial")
    j = SyncJournal(tmp_path)
    assert j.recovered.truncated == 17
    assert os.path.getsize(path) == positions[-1].offset
    j.append(rec(10))
    j.close()
    assert len(list(JournalReader(tmp_path).iter_from())) == 11


def test_zero_filled_tail_truncated(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path)
    j.append_many([rec(i) for i in range(5)])
    j.close()
    path = list_segments(tmp_path)[-1].path
    with open(path, "ab") as fh:
        fh.write(bytes(4096))
    j = SyncJournal(tmp_path)
    assert j.recovered.truncated == 4096
    j.close()


def test_corrupt_middle_quarantined_and_refuses(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path)
    positions = j.append_many([rec(i) for i in range(10)])
    j.close()
    path = list_segments(tmp_path)[-1].path
    data = bytearray(path.read_bytes())
    data[positions[3].offset + 15] ^= 0x01  # inside record 4's payload
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as ei:
        SyncJournal(tmp_path)
    assert ei.value.offset == positions[3].offset
    assert "checksum mismatch" in str(ei.value) and "quarantine" in str(ei.value)
    assert not path.exists()
    assert len(list((tmp_path / "quarantine").iterdir())) == 1
    with pytest.raises(JournalError, match="quarantined"):
        SyncJournal(tmp_path)  # never silently going on without those records
    SyncJournal(tmp_path, allow_quarantined=True).close()


def test_corrupt_closed_segment_raises_in_reader(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path, segment_bytes=1000)
    j.append_many([rec(i) for i in range(40)])
    j.close()
    first = list_segments(tmp_path)[0]
    assert first.closed
    data = bytearray(first.path.read_bytes())
    data[HEADER_LEN + 20] ^= 0x40
    first.path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match=first.path.name):
        list(JournalReader(tmp_path).iter_from())


def test_time_rotation_and_idle_seal(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path, rotate_seconds=0.05)
        await j.append(rec(0))
        for _ in range(100):  # the idle timer seals the segment without more traffic
            await asyncio.sleep(0.02)
            if list_segments(tmp_path)[0].closed:
                break
        assert list_segments(tmp_path)[0].closed
        p = await j.append(rec(1))
        assert p.segment >= 2
        await j.rotate()
        await j.close()

    asyncio.run(main())
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == ["t-0", "t-1"]


def test_cancelled_waiter_does_not_hurt_others(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path)
        t1 = asyncio.ensure_future(j.append(rec(1)))
        t2 = asyncio.ensure_future(j.append(rec(2)))
        await asyncio.sleep(0)
        t1.cancel()
        assert (await t2).segment == 1
        await j.flush()
        await j.close()

    asyncio.run(main())
    # a cancelled waiter's record was enqueued: it is written all the same
    assert len(list(JournalReader(tmp_path).iter_from())) == 2


def test_write_failure_fails_waiters(tmp_path: Path) -> None:
    # The Python writer thread's failure path (write_and_sync raising); the native writer's
    # is test_native_writer.py::test_native_failure_fails_the_group_and_everything_after.
    # (It ran here implicitly while a journal's first segment was not zero-filled to its
    # size: the native writer now takes those groups too.)
    async def main() -> None:
        j = await Journal.open(tmp_path, writer_threads=0)
        await j.append(rec(0))

        def boom(parts: object) -> None:
            raise OSError(28, "No space left on device")

        j._writer.write_and_sync = boom  # type: ignore[method-assign]
        with pytest.raises(JournalError, match="No space"):
            await j.append(rec(1))
        with pytest.raises(JournalError):
            await j.append(rec(2))
        await j.close()

    asyncio.run(main())


def test_append_many_and_packed_bytes(tmp_path: Path) -> None:
    import msgpack

    async def main() -> None:
        j = await Journal.open(tmp_path, fsync=False)
        ps = await j.append_many([rec(0), msgpack.packb(rec(1))])
        assert ps[0] < ps[1]
        await j.close(seal=True)

    asyncio.run(main())
    assert all(s.closed for s in list_segments(tmp_path))
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == ["t-0", "t-1"]


def test_damaged_length_in_the_middle_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path)
    positions = j.append_many([rec(i) for i in range(10)])
    j.close()
    path = list_segments(tmp_path)[-1].path
    data = bytearray(path.read_bytes())
    data[positions[2].offset + 1] = 0x00  # record 4's length: high byte -> still fits
    data[positions[2].offset + 2] = 0xFF  # ... and now claims ~16 MB, past the end
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError):
        SyncJournal(tmp_path)  # the 6 records after it are intact: never truncate them


def test_torn_header_rewritten(tmp_path: Path) -> None:
    (tmp_path / "000000000001.open").write_bytes(b"ICX" + bytes(40))
    j = SyncJournal(tmp_path)
    j.append(rec(0))
    j.close()
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == ["t-0"]


def test_call_when_durable_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path)
        calls: list[tuple[int, object, Position]] = []
        for i in range(300):
            pos, _group = j.append_nowait(rec(i))
            j.call_when_durable(pos, lambda exc, i=i, pos=pos: calls.append((i, exc, j.durable)))
            if i % 37 == 0:
                await asyncio.sleep(0)  # let groups form and complete in between
        await j.flush()
        assert [c[0] for c in calls] == list(range(300))  # never reordered
        assert all(c[1] is None for c in calls)
        got = {p for p, _ in JournalReader(tmp_path).iter_from()}
        assert len(got) == 300
        # already durable: scheduled with call_soon, never called re-entrantly
        late: list[object] = []
        j.call_when_durable(j.durable, late.append)
        assert late == []
        await asyncio.sleep(0)
        assert late == [None]
        await j.close()

    asyncio.run(main())


def test_call_when_durable_callback_sees_durable_position(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path)
        seen: list[bool] = []
        positions = []
        for i in range(50):
            pos, _ = j.append_nowait(rec(i))
            positions.append(pos)
            j.call_when_durable(pos, lambda exc, pos=pos: seen.append(pos <= j.durable))
        errors: list[object] = []
        j._loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))

        def boom(_exc: BaseException | None) -> None:
            raise RuntimeError("bad callback")

        j.call_when_durable(positions[-1], boom)
        after: list[object] = []
        j.call_when_durable(positions[-1], after.append)
        await j.flush()
        assert seen == [True] * 50
        assert after == [None]  # a raising callback does not stop the others
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
        await j.close()

    asyncio.run(main())


def test_call_when_durable_failure(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path)
        await j.append(rec(0))
        os.close(j._writer._fd)  # the next group write fails (EBADF)
        got: list[BaseException | None] = []
        pos, group = j.append_nowait(rec(1))
        j.call_when_durable(pos, got.append)
        with pytest.raises(JournalError):
            await group
        assert len(got) == 1 and isinstance(got[0], JournalError)
        later: list[BaseException | None] = []
        j.call_when_durable(pos, later.append)
        await asyncio.sleep(0)
        assert len(later) == 1 and isinstance(later[0], JournalError)
        j._writer._fd = None  # already closed above
        await j.close()

    asyncio.run(main())


def test_unpackable_record_leaves_positions_consistent(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path)
        await j.append(rec(0))
        with pytest.raises(TypeError):
            await j.append_many([rec(1), {"bad": object()}, rec(2)])
        with pytest.raises(TypeError):
            j.append_nowait({"bad": object()})
        positions = await j.append_many([rec(3), rec(4)])
        assert j.durable == j.position == positions[-1]
        await j.close()

    asyncio.run(main())
    got = list(JournalReader(tmp_path).iter_from())
    assert [r["id"] for _, r in got] == ["t-0", "t-3", "t-4"]  # the failed batch left nothing


def test_sync_append_many_rotates_mid_batch(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path, segment_bytes=700)
    positions = j.append_many([rec(i) for i in range(40)])
    j.close()
    got = list(JournalReader(tmp_path).iter_from())
    assert [p for p, _ in got] == positions
    assert len({p.segment for p in positions}) > 3
