"""The embedded store's idempotency-cache form of an OpResult: one flat tuple of atoms.

Tuples holding only atoms (str, int, float, bool, None) are untracked by the cyclic GC after
their first collection, so a cache of millions of results costs the GC nothing; caching the
OpResult objects themselves (or nested tuples, or a per-op log) made GC passes over the cache
take half of the embedded store's time (measured with gc.callbacks).
"""

from __future__ import annotations

from typing import Any

from charging.store.base import Effect, Hold, OpResult, OpStatus

LOW_EVENTS = ("low_balance",)


def pack(r: OpResult) -> tuple[Any, ...]:
    """An OpResult as ONE flat tuple of atoms (the account is implied): (status, granted,
    balance_after, available_after, low, balance, reservation, effect, hold, hold_expires,
    has_hold). Results with several effects/holds (journal replay) use ("*", ...) instead."""
    e = r.effects[0] if len(r.effects) == 1 else None
    h = r.holds[0] if len(r.holds) == 1 else None
    simple = (len(r.effects) == (e is not None) and len(r.holds) == (h is not None)
              and (e is None or e.amount != 0)
              and (e is None or h is None or e.balance == h.balance))
    if simple:
        bal = e.balance if e is not None else (h.balance if h is not None else None)
        return (r.status.value, r.granted, r.balance_after, r.available_after, r.low_balance,
                bal, h.reservation if h else None, e.amount if e else 0,
                h.amount if h else 0, h.expires_at if h else None, h is not None)
    return ("*", r.status.value, r.granted, r.balance_after, r.available_after, r.low_balance,
            tuple((e.balance, e.amount) for e in r.effects),
            tuple((h.balance, h.reservation, h.amount, h.expires_at) for h in r.holds))


def unpack(key: str, account: str, p: tuple[Any, ...]) -> OpResult:
    """The cached result of *key* (see :func:`pack`), marked ``replayed``."""
    if p[0] == "*":
        _, status, granted, ba, av, low, effects, holds = p
        return OpResult(key, OpStatus(status), tuple(Effect(account, *x) for x in effects),
                        tuple(Hold(account, *x) for x in holds), granted, ba, av, True, low,
                        LOW_EVENTS if low else ())
    status, granted, ba, av, low, bal, res, eff, hold, hexp, has_hold = p
    return OpResult(key, OpStatus(status), (Effect(account, bal, eff),) if eff else (),
                    (Hold(account, bal, res, hold, hexp),) if has_hold else (),
                    granted, ba, av, True, low, LOW_EVENTS if low else ())
