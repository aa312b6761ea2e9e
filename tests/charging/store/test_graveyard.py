"""charging/store/graveyard.py: big containers freed a bounded slice at a time, and the
embedded store and the ledger using it (no 25-35 ms loop stall on an expiry-heap compaction
or an idempotency epoch's end)."""

from __future__ import annotations

import asyncio
import gc
import heapq
import weakref
from pathlib import Path

import pytest

import cython_ext
from charging.journal import Journal
from charging.ledger import Ledger
from charging.ledger import core as ledger_core
from charging.store import memory
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, to_us
from charging.store.graveyard import Graveyard
from charging.store.memory import MemoryStore

NOW = 1_800_000_000.0
EUR = BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 5_000_000, 0)


class Thing:
    """An entry whose freeing a weak reference can see."""

    __slots__ = ("__weakref__",)


def things(n: int) -> tuple[list[Thing], list[weakref.ref[Thing]]]:
    items = [Thing() for _ in range(n)]
    return items, [weakref.ref(t) for t in items]


def alive(refs: list[weakref.ref[Thing]]) -> int:
    return sum(r() is not None for r in refs)


def test_small_containers_are_freed_at_once() -> None:
    g = Graveyard()
    items, refs = things(255)
    g.bury(items)
    del items
    assert not g and g.pending == 0 and alive(refs) == 0


def test_reclaim_frees_the_oldest_first_and_no_more_than_the_budget() -> None:
    g = Graveyard()
    first, first_refs = things(1000)
    second, second_refs = things(600)
    g.bury(first)
    g.bury({i: t for i, t in enumerate(second)})
    del first, second
    assert g.pending == 1600 and alive(first_refs) == 1000 and alive(second_refs) == 600
    assert g.reclaim(700) == 700
    assert alive(first_refs) == 300 and alive(second_refs) == 600 and g.pending == 900
    assert g.reclaim(500) == 500  # the rest of the list, then 200 of the dict
    assert alive(first_refs) == 0 and alive(second_refs) == 400 and g.pending == 400
    assert g.reclaim(10_000) == 400
    assert not g and g.pending == 0 and alive(second_refs) == 0
    assert g.reclaim(10) == 0


def test_past_the_limit_bury_frees_at_once() -> None:
    g = Graveyard(limit=1000)
    first, first_refs = things(800)
    second, second_refs = things(800)
    g.bury(first)
    g.bury(second)
    del first, second
    assert g.pending == 1000
    assert alive(first_refs) == 200 and alive(second_refs) == 800
    assert g.reclaim_all() == 1000
    assert not g and g.pending == 0 and alive(first_refs) + alive(second_refs) == 0


async def _store_with_stale_heap(stale: int = 120_000) -> MemoryStore:
    s = MemoryStore()
    await s.create_account("a", AccountKind.PREPAID_SUBSCRIBER, [EUR])
    assert (await s.reserve("k1", "a", "EUR", "live", 10, ttl=30, now=NOW)).ok
    s._heap.extend((to_us(NOW + 500 + i), "a", "EUR", f"gone{i}") for i in range(stale))
    return s


def test_heap_compaction_keeps_live_holds_and_drops_the_stale_entries() -> None:
    async def body() -> None:
        s = await _store_with_stale_heap()
        assert await s.expire_reservations(now=NOW + 1) == []  # a sweep never compacts
        assert len(s._heap) == 120_001
        assert await s.compact_expiry_heap() == 120_000
        assert s._heap == [(to_us(NOW + 30), "a", "EUR", "live")]
        # the new heap is out of the collector's sight when the extensions are built
        assert gc.is_tracked(s._heap) is (cython_ext.load("gcutil") is None)
        assert await s.compact_expiry_heap() == 0  # nothing dominates any more
        assert (await s.reserve("k2", "a", "EUR", "later", 10, ttl=60, now=NOW)).ok
        expired = await s.expire_reservations(now=NOW + 31)  # the live hold still expires
        assert [h.reservation for r in expired for h in r.holds] == ["live"]
        expired = await s.expire_reservations(now=NOW + 61)  # one pushed after it too
        assert [h.reservation for r in expired for h in r.holds] == ["later"]

    asyncio.run(body())


def test_heap_compaction_lets_the_loop_serve_between_slices() -> None:
    async def body() -> None:
        s = await _store_with_stale_heap()
        task = asyncio.create_task(s.compact_expiry_heap())
        turns = 0
        while not task.done():
            await asyncio.sleep(0)
            turns += 1
            if turns == 3:  # a hold taken while the compaction runs goes to the new heap
                assert (await s.reserve("k2", "a", "EUR", "mid", 10, ttl=45, now=NOW)).ok
                assert (await s.commit("k3", "a", "EUR", "live", 4, now=NOW)).ok  # now stale
        assert turns >= 120_001 // memory.COMPACT_SLICE
        assert await task == 120_000 + 1  # "live" was committed before its entry moved
        assert s._heap == [(to_us(NOW + 45), "a", "EUR", "mid")]
        expired = await s.expire_reservations(now=NOW + 46)
        assert [h.reservation for r in expired for h in r.holds] == ["mid"]

    asyncio.run(body())


def test_a_cancelled_heap_compaction_loses_no_hold() -> None:
    async def body() -> None:
        s = await _store_with_stale_heap()
        task = asyncio.create_task(s.compact_expiry_heap())
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not s._compacting
        assert 0 < len(s._heap) < 120_001  # two slices were dropped, the rest moved back
        heap = list(s._heap)
        heapq.heapify(heap)
        assert heap == s._heap  # still a heap
        expired = await s.expire_reservations(now=NOW + 31)
        assert [h.reservation for r in expired for h in r.holds] == ["live"]
        assert await s.compact_expiry_heap() > 0  # and it can run again

    asyncio.run(body())


def test_the_ledgers_sweep_compacts_the_embedded_stores_heap(tmp_path: Path) -> None:
    async def body() -> None:
        journal = await Journal.open(tmp_path / "journal")
        store = await _store_with_stale_heap()
        ledger = Ledger(store, journal)
        try:
            assert await ledger.expire(NOW + 1) == 0
            assert store._heap == [(to_us(NOW + 30), "a", "EUR", "live")]
            assert await ledger.expire(NOW + 31) == 1
        finally:
            await journal.close()

    asyncio.run(body())


def test_an_epochs_end_buries_the_old_keys_and_keeps_the_retention() -> None:
    async def body() -> None:
        s = MemoryStore(retention=3600, session_retention=60)
        await s.create_account("a", AccountKind.PREPAID_SUBSCRIBER, [EUR])
        for i in range(300):
            assert (await s.debit(f"d{i}", "a", "EUR", 1, now=NOW)).ok
        assert s.prune(NOW + 61) == 0 and not s.graveyard  # the keys move to the old epoch
        assert (await s.debit("d7", "a", "EUR", 1, now=NOW + 61)).replayed
        assert s.prune(NOW + 121) == 300  # forgotten: their dict is buried, not freed
        assert s.graveyard.pending == 300
        assert not (await s.debit("d7", "a", "EUR", 1, now=NOW + 121)).replayed
        assert s.graveyard.reclaim(1000) == 300 and not s.graveyard

    asyncio.run(body())


def test_the_ledger_reclaims_the_embedded_stores_graveyard(tmp_path: Path) -> None:
    async def body() -> None:
        journal = await Journal.open(tmp_path / "journal")
        ledger = Ledger(MemoryStore(), journal, snapshot_dir=tmp_path / "snapshots")
        await ledger.recover(now=NOW)
        ledger.start()
        try:
            items, refs = things(4 * ledger_core.RECLAIM_BUDGET)
            ledger.store.graveyard.bury(items)
            del items
            await asyncio.sleep(ledger_core.RECLAIM_IDLE + 0.5)
            assert not ledger.store.graveyard and alive(refs) == 0
        finally:
            await ledger.close()
            await journal.close()

    asyncio.run(body())


class _CountingDict(dict):  # type: ignore[type-arg]
    walks = 0

    def values(self):  # type: ignore[no-untyped-def]
        _CountingDict.walks += 1
        return super().values()


def test_heap_compaction_counts_the_open_holds_only_as_the_heap_grows() -> None:
    """Counting the holds walks every account: a sweep a second over a million accounts must
    not do it each time, only once the heap grew by a quarter since the last count."""
    async def body() -> None:
        s = MemoryStore()
        await s.create_account("a", AccountKind.PREPAID_SUBSCRIBER, [EUR])
        for i in range(10_000):
            assert (await s.reserve(f"k{i}", "a", "EUR", f"h{i}", 1, ttl=600, now=NOW)).ok
        s._accounts = _CountingDict(s._accounts)  # type: ignore[assignment]

        def stale(n: int) -> None:
            start = len(s._heap)
            s._heap.extend((to_us(NOW + 900), "a", "EUR", f"gone{start + i}") for i in range(n))

        stale(100_000)  # 110k entries, 10k live: the threshold is 140k
        assert await s.compact_expiry_heap() == 0 and _CountingDict.walks == 1
        stale(20_000)  # 130k: under 110k * 1.25, no new count
        assert await s.compact_expiry_heap() == 0 and _CountingDict.walks == 1
        stale(10_000)  # 140k: counted again, still not over the threshold
        assert await s.compact_expiry_heap() == 0 and _CountingDict.walks == 2
        stale(40_000)  # 180k: counted, compacted
        assert await s.compact_expiry_heap() == 170_000 and _CountingDict.walks == 3
        assert len(s._heap) == 10_000

    asyncio.run(body())


def test_an_epochs_end_rotates_the_accounts_a_slice_per_loop_turn() -> None:
    async def body() -> None:
        s = MemoryStore(retention=3600, session_retention=60)
        n = 2 * memory.PRUNE_SLICE + 10
        for i in range(n):
            await s.create_account(f"a{i}", AccountKind.PREPAID_SUBSCRIBER, [EUR])
            assert (await s.debit(f"d{i}", f"a{i}", "EUR", 1, now=NOW)).ok
        assert await s.prune_in_slices(NOW + 30) == 0  # the epoch has not ended
        assert await s.prune_in_slices(NOW + 61) == 0  # the keys move to the old epoch
        task = asyncio.create_task(s.prune_in_slices(NOW + 121))
        turns = 0
        while not task.done():
            await asyncio.sleep(0)
            turns += 1
            if turns == 1:  # between slices: ops go on; one sweep at a time
                assert (await s.debit("new", f"a{n - 1}", "EUR", 1, now=NOW + 121)).ok
                assert await s.prune_in_slices(NOW + 121) == 0
        assert turns >= 2
        assert await task == n - 1  # every key of two epochs ago, but the one the op dropped
        assert s.prune(NOW + 121) == 0  # nothing left for the one-go sweep
        assert not (await s.debit("d7", "a7", "EUR", 1, now=NOW + 121)).replayed

    asyncio.run(body())


def test_an_account_created_during_the_sliced_rotation_is_not_missed() -> None:
    async def body() -> None:
        s = MemoryStore(retention=3600, session_retention=60)
        n = 3 * memory.PRUNE_SLICE
        for i in range(n):
            await s.create_account(f"a{i}", AccountKind.PREPAID_SUBSCRIBER, [EUR])
            assert (await s.debit(f"d{i}", f"a{i}", "EUR", 1, now=NOW)).ok
        await s.prune_in_slices(NOW + 61)
        task = asyncio.create_task(s.prune_in_slices(NOW + 121))
        await asyncio.sleep(0)
        await s.create_account("late", AccountKind.PREPAID_SUBSCRIBER, [EUR])  # mid-iteration
        assert await task == n  # every old key, each account rotated once
        assert all(a.epoch == s._epoch and not a.old for a in s._accounts.values())

    asyncio.run(body())
