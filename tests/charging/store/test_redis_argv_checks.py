"""The op scripts' own checks of their numeric ARGV (lua/batch.lua: "each op body parses every
numeric ARGV it uses ONCE, before its first write (a bad one raises there ...)"; redis_store:
amounts "checked in Python before the call and again in the scripts").

'x + 0' (Lua 5.1's string coercion, strtod) accepts more than integers: 'nan', 'inf', '1e400',
'1.5'. A value that is not an integer in [0, 2^53-1] must be answered as that op's error with
nothing written -- never a NaN balance (which no later op can repair), an 'ok' record with a
garbage amount, or a hold whose expiry the deferred ZADD refuses at the end of the batch (that
error fails the WHOLE call after its ops wrote: every op of the batch answered as an error
while applied, and the index updates of all of them lost).

Python never sends such arguments (RedisStore checks type and range): these are straight to
the server, like test_redis_batch.test_an_op_error_fails_only_that_op.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from charging.store import redis_lua as lua
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.redis_keys import state_of

NOW_US = 1_800_000_000 * 1_000_000
BAD = ["nan", "-nan", "inf", "1e400", "1.5", "9007199254740993"]


def _prep(redis_url: str) -> tuple[str, str, str]:
    from charging.store.redis_store import RedisStore

    async def prep() -> tuple[str, str, str]:
        store = RedisStore.from_url(redis_url)
        try:
            await store.flush_all_for_tests()
            await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER, [
                BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 1_000, 50)])
            return store._op_keys("a")
        finally:
            await store.close()

    return asyncio.run(prep())


def _ops() -> list[Any]:
    """(what, one op in the batch layout, the answer expected) for every bad value in every
    numeric ARGV: the op's error, or for a credit past 2^53-1 its documented refusal."""
    out: list[Any] = []
    for i, bad in enumerate(BAD):
        out.append((f"reserve amount {bad}", [b"R", "a", "EUR|", f"|r{i}", f"res{i}", bad,
                                              NOW_US + 60_000_000, NOW_US], "error"))
        if bad != "9007199254740993":  # (an expiry is not an amount: only its form counts)
            out.append((f"reserve expiry {bad}",
                        [b"r", "a", "EUR|", f"|x{i}", f"rex{i}", "10", bad, NOW_US], "error"))
        out.append((f"debit {bad}", [b"D", "a", "EUR|", f"|d{i}", bad, NOW_US], "error"))
        out.append((f"credit {bad}", [b"t", "a", "EUR|", f"|t{i}", bad],
                    "out_of_range" if bad in ("inf", "1e400", "9007199254740993") else "error"))
        out.append(pytest.param(f"commit {bad}", [b"c", "a", "EUR|", f"|c{i}", "held", bad],
                                "error", id=f"commit {bad}"))
    return out


@pytest.mark.parametrize("what,op,expect", _ops(),
                         ids=lambda v: v if isinstance(v, str) and " " in v else "")
def test_a_bad_number_is_that_ops_error_and_writes_nothing(redis_url: str, what: str,
                                                           op: list[Any], expect: str) -> None:
    import redis

    acc, ix, unj = _prep(redis_url)
    r: Any = redis.Redis.from_url(redis_url)
    try:
        good = [b"r", "a", "EUR|", "|g1", "held", "100", NOW_US + 60_000_000, NOW_US]
        out = r.eval(lua.BATCH.source, 3, ix, unj, acc, 0, *good)
        assert out[0].split(b"|")[1] == b"ok"
        before = r.hgetall(acc)
        ix_before = r.zrange(ix, 0, -1, withscores=True)
        after_op = [b"d", "a", "EUR|", "|g2", "7", NOW_US]  # a good op after the bad one
        out = r.eval(lua.BATCH.source, 4, ix, unj, acc, acc, 0, *op, *after_op)
        if expect == "error":
            assert isinstance(out[0], ResponseError), (what, out[0])
        else:  # a refusal: its record is written, nothing else
            assert out[0].split(b"|")[1] == expect.encode(), (what, out[0])
        assert out[1].split(b"|")[1] == b"ok"  # the op after it still ran
        now = r.hgetall(acc)
        assert now.pop(b"|g2") is not None
        if expect != "error":
            assert now.pop(op[3].encode()) == out[0]
        state = now.pop(b"EUR|")
        assert state_of(state)[:3] == (993, 100, 50)  # only the good debit moved money
        before.pop(b"EUR|")
        assert now == before, what  # no record, no hold, no state of the bad op
        assert r.zrange(ix, 0, -1, withscores=True) == ix_before
    finally:
        r.close()


@pytest.mark.parametrize("epoch", ["nan", "inf", "1.5"])
def test_a_bad_epoch_fails_the_call_before_any_op(redis_url: str, epoch: str) -> None:
    """ARGV 1 of the batch: with a 'nan' epoch every replay check (record epoch >= epoch - 1)
    is false, so a retry of the same key would be charged again."""
    import redis

    acc, ix, unj = _prep(redis_url)
    r: Any = redis.Redis.from_url(redis_url)
    try:
        debit = [b"d", "a", "EUR|", "|e1", "7", NOW_US]
        before = r.hgetall(acc)
        for _ in range(2):  # (a retry: must not be charged twice either)
            with pytest.raises(ResponseError, match="epoch"):
                r.eval(lua.BATCH.source, 3, ix, unj, acc, epoch, *debit)
        assert r.hgetall(acc) == before
    finally:
        r.close()
