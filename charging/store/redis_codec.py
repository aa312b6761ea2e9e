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
