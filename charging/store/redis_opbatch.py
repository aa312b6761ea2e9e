"""Auto-batching of the store's single-balance ops into ONE batch-script call per hash slot.

Every EVALSHA costs the server a fixed floor (~40k instructions even for an empty script, more
than a third of one of our op scripts) and us a command to pack and a reply to parse. So the
ops issued in the same loop tick are grouped by their index keys (a standalone server keeps
every account's indexes under one tag, redis_keys.STANDALONE_TAG, so its ops are all ONE
group; a cluster gets one group per hash slot, which stays correct since a script may only
touch its own slot) and each group is sent as one EVALSHA of ``lua/batch.lua`` (KEYS/ARGV
layout in its header), which runs the ops in order with the very same op code as the
single-op scripts, updates the indexes once for the whole call (one ZADD, ZREM, SADD) and
answers one reply per op. A group of one is a batch of one.

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
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from charging.store import redis_lua as lua
from charging.store.redis_codec import OpQueueCore
from charging.store.redis_codec import select_queue as _select_queue
from charging.store.redis_fast import EARLY_OPS, FastPipe, _error

_EVALSHA, _EVAL = b"EVALSHA", b"EVAL"
# the op queue's hot half (compiled twin when built: cython_ext/redis_codec.pyx)
if TYPE_CHECKING:
    _Core = OpQueueCore
else:
    _Core = _select_queue()

# one queued op: (its letter, its 3 KEYS, account, balance, epoch, its batch ARGV tail, the
# caller's future)
_Op = tuple[bytes, tuple[str, str, str], str, str, int, tuple[Any, ...], "asyncio.Future[Any]"]


def _is_one(v: Any) -> bool:
    return v == b"1" or v == "1" or v == 1


def batch_op(script: lua.Script, var: tuple[Any, ...]) -> tuple[bytes, int, tuple[Any, ...]]:
    """An op given in its single-op script's ARGV order (*var*: epoch, now_us, "|<key>", the
    op's own arguments; the older queue interface) -> (its batch letter, its epoch, its batch
    ARGV tail) (lua/batch.lua)."""
    ep, now, opf, *own = var
    name = script.name
    if name == "reserve":  # own: reservation, amount, exp_us, partial
        return (b"R" if _is_one(own[3]) else b"r"), ep, (opf, own[0], own[1], own[2], now)
    if name == "commit":  # own: reservation, used, release_rest
        return (b"c" if _is_one(own[2]) else b"k"), ep, (opf, own[0], own[1])
    if name == "release":  # own: reservation
        return b"l", ep, (opf, own[0])
    if name == "debit":  # own: amount, partial
        return (b"D" if _is_one(own[1]) else b"d"), ep, (opf, own[0], now)
    if name == "credit":  # own: amount
        return b"t", ep, (opf, own[0])
    raise ValueError(f"not a batch op script: {name}")


def batch_args(ops: list[_Op]) -> tuple[Any, ...]:
    """``numkeys, KEYS..., ARGV...`` of one batch-script call running *ops*, which must share
    their index keys (KEYS 2 and 3: same slot tag) and their epoch (lua/batch.lua)."""
    keys: list[Any] = [ops[0][1][1], ops[0][1][2]]
    argv: list[Any] = [ops[0][4]]
    for letter, ks, account, balance, _, var, _ in ops:
        keys.append(ks[0])
        argv.append(letter)
        argv.append(account)
        argv.append(balance + "|")  # the balance's field (the op key comes as "|<key>")
        argv += var
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
        if not op[6].done():
            op[6].set_exception(exc)


def _bulk(v: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(v), v)


class PipeOps(_Core):
    """Op queue emptied by a FastPipe when it writes (FastPipe.ops): all ops in ONE call.

    Commands are assembled from pre-encoded RESP pieces (packing a whole batch's arguments
    per write cost more client CPU than the rest of the op): per account its packed hash key,
    per (letter, account, balance) the op's ARGV head ``<letter> <account> <balance>``; only
    the op's variable arguments are packed per call. The queueing itself (:meth:`bop`, the
    queue's state) is redis_codec.OpQueueCore, compiled when built (cython_ext/redis_codec.pyx).
    Ops whose index keys differ (never on one standalone server: redis_keys.STANDALONE_TAG)
    or whose epoch differs (once per retention) go out as one call per run of equal ones, in
    queue order (ops of different index pairs touch different accounts)."""

    def __init__(self, pipe: FastPipe) -> None:
        super().__init__(pipe, EARLY_OPS)
        pipe.ops = self

    def __len__(self) -> int:
        return len(self._futs) + sum(len(c[4]) for c in self._cut)

    def op(self, script: lua.Script, keys: tuple[str, str, str], account: str, balance: str,
           var: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one single-balance op given in its single-op script's ARGV order (*var*:
        epoch, now_us, "|<key>", the op's own arguments); the future resolves to its reply.
        (The store itself calls :meth:`bop` with the batch layout: redis_codec.OpQueueCore.)"""
        letter, ep, tail = batch_op(script, var)
        return self.bop(letter, keys, account, balance, ep, tail)  # type: ignore[no-any-return]

    def emit(self) -> None:
        """Called by the pipe right before it writes: queue the pending ops as one command
        (one per index-key pair, in queue order)."""
        if self._cut:
            cut, self._cut = self._cut, []
            for group in cut:
                self._emit(*group)
        if not self._futs:
            return
        assert self._ix is not None
        group = (self._ix, self._ep, self._kparts, self._aparts, self._futs, self._nvar)
        self._kparts, self._aparts, self._futs, self._nvar = [], [], [], 0
        self._emit(*group)

    def _emit(self, ix: bytes, ep: int, kparts: list[bytes], aparts: list[bytes],
              futs: list[asyncio.Future[Any]], nvar: int) -> None:
        nops = len(futs)
        # EVALSHA sha numkeys ix unj, per op its key; epoch; per op: letter, account,
        # balance (+ its var args)
        n = 6 + 4 * nops + nvar
        body = b"".join((_bulk(b"%d" % (2 + nops)), ix, *kparts, _bulk(b"%d" % ep), *aparts))
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
    index-key pair: per hash slot on a cluster, one for all on a standalone server. (*by_slot*
    is kept for callers; the grouping follows from the keys.)"""

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
        """Queue one single-balance op given in its single-op script's ARGV order (*var*:
        epoch, now_us, "|<key>", the op's own arguments); the future resolves to its reply."""
        letter, ep, tail = batch_op(script, var)
        return self.bop(letter, keys, account, balance, ep, tail)

    def bop(self, letter: bytes, keys: tuple[str, str, str], account: str, balance: str,
            ep: int, var: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one op in the batch script's layout (PipeOps.bop); the future resolves to its
        reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ops.append((letter, keys, account, balance, ep, var, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        ops, self._ops = self._ops, []
        # one call per index-key pair (and epoch): per hash slot on a cluster (the slot's
        # tag), one for all on a standalone server (redis_keys.STANDALONE_TAG)
        groups: dict[tuple[str, int], list[_Op]] = {}
        for op in ops:
            groups.setdefault((op[1][1], op[4]), []).append(op)
        for group in groups.values():
            task = asyncio.ensure_future(self._send(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, ops: list[_Op]) -> None:
        try:  # (a lone op too: a batch of one)
            cmd = batch_args(ops)
            try:
                replies = await self._evalsha(lua.BATCH.sha, *cmd)
            except NoScriptError:
                replies = await self._eval(lua.BATCH.source, *cmd)
            _deliver([op[6] for op in ops], replies)
        except Exception as exc:
            _fail(ops, exc)

    async def drain(self) -> None:
        """Wait until every queued op has been answered."""
        while self._ops or self._tasks or self._scheduled:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
