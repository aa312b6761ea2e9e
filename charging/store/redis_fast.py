"""Pipelined commands over one raw asyncio connection, replies parsed by hiredis in C.

The store's hot calls (one EVALSHA per operation) do not need a connection pool: Redis runs one
connection's commands in order, so every command can go out as soon as it is issued and its
reply is matched to its caller by position. :class:`FastPipe` queues the commands issued in one
loop tick, writes them as one buffer on its single connection (RESP packed by hiredis, in C),
and a plain ``asyncio.Protocol`` feeds whatever arrives to a ``hiredis.Reader`` and resolves the
waiting futures in order. Batches never wait for the previous batch's replies (unlike a pool
connection's send-then-read cycle), and per reply there is no coroutine, no timeout context and
no pool checkout: measured, redis-py's per-reply ``read_response`` was most of the client's CPU.

No MULTI and no atomicity across commands: each Lua script is atomic on its own; a failed
command (error reply) fails only its caller. A lost connection fails every caller still waiting
with ConnectionError; such a caller does not know whether its script ran and must retry with
the same idempotency key. The next call reconnects.

``FastPipe.ops`` (set by redis_opbatch.PipeOps) is a queue of store ops the pipe empties right
before each write (``emit``): ops issued while batches are held join the next write, as ONE
batch-script command.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from hiredis import Reader
from hiredis import pack_command as _pack
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError


def _error(reply: ResponseError) -> ResponseError:
    """hiredis's generic error reply -> redis-py's class for it (NoScriptError, ...)."""
    err = BaseParser.parse_error(str(reply))  # type: ignore[call-arg,arg-type]
    return err if isinstance(err, ResponseError) else reply


MAX_INFLIGHT = 3
"""Batches on the wire at once. More are held (and grow) until one is answered: fewer, bigger
writes and reads on both ends (the syscalls were most of the client's CPU with one batch per
tick of a few commands each), while several in flight keep the server busy while the client
handles the previous batch's replies. Three batches of ~16 ops (EARLY_OPS) beat two of ~32 in
every interleaved pair of benchmarks.stores runs (64 tasks: medians 17.9k-22.0k vs 15.5k-17.5k
pairs/s on the same noisy box): the server starts sooner and the two sides overlap more."""
MAX_BATCH = 1024  # a held batch this big is sent anyway
EARLY_OPS = 16
"""Queued ops that are written at once (:meth:`FastPipe.flush_early`) when a batch slot is free,
instead of at the end of the loop tick: the server starts on them while the client still
handles the rest of the replies that woke their callers. Without it, 64 tasks woken by one
reply batch answered in lockstep, one 64-op batch at a time: the server idled while the client
built batch N+1 and the client idled while the server ran it (benchmarks.stores: ~0.4 + ~0.6
core busy, neither saturated). Split, the batches alternate and keep both sides busy."""


class OpQueue(Protocol):
    """What a FastPipe asks of its op queue (redis_opbatch.PipeOps)."""

    def __len__(self) -> int: ...

    def emit(self) -> None:
        """Queue the pending ops as command(s) with FastPipe.enqueue (no flush scheduled)."""


class _Multi:
    """Stands in the reply queue for each of *n* commands sharing one future
    (:meth:`FastPipe.call_many`): the Protocol calls done/set_result/set_exception on it once
    per reply, as on a future."""

    __slots__ = ("_fut", "_left", "_exc")

    def __init__(self, fut: asyncio.Future[None], n: int) -> None:
        self._fut = fut
        self._left = n
        self._exc: BaseException | None = None

    def done(self) -> bool:
        return False  # every reply must be counted, even after the caller was cancelled

    def set_result(self, _reply: Any) -> None:
        self._left -= 1
        if not self._left:
            self._finish()

    def set_exception(self, exc: BaseException) -> None:
        if self._exc is None:
            self._exc = exc
        self._left -= 1
        if not self._left:
            self._finish()

    def _finish(self) -> None:
        if self._fut.done():  # cancelled
            return
        if self._exc is not None:
            self._fut.set_exception(self._exc)
        else:
            self._fut.set_result(None)


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: FastPipe) -> None:
        self._pipe = pipe
        self._reader = Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.ends: deque[int] = deque()  # len(waiting) after each batch still on the wire
        self.answered = 0  # replies since connect
        self.sent = 0  # commands since connect
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        popleft = self.waiting.popleft
        gets = reader.gets
        while True:
            try:
                reply = gets()
            except InvalidResponse as exc:  # a corrupt stream: nothing after it can be trusted
                assert self.transport is not None
                self.transport.abort()
                self._fail(exc)
                return
            if reply is False:
                break
            fut = popleft()
            self.answered += 1
            if fut.done():  # the caller was cancelled
                continue
            if reply.__class__ is ResponseError:
                fut.set_exception(_error(reply))
            else:
                fut.set_result(reply)
        ends = self.ends
        if ends and ends[0] <= self.answered:
            while ends and ends[0] <= self.answered:
                ends.popleft()
            self._pipe._batch_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection lost: {exc}" if exc else "connection closed"))

    def _fail(self, exc: Exception) -> None:
        pipe = self._pipe
        if pipe._proto is self:
            pipe._proto = None
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        # commands held behind MAX_INFLIGHT batches were never written: no reply will
        # _batch_done them now, so flush (reconnect, or fail them) instead of leaving their
        # callers waiting for the next command to kick the pipe
        if pipe._pending() and not pipe._scheduled:
            pipe._scheduled = True
            asyncio.get_running_loop().call_soon(pipe._flush)


class FastPipe:
    """One pipelined connection to a standalone server. Create and use inside one event loop."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 10.0) -> None:
        self._addr = (host, port)
        self._hello: list[tuple[Any, ...]] = []
        if password is not None:
            self._hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._hello.append(("SELECT", db))
        self._timeout = connect_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._bufs: list[bytes] = []
        self._futs: list[asyncio.Future[Any]] = []
        self._scheduled = False
        self.ops: OpQueue | None = None

    def _pending(self) -> int:
        """Commands and queued ops not yet written."""
        return len(self._futs) + (len(self.ops) if self.ops is not None else 0)

    def kick(self) -> None:
        """Make sure a flush is scheduled (an op was queued on :attr:`ops`)."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def enqueue(self, packed: bytes) -> asyncio.Future[Any]:
        """Append one RESP-encoded command to the batch being written (for :attr:`ops`'s
        ``emit``, called from inside the flush: schedules nothing)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._bufs.append(packed)
        self._futs.append(fut)
        return fut

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command (str/bytes/int arguments); the future resolves to its reply, or
        to its error (a ResponseError subclass as redis-py raises it)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._bufs.append(_pack(args))
        self._futs.append(fut)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def call_packed(self, packed: bytes) -> asyncio.Future[Any]:
        """Like :meth:`call` for ONE command already RESP-encoded by the caller (the store
        pre-encodes the constant head of its EVALSHA calls: packing 15 arguments with
        hiredis cost more than the rest of the call)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._bufs.append(packed)
        self._futs.append(fut)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def call_many(self, packed: list[bytes]) -> asyncio.Future[None]:
        """Queue several commands, each already RESP-encoded, behind ONE future: it resolves
        to None once every reply has arrived, or to the first error among them (raised only
        after all have been answered). For the store's bulk confirms (one SREM per slot
        index): one waiter instead of a future per command and a gather over them."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if not packed:
            fut.set_result(None)
            return fut
        multi = _Multi(fut, len(packed))
        self._bufs.extend(packed)
        self._futs.extend([multi] * len(packed))  # type: ignore[list-item]
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def flush_early(self) -> None:
        """Write what is queued now if a batch slot is free (an op queue that has gathered
        EARLY_OPS ops calls this; otherwise they wait for the tick's flush as usual)."""
        proto = self._proto
        if (proto is not None and len(proto.ends) < MAX_INFLIGHT
                and proto.transport is not None and not proto.transport.is_closing()):
            self._write()

    def _flush(self) -> None:
        self._scheduled = False
        self._write()

    def _write(self) -> None:
        if not self._pending():
            return
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            if self.ops is not None:
                self.ops.emit()  # their futures fail with the others if the connect fails
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            return  # _connect flushes once connected
        if len(proto.ends) >= MAX_INFLIGHT and self._pending() < MAX_BATCH:
            return  # held: _batch_done flushes when a batch on the wire is answered
        if self.ops is not None:
            self.ops.emit()
        bufs, futs = self._bufs, self._futs
        self._bufs, self._futs = [], []
        proto.waiting.extend(futs)
        proto.sent += len(futs)
        proto.ends.append(proto.sent)
        proto.transport.write(b"".join(bufs))

    def _batch_done(self) -> None:
        # after the replies' callbacks (scheduled first): the woken tasks queue their next
        # commands before this flush runs
        if self._pending() and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _connect(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            proto = _Protocol(self)
            try:
                await asyncio.wait_for(loop.create_connection(lambda: proto, *self._addr),
                                       self._timeout)
            except OSError as exc:  # TimeoutError included
                err = RedisConnectionError(f"cannot connect to {self._addr}: {exc}")
                futs, self._bufs, self._futs = self._futs, [], []
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(err)
                return
            if self._hello:
                assert proto.transport is not None
                hello = [loop.create_future() for _ in self._hello]
                proto.waiting.extend(hello)
                proto.sent += len(hello)
                proto.transport.write(b"".join(_pack(c) for c in self._hello))
                for f in hello:
                    await f  # AUTH/SELECT failure: raised to the callers below
            self._proto = proto
        except Exception as exc:
            futs, self._bufs, self._futs = self._futs, [], []
            for fut in futs:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._connecting = None
        if self._pending():
            self._flush()

    async def drain(self) -> None:
        """Wait until every issued command has been answered (or failed)."""
        while True:
            if self._connecting is not None:
                await asyncio.gather(self._connecting, return_exceptions=True)
                continue
            if self._scheduled or self._pending():
                await asyncio.sleep(0)
                continue
            proto = self._proto
            if proto is None or not proto.waiting:
                return
            await asyncio.gather(*{f._fut if f.__class__ is _Multi else f  # type: ignore
                                   for f in proto.waiting}, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
