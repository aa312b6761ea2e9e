"""The balance-store contract, run unchanged against embedded, redis-server and Redis Cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charging.store.base import (
    MAX_AMOUNT,
    AccountKind,
    BalanceKind,
    BalanceSpec,
    Effect,
    OpStatus,
)

EUR = "EUR"
NOW = 1_800_000_000.0


def money(amount: int, credit_limit: int = 0, low: int | None = None) -> BalanceSpec:
    return BalanceSpec(EUR, BalanceKind.MONEY, "EUR", amount, credit_limit, low_threshold=low)


async def prepaid(store: Any, amount: int = 1000, *, account: str = "sub1", low: int | None = None,
                  identities: list[str] | None = None) -> str:
    await store.create_account(account, AccountKind.PREPAID_SUBSCRIBER, [money(amount, low=low)],
                               identities or [])
    return account


async def amount_of(store: Any, account: str, balance: str = EUR) -> tuple[int, int]:
    view = await store.get(account)
    bal = next(b for b in view.balances if b.id == balance)
    return bal.amount, bal.reserved


def test_reserve_commit_release_rest(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store)
        r = await store.reserve("k1", a, EUR, "s1", 300, ttl=30, now=NOW)
        assert r.ok and r.granted == 300 and r.balance_after == 1000 and r.available_after == 700
        assert r.effects == () and len(r.holds) == 1
        h = r.holds[0]
        assert (h.account, h.balance, h.reservation, h.amount) == (a, EUR, "s1", 300)
        assert h.expires_at == NOW + 30
        assert await amount_of(store, a) == (1000, 300)
        c = await store.commit("k2", a, EUR, "s1", 120, now=NOW + 1)
        assert c.ok and c.granted == 120 and c.effects == (Effect(a, EUR, -120),)
        assert c.holds[0].amount == -300 and c.holds[0].expires_at is None
        assert c.balance_after == 880 and c.available_after == 880
        assert await amount_of(store, a) == (880, 0)
        again = await store.commit("k3", a, EUR, "s1", 10, now=NOW + 2)
        assert again.status is OpStatus.UNKNOWN_RESERVATION

    harness.run(body)


def test_commit_keep_rest_and_rereserve(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store)
        await store.reserve("k1", a, EUR, "s1", 300, ttl=30, now=NOW)
        c = await store.commit("k2", a, EUR, "s1", 100, now=NOW, release_rest=False)
        assert c.ok and c.granted == 100 and c.holds[0].amount == -100
        assert c.holds[0].expires_at == NOW + 30
        assert await amount_of(store, a) == (900, 200)
        r = await store.reserve("k3", a, EUR, "s1", 50, ttl=60, now=NOW + 10)
        assert r.ok and r.holds[0].expires_at == NOW + 70
        assert await amount_of(store, a) == (900, 250)
        rel = await store.release("k4", a, EUR, "s1", now=NOW + 11)
        assert rel.ok and rel.holds[0].amount == -250 and rel.holds[0].expires_at is None
        assert await amount_of(store, a) == (900, 0)
        assert (await store.release("k5", a, EUR, "s1", now=NOW)).status is \
            OpStatus.UNKNOWN_RESERVATION

    harness.run(body)


def test_commit_beyond_hold(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store, 500)
        await store.reserve("k1", a, EUR, "s1", 100, ttl=30, now=NOW)
        c = await store.commit("k2", a, EUR, "s1", 300, now=NOW)
        assert c.ok and c.granted == 300 and await amount_of(store, a) == (200, 0)
        await store.reserve("k3", a, EUR, "s2", 100, ttl=30, now=NOW)
        c = await store.commit("k4", a, EUR, "s2", 900, now=NOW)
        assert c.ok and c.granted == 200  # only what exists could be debited
        assert await amount_of(store, a) == (0, 0)

    harness.run(body)


def test_idempotent_replay_of_every_op(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store)
        calls = [
            lambda: store.reserve("r", a, EUR, "s1", 100, ttl=30, now=NOW),
            lambda: store.commit("c", a, EUR, "s1", 40, now=NOW),
            lambda: store.reserve("r2", a, EUR, "s2", 10, ttl=30, now=NOW),
            lambda: store.release("l", a, EUR, "s2", now=NOW),
            lambda: store.debit("d", a, EUR, 25, now=NOW),
            lambda: store.refund("f", a, EUR, 5, now=NOW),
            lambda: store.topup("t", a, EUR, 1000, now=NOW),
            lambda: store.debit("big", a, EUR, 10**9, now=NOW),  # failures replay too
        ]
        for call in calls:
            first = await call()
            before = await store.get(a)
            second = await call()
            assert second.replayed and not first.replayed
            assert (second.status, second.effects, second.holds, second.granted,
                    second.balance_after, second.available_after) == \
                (first.status, first.effects, first.holds, first.granted,
                 first.balance_after, first.available_after)
            assert await store.get(a) == before
        assert await amount_of(store, a) == (1000 - 40 - 25 + 5 + 1000, 0)

    harness.run(body)


def test_insufficient_and_partial(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store, 100)
        r = await store.reserve("k1", a, EUR, "s1", 101, ttl=30, now=NOW)
        assert r.status is OpStatus.INSUFFICIENT and r.granted == 0 and r.holds == ()
        r = await store.reserve("k2", a, EUR, "s1", 150, ttl=30, now=NOW, partial=True)
        assert r.ok and r.granted == 100 and r.available_after == 0
        r = await store.reserve("k3", a, EUR, "s2", 1, ttl=30, now=NOW, partial=True)
        assert r.status is OpStatus.INSUFFICIENT
        r = await store.reserve("k4", a, EUR, "s3", 0, ttl=30, now=NOW)
        assert r.ok and r.granted == 0
        d = await store.debit("k5", a, EUR, 1, now=NOW)
        assert d.status is OpStatus.INSUFFICIENT
        await store.release("k6", a, EUR, "s1", now=NOW)
        d = await store.debit("k7", a, EUR, 130, now=NOW, partial=True)
        assert d.ok and d.granted == 100 and d.effects == (Effect(a, EUR, -100),)
        assert await amount_of(store, a) == (0, 0)

    harness.run(body)


def test_postpaid_credit_limit(harness: Any) -> None:
    async def body(store: Any) -> None:
        await store.create_account("p1", AccountKind.POSTPAID_PARTNER, [money(0, credit_limit=500)])
        r = await store.reserve("k1", "p1", EUR, "s1", 400, ttl=30, now=NOW)
        assert r.ok and r.available_after == 100
        assert (await store.reserve("k2", "p1", EUR, "s2", 101, ttl=30, now=NOW)).status is \
            OpStatus.INSUFFICIENT
        c = await store.commit("k3", "p1", EUR, "s1", 450, now=NOW)
        assert c.ok and c.granted == 450 and c.balance_after == -450 and c.available_after == 50
        d = await store.debit("k4", "p1", EUR, 51, now=NOW)
        assert d.status is OpStatus.INSUFFICIENT
        d = await store.debit("k5", "p1", EUR, 50, now=NOW)
        assert d.ok and d.balance_after == -500 and d.available_after == 0
        view = await store.get("p1")
        assert view.kind is AccountKind.POSTPAID_PARTNER
        assert view.balances[0].credit_limit == 500 and view.balances[0].available == 0

    harness.run(body)


def test_unit_buckets_and_bucket_expiry(harness: Any) -> None:
    async def body(store: Any) -> None:
        buckets = [
            BalanceSpec("voice", BalanceKind.SECONDS, None, 600, priority=1, expires_at=NOW + 100),
            BalanceSpec("sms", BalanceKind.EVENTS, None, 10, priority=2),
            BalanceSpec("data", BalanceKind.OCTETS, None, 10**12, priority=3),
            money(1000),
        ]
        await store.create_account("u1", AccountKind.PREPAID_SUBSCRIBER, buckets, ["+491700000001"])
        view = await store.get("u1")
        assert [b.id for b in view.balances] == ["voice", "sms", "data", EUR]
        voice = view.balances[0]
        assert voice.kind is BalanceKind.SECONDS and voice.currency is None
        assert voice.priority == 1 and voice.expires_at == NOW + 100
        r = await store.reserve("k1", "u1", "voice", "call1", 120, ttl=60, now=NOW)
        assert r.ok
        c = await store.commit("k2", "u1", "voice", "call1", 61, now=NOW + 61)
        assert c.effects == (Effect("u1", "voice", -61),)
        assert (await store.debit("k3", "u1", "sms", 1, now=NOW)).ok
        assert (await store.debit("k4", "u1", "data", 1500, now=NOW)).ok
        # expired bucket refuses new holds and debits, but still holds its amount
        assert (await store.reserve("k5", "u1", "voice", "call2", 1, ttl=60, now=NOW + 100)
                ).status is OpStatus.EXPIRED
        assert (await store.debit("k6", "u1", "voice", 1, now=NOW + 200)).status is \
            OpStatus.EXPIRED
        assert await amount_of(store, "u1", "voice") == (539, 0)
        assert await amount_of(store, "u1", "sms") == (9, 0)
        assert (await store.reserve("k7", "u1", "nope", "x", 1, ttl=1, now=NOW)).status is \
            OpStatus.UNKNOWN_BALANCE

    harness.run(body)


def test_reservation_ttl_expiry(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store)
        await store.reserve("k1", a, EUR, "s1", 100, ttl=10, now=NOW)
        await store.reserve("k2", a, EUR, "s2", 200, ttl=20, now=NOW)
        await store.reserve("k3", a, EUR, "s3", 50, ttl=10, now=NOW)
        await store.commit("k4", a, EUR, "s3", 50, now=NOW + 1)
        assert await store.expire_reservations(now=NOW + 9) == []
        # refreshing s2 moves its expiry
        await store.reserve("k5", a, EUR, "s2", 0, ttl=30, now=NOW + 5)
        done = await store.expire_reservations(now=NOW + 25)
        assert [(r.holds[0].reservation, r.holds[0].amount, r.holds[0].expires_at)
                for r in done] == [("s1", -100, None)]
        assert done[0].ok and done[0].effects == ()
        assert await amount_of(store, a) == (950, 200)
        assert await store.expire_reservations(now=NOW + 25) == []
        assert (await store.commit("k6", a, EUR, "s1", 5, now=NOW + 26)).status is \
            OpStatus.UNKNOWN_RESERVATION
        done = await store.expire_reservations(now=NOW + 35)
        assert [r.holds[0].reservation for r in done] == ["s2"]
        assert await amount_of(store, a) == (950, 0)

    harness.run(body)


def test_expire_limit(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store, 10_000)
        for i in range(25):
            await store.reserve(f"k{i}", a, EUR, f"s{i}", 10, ttl=10 + i, now=NOW)
        first = await store.expire_reservations(now=NOW + 100, limit=10)
        assert len(first) == 10
        rest = await store.expire_reservations(now=NOW + 100, limit=1000)
        assert len(rest) == 15
        names = {r.holds[0].reservation for r in first + rest}
        assert names == {f"s{i}" for i in range(25)}
        assert await amount_of(store, a) == (10_000, 0)

    harness.run(body)


def test_identities(harness: Any) -> None:
    async def body(store: Any) -> None:
        ids = ["+4915112345678", "262011234567890", "sip:alice@example.net", "smpp:esme1"]
        await prepaid(store, identities=ids)
        for ident in ids:
            assert await store.resolve(ident) == "sub1"
        assert await store.resolve("+499999") is None
        assert set((await store.get("sub1")).identities) == set(ids)
        assert await store.get("nobody") is None
        with pytest.raises(ValueError):
            await prepaid(store, account="sub2", identities=[ids[0]])

    harness.run(body)


def test_create_account_idempotent(harness: Any) -> None:
    async def body(store: Any) -> None:
        await prepaid(store)
        await store.debit("k1", "sub1", EUR, 10, now=NOW)
        await prepaid(store)  # identical: no-op, amount kept
        assert await amount_of(store, "sub1") == (990, 0)
        with pytest.raises(ValueError):
            await prepaid(store, 5)
        with pytest.raises(ValueError):
            await store.create_account("bad", AccountKind.PREPAID_PARTNER,
                                       [money(MAX_AMOUNT, credit_limit=1)])

    harness.run(body)


def test_low_balance_flag(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store, 1000, low=300)
        r = await store.reserve("k1", a, EUR, "s1", 600, ttl=30, now=NOW)
        assert r.ok and not r.low_balance
        r = await store.reserve("k2", a, EUR, "s2", 200, ttl=30, now=NOW)
        assert r.ok and r.low_balance and "low_balance" in r.events
        d = await store.debit("k3", a, EUR, 50, now=NOW)
        assert d.ok and not d.low_balance  # already below: no new crossing
        again = await store.reserve("k2", a, EUR, "s2", 200, ttl=30, now=NOW)
        assert again.replayed and again.low_balance

    harness.run(body)


def test_unknown_account(harness: Any) -> None:
    async def body(store: Any) -> None:
        r = await store.reserve("k1", "ghost", EUR, "s", 1, ttl=1, now=NOW)
        assert r.status is OpStatus.UNKNOWN_ACCOUNT and r.balance_after is None
        for call in (store.debit("k2", "ghost", EUR, 1, now=NOW),
                     store.topup("k3", "ghost", EUR, 1, now=NOW),
                     store.commit("k4", "ghost", EUR, "s", 1, now=NOW),
                     store.release("k5", "ghost", EUR, "s", now=NOW)):
            assert (await call).status is OpStatus.UNKNOWN_ACCOUNT

    harness.run(body)


def test_bounds(harness: Any) -> None:
    async def body(store: Any) -> None:
        a = await prepaid(store, MAX_AMOUNT - 10)
        t = await store.topup("k1", a, EUR, 11, now=NOW)
        assert t.status is OpStatus.OUT_OF_RANGE and t.effects == ()
        t = await store.topup("k2", a, EUR, 10, now=NOW)
        assert t.ok and t.balance_after == MAX_AMOUNT
        assert await amount_of(store, a) == (MAX_AMOUNT, 0)
        d = await store.debit("k3", a, EUR, MAX_AMOUNT - 1, now=NOW)
        assert d.ok and d.balance_after == 1
        for bad in (-1, MAX_AMOUNT + 1, 2**63, 1.5, True):
            with pytest.raises(ValueError):
                await store.debit("k4", a, EUR, bad, now=NOW)
        r = await store.reserve("k5", a, EUR, "s", 1, ttl=1, now=NOW)
        assert r.ok and r.available_after == 0

    harness.run(body)


def test_concurrent_reservations_never_overdraw(harness: Any) -> None:
    async def body(store: Any) -> None:
        await store.create_account("p", AccountKind.POSTPAID_PARTNER, [money(700, credit_limit=300)])

        async def one(i: int) -> int:
            r = await store.reserve(f"k{i}", "p", EUR, f"s{i}", 7, ttl=30, now=NOW)
            if not r.ok:
                return 0
            c = await store.commit(f"c{i}", "p", EUR, f"s{i}", 7 + i % 3, now=NOW)
            return c.granted

        debited = sum(await asyncio.gather(*(one(i) for i in range(300))))
        amount, reserved = await amount_of(store, "p")
        assert reserved == 0
        assert amount == 700 - debited
        assert amount >= -300

    harness.run(body)
