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
one, so a loaded client sends fewer, bigger batches; and once EARLY_OPS ops are queued while a
batch slot is free they are written at once, so the server runs them while the client still
wakes the rest of its callers (two batches alternate instead of one batch in lockstep).
Order is kept: one connection, commands run in the order written, ops in queue order. Elsewhere (redis-py cluster client, the
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
from charging.store.redis_fast import EARLY_OPS, FastPipe, _error
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


def _deliver(futs: list[asyncio.Future[Any]], replies: Any) -> None:
    """Hand each op's future its element of the batch reply (an error element fails that op
    only)."""
    if replies.__class__ is not list or len(replies) != len(futs):
        exc = RuntimeError(f"batch script: unexpected reply {replies!r:.200}")
        for fut in futs:
            if not fut.done():
                fut.set_exception(exc)
        return
    for fut, reply in zip(futs, replies, strict=True):
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


def _bulk(v: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(v), v)


class PipeOps:
    """Op queue emptied by a FastPipe when it writes (FastPipe.ops): all ops in ONE call.

    Commands are assembled from pre-encoded RESP pieces (packing a whole batch's arguments
    per write cost more client CPU than the rest of the op): per account its 3 KEYS, per
    (script, account, balance) the op's ARGV head ``<letter> <n> <account> <balance>``; only
    the op's variable arguments are packed per call (hiredis, in C)."""

    def __init__(self, pipe: FastPipe) -> None:
        self._pipe = pipe
        # queued: (script, account, balance, packed KEYS, packed ARGV head, packed var args,
        # their count, the caller's future)
        self._ops: list[tuple[lua.Script, str, str, bytes, bytes, bytes, int,
                              asyncio.Future[Any]]] = []
        # account -> (its packed KEYS, (script name, balance) -> its packed ARGV head)
        self._acct: dict[str, tuple[bytes, dict[tuple[str, str], bytes]]] = {}
        pipe.ops = self

    def __len__(self) -> int:
        return len(self._ops)

    def op(self, script: lua.Script, keys: tuple[str, str, str], account: str, balance: str,
           var: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one single-balance op (its KEYS, ARGV = account, balance, *var*, fewer than
        8 var arguments); the future resolves to the script's reply."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ent = self._acct.get(account)
        if ent is None:
            if len(self._acct) > 1_000_000:
                self._acct.clear()
            ent = self._acct[account] = (b"".join(_bulk(k.encode()) for k in keys), {})
        head = ent[1].get((script.name, balance))
        if head is None:
            head = ent[1][(script.name, balance)] = (
                _bulk(_LETTER[script.name]) + _bulk(b"%d" % (2 + len(var)))
                + _bulk(account.encode()) + _bulk(balance.encode()))
        # _pack(var) starts with its 4-byte array header "*N\r\n" (N < 10): dropped
        ops = self._ops
        ops.append((script, account, balance, ent[0], head, _pack(var)[4:], len(var), fut))
        pipe = self._pipe
        if len(ops) >= EARLY_OPS:
            pipe.flush_early()  # the server starts on these while we make the rest
            if not self._ops:
                return fut
        if not pipe._scheduled:
            pipe.kick()
        return fut

    def emit(self) -> None:
        """Called by the pipe right before it writes: queue the pending ops as one command."""
        ops, self._ops = self._ops, []
        if not ops:
            return
        if len(ops) == 1:
            script, account, balance, kseg, _, var, nvar, fut = ops[0]
            # EVALSHA sha 3 <3 keys> account balance <var>: the op's own script
            body = (_bulk(b"3") + kseg + _bulk(account.encode())
                    + _bulk(balance.encode()) + var)
            n = 8 + nvar
            inner = self._pipe.enqueue(b"*%d\r\n" % n + _bulk(_EVALSHA) + _bulk(script.sha_b)
                                       + body)
            inner.add_done_callback(lambda f: self._done(f, [fut], False, script, n, body))
            return
        kparts: list[bytes] = []
        aparts: list[bytes] = []
        futs: list[asyncio.Future[Any]] = []
        n = 3 + 7 * len(ops)  # per op: 3 keys, letter, n, account, balance (+ its var args)
        for _, _, _, kseg, head, var, nvar, fut in ops:
            kparts.append(kseg)
            aparts.append(head)
            aparts.append(var)
            futs.append(fut)
            n += nvar
        body = _bulk(b"%d" % (3 * len(ops))) + b"".join(kparts) + b"".join(aparts)
        inner = self._pipe.enqueue(b"*%d\r\n" % n + _bulk(_EVALSHA) + _bulk(lua.BATCH.sha_b)
                                   + body)
        inner.add_done_callback(lambda f: self._done(f, futs, True, lua.BATCH, n, body))

    def _done(self, f: asyncio.Future[Any], futs: list[asyncio.Future[Any]], batch: bool,
              script: lua.Script, n: int, body: bytes, retried: bool = False) -> None:
        exc = f.exception()
        if exc is None:
            if batch:
                _deliver(futs, f.result())
            elif not futs[0].done():
                futs[0].set_result(f.result())
        elif isinstance(exc, NoScriptError) and not retried:
            # not cached on that server: EVAL runs it and caches it
            again = self._pipe.call_packed(b"*%d\r\n" % n + _bulk(_EVAL)
                                           + _bulk(script.source.encode()) + body)
            again.add_done_callback(lambda g: self._done(g, futs, batch, script, n, body, True))
        else:
            for fut in futs:
                if not fut.done():
                    fut.set_exception(exc)


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

    def op(self, script: lua.Script, keys: tuple[str, str, str], account: str, balance: str,
           var: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one single-balance op (its KEYS, ARGV = account, balance, *var*); the future
        resolves to the script's reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ops.append((script, keys, (account, balance, *var), fut))
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
            _deliver([op[3] for op in ops], replies)
        except Exception as exc:
            _fail(ops, exc)

    async def drain(self) -> None:
        """Wait until every queued op has been answered."""
        while self._ops or self._tasks or self._scheduled:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
