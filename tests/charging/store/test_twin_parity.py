"""Parity: the compiled twin (cython_ext/store_ops.pyx) vs the Python reference, op by op."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.store import memory
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore

pytestmark = pytest.mark.skipif(not memory.EXTENSION,
                                reason="cython_ext.store_ops not built or ICX_NO_EXTENSIONS=1")

NOW = 1_800_000_000.0


class PureStore(MemoryStore):
    reserve_sync = MemoryStore._reserve_py  # type: ignore[assignment]
    commit_sync = MemoryStore._commit_py  # type: ignore[assignment]
    reserve = MemoryStore.reserve_coro  # type: ignore[assignment]
    commit = MemoryStore.commit_coro  # type: ignore[assignment]


OP = st.tuples(
    st.sampled_from(["reserve", "commit", "commit_keep", "debit", "expire"]),
    st.sampled_from(["a", "b", "ghost"]),
    st.sampled_from(["EUR", "sec", "nope"]),
    st.sampled_from(["r1", "r2"]),
    st.one_of(st.integers(0, 300), st.just(-1), st.just(2**60)),
    st.integers(0, 50),
    st.booleans(),
)


async def run(store: MemoryStore, ops: list[Any], awaited: bool = False) -> list[Any]:
    for acct in ("a", "b"):
        await store.create_account(acct, AccountKind.POSTPAID_PARTNER, [
            BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 500, 100, low_threshold=200),
            BalanceSpec("sec", BalanceKind.SECONDS, None, 200, expires_at=NOW + 30)])
    out: list[Any] = []
    for i, (name, acct, bal, res, amount, dt, flag) in enumerate(ops):
        key = f"k{i % 7}" if flag else f"k{i}"  # some keys repeat: replays
        now = NOW + dt
        try:
            if name == "reserve" and awaited:
                r = await store.reserve(key, acct, bal, res, amount, ttl=10.0, now=now,
                                        partial=flag)
            elif name == "reserve":
                r = store.reserve_sync(key, acct, bal, res, amount, 10.0, now, flag)
            elif name in ("commit", "commit_keep") and awaited:
                r = await store.commit(key, acct, bal, res, amount, now=now,
                                       release_rest=name == "commit")
            elif name in ("commit", "commit_keep"):
                r = store.commit_sync(key, acct, bal, res, amount, now, name == "commit")
            elif name == "debit":
                r = await store.debit(key, acct, bal, amount, now=now, partial=flag)
            else:
                out.append(await store.expire_reservations(now=now))
                continue
        except ValueError as exc:
            out.append(("ValueError", str(exc)))
            continue
        out.append(r)
    out.append([await store.get(a) for a in ("a", "b")])
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(OP, max_size=40), st.sampled_from([48 * 3600.0, 20.0]))
def test_twin_matches_reference(ops: list[Any], retention: float) -> None:
    """Also with a 20 s retention, so idempotency epochs rotate inside the sequence."""
    assert MemoryStore.reserve_sync is not MemoryStore._reserve_py
    fast = asyncio.run(run(MemoryStore(retention=retention), ops))
    ref = asyncio.run(run(PureStore(retention=retention), ops))
    assert fast == ref


@settings(max_examples=100, deadline=None)
@given(st.lists(OP, max_size=40), st.sampled_from([48 * 3600.0, 20.0]))
def test_awaited_twin_matches_reference_coroutines(ops: list[Any], retention: float) -> None:
    """``await store.reserve/commit(...)``: the compiled already-complete awaitables answer
    exactly like the reference coroutines (and like the synchronous twin)."""
    assert MemoryStore.reserve is not MemoryStore.reserve_coro
    fast = asyncio.run(run(MemoryStore(retention=retention), ops, awaited=True))
    ref = asyncio.run(run(PureStore(retention=retention), ops, awaited=True))
    assert fast == ref
    assert fast == asyncio.run(run(MemoryStore(retention=retention), ops))


def test_ready_awaitable_behaves_like_a_done_future() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                                   [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 1000)])
        ready = store.reserve("k1", "a", "EUR", "r1", 100, ttl=30.0, now=NOW)
        assert ready.done()
        first = await ready
        assert first.ok and first.granted == 100 and ready.result() is first
        assert await ready is first  # awaiting again gives the same answer, as a done Future
        # generic awaiting paths: a Task around it, gather, and yield from __await__()
        task = asyncio.ensure_future(store.commit("k2", "a", "EUR", "r1", 40, now=NOW))
        assert (await task).effects[0].amount == -40
        a, b = await asyncio.gather(store.reserve("k3", "a", "EUR", "r2", 1, ttl=1.0, now=NOW),
                                    store.reserve("k3", "a", "EUR", "r2", 1, ttl=1.0, now=NOW))
        assert a.ok and b.replayed and (a.holds, a.granted) == (b.holds, b.granted)

        def gen() -> Any:
            return (yield from store.reserve("k4", "a", "EUR", "r3", 5, ttl=1.0,
                                             now=NOW).__await__())
        it = gen()
        with pytest.raises(StopIteration) as stop:
            next(it)
        assert stop.value.value.key == "k4" and stop.value.value.granted == 5
        with pytest.raises(ValueError):  # a bad amount raises at the call (the await site)
            await store.reserve("k5", "a", "EUR", "r1", -1, ttl=1.0, now=NOW)
        with pytest.raises(TypeError):
            await store.commit("k6", "a", "EUR", "r1", 1, NOW)  # now is keyword-only
    asyncio.run(main())


def test_compiled_hot_path_keeps_the_cache_out_of_the_cyclic_gc() -> None:
    """The idempotency cache and the expiry heap hold only untracked tuples, and the cache
    dicts stay untracked across an epoch rotation (the GC never walks millions of results)."""
    import gc

    async def main() -> MemoryStore:
        store = MemoryStore(retention=20.0)
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                                   [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**9)])
        for i in range(100):  # crosses several 20 s epochs
            now = NOW + i
            await store.reserve(f"r{i}", "a", "EUR", f"s{i}", 10, ttl=30.0, now=now)
            await store.commit(f"c{i}", "a", "EUR", f"s{i}", 5, now=now)
        return store

    store = asyncio.run(main())
    acct = store._accounts["a"]
    assert acct.ops and acct.old and not gc.is_tracked(acct.ops) and not gc.is_tracked(acct.old)
    assert not any(gc.is_tracked(v) for v in (*acct.ops.values(), *acct.old.values()))
    assert not any(gc.is_tracked(t) for t in store._heap)


def test_every_call_shape_of_the_awaited_methods_answers_like_the_reference() -> None:
    """The compiled methods parse the usual shape (5 positional, ttl/now/partial or
    now/release_rest by keyword) in C and hand every other shape to the generic path: the
    answers and the errors are the reference coroutines'."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("reserve", ("k1", "a", "EUR", "r1", 100), {"ttl": 30.0, "now": NOW}),
        ("reserve", ("k2", "a", "EUR", "r2", 100), {"now": NOW, "ttl": 30, "partial": True}),
        ("reserve", ("k3", "a", "EUR", "r3"), {"amount": 10, "ttl": 30.0, "now": NOW}),
        ("reserve", (), {"key": "k4", "account": "a", "balance": "EUR", "reservation": "r4",
                         "amount": 10, "ttl": 1.5, "now": NOW}),
        ("reserve", ("k5", "a", "EUR", "r5", 10), {"ttl": 30.0}),  # now missing
        ("reserve", ("k6", "a", "EUR", "r6", 10), {"ttl": 30.0, "now": NOW, "bogus": 1}),
        ("reserve", ("k7", "a", "EUR", "r7", 10, 30.0, NOW), {}),  # ttl/now keyword-only
        ("reserve", ("k1", "a", "EUR", "r1", 100), {"ttl": 30.0, "now": NOW}),  # replay
        ("commit", ("c1", "a", "EUR", "r1", 40), {"now": NOW}),
        ("commit", ("c2", "a", "EUR", "r2", 40), {"release_rest": False, "now": NOW + 1}),
        ("commit", ("c3", "a", "EUR", "r2", 10), {"now": NOW + 2, "release_rest": 0}),
        ("commit", ("c4", "a", "EUR"), {"reservation": "r3", "used": 5, "now": NOW}),
        ("commit", ("c5", "a", "EUR", "r4", 5), {}),  # now missing
        ("commit", ("c6", "a", "EUR", "r4", 5), {"now": NOW, "now2": 1}),
        ("commit", ("c7", "a", "EUR", "r4", 5), {"now": NOW, "release_rest": True,
                                                  "partial": 1}),
        ("commit", ("c1", "a", "EUR", "r1", 40), {"now": NOW}),  # replay
        ("commit", ("c8", "a", "EUR", "nope", 1), {"now": NOW}),
    ]

    async def play(store: MemoryStore) -> list[Any]:
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                                   [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 150)])
        out: list[Any] = []
        for name, args, kwargs in calls:
            try:
                out.append(await getattr(store, name)(*args, **kwargs))
            except TypeError:
                out.append("TypeError")  # the messages name different functions
        out.append(await store.get("a"))
        return out

    fast = asyncio.run(play(MemoryStore()))
    ref = asyncio.run(play(PureStore()))
    assert fast == ref
    assert fast.count("TypeError") == 6


def test_every_call_shape_of_the_sync_methods_answers_like_the_reference() -> None:
    """reserve_sync / commit_sync: all-positional calls are parsed in C, anything else goes
    to the generic path; answers and errors are the reference's."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("reserve_sync", ("k1", "a", "EUR", "r1", 100, 30.0, NOW), {}),
        ("reserve_sync", ("k2", "a", "EUR", "r2", 100, 30, NOW, True), {}),
        ("reserve_sync", ("k3", "a", "EUR", "r3", 10, 30.0), {"now": NOW}),
        ("reserve_sync", ("k4", "a", "EUR", "r4", 10, 30.0, NOW), {"partial": False}),
        ("reserve_sync", ("k5", "a", "EUR", "r5", 10), {}),
        ("reserve_sync", ("k1", "a", "EUR", "r1", 100, 30.0, NOW), {}),  # replay
        ("commit_sync", ("c1", "a", "EUR", "r1", 40, NOW), {}),
        ("commit_sync", ("c2", "a", "EUR", "r2", 40, NOW + 1, False), {}),
        ("commit_sync", ("c3", "a", "EUR", "r3", 5, NOW), {"release_rest": True}),
        ("commit_sync", ("c4", "a", "EUR", "r4", 5), {}),
        ("commit_sync", ("c1", "a", "EUR", "r1", 40, NOW), {}),  # replay
    ]

    async def play(store: MemoryStore) -> list[Any]:
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                                   [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 150)])
        out: list[Any] = []
        for name, args, kwargs in calls:
            try:
                out.append(getattr(store, name)(*args, **kwargs))
            except TypeError:
                out.append("TypeError")
        out.append(await store.get("a"))
        return out

    fast = asyncio.run(play(MemoryStore()))
    assert fast == asyncio.run(play(PureStore()))
    assert fast.count("TypeError") == 2
