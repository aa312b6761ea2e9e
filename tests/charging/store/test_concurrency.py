"""Concurrent random ops on every store: the effects and holds the results report add up to the
balances exactly (what the journal relies on), and nothing ever passes its credit limit."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest

from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpResult

NOW = 1_800_000_000.0
OPENING = {"EUR": 5_000, "sec": 3_000}


async def storm(store: Any, *, tasks: int, ops_per_task: int, seed: int) -> None:
    accounts = [f"c{i}" for i in range(4)]
    for a in accounts:
        await store.create_account(a, AccountKind.POSTPAID_PARTNER, [
            BalanceSpec("EUR", BalanceKind.MONEY, "EUR", OPENING["EUR"], 1_000, low_threshold=500),
            BalanceSpec("sec", BalanceKind.SECONDS, None, OPENING["sec"])])
    results: list[OpResult] = []
    clock = [NOW]

    async def worker(w: int) -> None:
        rng = random.Random(seed * 1000 + w)
        for i in range(ops_per_task):
            a, b = rng.choice(accounts), rng.choice(["EUR", "sec"])
            res = f"w{w}-{rng.randrange(3)}"
            key = f"{w}:{i}" if rng.random() > 0.1 else f"{w}:{max(0, i - 1)}"  # some replays
            op = rng.randrange(6)
            now = clock[0]
            if op < 2:
                r = await store.reserve(key, a, b, res, rng.randrange(1, 300), ttl=rng.choice(
                    [0.5, 5.0]), now=now, partial=rng.random() < 0.5)
            elif op < 4:
                r = await store.commit(key, a, b, res, rng.randrange(0, 400), now=now,
                                       release_rest=rng.random() < 0.8)
            elif op == 4:
                r = await store.debit(key, a, b, rng.randrange(1, 200), now=now,
                                      partial=rng.random() < 0.5)
            else:
                r = await store.refund(key, a, b, rng.randrange(1, 50), now=now)
            if not r.replayed:
                results.append(r)

    async def sweeper() -> None:
        for _ in range(20):
            await asyncio.sleep(0)
            clock[0] += 0.3
            results.extend(await store.expire_reservations(now=clock[0]))

    await asyncio.gather(sweeper(), *(worker(w) for w in range(tasks)))
    results.extend(await store.expire_reservations(now=clock[0] + 100))

    moved: dict[tuple[str, str], int] = defaultdict(int)
    held: dict[tuple[str, str], int] = defaultdict(int)
    for r in results:
        for e in r.effects:
            moved[(e.account, e.balance)] += e.amount
        for h in r.holds:
            held[(h.account, h.balance)] += h.amount
    for a in accounts:
        view = await store.get(a)
        for bal in view.balances:
            assert bal.amount == OPENING[bal.id] + moved[(a, bal.id)], (a, bal.id)
            assert bal.reserved == held[(a, bal.id)] == 0  # every hold released by the end
            assert bal.amount >= -bal.credit_limit


def test_concurrent_storm_adds_up(harness: Any) -> None:
    harness.run(lambda store: storm(store, tasks=40, ops_per_task=12, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_concurrent_storm_adds_up_soak(harness: Any, seed: int) -> None:
    harness.run(lambda store: storm(store, tasks=300, ops_per_task=40, seed=seed))
