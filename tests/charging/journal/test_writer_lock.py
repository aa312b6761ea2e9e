"""One writer per journal, enforced: a writer holds an exclusive ``flock`` on
``<journal>/writer.lock`` from before recovery until it closes (or its process dies).

Without it a second writer (``icx settle generate`` against the journal a live ``icx serve``
appends to) ran recovery over the server's open segment, appended at the same offsets and
sealed the segment under the server, which kept writing into the renamed ``.seg``: a closed
segment with a checksum mismatch, money records lost (seen with a real server).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from charging.journal import Journal, JournalReader, SyncJournal
from charging.journal.segments import LOCK_NAME, JournalLocked

ROOT = Path(__file__).resolve().parents[3]


def rec(i: int) -> dict[str, object]:
    return {"v": 1, "type": "rated", "id": f"t-{i}", "ts": 1_700_000_000_000_000 + i,
            "idem": f"ro:s:{i}", "balance_effects": [], "holds": []}


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_a_second_writer_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    first = SyncJournal(tmp_path)
    first.append_many([rec(i) for i in range(3)])
    before = snapshot(tmp_path)
    with pytest.raises(JournalLocked) as info:
        SyncJournal(tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and f"pid {os.getpid()}" in msg and "\n" not in msg
    assert snapshot(tmp_path) == before  # no recovery, no truncation, no new segment
    first.append(rec(3))
    first.close()
    second = SyncJournal(tmp_path)  # released by close
    second.append(rec(4))
    second.close(seal=True)
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == [
        f"t-{i}" for i in range(5)]


def test_the_async_journal_holds_the_lock_until_closed(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path, fsync=False)
        await j.append(rec(0))
        with pytest.raises(JournalLocked):
            SyncJournal(tmp_path)
        with pytest.raises(JournalLocked):
            await Journal.open(tmp_path, fsync=False)
        await j.append(rec(1))
        await j.close()
        j2 = await Journal.open(tmp_path, fsync=False)
        await j2.append(rec(2))
        await j2.close()

    asyncio.run(main())
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == ["t-0", "t-1", "t-2"]


HOLDER = """
import sys, time
from charging.journal import SyncJournal
j = SyncJournal(sys.argv[1])
j.append({"v": 1, "type": "rated", "id": "held", "idem": "x", "ts": 1})
print("HELD", flush=True)
time.sleep(60)
"""


def test_another_process_is_refused_until_the_holder_dies(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HELD"
        with pytest.raises(JournalLocked, match=f"pid {proc.pid}"):
            SyncJournal(tmp_path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    j = SyncJournal(tmp_path)  # kill -9 released it: the kernel drops the flock
    j.append(rec(1))
    j.close()
    assert [r["id"] for _, r in JournalReader(tmp_path).iter_from()] == ["held", "t-1"]
    assert (tmp_path / LOCK_NAME).exists()  # left in place (unlinking a flock file races)


FORKER = """
import os, sys, time
from charging.journal import SyncJournal
j = SyncJournal(sys.argv[1])
pid = os.fork()
if pid == 0:  # a child that outlives its parent (a snapshot dump at SCHED_IDLE, a helper)
    time.sleep(30)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


def test_a_forked_child_does_not_keep_the_lock_after_its_parent_died(tmp_path: Path) -> None:
    """A writer's fork (the snapshot child) inherited the flock'ed descriptor: with the
    parent killed -9 the child still held the journal, and the restarted server was refused
    until the child got round to closing it (at SCHED_IDLE on a busy host: any time)."""
    proc = subprocess.Popen([sys.executable, "-c", FORKER, str(tmp_path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        os.kill(child, 0)  # still alive
        j = SyncJournal(tmp_path)
        j.close()
    finally:
        proc.kill()
        proc.wait(30)
        if child:
            os.kill(child, signal.SIGKILL)
