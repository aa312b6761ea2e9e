"""Differential test: Redis (and the cluster) answer every op exactly like the embedded store."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpResult
from charging.store.memory import MemoryStore

NOW = 1_800_000_000.0

OP = st.tuples(
    st.sampled_from(["reserve", "commit", "commit_keep", "release", "debit", "topup",
                     "expire"]),
    st.sampled_from(["a", "b", "ghost"]),
    st.sampled_from(["EUR", "sec", "nope"]),
    st.sampled_from(["r1", "r2"]),
    st.integers(0, 400),
    st.integers(0, 60),
    st.booleans(),
)


def _norm(r: Any) -> Any:
    if isinstance(r, OpResult):
        return (r.key, r.status, r.effects, r.holds, r.granted, r.balance_after,
                r.available_after, r.replayed, r.low_balance, r.events)
    if isinstance(r, list):
        return sorted((_norm(x) for x in r), key=repr)
    return r


async def run(store: Any, ops: list[Any]) -> list[Any]:
    for acct in ("a", "b"):
        await store.create_account(acct, AccountKind.POSTPAID_PARTNER, [
            BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 500, 100, low_threshold=200),
            BalanceSpec("sec", BalanceKind.SECONDS, None, 200, priority=2, expires_at=NOW + 30)],
            [f"+49{acct}"])
    out: list[Any] = []
    for i, (name, acct, bal, res, amount, dt, flag) in enumerate(ops):
        key = f"k{i % 5}" if flag else f"k{i}"
        now = NOW + dt
        if name == "reserve":
            r: Any = await store.reserve(key, acct, bal, res, amount, ttl=7.5, now=now,
                                         partial=flag)
        elif name in ("commit", "commit_keep"):
            r = await store.commit(key, acct, bal, res, amount, now=now,
                                   release_rest=name == "commit")
        elif name == "release":
            r = await store.release(key, acct, bal, res, now=now)
        elif name == "debit":
            r = await store.debit(key, acct, bal, amount, now=now, partial=flag)
        elif name == "topup":
            r = await store.topup(key, acct, bal, amount, now=now)
        else:
            r = await store.expire_reservations(now=now)
        out.append(_norm(r))
    out.append([await store.get(a) for a in ("a", "b", "ghost")])
    out.append([await store.resolve(i) for i in ("+49a", "+49b", "+49c")])
    return out


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(OP, max_size=25))
def test_redis_answers_like_embedded(rh: Any, ops: list[Any]) -> None:
    want = asyncio.run(run(MemoryStore(), ops))
    got = rh.run(lambda store: run(store, ops))
    assert got == want
