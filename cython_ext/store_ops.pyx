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
* ``await store.reserve(...)`` cost a coroutine (frame, keyword binding, send, dealloc) around
  the op: :func:`reserve_ready`/:func:`commit_ready` return a :data:`Ready` instead, a C object
  already holding the result whose ``am_send`` slot hands it to ``await`` directly (no
  StopIteration), recycled through a small free list;
* the expiry-heap push is inlined for the usual case (expiries grow, so the new entry stays a
  leaf), amounts are range-checked in C, and a new idempotency epoch is rotated here (through
  ``MemoryStore._rotate``) instead of handing the op to the reference, so the cache dicts only
  ever receive untracked tuples and stay invisible to the cyclic GC;
* the idempotency-cache tuple and the expiry-heap tuple hold atoms only (str/int/float/bool/
  None), so they can never be part of a reference cycle: they are untracked by the cyclic GC at
  creation (CPython would untrack them at their first collection anyway; doing it now keeps
  every young-generation pass from walking them).
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.dict cimport PyDict_GetItemWithError, PyDict_DelItem, PyDict_Contains
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.math cimport rint
from _heapq import heappush

cdef extern from *:
    """
    /* Ready: an awaitable that is already complete (what `await` of a coroutine that never
       suspends yields, minus the coroutine). `await ready` hands back its value through the
       am_send slot (Python >= 3.10: PyIter_Send calls it, no StopIteration is raised), or,
       for generic iteration (`yield from ready.__await__()`, asyncio.ensure_future), via an
       unnormalised StopIteration(value) as CPython's own generators do. Awaiting it again
       returns the same value (like a done Future). Not GC-tracked: it holds one reference to
       a result object, which never refers back to it, so it can be part of no cycle. */
    typedef struct { PyObject_HEAD PyObject *value; } IcxReady;
    static PyTypeObject IcxReady_Type;
    #define ICX_READY_FREE 32
    static IcxReady *icx_ready_free[ICX_READY_FREE];
    static int icx_ready_nfree = 0;

    static PyObject *icx_ready_new(PyObject *value) {
        IcxReady *r;
        if (icx_ready_nfree > 0) {
            r = icx_ready_free[--icx_ready_nfree];
            (void)PyObject_Init((PyObject *)r, &IcxReady_Type);
        } else {
            r = PyObject_New(IcxReady, &IcxReady_Type);
            if (r == NULL) return NULL;
        }
        Py_INCREF(value);
        r->value = value;
        return (PyObject *)r;
    }
    static void icx_ready_dealloc(IcxReady *r) {
        Py_CLEAR(r->value);
        if (icx_ready_nfree < ICX_READY_FREE) icx_ready_free[icx_ready_nfree++] = r;
        else PyObject_Free(r);
    }
    static PyObject *icx_ready_await(PyObject *self) { Py_INCREF(self); return self; }
    static PyObject *icx_ready_next(IcxReady *r) {
        PyObject *v = r->value;
        if (PyTuple_Check(v) || PyExceptionInstance_Check(v)) {
            /* normalising would unpack a tuple / chain an exception: build it properly */
            PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, v);
            if (e != NULL) { PyErr_SetObject(PyExc_StopIteration, e); Py_DECREF(e); }
            return NULL;
        }
        Py_INCREF(PyExc_StopIteration);
        Py_INCREF(v);
        PyErr_Restore(PyExc_StopIteration, v, NULL);
        return NULL;
    }
    static PyObject *icx_ready_result(IcxReady *r, PyObject *unused) {
        Py_INCREF(r->value);
        return r->value;
    }
    static PyObject *icx_ready_done(PyObject *self, PyObject *unused) { Py_RETURN_TRUE; }
    #if PY_VERSION_HEX >= 0x030A0000
    static PySendResult icx_ready_send(IcxReady *r, PyObject *arg, PyObject **result) {
        Py_INCREF(r->value);
        *result = r->value;
        return PYGEN_RETURN;
    }
    #endif
    static PyMethodDef icx_ready_methods[] = {
        {"result", (PyCFunction)icx_ready_result, METH_NOARGS, "The value (already there)."},
        {"done", (PyCFunction)icx_ready_done, METH_NOARGS, "Always True."},
        {NULL, NULL, 0, NULL}
    };
    static PyAsyncMethods icx_ready_as_async = {
        (unaryfunc)icx_ready_await, 0, 0,
    #if PY_VERSION_HEX >= 0x030A0000
        (sendfunc)icx_ready_send,
    #endif
    };
    static int icx_ready_init(void) {
        IcxReady_Type.tp_name = "cython_ext.store_ops.Ready";
        IcxReady_Type.tp_basicsize = sizeof(IcxReady);
        IcxReady_Type.tp_dealloc = (destructor)icx_ready_dealloc;
        IcxReady_Type.tp_as_async = &icx_ready_as_async;
        IcxReady_Type.tp_flags = Py_TPFLAGS_DEFAULT;
        IcxReady_Type.tp_doc = "An awaitable already holding its result (store op answers).";
        IcxReady_Type.tp_iter = PyObject_SelfIter;
        IcxReady_Type.tp_iternext = (iternextfunc)icx_ready_next;
        IcxReady_Type.tp_methods = icx_ready_methods;
        return PyType_Ready(&IcxReady_Type);
    }
    """
    int icx_ready_init() except -1
    object icx_ready_new(object value)
    PyTypeObject IcxReady_Type

icx_ready_init()
Ready = <object>&IcxReady_Type

cdef extern from *:
    """
    /* 1 when v is an exact int in [0, 2**53-1] (the store's amount range), else 0; never
       leaves an exception set. On 3.11 the digit count answers most cases without a
       conversion (ob_size = sign * 30-bit digits; 2**53 needs two). */
    static int icx_amount_ok(PyObject *v) {
        int overflow;
        long long x;
        if (!PyLong_CheckExact(v)) return 0;
    #if PY_VERSION_HEX < 0x030C0000
        if (Py_SIZE(v) < 0 || Py_SIZE(v) > 2) return 0;
        if (Py_SIZE(v) < 2) return 1;
    #endif
        x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
        return 0 <= x && x <= 9007199254740991LL;
    }
    /* *out = v as a C long long when v is an exact int that fits; else 0 (no exception). */
    static int icx_as_ll(PyObject *v, long long *out) {
        int overflow;
        long long x;
        if (!PyLong_CheckExact(v)) return 0;
        x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
        *out = x;
        return 1;
    }
    """
    bint icx_amount_ok(object v)
    bint icx_as_ll(object v, long long *out)

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


cdef int _unset() except -1:
    raise AttributeError("slot not set")


cdef inline object _get(object o, Py_ssize_t off):
    cdef PyObject *p = _slot(o, off)[0]
    if p == NULL:
        _unset()
    return <object>p


cdef int _heap_push(object heap, tuple item, long long exp_us) except -1:
    """heapq.heappush(heap, item) for an (expiry µs, ...) entry: append, and when the parent's
    expiry is smaller (the usual case: expiries mostly grow) the heap property already holds,
    which is where heapq's sift would stop too (tuples compare by their first item when those
    differ); any other case goes through heapq itself."""
    cdef Py_ssize_t n
    cdef PyObject *parent
    if type(heap) is not list:
        heappush(heap, item)
        return 0
    (<list>heap).append(item)
    n = PyList_GET_SIZE(heap) - 1
    if n == 0:
        return 0
    cdef long long pexp
    parent = PyList_GET_ITEM(heap, (n - 1) >> 1)
    if type(<object>parent) is tuple and len(<tuple><object>parent) > 0:
        if icx_as_ll(<object>PyTuple_GET_ITEM(<object>parent, 0), &pexp) and pexp < exp_us:
            return 0
    (<list>heap).pop()
    heappush(heap, item)
    return 0


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
    return _reserve(store, key, account, balance, reservation, amount, ttl, now, partial)


def reserve_ready(store, key, account, balance, reservation, amount, *, double ttl,
                  double now, partial=False):
    """MemoryStore.reserve (the BalanceStore coroutine method) when compiled: the op runs now,
    and the answer comes back as an already-complete awaitable (:data:`Ready`): ``await
    store.reserve(...)`` gives the same result as the reference coroutine, without building
    and running a coroutine per call. Errors (ValueError for a bad amount) raise at the call,
    which for ``await store.reserve(...)`` is the same place."""
    return icx_ready_new(_reserve(store, key, account, balance, reservation, amount, ttl, now,
                                  partial))


cdef object _reserve(store, key, account, balance, reservation, amount, double ttl, double now,
                     partial):
    cdef PyObject *p
    if not FAST_STATE or not icx_amount_ok(amount) or type(key) is not str:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    if not isinstance(store, StoreT):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    accounts = _get(store, S_ACCOUNTS)
    p = PyDict_GetItemWithError(accounts, account) if type(accounts) is dict else NULL
    if p == NULL or type(<object>p) is not AccountT:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    acct = <object>p
    if not _cached(acct):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    ops = _get(acct, A_OPS)
    old = _get(acct, A_OLD)
    if len(<dict>old) and PyDict_Contains(old, key):
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    # a new retention epoch (once per epoch per account): rotate the caches as the reference
    # does when it remembers a result, after checking the key is in neither of them
    ep = _get(acct, A_EPOCH)
    sep = _get(store, S_EPOCH)
    if (ep is not sep and ep != sep) or now >= <double>_get(store, S_EP_END):
        if PyDict_Contains(ops, key):
            return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
        store._rotate(acct, now)
        ops = _get(acct, A_OPS)
        if not _cached(acct):
            return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    balances = _get(acct, A_BALANCES)
    p = PyDict_GetItemWithError(balances, balance) if type(balances) is dict else NULL
    if p == NULL or type(<object>p) is not BalanceT:
        return reserve_ref(store, key, account, balance, reservation, amount, ttl, now, partial)
    bal = <object>p
    exp = _get(bal, B_EXP)
    cdef long long exp_c
    if exp is not None and (not icx_as_ll(exp, &exp_c) or exp_c <= <long long>rint(now * 1000000.0)):
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
    cdef object expires = <double>exp_us / 1000000.0
    cdef object exp_obj = exp_us
    cdef long long after = before - amt
    cdef long long lowv
    cdef object after_obj = after
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
    _heap_push(_get(store, S_HEAP), _untracked((exp_obj, account, balance, reservation)), exp_us)
    return new_result(key, EMPTY, (new_hold(account, balance, reservation, amount, expires),),
                      amount, cur, after_obj, lowflag, events)


def commit(store, key, account, balance, reservation, used, double now, release_rest=True):
    """Twin of MemoryStore._commit_py (same arguments, same result, same state change)."""
    return _commit(store, key, account, balance, reservation, used, now, release_rest)


def commit_ready(store, key, account, balance, reservation, used, *, double now,
                 release_rest=True):
    """MemoryStore.commit when compiled: see :func:`reserve_ready`."""
    return icx_ready_new(_commit(store, key, account, balance, reservation, used, now,
                                 release_rest))


cdef object _commit(store, key, account, balance, reservation, used, double now, release_rest):
    cdef PyObject *p
    if not FAST_STATE or not icx_amount_ok(used) or type(key) is not str:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    if not isinstance(store, StoreT):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    accounts = _get(store, S_ACCOUNTS)
    p = PyDict_GetItemWithError(accounts, account) if type(accounts) is dict else NULL
    if p == NULL or type(<object>p) is not AccountT:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    acct = <object>p
    if not _cached(acct):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    ops = _get(acct, A_OPS)
    old = _get(acct, A_OLD)
    if len(<dict>old) and PyDict_Contains(old, key):
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    # a new retention epoch (once per epoch per account): rotate the caches as the reference
    # does when it remembers a result, after checking the key is in neither of them
    ep = _get(acct, A_EPOCH)
    sep = _get(store, S_EPOCH)
    if (ep is not sep and ep != sep) or now >= <double>_get(store, S_EP_END):
        if PyDict_Contains(ops, key):
            return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
        store._rotate(acct, now)
        ops = _get(acct, A_OPS)
        if not _cached(acct):
            return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    balances = _get(acct, A_BALANCES)
    p = PyDict_GetItemWithError(balances, balance) if type(balances) is dict else NULL
    if p == NULL or type(<object>p) is not BalanceT:
        return commit_ref(store, key, account, balance, reservation, used, now, release_rest)
    bal = <object>p
    resd = _get(bal, B_RES)
    p = PyDict_GetItemWithError(resd, reservation) if type(resd) is dict else NULL
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
    cdef object amount_after = cur - debit
    cdef long long after = before + freed - debit
    cdef long long lowv
    cdef object after_obj = after
    low = _get(bal, B_LOW)
    lowflag = False
    if low is not None:
        lowv = <long long>low
        lowflag = before >= lowv and lowv > after
    events = LOW_EVENTS if lowflag else EMPTY
    has_hold = freed != 0 or rr
    cdef object neg_debit = -debit
    cdef object neg_freed = -freed
    cdef object debit_obj = used if debit == u else debit  # the caller's int when all was covered
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
