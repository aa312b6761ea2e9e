"""FastPipe (charging/store/redis_fast.py): ordering, error replies, held batches, lost
connections and reconnects, against the real redis-server fixture."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlparse

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from charging.store import redis_fast
from charging.store.redis_fast import FastPipe


def _addr(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "127.0.0.1", u.port or 6379


def test_replies_in_order_across_held_batches(redis_url: str) -> None:
    async def main() -> None:
        pipe = FastPipe(*_addr(redis_url))
        try:
            key = "fastpipe:order"
            await pipe.call("DEL", key)
            # many ticks' worth of commands: more batches than MAX_INFLIGHT, so some are held
            futs = []
            for i in range(50):
                futs += [pipe.call("RPUSH", key, i) for _ in range(3)]
                await asyncio.sleep(0)
            got = await asyncio.gather(*futs)
            assert got == list(range(1, 151))  # RPUSH answers the new length: strictly ordered
            assert await pipe.call("LLEN", key) == 150
        finally:
            await pipe.close()

    asyncio.run(main())


def test_error_replies_fail_only_their_caller(redis_url: str) -> None:
    async def main() -> None:
        pipe = FastPipe(*_addr(redis_url))
        try:
            ok1 = pipe.call("SET", "fastpipe:x", "1")
            bad = pipe.call("EVALSHA", "0" * 40, 0)
            wrong = pipe.call("LPUSH", "fastpipe:x", "v")  # WRONGTYPE
            ok2 = pipe.call("GET", "fastpipe:x")
            assert await ok1 == b"OK"
            with pytest.raises(NoScriptError):
                await bad
            with pytest.raises(ResponseError):
                await wrong
            assert await ok2 == b"1"
        finally:
            await pipe.close()

    asyncio.run(main())


def test_connection_refused_and_lost_then_reconnect(redis_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]

    async def main() -> None:
        dead = FastPipe("127.0.0.1", dead_port, connect_timeout=2)
        with pytest.raises(RedisConnectionError):
            await dead.call("PING")
        await dead.close()

        pipe = FastPipe(*_addr(redis_url))
        try:
            assert await pipe.call("PING") == b"PONG"
            # the server drops this client: whoever waits fails, the next call reconnects
            cid = await pipe.call("CLIENT", "ID")
            with pytest.raises(RedisConnectionError):
                await asyncio.gather(pipe.call("CLIENT", "KILL", "ID", cid, "SKIPME", "no"),
                                     pipe.call("BLPOP", "fastpipe:never", 5))
            assert await pipe.call("PING") == b"PONG"
        finally:
            await pipe.close()

    asyncio.run(main())


def test_limits_are_sane() -> None:
    assert redis_fast.MAX_INFLIGHT >= 1 and redis_fast.MAX_BATCH >= 64


def test_call_many_waits_for_every_reply_and_raises_the_first_error(redis_url: str) -> None:
    async def main() -> None:
        pipe = FastPipe(*_addr(redis_url))
        try:
            await pipe.call("DEL", "fastpipe:m1", "fastpipe:m2", "fastpipe:str")
            await pipe.call("SET", "fastpipe:str", "x")
            cmds = [b"*3\r\n$4\r\nSADD\r\n$11\r\nfastpipe:m1\r\n$1\r\na\r\n",
                    b"*3\r\n$4\r\nSADD\r\n$12\r\nfastpipe:str\r\n$1\r\na\r\n",  # WRONGTYPE
                    b"*3\r\n$4\r\nSADD\r\n$11\r\nfastpipe:m2\r\n$1\r\nb\r\n"]
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await pipe.call_many(cmds)
            # the commands around the failed one ran, and the pipe is still in step
            assert await pipe.call("SMEMBERS", "fastpipe:m1") == [b"a"]
            assert await pipe.call("SMEMBERS", "fastpipe:m2") == [b"b"]
            assert await pipe.call_many([]) is None
            assert await pipe.call_many(cmds[:1]) is None
        finally:
            await pipe.close()

    asyncio.run(main())


def test_early_write_fills_every_batch_slot_before_any_reply(redis_url: str) -> None:
    """Ops gathered past EARLY_OPS are written at once while a batch slot is free (the server
    runs them while the client makes the rest): MAX_INFLIGHT chunks in flight, the rest held,
    and every reply still reaches its own caller in order."""
    from charging.store import redis_lua as lua
    from charging.store.redis_opbatch import PipeOps

    async def main() -> None:
        pipe = FastPipe(*_addr(redis_url))
        ops = PipeOps(pipe)
        try:
            await pipe.call("PING")  # connected
            assert redis_fast.MAX_INFLIGHT >= 2
            n = redis_fast.MAX_INFLIGHT * redis_fast.EARLY_OPS + 5
            # unknown accounts: each op answers {'unknown_account'} and writes nothing
            futs = [ops.op(lua.DEBIT, (f"{{acct:zz{i}}}:a", "{t}:ix:x", "{t}:unj"), f"zz{i}",
                           "EUR", (0, 1, f"|k{i}", 1, b"0")) for i in range(n)]
            proto = pipe._proto
            assert proto is not None
            assert len(proto.ends) == redis_fast.MAX_INFLIGHT  # written, none answered yet
            assert len(ops) == 5  # held for the next write
            got = await asyncio.gather(*futs)
            assert got == [[b"unknown_account"]] * n
        finally:
            await pipe.close()

    asyncio.run(main())


def test_ops_with_other_index_keys_go_out_as_their_own_calls_in_order(redis_url: str) -> None:
    """PipeOps cuts its queue where an op's index keys differ from the previous op's (never
    on one standalone store; possible for a raw caller): one batch call per run of equal
    index keys, written in queue order, each op's deferred index update on its own keys."""
    from charging.store import redis_lua as lua
    from charging.store.base import AccountKind, BalanceKind, BalanceSpec
    from charging.store.redis_keys import account_key
    from charging.store.redis_opbatch import PipeOps
    from charging.store.redis_store import RedisStore

    async def main() -> None:
        store = RedisStore.from_url(redis_url)
        pipe = FastPipe(*_addr(redis_url))
        ops = PipeOps(pipe)
        try:
            await store.flush_all_for_tests()
            for a in ("m0", "m1"):  # (an account's keys are cached: one tag per account)
                await store.create_account(a, AccountKind.PREPAID_SUBSCRIBER,
                                           [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 100)])
            await pipe.call("SCRIPT", "LOAD", lua.BATCH.source)  # no NOSCRIPT retries
            await pipe.call("CONFIG", "RESETSTAT")
            tags = ["t0", "t0", "t1", "t0", "t1", "t1"]
            futs = [ops.op(lua.DEBIT, (account_key("m" + t[1]), f"{{{t}}}:ix:x",
                                       f"{{{t}}}:unj"), "m" + t[1], "EUR",
                           (0, 1, f"|d{i}", 1, b"0")) for i, t in enumerate(tags)]
            assert len(ops) == 6
            got = await asyncio.gather(*futs)
            assert [r.split(b"|")[3] for r in got] == [b"99", b"98", b"99", b"97", b"98", b"97"]
            stats = (await pipe.call("INFO", "commandstats")).decode()
            calls = {ln.split(":")[0]: int(ln.split("calls=")[1].split(",")[0])
                     for ln in stats.splitlines() if ln.startswith("cmdstat_")}
            assert calls["cmdstat_evalsha"] == 4, calls  # t0 t0 | t1 | t0 | t1 t1
            assert sorted(await pipe.call("SMEMBERS", "{t0}:unj")) == [b"m0|d0", b"m0|d1",
                                                                         b"m0|d3"]
            assert sorted(await pipe.call("SMEMBERS", "{t1}:unj")) == [b"m1|d2", b"m1|d4",
                                                                         b"m1|d5"]
        finally:
            await pipe.close()
            await store.close()

    asyncio.run(main())
