"""Snapshots dumped by a forked child (charging/store/snapshot.py ``fork_dump``): the file holds
the state at the fork, never an op made after it; a failed child publishes nothing; stale
temp files of interrupted writes are pruned."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from charging.journal import Journal
from charging.ledger import Ledger, recovery
from charging.store import snapshot as snap
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore

T0 = 1_800_000_000.0
EUR = BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount=10_000_000)

needs_fork = pytest.mark.skipif(not snap.CAN_FORK, reason="no os.fork on this platform")


async def _ledger(d: Path, **spacing: Any) -> tuple[Ledger, Journal]:
    """A ledger with account a1 (10.00 EUR); *spacing*: snapshot_records/_seconds."""
    journal = await Journal.open(d / "journal")
    ledger = Ledger(MemoryStore(), journal, snapshot_dir=d / "snapshots",
                    snapshot_mode="fork", **spacing)
    await ledger.recover(now=T0)
    await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
    return ledger, journal


def _snapshot_amount(d: Path) -> tuple[int, set[str]]:
    [(_pos, path)] = recovery.list_snapshots(d / "snapshots")[:1]
    state = snap.read(path)
    [acct] = state["accounts"]
    amount = acct[4][0][3]
    keys = {k for _a, _e, ops, old, *_kept in state["ops"] for k, _v in ops + old}
    return amount, keys


async def _restart_restores(d: Path, pos: Any) -> None:
    """A restart restores the snapshot at *pos* and replays d2 (2.50) from the journal after
    it: a1 ends at 10.00 - 1.00 - 2.50."""
    journal = await Journal.open(d / "journal")
    ledger = Ledger(MemoryStore(), journal, snapshot_dir=d / "snapshots", snapshot_mode="fork")
    report = await ledger.recover(now=T0)
    assert report.snapshot == pos and report.replayed == 1
    view = await ledger.store.get("a1")
    assert view is not None and view.balances[0].amount == 10_000_000 - 350_000
    await ledger.close()
    await journal.close()


@needs_fork
def test_snapshot_holds_the_state_at_the_fork_not_later_ops(tmp_path: Path) -> None:
    async def main() -> None:
        ledger, journal = await _ledger(tmp_path)
        await ledger.debit("d1", "a1", "EUR", 100_000, now=T0)
        task = asyncio.ensure_future(ledger.snapshot())
        await asyncio.sleep(0)  # the snapshot forks in its first step (no op in flight)
        # made after the fork, while the child is still dumping: not in this snapshot
        await ledger.debit("d2", "a1", "EUR", 250_000, now=T0)
        pos = await task
        assert pos is not None
        amount, keys = _snapshot_amount(tmp_path)
        assert amount == 10_000_000 - 100_000
        assert "d1" in keys and "d2" not in keys
        # nothing but snapshots left in the directory (the temp file was renamed)
        assert [p.name for p in (tmp_path / "snapshots").iterdir()
                if p.name.startswith(".")] == []
        await ledger.close()
        await journal.close()
        # a restart restores the snapshot and replays d2 from the journal after it
        await _restart_restores(tmp_path, pos)

    asyncio.run(main())


@needs_fork
def test_a_failed_child_publishes_nothing(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(store: object, position: object) -> dict[str, object]:
        raise RuntimeError("dump failed")

    async def main() -> None:
        ledger, journal = await _ledger(tmp_path)
        await ledger.debit("d1", "a1", "EUR", 100_000, now=T0)
        monkeypatch.setattr(snap, "dump_state", broken)  # the child inherits the patch
        with pytest.raises(snap.SnapshotError, match="snapshot child failed.*RuntimeError: dump failed"):
            await ledger.snapshot()
        snaps = tmp_path / "snapshots"
        assert not snaps.exists() or list(snaps.iterdir()) == []
        # the ledger goes on: money still moves, and the next snapshot works
        monkeypatch.undo()
        assert (await ledger.debit("d2", "a1", "EUR", 1, now=T0)).ok
        assert await ledger.snapshot() is not None
        # the loop's stop for each fork is measured (/metrics: icx_snapshot_fork_seconds)
        assert 0 < ledger.stats["snapshot_fork_us"] <= ledger.stats["snapshot_fork_us_max"]
        # and the after-fork hook runs once the child is gone, failed child or not
        seen: list[int] = []
        ledger.after_fork_snapshot = lambda: seen.append(len(seen))
        assert await ledger.snapshot() is not None
        monkeypatch.setattr(snap, "dump_state", broken)
        with pytest.raises(snap.SnapshotError):
            await ledger.snapshot()
        monkeypatch.undo()
        assert seen == [0, 1]
        await ledger.close()
        await journal.close()

    asyncio.run(main())


def test_prune_removes_only_stale_temp_files(tmp_path: Path) -> None:
    tmp_path.joinpath("snapshot-000000000001-000000000010.msgpack").write_bytes(b"x")
    old = tmp_path / ".snapshot-000000000001-000000000020.msgpack.tmp-1-2-3"
    fresh = tmp_path / ".snapshot-000000000001-000000000030.msgpack.tmp-1-2-4"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    past = time.time() - recovery.STALE_TEMP_SECONDS - 60
    os.utime(old, (past, past))
    recovery.prune_snapshots(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, "snapshot-000000000001-000000000010.msgpack"])


@needs_fork
def test_snapshots_space_out_as_the_cache_grows(tmp_path: Path) -> None:
    """By records, a snapshot comes after ``snapshot_records`` ops, then after as many ops as
    were journaled in all: each dump holds the whole idempotency cache, so a fixed count would
    make the dump cost per op grow with the cache."""
    async def main() -> None:
        ledger, journal = await _ledger(tmp_path, snapshot_records=10, snapshot_seconds=3600.0)
        taken_at = []
        for i in range(200):
            await ledger.debit(f"d{i}", "a1", "EUR", 1, now=T0)
            task = ledger._snapshot_task
            if task is not None:
                await task
                taken_at.append(ledger.stats["journaled"])
        gaps = [b - a for a, b in zip([0, *taken_at], taken_at, strict=False)]
        assert gaps[0] == 10
        assert gaps[1:] == [max(10, before) for before in taken_at[:-1]]
        assert len(taken_at) == 5  # 10, 20, 40, 80, 160 (a fixed count: 20 snapshots)
        await ledger.close()
        await journal.close()

    asyncio.run(main())


@needs_fork
def test_a_failed_background_snapshot_is_counted_and_spaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The job that snapshots by records: a failure is logged and counted, money keeps
    moving, and the next attempt waits for another full spacing (no fork per op)."""
    def broken(store: object, position: object) -> dict[str, object]:
        raise RuntimeError("disk full")

    async def main() -> None:
        ledger, journal = await _ledger(tmp_path, snapshot_records=5, snapshot_seconds=3600.0)
        monkeypatch.setattr(snap, "dump_state", broken)
        jobs = 0
        for i in range(9):
            assert (await ledger.debit(f"d{i}", "a1", "EUR", 1, now=T0)).ok
            task = ledger._snapshot_task
            if task is not None:
                jobs += 1
                await task
        assert jobs == 1 and ledger.stats["snapshot_failures"] == 1
        assert ledger.stats["snapshots"] == 0 and ledger._since_snapshot < 5
        assert "ledger snapshot failed" in caplog.text and "RuntimeError: disk full" in caplog.text
        await ledger.close()
        await journal.close()

    asyncio.run(main())


@needs_fork
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_the_child_keeps_no_descriptor_of_the_parent(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A listening socket (or a peer's connection) must not outlive the server in its
    snapshot child: the child holds only its standard streams (on /dev/null) and the pipe
    that carries its error back."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    real_dump, real_fork = snap.dump_state, snap.fork_dump
    pids: list[int] = []

    ready = tmp_path / "child-ready"

    def slow_dump(store: MemoryStore, position: object) -> dict[str, object]:
        # (in the child, past its clean-up) say so, and stay long enough to be looked at
        ready.write_text("x")
        time.sleep(1.0)
        return real_dump(store, position)

    def fork(store: MemoryStore, position: object, tmp: Path) -> tuple[int, int]:
        pid, err_fd = real_fork(store, position, tmp)
        pids.append(pid)
        return pid, err_fd

    monkeypatch.setattr(snap, "dump_state", slow_dump)
    monkeypatch.setattr(snap, "fork_dump", fork)

    async def main() -> list[str] | None:
        ledger, journal = await _ledger(tmp_path)
        task = asyncio.ensure_future(ledger.snapshot())
        await asyncio.sleep(0)
        [pid] = pids
        deadline = time.monotonic() + 5.0
        while not ready.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        targets = _descriptors(pid)
        assert await task is not None
        await ledger.close()
        await journal.close()
        return targets

    try:
        targets = asyncio.run(main())
    finally:
        listener.close()
    assert targets is not None, "the child ended before it could be looked at"
    assert not [t for t in targets if t.startswith("socket:")], targets
    assert targets.count("/dev/null") == 3 and len(targets) == 4, targets


def _descriptors(pid: int) -> list[str] | None:
    """What the open descriptors of process *pid* point to; None once it has exited."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return None
        out = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                out.append(os.readlink(fd))
            except FileNotFoundError:  # closed while we looked
                pass
        return sorted(out)
    except FileNotFoundError:
        return None


def test_without_fork_the_state_is_dumped_in_the_loop(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Where os.fork is missing the snapshot is dumped in the loop, with the same contract:
    the state at its position, published once durable, restored with the journal after it."""
    monkeypatch.setattr(snap, "CAN_FORK", False)

    def no_fork(*args: object) -> tuple[int, int]:
        raise AssertionError("forked although CAN_FORK is False")

    monkeypatch.setattr(snap, "fork_dump", no_fork)

    async def main() -> None:
        ledger, journal = await _ledger(tmp_path)
        await ledger.debit("d1", "a1", "EUR", 100_000, now=T0)
        pos = await ledger.snapshot()
        await ledger.debit("d2", "a1", "EUR", 250_000, now=T0)
        await ledger.close()
        await journal.close()
        amount, keys = _snapshot_amount(tmp_path)
        assert amount == 10_000_000 - 100_000 and "d1" in keys and "d2" not in keys
        await _restart_restores(tmp_path, pos)

    asyncio.run(main())
