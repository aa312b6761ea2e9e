"""The Redis store's auto-batcher (charging/store/redis_opbatch.py, lua/batch.lua): ops of one
loop tick go out as one batch-script call per hash slot and give exactly the results of the
same ops run one by one; an op's refusal, replay or error stays its own; NOSCRIPT reloads."""

from __future__ import annotations

import asyncio
import random
import subprocess
from typing import Any
from urllib.parse import urlparse

import pytest
from redis.exceptions import ResponseError

from charging.store import redis_lua as lua
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpStatus
from charging.store.redis_fast import EARLY_OPS, MAX_INFLIGHT
from charging.store.redis_keys import key_slot, prefix, state_of
from tests.charging.store.conftest import Harness

NOW = 1_800_000_000.0


def _ports(rh: Harness) -> list[list[str]]:
    """redis-cli's arguments to reach each (primary) node: a port, or the unix socket."""
    if rh.kind == "cluster":
        assert rh.nodes is not None
        return [["-p", str(p)] for _, p in rh.nodes]
    assert rh.url is not None
    url = urlparse(rh.url)
    if url.scheme == "unix":
        return [["-s", url.path]]
    return [["-p", str(url.port or 6379)]]


def _cli(node: list[str], *args: str) -> str:
    return subprocess.run(["redis-cli", *node, *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def _script_calls(rh: Harness) -> int:
    """EVALSHA + EVAL calls on every (primary) node since the last reset."""
    n = 0
    for port in _ports(rh):
        for line in _cli(port, "info", "commandstats").splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                n += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return n


def _reset_stats(rh: Harness) -> None:
    for port in _ports(rh):
        _cli(port, "config", "resetstat")


def _accounts(n: int) -> list[str]:
    return [f"acc{i}" for i in range(n)]


async def _setup(store: Any, accounts: list[str]) -> None:
    for a in accounts:
        await store.create_account(a, AccountKind.PREPAID_SUBSCRIBER, [
            BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 1_000, 50),
            BalanceSpec("sms", BalanceKind.EVENTS, None, 5)])


def _ops(seed: int, accounts: list[str], n: int) -> list[tuple[Any, ...]]:
    """A random op list: reserves/commits/releases/debits/credits on few reservations, amounts
    often past the balance (refusals), keys often reused (replays), unknown balances."""
    rng = random.Random(seed)
    out: list[tuple[Any, ...]] = []
    for i in range(n):
        kind = rng.choice(["reserve", "reserve", "commit", "release", "debit", "topup",
                           "refund"])
        acct = rng.choice(accounts)
        bal = rng.choice(["EUR", "EUR", "sms", "nope"])
        res = f"s{rng.randrange(4)}"
        key = f"k{rng.randrange(n // 2)}" if rng.random() < 0.3 else f"u{i}"
        amount = rng.choice([0, 1, 7, 100, 400, 2_000])
        flag = rng.random() < 0.5
        out.append((kind, key, acct, bal, res, amount, flag))
    return out


def _issue(store: Any, op: tuple[Any, ...]) -> Any:
    kind, key, acct, bal, res, amount, flag = op
    if kind == "reserve":
        return store.reserve(key, acct, bal, res, amount, ttl=30.0, now=NOW, partial=flag)
    if kind == "commit":
        return store.commit(key, acct, bal, res, amount, now=NOW, release_rest=flag)
    if kind == "release":
        return store.release(key, acct, bal, res, now=NOW)
    if kind == "debit":
        return store.debit(key, acct, bal, amount, now=NOW, partial=flag)
    return getattr(store, kind)(key, acct, bal, amount, now=NOW)


async def _state(store: Any, accounts: list[str]) -> list[Any]:
    out = []
    for a in accounts:
        out.append(await store.get(a))
        for bal in ("EUR", "sms"):
            out.append(await store.reservations(a, bal))
    out.append(sorted((r.key, r.status) for r in await store.pending_ops()))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_tick_is_one_call_per_slot_and_equals_sequential(rh: Harness, seed: int) -> None:
    accounts = _accounts(10)
    ops = _ops(seed, accounts, 120)

    async def body(store: Any) -> None:
        await _setup(store, accounts)
        sequential = [await _issue(store, op) for op in ops]
        seq_state = await _state(store, accounts)

        await store.flush_all_for_tests()
        await _setup(store, accounts)
        await asyncio.gather(*(_issue(store, op) for op in ops))  # scripts cached everywhere
        await store.flush_all_for_tests()
        await _setup(store, accounts)
        _reset_stats(rh)
        batched = await asyncio.gather(*(_issue(store, op) for op in ops))
        calls = _script_calls(rh)
        assert batched == sequential
        assert await _state(store, accounts) == seq_state
        # cluster: one call per hash slot touched. Standalone (FastPipe): the slots are all
        # one group, written early in chunks of EARLY_OPS while a batch slot is free (the
        # server starts on them), the rest of the tick held until a batch is answered.
        # Unix socket (the Batcher, as TLS): the whole tick in one call.
        slots = {key_slot(prefix(a)) for a in {op[2] for op in ops}}
        early = min(MAX_INFLIGHT, (len(ops) - 1) // EARLY_OPS)
        assert calls == {"cluster": len(slots), "redis-unix": 1}.get(rh.kind, early + 1)

    rh.run(body)


def test_batch_with_refused_and_replayed_ops(rh: Harness) -> None:
    async def body(store: Any) -> None:
        await _setup(store, ["a", "b"])
        first = await store.reserve("r1", "a", "EUR", "s1", 100, ttl=30, now=NOW)
        for port in _ports(rh):  # cached everywhere: a NOSCRIPT retry would count as 2 calls
            _cli(port, "script", "load", lua.BATCH.source)
        _reset_stats(rh)
        got = await asyncio.gather(
            store.reserve("r2", "a", "EUR", "s2", 5_000, ttl=30, now=NOW),  # > 1050 available
            store.reserve("r1", "a", "EUR", "s1", 100, ttl=30, now=NOW),  # replay
            store.debit("d1", "a", "EUR", 10, now=NOW),
            store.commit("c1", "a", "EUR", "s1", 60, now=NOW),
            store.debit("d2", "b", "sms", 6, now=NOW),  # 5 sms: refused
            store.topup("t1", "b", "EUR", 5, now=NOW),
            store.reserve("r3", "nobody", "EUR", "s1", 1, ttl=30, now=NOW),
        )
        assert _script_calls(rh) <= 3  # standalone: 1; cluster: one per slot ("a", "b", ...)
        refused, replay, debit, commit, sms, topup, unknown = got
        assert refused.status is OpStatus.INSUFFICIENT and not refused.holds
        # (OpResult may be the compiled twin, not a dataclass: no dataclasses.replace)
        assert replay == type(first)(first.key, first.status, first.effects, first.holds,
                                     first.granted, first.balance_after, first.available_after,
                                     True, first.low_balance, first.events)
        assert replay.granted == first.granted == 100
        assert debit.ok and debit.available_after == 1_050 - 100 - 10
        assert commit.ok and commit.granted == 60 and commit.balance_after == 1_000 - 10 - 60
        assert sms.status is OpStatus.INSUFFICIENT
        assert topup.ok and topup.balance_after == 1_005
        assert unknown.status is OpStatus.UNKNOWN_ACCOUNT
        view = await store.get("a")
        assert view.balances[0].amount == 930 and view.balances[0].reserved == 0
        # the refusals and the replay changed nothing and are not pending
        pending = {r.key for r in await store.pending_ops()}
        assert pending == {"r1", "d1", "c1", "t1"}

    rh.run(body)


def test_batch_noscript_is_reloaded(rh: Harness) -> None:
    async def body(store: Any) -> None:
        await _setup(store, ["a", "b", "c"])
        for port in _ports(rh):
            _cli(port, "script", "flush")
        got = await asyncio.gather(*(store.debit(f"k{a}", a, "EUR", 3, now=NOW)
                                     for a in ("a", "b", "c", "a")))
        assert [r.ok for r in got] == [True, True, True, True]
        assert got[3].replayed
        for port in _ports(rh):
            _cli(port, "script", "flush")
        got = await asyncio.gather(*(store.debit(f"k{a}", a, "EUR", 3, now=NOW)
                                     for a in ("a", "b", "c")))
        assert all(r.replayed for r in got)
        assert [(await store.get(a)).balances[0].amount for a in "abc"] == [997, 997, 997]

    rh.run(body)


def test_an_op_error_fails_only_that_op(redis_url: str) -> None:
    """Straight to the server: a malformed op in a batch gets its own error reply; the ops
    around it are applied (Python never sends such args: the script checks them itself)."""
    import redis

    from charging.store.redis_store import RedisStore

    async def prep() -> tuple[str, str, str]:
        store = RedisStore.from_url(redis_url)
        try:
            await store.flush_all_for_tests()
            await _setup(store, ["a"])
            return store._op_keys("a")
        finally:
            await store.close()

    acc, ix, unj = asyncio.run(prep())
    r: Any = redis.Redis.from_url(redis_url)
    try:
        def op(key: str, amount: str) -> list[Any]:
            # the batch layout: balance as its field "EUR|", the key as its field "|<key>"
            return [b"d", "a", "EUR|", "|" + key, amount, int(NOW * 1e6)]

        argv = [0] + op("x1", "10") + op("x2", "ten") + op("x3", "20")  # ARGV 1: the epoch
        out = r.eval(lua.BATCH.source, 5, ix, unj, acc, acc, acc, *argv)
        assert out[0].split(b"|")[1] == b"ok" and out[2].split(b"|")[1] == b"ok"
        assert isinstance(out[1], ResponseError) and "not a number" in str(out[1])
        state = r.hget(acc, "EUR|")
        assert state_of(state)[:3] == (970, 0, 50)
        # the deferred index update: both debits unjournaled, with ONE SADD for the call
        assert r.smembers(unj) == {b"a|x1", b"a|x3"}
        with pytest.raises(ResponseError, match="malformed"):
            r.eval(lua.BATCH.source, 3, ix, unj, acc, 0, b"z", "a")
        # a malformed op after a good one: refused whole, before the good one writes
        with pytest.raises(ResponseError, match="malformed"):
            r.eval(lua.BATCH.source, 4, ix, unj, acc, acc, 0, *op("y1", "5"), b"d", "a")
        with pytest.raises(ResponseError, match="KEYS"):
            r.eval(lua.BATCH.source, 4, ix, unj, acc, acc, 0, *op("y2", "5"))
        with pytest.raises(ResponseError, match="epoch"):
            r.eval(lua.BATCH.source, 3, ix, unj, acc, "zero", *op("y3", "5"))
        assert r.hget(acc, "EUR|") == state
        assert r.hget(acc, "|y1") is None and r.hget(acc, "|y2") is None
    finally:
        r.close()
