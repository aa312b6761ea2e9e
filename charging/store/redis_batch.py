"""Auto-batching of concurrent commands onto one connection per event-loop tick.

Many tasks each awaiting one EVALSHA would cost one write syscall and one read wake-up per
call. :class:`Batcher` queues the commands issued in the same loop iteration and sends them as
one pipelined write on one pooled connection, then hands each reply to its caller in order
(Redis answers a connection's commands in order). Batches already on the wire keep their
connection; the next tick's batch takes another one from the pool, so the server always has
work. This is plain pipelining: no MULTI, no atomicity across commands (each Lua script is atomic
on its own), and a failed command only fails its own caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ResponseError

MAX_BATCH = 512


def _b(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, int) and not isinstance(a, bool):
        return b"%d" % a
    raise TypeError(f"cannot send {type(a).__name__} to Redis")


def pack_py(commands: list[tuple[Any, ...]]) -> bytes:
    """RESP-encode *commands* (str/bytes/int arguments only; no floats, money is integers).

    The pure-Python reference of :func:`pack` (used when hiredis is missing)."""
    out: list[bytes] = []
    for args in commands:
        out.append(b"*%d\r\n" % len(args))
        for a in args:
            v = _b(a)
            out.append(b"$%d\r\n%s\r\n" % (len(v), v))
    return b"".join(out)


def _pack_hiredis(commands: list[tuple[Any, ...]]) -> bytes:
    return b"".join([_hiredis_pack(c) for c in commands])


try:  # hiredis (a dependency) packs in C: 4x faster than pack_py, which led the CPU profile
    from hiredis import pack_command as _hiredis_pack

    pack = _pack_hiredis
except ImportError:  # pragma: no cover
    pack = pack_py


class Batcher:
    """Send commands issued within one loop tick as one pipeline. Create inside the loop."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command; the future resolves to its reply (or its ResponseError)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._kick)
        return fut

    def _kick(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[i:i + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        conn = await self._pool.get_connection("EVALSHA")
        done = 0
        try:
            await conn.send_packed_command(pack([args for args, _ in batch]), check_health=False)
            for _, fut in batch:
                try:
                    reply = await conn.read_response()
                except ResponseError as exc:
                    done += 1
                    if not fut.done():
                        fut.set_exception(exc)
                    continue
                done += 1
                if not fut.done():
                    fut.set_result(reply)
        except BaseException as exc:
            # The connection's state is unknown: drop it, fail whoever has no reply yet. A
            # caller that gets this error does not know whether its script ran; it must retry
            # with the same key (the op is idempotent).
            await conn.disconnect()
            for _, fut in batch[done:]:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._pool.release(conn)

    async def drain(self) -> None:
        """Wait until every queued batch has been answered."""
        while self._pending or self._tasks:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
