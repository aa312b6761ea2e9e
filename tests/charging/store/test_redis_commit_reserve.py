"""The Redis store's commit_reserve (lua/commit_reserve.lua, batch letter 'u'): a commit
(release the rest) and the next reserve as ONE script op. Its results, its replays and the
state it leaves must be those of ``commit`` then ``reserve`` -- with no reserve when the
commit finds no such reservation -- which the embedded store's single ops define (their parity
with Redis: test_store_parity.py). A malformed reserve argument must fail the op before the
commit writes anything."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpStatus
from charging.store.memory import MemoryStore
from tests.charging.store.test_store_parity import NOW, _norm

OP = st.tuples(
    st.sampled_from(["pair", "pair", "reserve", "commit", "expire"]),
    st.sampled_from(["a", "ghost"]),
    st.sampled_from(["EUR", "sec", "nope"]),
    st.sampled_from(["r1", "r2", "r3"]),  # the commit's reservation
    st.sampled_from(["r1", "r2", "r3"]),  # the reserve's
    st.integers(0, 300),  # used
    st.integers(0, 300),  # amount
    st.integers(0, 60),  # seconds after NOW
    st.booleans(),  # reuse a key (a retransmit)
)


async def _pair_by_single_ops(store: Any, ckey: str, acct: str, bal: str, cres: str,
                              used: int, rkey: str, rres: str, amount: int,
                              now: float) -> tuple[Any, Any]:
    """What commit_reserve must equal: the two ops, the reserve skipped after
    UNKNOWN_RESERVATION (charging/ledger/sync_ops.py commit_reserve_now)."""
    c = await store.commit(ckey, acct, bal, cres, used, now=now, release_rest=True)
    if c.status is OpStatus.UNKNOWN_RESERVATION:
        return c, None
    return c, await store.reserve(rkey, acct, bal, rres, amount, ttl=7.5, now=now)


async def run(store: Any, ops: list[Any], *, pair: bool, holds: bool = True) -> list[Any]:
    """Every op's result, then the account, then (*holds*: Redis lists them) its holds."""
    await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER, [
        BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 900, 50, low_threshold=400),
        BalanceSpec("sec", BalanceKind.SECONDS, None, 500, priority=2, expires_at=NOW + 30)],
        ["+41a"])
    out: list[Any] = []
    for i, (name, acct, bal, cres, rres, used, amount, dt, again) in enumerate(ops):
        key = f"k{i % 4}" if again else f"k{i}"
        now = NOW + dt
        if name == "pair":
            args = (f"{key}:c", acct, bal, cres, used, f"{key}:r", rres, amount)
            if pair:
                c, r = await store.commit_reserve(*args, ttl=7.5, now=now)
            else:
                c, r = await _pair_by_single_ops(store, *args, now)
            out.append((_norm(c), None if r is None else _norm(r)))
        elif name == "reserve":
            out.append(_norm(await store.reserve(key, acct, bal, rres, amount, ttl=7.5,
                                                 now=now)))
        elif name == "commit":
            out.append(_norm(await store.commit(key, acct, bal, cres, used, now=now)))
        else:
            out.append(_norm(await store.expire_reservations(now=now)))
    out.append(await store.get("a"))
    if holds:
        for b in ("EUR", "sec"):
            out.append(sorted((await store.reservations("a", b)).items()))
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(OP, max_size=20))
def test_commit_reserve_is_commit_then_reserve(rh: Any, ops: list[Any]) -> None:
    got = rh.run(lambda store: run(store, ops, pair=True))
    # the same results and account as the embedded store's single ops ...
    assert got[:-2] == asyncio.run(run(MemoryStore(), ops, pair=False, holds=False))
    # ... and the same holds (expiries included) as the Redis store's single ops
    assert got == rh.run(lambda store: run(store, ops, pair=False))


def test_pairs_in_one_batch_and_a_skipped_reserve(rh: Any) -> None:
    """Many pairs issued in the same tick share a batch; a pair whose commit finds no hold
    answers (commit, None) and reserves nothing."""

    async def body(store: Any) -> None:
        accts = [f"p{i}" for i in range(20)]
        for a in accts:
            await store.create_account(a, AccountKind.PREPAID_SUBSCRIBER,
                                       [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 1_000)])
            await store.reserve(f"{a}:r0", a, "EUR", "h0", 300, ttl=60, now=NOW)
        results = await asyncio.gather(*(
            store.commit_reserve(f"{a}:c1", a, "EUR", "h0" if i % 2 == 0 else "nohold", 100,
                                 f"{a}:r1", "h1", 250, ttl=60, now=NOW + 1)
            for i, a in enumerate(accts)))
        for i, (a, (c, r)) in enumerate(zip(accts, results, strict=True)):
            view = await store.get(a)
            bal = view.balances[0]
            if i % 2 == 0:
                assert c.status is OpStatus.OK and c.granted == 100
                assert r is not None and r.status is OpStatus.OK and r.granted == 250
                assert (bal.amount, bal.reserved) == (900, 250)
                assert await store.reservations(a, "EUR") == {
                    "h1": (250, round((NOW + 61) * 1_000_000))}
            else:
                assert c.status is OpStatus.UNKNOWN_RESERVATION and r is None
                assert (bal.amount, bal.reserved) == (1_000, 300)  # untouched
        # a retransmit replays both (and nothing moves again)
        c2, r2 = await store.commit_reserve(f"{accts[0]}:c1", accts[0], "EUR", "h0", 100,
                                            f"{accts[0]}:r1", "h1", 250, ttl=60, now=NOW + 2)
        assert c2.replayed and r2 is not None and r2.replayed
        assert (await store.get(accts[0])).balances[0].amount == 900

    rh.run(body)


def test_a_malformed_reserve_argument_fails_before_the_commit_writes(rh: Any) -> None:
    """Sent past the client's checks (straight to the op queue): the script refuses the
    reserve's amount, expiry or clock BEFORE the commit runs, so the hold is still there."""

    async def body(store: Any) -> None:
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                                   [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 1_000)])
        await store.reserve("r0", "a", "EUR", "h0", 300, ttl=60, now=NOW)
        keys = store._op_keys("a")
        ep = int(NOW // store.retention)
        now_us = round(NOW * 1_000_000)
        for amount, exp, now in (("x", 1, now_us), (-5, 1, now_us), (2 ** 60, 1, now_us),
                                 (10, "1.5", now_us), (10, 1, "nan")):
            with pytest.raises(ResponseError):  # the op's own error reply
                await store._ops.bop(b"u", keys, "a", "EUR", ep,
                                     ("|c1", "h0", 100, "|r1", "h1", amount, exp, now))
        bal = (await store.get("a")).balances[0]
        assert (bal.amount, bal.reserved) == (1_000, 300)
        assert await store.reservations("a", "EUR") == {
            "h0": (300, round((NOW + 60) * 1_000_000))}
        # and the keys are still free: the well-formed op runs afresh
        c, r = await store.commit_reserve("c1", "a", "EUR", "h0", 100, "r1", "h1", 50,
                                          ttl=60, now=NOW)
        assert not c.replayed and c.granted == 100 and r is not None and r.granted == 50

    rh.run(body)
