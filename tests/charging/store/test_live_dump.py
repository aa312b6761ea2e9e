"""charging/store/live_dump.py: a snapshot written step by step while ops go on, restored
and replayed from where it began, gives the store that never stopped."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from pathlib import Path

import msgpack
import pytest

from charging.store import live_dump
from charging.store.base import OpResult
from charging.store.memory import MemoryStore
from charging.store.snapshot import SnapshotError, read
from tests.charging.store.test_embedded import (
    KINDS,
    NOW,
    assert_restored_like,
    fresh,
    random_ops,
    record_of,
)


async def started(tmp_path: Path, ops: int, position: list[int]) -> tuple[MemoryStore,
                                                                          live_dump.LiveDump]:
    """A store after *ops* random ops and a live dump of it begun at *position*."""
    live = await fresh()
    await random_ops(live, random.Random(ops), ops, "k")
    return live, live_dump.LiveDump(live, position, tmp_path / "snap")


class LongKeys(MemoryStore):
    """Keys kept a day: 2,500 ops make key dicts that span several chunks."""

    def __init__(self) -> None:
        super().__init__(retention=172_800, session_retention=86_400)


async def ops_at(store: MemoryStore, rng: random.Random, n: int, tag: str,
                 t: float) -> list[OpResult]:
    """Reserve, commit and debit at time *t* (an epoch may end between two calls)."""
    out = []
    for i in range(n):
        acct, key = f"a{rng.randrange(3)}", f"{tag}{i}"
        op = rng.randrange(3)
        if op == 0:
            out.append(await store.reserve(key, acct, "EUR", f"r{rng.randrange(6)}",
                                           rng.randrange(0, 300_000), ttl=50, now=t))
        elif op == 1:
            out.append(await store.commit(key, acct, "EUR", f"r{rng.randrange(6)}",
                                          rng.randrange(0, 300_000), now=t, release_rest=True))
        else:
            out.append(await store.debit(key, acct, "sec", rng.randrange(0, 30), now=t))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_live_dump_plus_replay_from_its_start_is_the_live_store(tmp_path: Path,
                                                                  seed: int) -> None:
    async def body() -> None:
        rng = random.Random(seed)
        # odd seeds: 300 s epochs that end while the dump runs; even: key dicts over chunks
        live = await fresh(MemoryStore if seed % 2 else LongKeys)
        await random_ops(live, rng, 4000, "x")
        epoch_before = live._epoch
        dump = live_dump.LiveDump(live, [7, 99], tmp_path / "snap")
        during: list[OpResult] = []
        steps = 0
        t = NOW + 4000
        while not dump.step(rng.choice([1, 5, 300])):
            steps += 1
            # odd seeds: time runs on up to just short of one epoch (300 s), so one epoch end
            # may fall inside the dump (the most a live dump may span: see finish())
            t = min(t + 60, NOW + 4290) if seed % 2 else t + 10
            # the loop serves between steps: ops on accounts captured and not yet captured
            during += await ops_at(live, rng, rng.randrange(0, 40), f"d{steps}-", t)
        dump.finish(live._epoch, live._ep_end)
        after = await ops_at(live, rng, 200, "y", t + 1)
        assert steps >= 3
        if seed % 2 == 0:
            assert max(len(a.ops) for a in live._accounts.values()) > live_dump.CHUNK
        else:
            assert live._epoch - epoch_before == (1 if t > NOW + 4200 else 0)
        # a crash: restore, then replay the journal from where the dump BEGAN (the ops made
        # during the dump are in it, some also in the file: skipped by their keys)
        restored = MemoryStore()
        assert restored.restore(tmp_path / "snap") == [7, 99]
        for r in during + after:
            if r.effects or r.holds:
                restored.apply_record(record_of(r, KINDS))
        await assert_restored_like(restored, live, during + after, t + 2)

    asyncio.run(body())


def test_the_file_is_a_version_3_snapshot_with_chunked_key_lists(tmp_path: Path) -> None:
    async def body() -> None:
        live, dump = await started(tmp_path, 2600, [1, 2])
        while not dump.step(10_000):
            pass
        dump.finish(live._epoch, live._ep_end)
        state = read(tmp_path / "snap")
        assert state["v"] == 3 and state["position"] == [1, 2]
        assert state["epoch"] == live._epoch and state["ep_end"] == live._ep_end
        by_account = {row[0]: row for row in state["ops"]}
        for a in live._accounts.values():
            _id, epoch, ops_chunks, old_chunks, kept = by_account[a.id]
            assert epoch == a.epoch and all(len(c) <= live_dump.CHUNK for c in ops_chunks)
            assert [k for c in ops_chunks for k, _v in c] == list(a.ops)
            assert [k for c in old_chunks for k, _v in c] == list(a.old)
            assert [k for k, _e, _p in kept] == list(a.kept)
        assert sorted(r[0] for r in state["accounts"]) == sorted(live._accounts)
        with open(tmp_path / "snap", "rb") as fh:  # one msgpack map, nothing after it
            unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False)
            assert len(list(unpacker)) == 1

    asyncio.run(body())


def test_abort_leaves_no_file(tmp_path: Path) -> None:
    async def body() -> None:
        _live, dump = await started(tmp_path, 100, [0, 0])
        dump.step(1)
        dump.abort()
        assert not (tmp_path / "snap").exists()

    asyncio.run(body())


def test_a_dump_that_outlasts_an_epoch_is_dropped(tmp_path: Path) -> None:
    async def body() -> None:
        live, dump = await started(tmp_path, 300, [0, 0])  # 300 s epochs
        dump.step(1)
        await ops_at(live, random.Random(4), 5, "late", NOW + 2000)  # epochs later
        while not dump.step(1):
            pass
        with pytest.raises(SnapshotError, match="outlasted an idempotency epoch"):
            dump.finish(live._epoch, live._ep_end)
        assert not (tmp_path / "snap").exists()

    asyncio.run(body())


def test_the_dump_hands_its_bytes_to_the_disk_a_piece_at_a_time(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """sync() is due every SYNC_BYTES written and leaves them on disk, so finish()'s fsync has
    only the tail left (a big dump's single fsync stalled the journal's group commits)."""
    monkeypatch.setattr(live_dump, "SYNC_BYTES", 4096)
    datasyncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(live_dump.os, "fdatasync",
                        lambda fd: (datasyncs.append(os.fstat(fd).st_size), real(fd)))

    async def main() -> None:
        store, dump = await started(tmp_path, 2_000, [1, 16])
        while not dump.step(50):
            if dump.sync_due:
                dump.sync()
                assert not dump.sync_due
        # several syncs, each after >= 4 KiB more reached the file
        assert len(datasyncs) >= 3, datasyncs
        assert all(b - a >= 4096 for a, b in itertools.pairwise([0, *datasyncs])), datasyncs
        dump.finish(store._epoch, store._ep_end)
        restored = MemoryStore()
        assert restored.restore(tmp_path / "snap") == [1, 16]
        await assert_restored_like(restored, store, [], NOW)

    asyncio.run(main())
