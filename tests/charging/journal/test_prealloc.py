"""Preallocated, zero-filled segments (issue 4): the zero tail is the end of the data for the
writer, recovery, readers, verify and the compiled scanner; corruption before it is still
found; rotation takes the prepared next segment; old (grown) segments still read."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import (
    Journal,
    JournalCorruptError,
    JournalReader,
    Position,
    SyncJournal,
    list_segments,
)
from charging.journal.framing import (
    HEADER_LEN,
    classify_stop,
    data_end,
    scan_frames,
    zeros_from,
)
from charging.journal.prealloc import PREP_NAME
from charging.journal.verify import verify_journal

SEG = 64 << 10


def rec(i: int, pad: int = 0) -> dict[str, object]:
    return {"v": 1, "type": "rated", "id": f"t-{i}", "ts": 1_700_000_000_000_000 + i,
            "idem": f"ro:s:{i}", "balance_effects": [], "holds": [], "pad": "x" * pad}


async def _write(d: Path, n: int, *, seg: int = SEG, pad: int = 0,
                 close: bool = True) -> tuple[Journal, list[Position]]:
    j = await Journal.open(d, segment_bytes=seg)
    assert await j.wait_preallocated(10)
    positions = await j.append_many([rec(i, pad) for i in range(n)])
    await j.wait_preallocated(10)
    if close:
        await j.close()
    return j, positions


def _ids(d: Path) -> list[str]:
    return [str(r["id"]) for _, r in JournalReader(d).iter_from()]


def test_open_segment_is_zero_filled_and_reopen_keeps_it(tmp_path: Path) -> None:
    _, positions = asyncio.run(_write(tmp_path, 20))
    path = list_segments(tmp_path)[-1].path
    assert path.stat().st_size == SEG  # full size, the records then zeros
    data = path.read_bytes()
    assert data_end(data, HEADER_LEN) == positions[-1].offset
    assert zeros_from(data, positions[-1].offset)

    async def again() -> Position:
        j = await Journal.open(tmp_path, segment_bytes=SEG)
        assert j.recovered.truncated == 0  # a zero tail is free space, not a torn tail
        assert j.position == positions[-1]
        p = await j.append(rec(20))
        await j.close()
        return p

    p = asyncio.run(again())
    assert p.offset > positions[-1].offset and path.stat().st_size == SEG
    assert _ids(tmp_path) == [f"t-{i}" for i in range(21)]


def test_torn_record_followed_by_zeros(tmp_path: Path) -> None:
    _, positions = asyncio.run(_write(tmp_path, 10))
    path = list_segments(tmp_path)[-1].path
    torn = b"\xce\x00\x00\x01\x00\xce\x12\x34\x56\x78partial"  # a group commit cut short
    with open(path, "r+b") as fh:
        fh.seek(positions[-1].offset)
        fh.write(torn)

    async def again() -> None:
        j = await Journal.open(tmp_path, segment_bytes=SEG)
        assert j.recovered.truncated == len(torn)
        assert j.position == positions[-1]
        await j.append(rec(10))
        await j.close()

    asyncio.run(again())
    assert path.stat().st_size == SEG  # zeroed in place, not truncated
    assert _ids(tmp_path) == [f"t-{i}" for i in range(11)]


def test_sync_journal_truncates_a_zero_tail(tmp_path: Path) -> None:
    _, positions = asyncio.run(_write(tmp_path, 5))
    path = list_segments(tmp_path)[-1].path
    j = SyncJournal(tmp_path)  # no preallocation: the old layout, tail cut
    assert j.recovered.truncated == SEG - positions[-1].offset
    j.append(rec(5))
    j.close()
    assert _ids(tmp_path) == [f"t-{i}" for i in range(6)]
    assert path.stat().st_size > positions[-1].offset


def test_corruption_before_zeros_is_quarantined(tmp_path: Path) -> None:
    _, positions = asyncio.run(_write(tmp_path, 10))
    path = list_segments(tmp_path)[-1].path
    data = bytearray(path.read_bytes())
    data[positions[3].offset + 15] ^= 0x01  # inside record 5's payload
    path.write_bytes(bytes(data))

    async def again() -> None:
        await Journal.open(tmp_path, segment_bytes=SEG)

    with pytest.raises(JournalCorruptError, match="checksum mismatch") as ei:
        asyncio.run(again())
    assert ei.value.offset == positions[3].offset and ei.value.quarantined_to
    assert not path.exists()


def test_zero_header_in_the_middle_then_records_is_corruption(tmp_path: Path) -> None:
    _, positions = asyncio.run(_write(tmp_path, 10))
    path = list_segments(tmp_path)[-1].path
    data = bytearray(path.read_bytes())
    a, b = positions[3].offset, positions[4].offset
    data[a:b] = bytes(b - a)  # one whole frame zeroed: intact frames follow the zeros
    path.write_bytes(bytes(data))
    assert not classify_stop(data, a, "bad frame header")
    reps = [r for r in verify_journal(tmp_path) if not isinstance(r, str)]
    assert reps[0].problems and f":{a}: bad frame header" in reps[0].problems[0]

    async def again() -> None:
        await Journal.open(tmp_path, segment_bytes=SEG)

    with pytest.raises(JournalCorruptError) as ei:
        asyncio.run(again())
    assert ei.value.offset == a


def test_reader_resumes_on_the_preallocated_active_segment(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path, segment_bytes=SEG)
        await j.wait_preallocated(10)
        first = await j.append_many([rec(i) for i in range(10)])
        reader = JournalReader(tmp_path)
        got = list(reader.iter_from())
        assert [p for p, _ in got] == first  # stops at the zeros, quietly
        cp = got[-1][0]
        assert list(reader.iter_from(cp)) == []
        more = await j.append_many([rec(i) for i in range(10, 15)])
        again = list(reader.iter_from(cp))
        assert [p for p, _ in again] == more
        raw = list(reader.iter_raw(more[1]))
        assert [p for p, _ in raw] == more[2:] and all(len(b) for _, b in raw)
        await j.close()

    asyncio.run(main())


def test_rotation_takes_the_prepared_segment(tmp_path: Path) -> None:
    async def main() -> list[Position]:
        j = await Journal.open(tmp_path, segment_bytes=SEG)
        await j.wait_preallocated(10)
        # past half of the first segment: the next one gets prepared
        positions = await j.append_many([rec(i, 200) for i in range(150)])
        assert positions[-1].segment == 1
        assert await j.wait_preallocated(10)
        prep = tmp_path / PREP_NAME
        assert prep.stat().st_size == SEG
        positions += await j.append_many([rec(i, 200) for i in range(150, 300)])
        assert positions[-1].segment == 2
        assert not prep.exists() or prep.stat().st_size == SEG  # taken (maybe rebuilt)
        seg2 = list_segments(tmp_path)[-1]
        assert not seg2.closed and seg2.path.stat().st_size == SEG
        await j.close()
        return positions

    positions = asyncio.run(main())
    first = list_segments(tmp_path)[0]
    assert first.closed
    # sealed at its data end: a closed segment never ends in zeros
    last_in_1 = max(p for p in positions if p.segment == 1)
    assert first.path.stat().st_size == last_in_1.offset
    assert _ids(tmp_path) == [f"t-{i}" for i in range(300)]
    assert all(r.ok and not r.notes for r in verify_journal(tmp_path) if not isinstance(r, str))


def test_old_grown_segment_continues_preallocated(tmp_path: Path) -> None:
    j = SyncJournal(tmp_path)
    old = j.append_many([rec(i) for i in range(5)])
    j.close()
    path = list_segments(tmp_path)[-1].path
    assert path.stat().st_size == old[-1].offset  # the old layout: no zero tail

    async def main() -> None:
        j2 = await Journal.open(tmp_path, segment_bytes=SEG)
        assert j2.position == old[-1]
        p = await j2.append(rec(5))
        assert await j2.wait_preallocated(10)
        assert path.stat().st_size == SEG  # zero-filled in the background, around the data
        await j2.append(rec(6))
        assert p.offset > old[-1].offset
        await j2.close()

    asyncio.run(main())
    assert _ids(tmp_path) == [f"t-{i}" for i in range(7)]


def test_kill_9_with_a_half_filled_preallocated_segment(tmp_path: Path) -> None:
    """A real process appends (each append durable when it returns), reports its positions
    and is killed with SIGKILL mid-stream: every reported record survives, nothing is
    truncated but zeros, and the journal goes on in the same preallocated segment."""
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        from charging.journal import Journal
        async def main():
            j = await Journal.open({str(tmp_path)!r}, segment_bytes={SEG})
            for i in range(40):
                p = await j.append({{"v": 1, "type": "rated", "idem": f"k{{i}}", "id": str(i)}})
                print(p.segment, p.offset, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == -9, proc.stderr
    acked = [Position(int(a), int(b)) for a, b in
             (ln.split() for ln in proc.stdout.splitlines())]
    assert len(acked) == 40

    async def again() -> None:
        j = await Journal.open(tmp_path, segment_bytes=SEG)
        assert j.recovered.truncated == 0 and j.position == acked[-1]
        await j.append({"v": 1, "type": "rated", "idem": "after", "id": "after"})
        await j.close()

    asyncio.run(again())
    assert _ids(tmp_path) == [str(i) for i in range(40)] + ["after"]


def test_cli_verify_and_stats_on_a_preallocated_segment(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from icx.cli import main

    jdir = tmp_path / "journal"
    _, positions = asyncio.run(_write(jdir, 12))
    res = CliRunner().invoke(main, ["journal", "verify", "--data-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and out["records"] == 12 and out["notes"] == []
    res = CliRunner().invoke(main, ["journal", "stats", "--data-dir", str(tmp_path), "--json"])
    st = json.loads(res.output)
    assert st["bytes"] == positions[-1].offset and st["allocated"] == SEG


def test_compiled_scanner_stops_at_the_zero_tail(tmp_path: Path) -> None:
    _, positions = asyncio.run(_write(tmp_path, 8))
    data = list_segments(tmp_path)[-1].path.read_bytes()
    want = scan_frames(data, HEADER_LEN)
    assert want.good_end == positions[-1].offset and want.problem == "bad frame header"
    mod = cython_ext.load("journal_scan")
    if mod is None:
        pytest.skip("journal_scan not built or ICX_NO_EXTENSIONS=1")
    assert tuple(mod.scan_frames(data, HEADER_LEN)) == tuple(want)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=3000),
       st.integers(min_value=0, max_value=400))
def test_data_end_and_zeros_from(body: bytes, zeros: int, start: int) -> None:
    buf = body + bytes(zeros)
    start = min(start, len(buf))
    want = max(len(buf.rstrip(b"\0")), start)
    assert data_end(buf, start) == want
    assert data_end(memoryview(buf), start) == want
    assert zeros_from(buf, start) == (not any(buf[start:]))


def test_crash_during_prepare_leaves_no_segment(tmp_path: Path) -> None:
    """A half-built next.prep.tmp (crash while zero-filling) is no segment and is removed."""
    (tmp_path / (PREP_NAME + ".tmp")).write_bytes(b"ICXJ" + bytes(100))
    (tmp_path / PREP_NAME).write_bytes(b"garbage")  # wrong size/header: not reused

    async def main() -> None:
        j = await Journal.open(tmp_path, segment_bytes=SEG)
        await j.append(rec(0))
        # the open segment is zero-filled by a background thread: wait for it (on a busy box
        # the close could otherwise come first and leave it at its data size)
        assert await j.wait_preallocated(10, full=True)
        await j.close()

    asyncio.run(main())
    assert not (tmp_path / (PREP_NAME + ".tmp")).exists()
    assert not (tmp_path / PREP_NAME).exists()
    assert _ids(tmp_path) == ["t-0"]
    assert [s.path.name for s in list_segments(tmp_path)] == ["000000000001.open"]
    assert os.path.getsize(list_segments(tmp_path)[0].path) == SEG


def test_fill_grows_with_the_data_and_reader_reads_only_the_data(tmp_path: Path) -> None:
    big = 16 << 20

    async def main() -> None:
        j = await Journal.open(tmp_path, segment_bytes=big)
        await j.append(rec(0))
        assert await j.wait_preallocated(10)
        path = list_segments(tmp_path)[-1].path
        assert path.stat().st_size == 1 << 20  # a fresh journal zeroes 1 MiB, not 16
        # a record with a long zero run crosses the read steps: the reader reads on
        zeros = {"v": 1, "type": "rated", "id": "z", "idem": "z", "blob": bytes(3 << 20)}
        await j.append(zeros)
        await j.append_many([rec(i, 300) for i in range(1, 2000)])
        assert await j.wait_preallocated(10)
        end = j.position.offset
        size = path.stat().st_size
        assert end < size <= max(4 * end, 1 << 20) and size < big
        from charging.journal.reader import read_open_segment

        data = read_open_segment(path)
        assert end <= len(data) < size  # the zero tail beyond one read step is not read
        got = list(JournalReader(tmp_path).iter_from())
        assert len(got) == 2001 and got[1][1]["blob"] == bytes(3 << 20)
        assert got[-1][0] == j.position
        assert await j.wait_preallocated(10, full=True)  # the steady state: the whole segment
        assert path.stat().st_size == big
        await j.close()

    asyncio.run(main())
