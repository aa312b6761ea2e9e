"""Review of round 6 (the Redis store's op queue / FastPipe): a connection lost while a batch
is HELD (MAX_INFLIGHT batches on the wire, unanswered) must not leave the held commands'
callers waiting forever: each gets its reply or an error (here: the server is gone, so an
error), without another command having to come along and kick the pipe."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from charging.store.redis_fast import MAX_INFLIGHT, FastPipe


def test_held_commands_fail_when_the_connection_is_lost() -> None:
    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)  # reads nothing back, answers nothing

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pipe = FastPipe("127.0.0.1", port, connect_timeout=2)
        sent: list[Any] = []
        for _ in range(MAX_INFLIGHT):  # one batch per loop turn: all on the wire
            sent.append(pipe.call("PING"))
            for _ in range(20):
                await asyncio.sleep(0)
                if pipe._proto is not None and not pipe._pending():
                    break
        assert pipe._proto is not None and len(pipe._proto.ends) == MAX_INFLIGHT
        held = pipe.call("PING")  # held: MAX_INFLIGHT batches unanswered
        for _ in range(5):
            await asyncio.sleep(0)
        assert not held.done() and pipe._pending() == 1
        # the server goes away: no listener any more, the connection is closed
        server.close()
        await server.wait_closed()
        for w in writers:
            w.close()
        for fut in sent:
            with pytest.raises(RedisConnectionError):
                await fut
        # the held command: an error (the reconnect is refused), never silence
        done, _ = await asyncio.wait([held], timeout=30)
        assert held in done, "held command never answered after the connection was lost"
        with pytest.raises(RedisConnectionError):
            held.result()

    asyncio.run(main())
