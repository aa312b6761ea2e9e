# cython: language_level=3
"""Compiled twin of the embedded store's two hot paths: MemoryStore.reserve_sync / commit_sync.

The pure-Python reference is ``MemoryStore._reserve_py`` / ``_commit_py`` in
charging/store/memory.py (the executable spec). This twin implements only their common path
(account, balance and reservation exist, new key, bucket not expired, enough available) with
C integer arithmetic (every amount is within +/-2**53, so sums fit int64); every other case is
handed to the reference unchanged. charging/store/memory.py calls :func:`init` with the result
classes (cython_ext imports nothing from charging: the dependency rule).
"""

from libc.math cimport rint
from _heapq import heappush

cdef object OpResult = None
cdef object Hold = None
cdef object Effect = None
cdef object OK = None
cdef object LOW_EVENTS = None
cdef object reserve_ref = None
cdef object commit_ref = None
cdef tuple EMPTY = ()
cdef bint FAST_NEW = False  # build results without the dataclass __init__ (see init)
cdef long long MAX_AMOUNT = 9007199254740991


def init(op_result, hold, effect, ok, low_events, reserve_py, commit_py, fast_new=False):
    """Bind the result classes and the Python reference (called once by memory.py).

    *fast_new*: the caller checked that the three classes are slots dataclasses with exactly
    the fields set below, so objects may be filled slot by slot (the generated ``__init__`` is
    Python bytecode and cost more than the whole operation)."""
    global OpResult, Hold, Effect, OK, LOW_EVENTS, reserve_ref, commit_ref, FAST_NEW
    OpResult, Hold, Effect, OK, LOW_EVENTS = op_result, hold, effect, ok, low_events
    reserve_ref, commit_ref = reserve_py, commit_py
    FAST_NEW = bool(fast_new)


cdef object new_result(key, effects, holds, long long granted, long long bal_after,
                       long long avail_after, low, events):
    if not FAST_NEW:
        return OpResult(key, OK, effects, holds, granted, bal_after, avail_after, False, low,
                        events)
    r = OpResult.__new__(OpResult)
    r.key = key
    r.status = OK
    r.effects = effects
    r.holds = holds
    r.granted = granted
    r.balance_after = bal_after
    r.available_after = avail_after
    r.replayed = False
    r.low_balance = low
    r.events = events
    return r


cdef object new_hold(account, balance, reservation, long long amount, expires):
    if not FAST_NEW:
        return Hold(account, balance, reservation, amount, expires)
    h = Hold.__new__(Hold)
    h.account = account
    h.balance = balance
    h.reservation = reservation
    h.amount = amount
    h.expires_at = expires
    return h


cdef object new_effect(account, balance, long long amount):
    if not FAST_NEW:
        return Effect(account, balance, amount)
    e = Effect.__new__(Effect)
    e.account = account
    e.balance = balance
    e.amount = amount
    return e


def reserve(store, key, account, balance, reservation, amount, double ttl, double now,
            partial=False):
    """Twin of MemoryStore._reserve_py (same arguments, same result, same state change)."""
    if type(amount) is not int or amount < 0 or amount > MAX_AMOUNT:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    acct = store._accounts.get(account)
    if acct is None:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    if key in acct.ops or (acct.old and key in acct.old):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    bal = acct.balances.get(balance)
    if bal is None:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    exp = bal.exp_us
    if exp is not None and exp <= <long long>rint(now * 1000000.0):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    cdef long long amt = amount
    cdef long long cur = bal.amount
    cdef long long reserved = bal.reserved
    cdef long long before = cur - reserved + <long long>bal.credit_limit
    if amt > before:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    cdef long long exp_us = <long long>rint((now + ttl) * 1000000.0)
    expires = <double>exp_us / 1000000.0
    resd = bal.res
    res = resd.get(reservation)
    if res is None:
        resd[reservation] = [amt, exp_us]
    else:
        res[0] = res[0] + amt
        res[1] = exp_us
    bal.reserved = reserved + amt
    heappush(store._heap, (exp_us, account, balance, reservation))
    cdef long long after = before - amt
    low = bal.low
    lowflag = low is not None and before >= low and low > after
    events = LOW_EVENTS if lowflag else EMPTY
    if acct.epoch != store._epoch or now >= store._ep_end:
        store._rotate(acct, now)
    acct.ops[key] = ("ok", amt, cur, after, lowflag, balance, reservation, 0, amt, expires, True)
    return new_result(key, EMPTY, (new_hold(account, balance, reservation, amt, expires),),
                      amt, cur, after, lowflag, events)


def commit(store, key, account, balance, reservation, used, double now, release_rest=True):
    """Twin of MemoryStore._commit_py (same arguments, same result, same state change)."""
    if type(used) is not int or used < 0 or used > MAX_AMOUNT:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    acct = store._accounts.get(account)
    if acct is None:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    if key in acct.ops or (acct.old and key in acct.old):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    bal = acct.balances.get(balance)
    if bal is None:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    resd = bal.res
    res = resd.get(reservation)
    if res is None:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    cdef long long u = used
    cdef long long held = res[0]
    cdef long long cur = bal.amount
    cdef long long reserved = bal.reserved
    cdef long long before = cur - reserved + <long long>bal.credit_limit
    cdef long long debit = u if u <= held + before else held + before
    cdef long long freed
    if release_rest:
        freed = held
        del resd[reservation]
        hexp = None
    else:
        freed = debit if debit < held else held
        res[0] = held - freed
        hexp = res[1] / 1000000.0
    bal.reserved = reserved - freed
    bal.amount = cur - debit
    cdef long long after = before + freed - debit
    low = bal.low
    lowflag = low is not None and before >= low and low > after
    events = LOW_EVENTS if lowflag else EMPTY
    has_hold = bool(freed or release_rest)
    holds = (new_hold(account, balance, reservation, -freed, hexp),) if has_hold else EMPTY
    effects = (new_effect(account, balance, -debit),) if debit else EMPTY
    if acct.epoch != store._epoch or now >= store._ep_end:
        store._rotate(acct, now)
    acct.ops[key] = ("ok", debit, cur - debit, after, lowflag, balance, reservation, -debit,
                     -freed, hexp, has_hold)
    return new_result(key, effects, holds, debit, cur - debit, after, lowflag, events)
