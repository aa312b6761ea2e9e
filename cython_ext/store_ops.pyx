# cython: language_level=3
"""Compiled twin of the embedded store's two hot paths: MemoryStore.reserve_sync / commit_sync.

The pure-Python reference is ``MemoryStore._reserve_py`` / ``_commit_py`` in
charging/store/memory.py (the executable spec). This twin implements only their common path
(account, balance and reservation exist, new key, bucket not expired, enough available) with
C integer arithmetic (every amount is within +/-2**53, so sums fit int64); every other case is
handed to the reference unchanged. charging/store/memory.py calls :func:`init` with the classes
(cython_ext imports nothing from charging: the dependency rule).

Where the time went (callgrind, 14k instructions per commit before this version): generic
attribute get/set through slot descriptors (~150 instructions each, ~20 per op), the result
objects' construction, and cyclic-GC passes over the tuples each op leaves behind. So:

* ``__slots__`` fields of the store's own objects (``_Account``, ``_Balance``) and of the
  result classes are read and written at their C offsets, taken once from the classes' member
  descriptors in :func:`init` (only when the object's type is exactly the class checked there);
* results are allocated with the type's ``tp_alloc`` and filled slot by slot (what
  ``object.__new__`` + the dataclass ``__init__`` do, minus the bytecode);
* the idempotency-cache tuple and the expiry-heap tuple hold atoms only (str/int/float/bool/
  None), so they can never be part of a reference cycle: they are untracked by the cyclic GC at
  creation (CPython would untrack them at their first collection anyway; doing it now keeps
  every young-generation pass from walking them).
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Contains
from libc.math cimport rint
from _heapq import heappush

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member
    object PyType_GenericAlloc(PyTypeObject *t, Py_ssize_t nitems)
    void PyObject_GC_UnTrack(void *op)
    PyObject* PyDict_SetDefault(object d, object key, object default) except NULL  # borrowed

cdef object OpResult = None
cdef object Hold = None
cdef object Effect = None
cdef object AccountT = None
cdef object BalanceT = None
cdef object StoreT = None
cdef object OK = None
cdef object LOW_EVENTS = None
cdef object reserve_ref = None
cdef object commit_ref = None
cdef tuple EMPTY = ()
cdef bint FAST_NEW = False  # build results without the dataclass __init__ (see init)
cdef bint FAST_STATE = False  # read/write _Account/_Balance slots at their offsets
cdef long long MAX_AMOUNT = 9007199254740991
cdef str S_OK = "ok"

# slot offsets, filled by init()
cdef Py_ssize_t R_KEY, R_STATUS, R_EFFECTS, R_HOLDS, R_GRANTED, R_BAL, R_AVAIL, R_REPLAYED
cdef Py_ssize_t R_LOW, R_EVENTS
cdef Py_ssize_t H_ACCOUNT, H_BALANCE, H_RES, H_AMOUNT, H_EXPIRES
cdef Py_ssize_t E_ACCOUNT, E_BALANCE, E_AMOUNT
cdef Py_ssize_t A_BALANCES, A_OPS, A_OLD, A_EPOCH
cdef Py_ssize_t B_AMOUNT, B_RESERVED, B_CL, B_EXP, B_LOW, B_RES
cdef Py_ssize_t S_ACCOUNTS, S_HEAP, S_EPOCH, S_EP_END


cdef Py_ssize_t _offset(cls, str name) except -1:
    """The C offset of slot *name* of *cls* (its member descriptor), or raise TypeError."""
    d = cls.__dict__.get(name)
    if type(d).__name__ != "member_descriptor" or d.__objclass__ is not cls:
        raise TypeError(f"{cls.__name__}.{name} is not a slot of that class")
    return (<PyMemberDescrObject*>d).d_member.offset


cdef inline PyObject** _slot(object o, Py_ssize_t off):
    return <PyObject**>((<char*><PyObject*>o) + off)


cdef inline object _get(object o, Py_ssize_t off):
    cdef PyObject *p = _slot(o, off)[0]
    if p == NULL:
        raise AttributeError("slot not set")
    return <object>p


cdef inline void _set(object o, Py_ssize_t off, object v):
    cdef PyObject **p = _slot(o, off)
    cdef PyObject *old = p[0]
    Py_INCREF(v)
    p[0] = <PyObject*>v
    Py_XDECREF(old)


cdef inline object _untracked(tuple t):
    PyObject_GC_UnTrack(<PyObject*>t)
    return t


def init(op_result, hold, effect, ok, low_events, reserve_py, commit_py, fast_new=False,
         account_cls=None, balance_cls=None, store_cls=None):
    """Bind the classes and the Python reference (called once by memory.py).

    *fast_new*: the caller checked that the three result classes are slots dataclasses with
    exactly the fields used here, so objects may be allocated and filled slot by slot.
    *account_cls* / *balance_cls*: the store's ``_Account`` / ``_Balance``; when given (and all
    their fields used here are slots) state is read and written at the slots' offsets;
    *store_cls*: MemoryStore, whose ``_accounts``/``_heap``/``_epoch``/``_ep_end`` slots are
    read the same way (for instances of it and its subclasses)."""
    global OpResult, Hold, Effect, OK, LOW_EVENTS, reserve_ref, commit_ref, FAST_NEW
    global AccountT, BalanceT, FAST_STATE, StoreT, S_ACCOUNTS, S_HEAP, S_EPOCH, S_EP_END
    global R_KEY, R_STATUS, R_EFFECTS, R_HOLDS, R_GRANTED, R_BAL, R_AVAIL, R_REPLAYED
    global R_LOW, R_EVENTS, H_ACCOUNT, H_BALANCE, H_RES, H_AMOUNT, H_EXPIRES
    global E_ACCOUNT, E_BALANCE, E_AMOUNT, A_BALANCES, A_OPS, A_OLD, A_EPOCH
    global B_AMOUNT, B_RESERVED, B_CL, B_EXP, B_LOW, B_RES
    OpResult, Hold, Effect, OK, LOW_EVENTS = op_result, hold, effect, ok, low_events
    reserve_ref, commit_ref = reserve_py, commit_py
    FAST_NEW = False
    FAST_STATE = False
    if fast_new:
        try:
            for c in (op_result, hold, effect):
                if c.__new__ is not object.__new__:
                    raise TypeError(f"{c.__name__} overrides __new__")
            R_KEY = _offset(op_result, "key")
            R_STATUS = _offset(op_result, "status")
            R_EFFECTS = _offset(op_result, "effects")
            R_HOLDS = _offset(op_result, "holds")
            R_GRANTED = _offset(op_result, "granted")
            R_BAL = _offset(op_result, "balance_after")
            R_AVAIL = _offset(op_result, "available_after")
            R_REPLAYED = _offset(op_result, "replayed")
            R_LOW = _offset(op_result, "low_balance")
            R_EVENTS = _offset(op_result, "events")
            H_ACCOUNT = _offset(hold, "account")
            H_BALANCE = _offset(hold, "balance")
            H_RES = _offset(hold, "reservation")
            H_AMOUNT = _offset(hold, "amount")
            H_EXPIRES = _offset(hold, "expires_at")
            E_ACCOUNT = _offset(effect, "account")
            E_BALANCE = _offset(effect, "balance")
            E_AMOUNT = _offset(effect, "amount")
            FAST_NEW = True
        except TypeError:
            FAST_NEW = False
    if account_cls is not None and balance_cls is not None and store_cls is not None:
        try:
            S_ACCOUNTS = _offset(store_cls, "_accounts")
            S_HEAP = _offset(store_cls, "_heap")
            S_EPOCH = _offset(store_cls, "_epoch")
            S_EP_END = _offset(store_cls, "_ep_end")
            StoreT = store_cls
            A_BALANCES = _offset(account_cls, "balances")
            A_OPS = _offset(account_cls, "ops")
            A_OLD = _offset(account_cls, "old")
            A_EPOCH = _offset(account_cls, "epoch")
            B_AMOUNT = _offset(balance_cls, "amount")
            B_RESERVED = _offset(balance_cls, "reserved")
            B_CL = _offset(balance_cls, "credit_limit")
            B_EXP = _offset(balance_cls, "exp_us")
            B_LOW = _offset(balance_cls, "low")
            B_RES = _offset(balance_cls, "res")
            AccountT, BalanceT = account_cls, balance_cls
            FAST_STATE = True
        except TypeError:
            FAST_STATE = False
    return FAST_NEW, FAST_STATE


def fast_paths():
    """(results filled slot by slot, state accessed at slot offsets): what init() enabled."""
    return FAST_NEW, FAST_STATE


cdef object new_result(key, effects, holds, granted, bal_after, avail_after, low, events):
    if not FAST_NEW:
        return OpResult(key, OK, effects, holds, granted, bal_after, avail_after, False, low,
                        events)
    r = PyType_GenericAlloc(<PyTypeObject*>OpResult, 0)
    _set(r, R_KEY, key)
    _set(r, R_STATUS, OK)
    _set(r, R_EFFECTS, effects)
    _set(r, R_HOLDS, holds)
    _set(r, R_GRANTED, granted)
    _set(r, R_BAL, bal_after)
    _set(r, R_AVAIL, avail_after)
    _set(r, R_REPLAYED, False)
    _set(r, R_LOW, low)
    _set(r, R_EVENTS, events)
    return r


cdef object new_hold(account, balance, reservation, amount, expires):
    if not FAST_NEW:
        return Hold(account, balance, reservation, amount, expires)
    h = PyType_GenericAlloc(<PyTypeObject*>Hold, 0)
    _set(h, H_ACCOUNT, account)
    _set(h, H_BALANCE, balance)
    _set(h, H_RES, reservation)
    _set(h, H_AMOUNT, amount)
    _set(h, H_EXPIRES, expires)
    return h


cdef object new_effect(account, balance, amount):
    if not FAST_NEW:
        return Effect(account, balance, amount)
    e = PyType_GenericAlloc(<PyTypeObject*>Effect, 0)
    _set(e, E_ACCOUNT, account)
    _set(e, E_BALANCE, balance)
    _set(e, E_AMOUNT, amount)
    return e


cdef inline bint _cached(acct):
    """Whether the account's cache dicts are plain dicts (else the reference handles it)."""
    return type(_get(acct, A_OPS)) is dict and type(_get(acct, A_OLD)) is dict


def reserve(store, key, account, balance, reservation, amount, double ttl, double now,
            partial=False):
    """Twin of MemoryStore._reserve_py (same arguments, same result, same state change)."""
    cdef PyObject *p
    if (not FAST_STATE or type(amount) is not int or amount < 0 or amount > MAX_AMOUNT
            or type(key) is not str):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    if not isinstance(store, StoreT):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    accounts = _get(store, S_ACCOUNTS)
    p = PyDict_GetItem(accounts, account) if type(accounts) is dict else NULL
    if p == NULL or type(<object>p) is not AccountT:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    acct = <object>p
    if not _cached(acct):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    # a new retention epoch: the reference rotates the caches (once per epoch per account)
    ep = _get(acct, A_EPOCH)
    sep = _get(store, S_EPOCH)
    if (ep is not sep and ep != sep) or now >= <double>_get(store, S_EP_END):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    ops = _get(acct, A_OPS)
    old = _get(acct, A_OLD)
    if len(<dict>old) and PyDict_Contains(old, key):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    balances = _get(acct, A_BALANCES)
    p = PyDict_GetItem(balances, balance) if type(balances) is dict else NULL
    if p == NULL or type(<object>p) is not BalanceT:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    bal = <object>p
    exp = _get(bal, B_EXP)
    if exp is not None and exp <= <long long>rint(now * 1000000.0):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    resd = _get(bal, B_RES)
    if type(resd) is not dict:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    cur = _get(bal, B_AMOUNT)
    cdef long long amt = amount
    cdef long long reserved = _get(bal, B_RESERVED)
    cdef long long before = <long long>cur - reserved + <long long>_get(bal, B_CL)
    if amt > before:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    cdef long long exp_us = <long long>rint((now + ttl) * 1000000.0)
    expires = <double>exp_us / 1000000.0
    exp_obj = exp_us
    cdef long long after = before - amt
    cdef long long lowv
    after_obj = after
    low = _get(bal, B_LOW)
    lowflag = False
    if low is not None:
        lowv = <long long>low
        lowflag = before >= lowv and lowv > after
    events = LOW_EVENTS if lowflag else EMPTY
    # one lookup both checks the key is new and caches the result; nothing is changed yet
    entry = _untracked((S_OK, amount, cur, after_obj, lowflag, balance, reservation, 0, amount,
                        expires, True))
    if PyDict_SetDefault(ops, key, entry) != <PyObject*>entry:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    fresh = [amount, exp_obj]
    p = PyDict_SetDefault(resd, reservation, fresh)
    if p != <PyObject*>fresh:
        res = <object>p
        res[0] = res[0] + amount
        res[1] = exp_obj
    _set(bal, B_RESERVED, reserved + amt)
    heappush(_get(store, S_HEAP), _untracked((exp_obj, account, balance, reservation)))
    return new_result(key, EMPTY, (new_hold(account, balance, reservation, amount, expires),),
                      amount, cur, after_obj, lowflag, events)


def commit(store, key, account, balance, reservation, used, double now, release_rest=True):
    """Twin of MemoryStore._commit_py (same arguments, same result, same state change)."""
    cdef PyObject *p
    if (not FAST_STATE or type(used) is not int or used < 0 or used > MAX_AMOUNT
            or type(key) is not str):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    if not isinstance(store, StoreT):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    accounts = _get(store, S_ACCOUNTS)
    p = PyDict_GetItem(accounts, account) if type(accounts) is dict else NULL
    if p == NULL or type(<object>p) is not AccountT:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    acct = <object>p
    if not _cached(acct):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    # a new retention epoch: the reference rotates the caches (once per epoch per account)
    ep = _get(acct, A_EPOCH)
    sep = _get(store, S_EPOCH)
    if (ep is not sep and ep != sep) or now >= <double>_get(store, S_EP_END):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    ops = _get(acct, A_OPS)
    old = _get(acct, A_OLD)
    if len(<dict>old) and PyDict_Contains(old, key):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    balances = _get(acct, A_BALANCES)
    p = PyDict_GetItem(balances, balance) if type(balances) is dict else NULL
    if p == NULL or type(<object>p) is not BalanceT:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    bal = <object>p
    resd = _get(bal, B_RES)
    p = PyDict_GetItem(resd, reservation) if type(resd) is dict else NULL
    if p == NULL or type(<object>p) is not list or len(<list>p) != 2:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    res = <object>p
    cdef long long u = used
    cdef long long held = res[0]
    cdef long long cur = _get(bal, B_AMOUNT)
    cdef long long reserved = _get(bal, B_RESERVED)
    cdef long long before = cur - reserved + <long long>_get(bal, B_CL)
    cdef long long debit = u if u <= held + before else held + before
    cdef long long freed
    cdef bint rr = release_rest
    if rr:
        freed = held
        hexp = None
    else:
        freed = debit if debit < held else held
        hexp = res[1] / 1000000.0
    amount_after = cur - debit
    cdef long long after = before + freed - debit
    cdef long long lowv
    after_obj = after
    low = _get(bal, B_LOW)
    lowflag = False
    if low is not None:
        lowv = <long long>low
        lowflag = before >= lowv and lowv > after
    events = LOW_EVENTS if lowflag else EMPTY
    has_hold = freed != 0 or rr
    neg_debit = -debit
    neg_freed = -freed
    debit_obj = debit
    # one lookup both checks the key is new and caches the result; nothing is changed yet
    entry = _untracked((S_OK, debit_obj, amount_after, after_obj, lowflag, balance, reservation,
                        neg_debit, neg_freed, hexp, has_hold))
    if PyDict_SetDefault(ops, key, entry) != <PyObject*>entry:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    if rr:
        PyDict_DelItem(resd, reservation)
    else:
        res[0] = held - freed
    _set(bal, B_RESERVED, reserved - freed)
    _set(bal, B_AMOUNT, amount_after)
    holds = (new_hold(account, balance, reservation, neg_freed, hexp),) if has_hold else EMPTY
    effects = (new_effect(account, balance, neg_debit),) if debit else EMPTY
    return new_result(key, effects, holds, debit_obj, amount_after, after_obj, lowflag, events)
