"""Client-side codec of the Redis store's hot ops: RESP encoding of an op's variable arguments
and decoding of the fresh record a reserve or commit answers.

This is the executable spec of ``cython_ext/redis_codec.pyx``; :func:`select` returns the
compiled functions when that twin is built (``cython_ext.load("redis_codec")``), else these.
Why a twin: hiredis's ``pack_command`` cost ~2.2 us for the 7 arguments of a reserve (it
converts every int through ``str``) and splitting the record and building the OpResult ~1.8
us: together about a quarter of the client's CPU per reserve+commit pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charging.store.base import Effect, Hold, OpResult, OpStatus

_OK = OpStatus.OK
_LOW_EVENTS = ("low_balance",)


def pack_args(args: tuple[Any, ...]) -> bytes:
    """RESP bulk strings of *args* (bytes, str as UTF-8, int as decimal; nothing else: money
    is integers), without the array header: the tail of a command. TypeError otherwise."""
    out = []
    for a in args:
        cls = a.__class__
        if cls is bytes:
            v = a
        elif cls is str:
            v = a.encode()
        elif cls is int:
            v = b"%d" % a
        else:
            raise TypeError(f"cannot send {cls.__name__} to Redis")
        out.append(b"$%d\r\n%b\r\n" % (len(v), v))
    return b"".join(out)


def reserve_ok(rec: Any, key: str, account: str, balance: str, reservation: str,
               expires_at: float) -> OpResult | None:
    """The OpResult of a fresh reserve record ``<ep>|ok|<granted>|<amount>|<available>|<low>|
    0|<granted>|<exp>|1|<balance>|<reservation>`` (lua/reserve.lua); None when *rec* is not
    bytes or its status is not ok (the caller then decodes it in general)."""
    if rec.__class__ is not bytes:
        return None
    f = rec.split(b"|", 6)
    if len(f) < 7 or f[1] != b"ok":
        return None
    low = f[5] == b"1"
    granted = int(f[2])
    return OpResult(key, _OK, (), (Hold(account, balance, reservation, granted, expires_at),),
                    granted, int(f[3]), int(f[4]), False, low, _LOW_EVENTS if low else ())


def commit_ok(rec: Any, key: str, account: str, balance: str,
              reservation: str) -> OpResult | None:
    """The OpResult of a fresh commit-and-release record ``<ep>|ok|<debit>|<amount>|
    <available>|<low>|<effect>|<hold>|-1|1|<balance>|<reservation>`` (lua/commit.lua); None
    when *rec* is not bytes or its status is not ok. Only for release_rest=True (the hold's
    expiry is then None)."""
    if rec.__class__ is not bytes:
        return None
    f = rec.split(b"|", 8)
    if len(f) < 9 or f[1] != b"ok":
        return None
    low = f[5] == b"1"
    eff = int(f[6])
    return OpResult(key, _OK, (Effect(account, balance, eff),) if eff else (),
                    (Hold(account, balance, reservation, int(f[7]), None),),
                    int(f[2]), int(f[3]), int(f[4]), False, low, _LOW_EVENTS if low else ())


def _bulk(v: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(v), v)


class OpQueueCore:
    """The hot half of the store's op queue (redis_opbatch.PipeOps subclasses it): :meth:`bop`
    queues one op as the RESP pieces of the next batch EVALSHA (lua/batch.lua) and its
    caller's future. Executable spec of the compiled twin ``cython_ext.redis_codec
    .OpQueueCore`` (same attributes, same bytes out: tests/charging/store/test_redis_codec.py).

    *pipe* must offer ``_scheduled``, ``kick()`` and ``flush_early()`` (redis_fast.FastPipe);
    *early_ops*: queued ops that make it write at once (redis_fast.EARLY_OPS)."""

    def __init__(self, pipe: Any, early_ops: int) -> None:
        self._pipe = pipe
        self._early = early_ops
        self._loop: Any = None  # the pipe's, bound at first use
        # the queued ops, as the pieces of their command (parallel lists: no tuple per op)
        self._ix: bytes | None = None  # their packed index KEYS (shared object per pair)
        self._ep: Any = -1  # their idempotency epoch (ARGV 1 of the batch)
        self._kparts: list[bytes] = []  # per op: its packed account hash KEY
        self._aparts: list[bytes] = []  # per op: its packed ARGV head and var args
        self._futs: list[Any] = []  # per op: the caller's future
        self._nvar = 0  # var args queued
        # groups closed because an op with other index keys or another epoch came (not on one
        # standalone server): (ix, ep, kparts, aparts, futs, nvar), written before the current
        self._cut: list[tuple[Any, ...]] = []
        # account -> (packed index keys, packed hash key, (letter, balance) -> packed head)
        self._acct: dict[str, tuple[bytes, bytes, dict[tuple[bytes, str], bytes]]] = {}
        self._ixseg: dict[bytes, bytes] = {}  # one object per index-key pair (``is`` test)

    def bop(self, letter: bytes, keys: tuple[str, str, str], account: str, balance: str,
            ep: int, var: tuple[Any, ...]) -> Any:
        """Queue one single-balance op in the batch script's layout (lua/batch.lua): its
        letter, KEYS, account, balance, idempotency epoch and the rest of its ARGV (*var*:
        "|<key>", then its own arguments); returns the future of its reply. Even a lone op
        goes out as a batch (of one). Call from the pipe's event loop only."""
        loop = self._loop
        if loop is None:  # get_running_loop() costs a getpid() syscall: once, not per op
            import asyncio

            loop = self._loop = asyncio.get_running_loop()
        fut = loop.create_future()
        ent = self._acct.get(account)
        if ent is None:
            if len(self._acct) > 1_000_000:
                self._acct.clear()
            ix = _bulk(keys[1].encode()) + _bulk(keys[2].encode())
            ent = self._acct[account] = (self._ixseg.setdefault(ix, ix),
                                         _bulk(keys[0].encode()), {})
        head = ent[2].get((letter, balance))
        if head is None:
            head = ent[2][(letter, balance)] = (
                _bulk(letter) + _bulk(account.encode())
                + _bulk(balance.encode() + b"|"))  # the balance's field (lua/batch.lua)
        if ent[0] is not self._ix or ep != self._ep:
            if self._futs:  # other index keys (another slot) or epoch: the group so far first
                self._cut.append((self._ix, self._ep, self._kparts, self._aparts, self._futs,
                                  self._nvar))
                self._kparts, self._aparts, self._futs, self._nvar = [], [], [], 0
            self._ix, self._ep = ent[0], ep
        packed = pack_args(var)  # (before any append: a TypeError leaves the queue whole)
        self._kparts.append(ent[1])
        aparts = self._aparts
        aparts.append(head)
        aparts.append(packed)
        self._nvar += len(var)
        futs = self._futs
        futs.append(fut)
        pipe = self._pipe
        if len(futs) >= self._early:
            pipe.flush_early()  # the server starts on these while we make the rest
            if not self._futs:
                return fut
        if not pipe._scheduled:
            pipe.kick()
        return fut


def select_queue() -> type[OpQueueCore]:
    """The op queue core: the compiled twin's when it is built, else :class:`OpQueueCore`."""
    from cython_ext import load

    ext = load("redis_codec")
    return OpQueueCore if ext is None else ext.OpQueueCore  # type: ignore[no-any-return]


Codec = tuple[Callable[[tuple[Any, ...]], bytes], Callable[..., OpResult | None],
              Callable[..., OpResult | None]]


def select() -> Codec:
    """(pack_args, reserve_ok, commit_ok): the compiled twin's when it is built, else these."""
    from cython_ext import load

    ext = load("redis_codec")
    if ext is None:
        return pack_args, reserve_ok, commit_ok
    ext.bind(_OK, _LOW_EVENTS, OpResult, Hold, Effect)
    return ext.pack_args, ext.reserve_ok, ext.commit_ok
