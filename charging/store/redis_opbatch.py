"""Auto-batching of the store's single-balance ops into ONE batch-script call per hash slot.

Every EVALSHA costs the server a fixed floor (~40k instructions even for an empty script, more
than a third of one of our op scripts) and us a command to pack and a reply to parse. So the
ops issued in the same loop tick are grouped by hash slot (a standalone server takes them all
in ONE group: any keys may go in one call there; a cluster gets one group per slot, which
stays correct since a script may only touch its own slot) and each group is sent as one
EVALSHA of ``lua/batch.lua`` (KEYS/ARGV layout in its header), which runs the ops in order
with the very same op code as the single-op scripts and answers one reply per op. A group of
one is sent as the op's own single-op script.

On a FastPipe the groups are not built per tick but when the pipe really writes (see
FastPipe.ops): while batches are held (MAX_INFLIGHT on the wire) ops keep joining the next
one, so a loaded client sends fewer, bigger batches. Elsewhere (redis-py cluster client, the
TLS/unix Batcher) a per-tick flush sends one call per group.

Per op: its reply, or its own error (the batch script catches an op's runtime error with
pcall and answers it in that op's place; a failure of the whole call, e.g. a lost connection,
fails every op in it: those callers do not know whether their op ran and must retry with the
same idempotency key). NOSCRIPT is answered by EVAL of the source (which caches it there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from hiredis import pack_command
from redis.exceptions import NoScriptError, ResponseError

from charging.store import redis_lua as lua
from charging.store.redis_fast import FastPipe, _error
from charging.store.redis_keys import key_slot

_pack = cast(Callable[[tuple[Any, ...]], bytes], pack_command)
_EVALSHA, _EVAL, _THREE = b"EVALSHA", b"EVAL", b"3"
_LETTER = {name: letter.encode() for name, letter in lua.BATCH_OPS.items()}

# one queued op: (script, its 3 KEYS, its ARGV, the caller's future)
_Op = tuple[lua.Script, tuple[str, str, str], tuple[Any, ...], "asyncio.Future[Any]"]


def batch_args(ops: list[_Op]) -> tuple[Any, ...]:
    """``numkeys, KEYS..., ARGV...`` of one batch-script call running *ops* (lua/batch.lua)."""
    keys: list[Any] = []
    argv: list[Any] = []
    for script, ks, args, _ in ops:
        keys += ks
        argv.append(_LETTER[script.name])
        argv.append(len(args))
        argv += args
    return (len(keys), *keys, *argv)


def _deliver(ops: list[_Op], replies: Any) -> None:
    """Hand each op its element of the batch reply (an error element fails that op only)."""
    if replies.__class__ is not list or len(replies) != len(ops):
        exc = RuntimeError(f"batch script: unexpected reply {replies!r:.200}")
        for op in ops:
            if not op[3].done():
                op[3].set_exception(exc)
        return
    for op, reply in zip(ops, replies, strict=True):
        fut = op[3]
        if fut.done():  # the caller was cancelled
            continue
        if isinstance(reply, Exception):
            fut.set_exception(_error(reply) if isinstance(reply, ResponseError) else reply)
        else:
            fut.set_result(reply)


def _fail(ops: list[_Op], exc: BaseException) -> None:
    for op in ops:
        if not op[3].done():
            op[3].set_exception(exc)


class PipeOps:
    """Op queue emptied by a FastPipe when it writes (FastPipe.ops): all ops in ONE call."""

    def __init__(self, pipe: FastPipe) -> None:
        self._pipe = pipe
        self._ops: list[_Op] = []
        pipe.ops = self

    def __len__(self) -> int:
        return len(self._ops)

    def op(self, script: lua.Script, keys: tuple[str, str, str],
           args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one single-balance op; the future resolves to the script's reply."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.append((script, keys, args, fut))
        self._pipe.kick()
        return fut

    def emit(self) -> None:
        """Called by the pipe right before it writes: queue the pending ops as one command."""
        ops, self._ops = self._ops, []
        if not ops:
            return
        if len(ops) == 1:
            script, keys, args, fut = ops[0]
            inner = self._pipe.enqueue(_pack((_EVALSHA, script.sha_b, _THREE, *keys, *args)))
            inner.add_done_callback(lambda f: self._single_done(ops, f))
            return
        cmd = batch_args(ops)
        inner = self._pipe.enqueue(_pack((_EVALSHA, lua.BATCH.sha_b, *cmd)))
        inner.add_done_callback(lambda f: self._batch_done(ops, cmd, f))

    def _single_done(self, ops: list[_Op], f: asyncio.Future[Any]) -> None:
        script, keys, args, fut = ops[0]
        exc = f.exception()
        if exc is None:
            if not fut.done():
                fut.set_result(f.result())
        elif isinstance(exc, NoScriptError):  # not cached there: EVAL runs and caches it
            again = self._pipe.call(_EVAL, script.source, _THREE, *keys, *args)
            again.add_done_callback(lambda g: _chain(g, fut))
        elif not fut.done():
            fut.set_exception(exc)

    def _batch_done(self, ops: list[_Op], cmd: tuple[Any, ...], f: asyncio.Future[Any]) -> None:
        exc = f.exception()
        if exc is None:
            _deliver(ops, f.result())
        elif isinstance(exc, NoScriptError):
            again = self._pipe.call(_EVAL, lua.BATCH.source, *cmd)
            again.add_done_callback(
                lambda g: _fail(ops, e) if (e := g.exception()) else _deliver(ops, g.result()))
        else:
            _fail(ops, exc)


def _chain(src: asyncio.Future[Any], dst: asyncio.Future[Any]) -> None:
    if dst.done():
        return
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


class SlotOps:
    """Op queue flushed once per loop tick through a generic async *evalsha*/*eval* (redis-py:
    the cluster client routes each call by its keys' slot; the TLS/unix Batcher), one call per
    hash slot when *by_slot* (a cluster), else one call for all."""

    def __init__(self, evalsha: Callable[..., Awaitable[Any]],
                 eval_: Callable[..., Awaitable[Any]], *, by_slot: bool) -> None:
        self._evalsha = evalsha
        self._eval = eval_
        self._by_slot = by_slot
        self._ops: list[_Op] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def op(self, script: lua.Script, keys: tuple[str, str, str],
           args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one single-balance op; the future resolves to the script's reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ops.append((script, keys, args, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        ops, self._ops = self._ops, []
        groups: dict[int, list[_Op]] = {}
        if self._by_slot:
            for op in ops:
                groups.setdefault(key_slot(op[1][0]), []).append(op)
        elif ops:
            groups[0] = ops
        for group in groups.values():
            task = asyncio.ensure_future(self._send(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, ops: list[_Op]) -> None:
        try:
            if len(ops) == 1:
                script, keys, args, fut = ops[0]
                try:
                    reply = await self._evalsha(script.sha, 3, *keys, *args)
                except NoScriptError:
                    reply = await self._eval(script.source, 3, *keys, *args)
                if not fut.done():
                    fut.set_result(reply)
                return
            cmd = batch_args(ops)
            try:
                replies = await self._evalsha(lua.BATCH.sha, *cmd)
            except NoScriptError:
                replies = await self._eval(lua.BATCH.source, *cmd)
            _deliver(ops, replies)
        except Exception as exc:
            _fail(ops, exc)

    async def drain(self) -> None:
        """Wait until every queued op has been answered."""
        while self._ops or self._tasks or self._scheduled:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
