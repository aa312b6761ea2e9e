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
  every young-generation pass from walking them);
* the ops themselves are C functions (``icx_reserve`` / ``icx_commit`` below) working on
  borrowed references, with the store's ints read straight from their digits: the Cython
  version spent ~1.5k instructions per pair on reference counting, error checks and
  conversions around the same steps (callgrind, 11.9k -> 10.7k per awaited pair);
* ``store.reserve`` / ``store.commit`` are method descriptors over a METH_FASTCALL C function
  (:func:`methods`) that matches the usual keyword names by identity, instead of a Cython
  function parsing its arguments generically.

The C functions answer NULL *without* an exception for "not the common path": the caller then
runs the reference with the same arguments, so every unusual case is the spec's own answer.
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.pycapsule cimport PyCapsule_GetPointer
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
    /* icx_ready_new, stealing the reference to value */
    static PyObject *icx_ready_wrap(PyObject *value) {
        PyObject *r = icx_ready_new(value);
        Py_DECREF(value);
        return r;
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
    /* The two hot ops in C (see the module docstring). Each answers a new reference (the
       OpResult), NULL with an exception set (MemoryError and the like), or NULL with NO exception
       set: "not the common path, ask the reference" (which then answers or raises exactly as the
       spec does). Nothing is mutated before the point where the op is known to succeed. */
    /* cython_ext/store_results.pyx: C constructors of its Effect / Hold / OpResult (new
       references; arguments borrowed), handed over in its _C_API capsule. */
    typedef struct {
        PyObject *(*result)(PyObject *key, PyObject *status, PyObject *effects,
                            PyObject *holds, PyObject *granted, PyObject *bal_after,
                            PyObject *avail_after, PyObject *replayed, PyObject *low,
                            PyObject *events);
        PyObject *(*hold)(PyObject *account, PyObject *balance, PyObject *reservation,
                          PyObject *amount, PyObject *expires);
        PyObject *(*effect)(PyObject *account, PyObject *balance, PyObject *amount);
    } IcxResultsAPI;

    typedef struct {
        int fast_new, fast_state;
        PyTypeObject *store_t, *acct_t, *bal_t, *result_t, *hold_t, *effect_t;
        Py_ssize_t s_accounts, s_heap, s_epoch, s_ep_end;
        Py_ssize_t a_balances, a_ops, a_old, a_epoch, a_kept;
        Py_ssize_t b_amount, b_reserved, b_cl, b_exp, b_low, b_res;
        Py_ssize_t r_key, r_status, r_effects, r_holds, r_granted, r_bal, r_avail, r_replayed,
                   r_low, r_events;
        Py_ssize_t h_account, h_balance, h_res, h_amount, h_expires;
        Py_ssize_t e_account, e_balance, e_amount;
        PyObject *ok, *low_events, *empty, *s_ok, *zero, *heappush, *rotate_name;
        PyObject *reserve_ref, *commit_ref;
        IcxResultsAPI *api;  /* the compiled result classes' constructors, when those are used */
    } IcxStore;
    static IcxStore icx_s;

    #define ICX_SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))
    #define ICX_MAX_AMOUNT 9007199254740991LL

    /* *out = v when v is an exact int that fits a long long; 0 (no exception) otherwise. On 3.11
       the compact forms (ob_size = sign * number of 30-bit digits) are read directly: every
       store amount (|x| <= 2**53) has at most two digits. */
    static inline int icx_ll(PyObject *v, long long *out) {
        int overflow;
        long long x;
        if (!PyLong_CheckExact(v)) return 0;
    #if PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
        {
            const digit *d = ((PyLongObject *)v)->ob_digit;
            switch (Py_SIZE(v)) {
            case 0: *out = 0; return 1;
            case 1: *out = (long long)d[0]; return 1;
            case -1: *out = -(long long)d[0]; return 1;
            case 2: *out = ((long long)d[1] << 30) | (long long)d[0]; return 1;
            case -2: *out = -(((long long)d[1] << 30) | (long long)d[0]); return 1;
            default: break;
            }
        }
    #endif
        x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
        *out = x;
        return 1;
    }

    /* An amount argument: an exact int in [0, MAX_AMOUNT] (else the reference raises). */
    static inline int icx_amount(PyObject *v, long long *out) {
        return icx_ll(v, out) && *out >= 0 && *out <= ICX_MAX_AMOUNT;
    }

    /* A borrowed dict lookup; NULL when absent or on error (the error is cleared: the reference,
       which runs next, meets the same key and raises it again). */
    static inline PyObject *icx_get(PyObject *d, PyObject *key) {
        PyObject *v = PyDict_GetItemWithError(d, key);
        if (v == NULL && PyErr_Occurred()) PyErr_Clear();
        return v;
    }

    /* A fresh instance of a slots class whose slots are filled with the n given values (new
       references are taken); the dataclass __init__ does the same, minus the bytecode. */
    static PyObject *icx_fill(PyTypeObject *t, const Py_ssize_t *offs, PyObject *const *vals,
                              int n) {
        PyObject *o = t->tp_alloc(t, 0);
        int i;
        if (o == NULL) return NULL;
        for (i = 0; i < n; i++) {
            Py_INCREF(vals[i]);
            ICX_SLOT(o, offs[i]) = vals[i];
        }
        return o;
    }

    static PyObject *icx_new_result(PyObject *key, PyObject *effects, PyObject *holds,
                                    PyObject *granted, PyObject *bal_after, PyObject *avail_after,
                                    PyObject *low, PyObject *events) {
        if (icx_s.api != NULL)
            return icx_s.api->result(key, icx_s.ok, effects, holds, granted, bal_after,
                                     avail_after, Py_False, low, events);
        if (!icx_s.fast_new)
            return PyObject_CallFunctionObjArgs((PyObject *)icx_s.result_t, key, icx_s.ok, effects,
                                                holds, granted, bal_after, avail_after, Py_False,
                                                low, events, NULL);
        {
            const Py_ssize_t offs[10] = {icx_s.r_key, icx_s.r_status, icx_s.r_effects,
                icx_s.r_holds, icx_s.r_granted, icx_s.r_bal, icx_s.r_avail, icx_s.r_replayed,
                icx_s.r_low, icx_s.r_events};
            PyObject *const vals[10] = {key, icx_s.ok, effects, holds, granted, bal_after,
                                        avail_after, Py_False, low, events};
            return icx_fill(icx_s.result_t, offs, vals, 10);
        }
    }

    /* (Hold(account, balance, reservation, amount, expires),) */
    static PyObject *icx_one_hold(PyObject *account, PyObject *balance, PyObject *reservation,
                                  PyObject *amount, PyObject *expires) {
        PyObject *h, *t;
        if (icx_s.api != NULL) {
            h = icx_s.api->hold(account, balance, reservation, amount, expires);
        } else if (!icx_s.fast_new) {
            h = PyObject_CallFunctionObjArgs((PyObject *)icx_s.hold_t, account, balance,
                                             reservation, amount, expires, NULL);
        } else {
            const Py_ssize_t offs[5] = {icx_s.h_account, icx_s.h_balance, icx_s.h_res,
                                        icx_s.h_amount, icx_s.h_expires};
            PyObject *const vals[5] = {account, balance, reservation, amount, expires};
            h = icx_fill(icx_s.hold_t, offs, vals, 5);
        }
        if (h == NULL) return NULL;
        t = PyTuple_New(1);
        if (t == NULL) { Py_DECREF(h); return NULL; }
        PyTuple_SET_ITEM(t, 0, h);
        return t;
    }

    /* (Effect(account, balance, amount),) */
    static PyObject *icx_one_effect(PyObject *account, PyObject *balance, PyObject *amount) {
        PyObject *e, *t;
        if (icx_s.api != NULL) {
            e = icx_s.api->effect(account, balance, amount);
        } else if (!icx_s.fast_new) {
            e = PyObject_CallFunctionObjArgs((PyObject *)icx_s.effect_t, account, balance, amount,
                                             NULL);
        } else {
            const Py_ssize_t offs[3] = {icx_s.e_account, icx_s.e_balance, icx_s.e_amount};
            PyObject *const vals[3] = {account, balance, amount};
            e = icx_fill(icx_s.effect_t, offs, vals, 3);
        }
        if (e == NULL) return NULL;
        t = PyTuple_New(1);
        if (t == NULL) { Py_DECREF(e); return NULL; }
        PyTuple_SET_ITEM(t, 0, e);
        return t;
    }

    /* A tuple of n atoms, untracked by the cyclic GC at once: it can be part of no cycle (CPython
       would untrack it at its first collection; doing it now keeps young-generation passes from
       walking the idempotency cache and the expiry heap). Steals the references in vals. */
    static PyObject *icx_atoms(PyObject **vals, int n) {
        PyObject *t = PyTuple_New(n);
        int i;
        if (t == NULL) {
            for (i = 0; i < n; i++) Py_DECREF(vals[i]);
            return NULL;
        }
        for (i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, vals[i]);
        PyObject_GC_UnTrack(t);
        return t;
    }

    /* heapq.heappush(heap, item) for an (expiry us, ...) entry: append, and when the parent's
       expiry is smaller (the usual case: expiries mostly grow) the heap property already holds,
       which is where heapq's sift would stop too (tuples compare by their first item when those
       differ); anything else goes through heapq itself. Steals item. */
    static int icx_heap_push(PyObject *heap, PyObject *item, long long exp_us) {
        Py_ssize_t n;
        PyObject *parent, *r;
        long long pexp;
        if (PyList_CheckExact(heap)) {
            n = PyList_GET_SIZE(heap);
            if (n == 0) goto append;
            parent = PyList_GET_ITEM(heap, (n - 1) >> 1);
            if (PyTuple_CheckExact(parent) && PyTuple_GET_SIZE(parent) > 0
                    && icx_ll(PyTuple_GET_ITEM(parent, 0), &pexp) && pexp < exp_us)
                goto append;
        }
        r = PyObject_CallFunctionObjArgs(icx_s.heappush, heap, item, NULL);
        Py_DECREF(item);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    append:
        n = PyList_Append(heap, item);
        Py_DECREF(item);
        return n;
    }

    /* The account of an op, its cache dicts checked, the key known to be in neither or the
       epoch rotated as the reference does when it remembers a result. NULL: ask the reference
       (or an error is set). *ops_out: the current cache dict (borrowed). */
    static PyObject *icx_account(PyObject *store, PyObject *key, PyObject *account, double now,
                                 PyObject **ops_out) {
        PyObject *accounts, *acct, *ops, *old, *kept, *ep, *sep, *ep_end_o, *r;
        long long a, b;
        double ep_end;
        int c, rotate;
        if (!icx_s.fast_state || !PyUnicode_CheckExact(key)) return NULL;
        if (Py_TYPE(store) != icx_s.store_t && !PyObject_TypeCheck(store, icx_s.store_t))
            return NULL;
        accounts = ICX_SLOT(store, icx_s.s_accounts);
        if (accounts == NULL || !PyDict_CheckExact(accounts)) return NULL;
        acct = icx_get(accounts, account);
        if (acct == NULL || Py_TYPE(acct) != icx_s.acct_t) return NULL;
        ops = ICX_SLOT(acct, icx_s.a_ops);
        old = ICX_SLOT(acct, icx_s.a_old);
        if (ops == NULL || old == NULL || !PyDict_CheckExact(ops) || !PyDict_CheckExact(old))
            return NULL;
        if (PyDict_GET_SIZE(old)) {
            c = PyDict_Contains(old, key);
            if (c != 0) { if (c < 0) PyErr_Clear(); return NULL; }  /* a replay: the reference */
        }
        /* the kept top-up keys (rare: usually empty) */
        kept = ICX_SLOT(acct, icx_s.a_kept);
        if (kept == NULL || !PyDict_CheckExact(kept)) return NULL;
        if (PyDict_GET_SIZE(kept)) {
            c = PyDict_Contains(kept, key);
            if (c != 0) { if (c < 0) PyErr_Clear(); return NULL; }
        }
        ep = ICX_SLOT(acct, icx_s.a_epoch);
        sep = ICX_SLOT(store, icx_s.s_epoch);
        ep_end_o = ICX_SLOT(store, icx_s.s_ep_end);
        if (ep == NULL || sep == NULL || ep_end_o == NULL || !PyFloat_CheckExact(ep_end_o))
            return NULL;
        ep_end = PyFloat_AS_DOUBLE(ep_end_o);
        if (ep == sep) rotate = 0;
        else if (icx_ll(ep, &a) && icx_ll(sep, &b)) rotate = a != b;
        else return NULL;
        if (rotate || now >= ep_end) {
            /* a new retention epoch (once per epoch per account): rotate the caches as the
               reference does when it remembers a result, after checking the key is not cached */
            c = PyDict_Contains(ops, key);
            if (c != 0) { if (c < 0) PyErr_Clear(); return NULL; }
            {
                PyObject *nowo = PyFloat_FromDouble(now);
                if (nowo == NULL) return NULL;
                r = PyObject_CallMethodObjArgs(store, icx_s.rotate_name, acct, nowo, NULL);
                Py_DECREF(nowo);
            }
            if (r == NULL) return NULL;  /* the error propagates */
            Py_DECREF(r);
            ops = ICX_SLOT(acct, icx_s.a_ops);
            old = ICX_SLOT(acct, icx_s.a_old);
            if (ops == NULL || old == NULL || !PyDict_CheckExact(ops) || !PyDict_CheckExact(old))
                return NULL;
        }
        *ops_out = ops;
        return acct;
    }

    /* The balance's (amount, reserved, credit_limit) as C integers; NULL: ask the reference. */
    static PyObject *icx_balance(PyObject *acct, PyObject *balance, long long *cur,
                                 long long *reserved, long long *cl) {
        PyObject *balances = ICX_SLOT(acct, icx_s.a_balances), *bal, *v;
        if (balances == NULL || !PyDict_CheckExact(balances)) return NULL;
        bal = icx_get(balances, balance);
        if (bal == NULL || Py_TYPE(bal) != icx_s.bal_t) return NULL;
        if ((v = ICX_SLOT(bal, icx_s.b_amount)) == NULL || !icx_ll(v, cur)) return NULL;
        if ((v = ICX_SLOT(bal, icx_s.b_reserved)) == NULL || !icx_ll(v, reserved)) return NULL;
        if ((v = ICX_SLOT(bal, icx_s.b_cl)) == NULL || !icx_ll(v, cl)) return NULL;
        return bal;
    }

    /* Whether this op took `available` from at/above the low threshold to below it; -1: the
       threshold is not a C integer (ask the reference). */
    static inline int icx_low(PyObject *bal, long long before, long long after) {
        PyObject *low = ICX_SLOT(bal, icx_s.b_low);
        long long lowv;
        if (low == NULL) return -1;
        if (low == Py_None) return 0;
        if (!icx_ll(low, &lowv)) return -1;
        return before >= lowv && lowv > after;
    }

    /* Twin of MemoryStore._reserve_py, common path only (see the file header). */
    static PyObject *icx_reserve(PyObject *store, PyObject *key, PyObject *account,
                                 PyObject *balance, PyObject *reservation, PyObject *amount,
                                 double ttl, double now) {
        PyObject *acct, *ops, *bal, *exp, *resd, *p;
        PyObject *exp_obj = NULL, *expires = NULL, *after_obj = NULL, *cur_obj, *entry = NULL;
        PyObject *fresh = NULL, *reserved_obj = NULL, *heap_item = NULL, *holds = NULL;
        PyObject *result = NULL, *lowo, *v[11];
        long long amt, cur, reserved, cl, before, after, exp_us, bexp;
        int low;
        if (!icx_amount(amount, &amt)) return NULL;
        acct = icx_account(store, key, account, now, &ops);
        if (acct == NULL) return NULL;
        bal = icx_balance(acct, balance, &cur, &reserved, &cl);
        if (bal == NULL) return NULL;
        exp = ICX_SLOT(bal, icx_s.b_exp);
        if (exp == NULL) return NULL;
        if (exp != Py_None && (!icx_ll(exp, &bexp) || bexp <= (long long)rint(now * 1000000.0)))
            return NULL;  /* expired (or an odd expiry): the reference answers */
        resd = ICX_SLOT(bal, icx_s.b_res);
        if (resd == NULL || !PyDict_CheckExact(resd)) return NULL;
        before = cur - reserved + cl;
        if (amt > before) return NULL;  /* insufficient or partial: the reference */
        after = before - amt;
        low = icx_low(bal, before, after);
        if (low < 0) return NULL;
        lowo = low ? Py_True : Py_False;
        cur_obj = ICX_SLOT(bal, icx_s.b_amount);
        exp_us = (long long)rint((now + ttl) * 1000000.0);
        if ((exp_obj = PyLong_FromLongLong(exp_us)) == NULL) goto error;
        if ((expires = PyFloat_FromDouble((double)exp_us / 1000000.0)) == NULL) goto error;
        if ((after_obj = PyLong_FromLongLong(after)) == NULL) goto error;
        if ((reserved_obj = PyLong_FromLongLong(reserved + amt)) == NULL) goto error;
        /* the cache entry: (status, granted, balance_after, available_after, low, balance,
           reservation, effect, hold, hold_expires, has_hold) -- charging/store/packing.py */
        v[0] = icx_s.s_ok; v[1] = amount; v[2] = cur_obj; v[3] = after_obj; v[4] = lowo;
        v[5] = balance; v[6] = reservation; v[7] = icx_s.zero; v[8] = amount; v[9] = expires;
        v[10] = Py_True;
        {
            int i;
            for (i = 0; i < 11; i++) Py_INCREF(v[i]);
        }
        if ((entry = icx_atoms(v, 11)) == NULL) goto error;
        /* one lookup both checks the key is new and caches the result; nothing changed yet */
        p = PyDict_SetDefault(ops, key, entry);
        if (p == NULL) goto error;
        if (p != entry) { Py_DECREF(entry); entry = NULL; goto fallback; }
        Py_CLEAR(entry);
        /* from here on the op happens */
        if ((fresh = PyList_New(2)) == NULL) goto error;
        Py_INCREF(amount); PyList_SET_ITEM(fresh, 0, amount);
        Py_INCREF(exp_obj); PyList_SET_ITEM(fresh, 1, exp_obj);
        p = PyDict_SetDefault(resd, reservation, fresh);
        if (p == NULL) goto error;
        if (p != fresh) {  /* re-reserve: add to the hold, refresh its expiry */
            PyObject *old_amt, *sum;
            if (!PyList_CheckExact(p) || PyList_GET_SIZE(p) != 2) {
                /* not the store's own [amount, expiry]: generic item access as the reference */
                PyObject *o0 = PySequence_GetItem(p, 0);
                if (o0 == NULL) goto error;
                sum = PyNumber_Add(o0, amount);
                Py_DECREF(o0);
                if (sum == NULL) goto error;
                if (PySequence_SetItem(p, 0, sum) < 0) { Py_DECREF(sum); goto error; }
                Py_DECREF(sum);
                if (PySequence_SetItem(p, 1, exp_obj) < 0) goto error;
            } else {
                old_amt = PyList_GET_ITEM(p, 0);
                sum = PyNumber_Add(old_amt, amount);
                if (sum == NULL) goto error;
                PyList_SET_ITEM(p, 0, sum);
                Py_DECREF(old_amt);
                Py_INCREF(exp_obj);
                old_amt = PyList_GET_ITEM(p, 1);
                PyList_SET_ITEM(p, 1, exp_obj);
                Py_DECREF(old_amt);
            }
        }
        Py_CLEAR(fresh);
        p = ICX_SLOT(bal, icx_s.b_reserved);
        ICX_SLOT(bal, icx_s.b_reserved) = reserved_obj;
        reserved_obj = NULL;
        Py_XDECREF(p);
        p = ICX_SLOT(store, icx_s.s_heap);
        if (p == NULL) { PyErr_SetString(PyExc_AttributeError, "_heap"); goto error; }
        v[0] = exp_obj; v[1] = account; v[2] = balance; v[3] = reservation;
        Py_INCREF(exp_obj); Py_INCREF(account); Py_INCREF(balance); Py_INCREF(reservation);
        if ((heap_item = icx_atoms(v, 4)) == NULL) goto error;
        if (icx_heap_push(p, heap_item, exp_us) < 0) { heap_item = NULL; goto error; }
        heap_item = NULL;
        if ((holds = icx_one_hold(account, balance, reservation, amount, expires)) == NULL)
            goto error;
        result = icx_new_result(key, icx_s.empty, holds, amount, cur_obj, after_obj, lowo,
                                low ? icx_s.low_events : icx_s.empty);
        /* fall through: release the temporaries (result is NULL on error) */
        Py_DECREF(holds);
        Py_DECREF(exp_obj);
        Py_DECREF(expires);
        Py_DECREF(after_obj);
        return result;
    fallback:
    error:
        Py_XDECREF(exp_obj);
        Py_XDECREF(expires);
        Py_XDECREF(after_obj);
        Py_XDECREF(reserved_obj);
        Py_XDECREF(entry);
        Py_XDECREF(fresh);
        Py_XDECREF(heap_item);
        return NULL;
    }

    /* Twin of MemoryStore._commit_py, common path only (see the file header). */
    static PyObject *icx_commit(PyObject *store, PyObject *key, PyObject *account,
                                PyObject *balance, PyObject *reservation, PyObject *used,
                                double now, PyObject *release_rest) {
        PyObject *acct, *ops, *bal, *resd, *res, *p, *lowo, *v[11];
        PyObject *hexp = NULL, *amount_after = NULL, *after_obj = NULL, *neg_debit = NULL;
        PyObject *neg_freed = NULL, *debit_obj = NULL, *entry = NULL, *reserved_obj = NULL;
        PyObject *left = NULL, *holds = NULL, *effects = NULL, *result = NULL;
        long long u, held, cur, reserved, cl, before, debit, freed, after, rexp;
        int rr, low, has_hold, i;
        if (!icx_amount(used, &u)) return NULL;
        acct = icx_account(store, key, account, now, &ops);
        if (acct == NULL) return NULL;
        bal = icx_balance(acct, balance, &cur, &reserved, &cl);
        if (bal == NULL) return NULL;
        resd = ICX_SLOT(bal, icx_s.b_res);
        if (resd == NULL || !PyDict_CheckExact(resd)) return NULL;
        res = icx_get(resd, reservation);
        if (res == NULL || !PyList_CheckExact(res) || PyList_GET_SIZE(res) != 2) return NULL;
        if (!icx_ll(PyList_GET_ITEM(res, 0), &held)) return NULL;
        if (release_rest == Py_True) rr = 1;
        else if (release_rest == Py_False) rr = 0;
        else if ((rr = PyObject_IsTrue(release_rest)) < 0) return NULL;  /* error propagates */
        before = cur - reserved + cl;
        /* what may be debited: the hold plus whatever else is available (credit limit) */
        debit = u <= held + before ? u : held + before;
        if (rr) {
            freed = held;
            hexp = Py_None;
            Py_INCREF(hexp);
        } else {
            if (!icx_ll(PyList_GET_ITEM(res, 1), &rexp)) return NULL;
            freed = debit < held ? debit : held;
            /* exact: rexp < 2**53 and 1e6 are doubles, IEEE division rounds correctly, as
               int / int does in Python */
            if ((hexp = PyFloat_FromDouble((double)rexp / 1000000.0)) == NULL) return NULL;
        }
        after = before + freed - debit;
        low = icx_low(bal, before, after);
        if (low < 0) { Py_DECREF(hexp); return NULL; }
        lowo = low ? Py_True : Py_False;
        has_hold = freed != 0 || rr;
        if ((amount_after = PyLong_FromLongLong(cur - debit)) == NULL) goto error;
        if ((after_obj = PyLong_FromLongLong(after)) == NULL) goto error;
        if ((neg_debit = PyLong_FromLongLong(-debit)) == NULL) goto error;
        if ((neg_freed = PyLong_FromLongLong(-freed)) == NULL) goto error;
        if ((reserved_obj = PyLong_FromLongLong(reserved - freed)) == NULL) goto error;
        if (debit == u) { debit_obj = used; Py_INCREF(used); }  /* the caller's int: all covered */
        else if ((debit_obj = PyLong_FromLongLong(debit)) == NULL) goto error;
        if (!rr && (left = PyLong_FromLongLong(held - freed)) == NULL) goto error;
        v[0] = icx_s.s_ok; v[1] = debit_obj; v[2] = amount_after; v[3] = after_obj; v[4] = lowo;
        v[5] = balance; v[6] = reservation; v[7] = neg_debit; v[8] = neg_freed; v[9] = hexp;
        v[10] = has_hold ? Py_True : Py_False;
        for (i = 0; i < 11; i++) Py_INCREF(v[i]);
        if ((entry = icx_atoms(v, 11)) == NULL) goto error;
        /* one lookup both checks the key is new and caches the result; nothing changed yet */
        p = PyDict_SetDefault(ops, key, entry);
        if (p == NULL) goto error;
        if (p != entry) goto error;  /* a replay: no error set, so the reference answers */
        Py_CLEAR(entry);
        /* from here on the op happens */
        if (rr) {
            if (PyDict_DelItem(resd, reservation) < 0) goto error;
        } else {
            p = PyList_GET_ITEM(res, 0);
            PyList_SET_ITEM(res, 0, left);
            left = NULL;
            Py_DECREF(p);
        }
        p = ICX_SLOT(bal, icx_s.b_reserved);
        ICX_SLOT(bal, icx_s.b_reserved) = reserved_obj;
        reserved_obj = NULL;
        Py_XDECREF(p);
        p = ICX_SLOT(bal, icx_s.b_amount);
        Py_INCREF(amount_after);
        ICX_SLOT(bal, icx_s.b_amount) = amount_after;
        Py_XDECREF(p);
        if (has_hold) {
            if ((holds = icx_one_hold(account, balance, reservation, neg_freed, hexp)) == NULL)
                goto error;
        } else {
            holds = icx_s.empty;
            Py_INCREF(holds);
        }
        if (debit) {
            if ((effects = icx_one_effect(account, balance, neg_debit)) == NULL) goto error;
        } else {
            effects = icx_s.empty;
            Py_INCREF(effects);
        }
        result = icx_new_result(key, effects, holds, debit_obj, amount_after, after_obj, lowo,
                                low ? icx_s.low_events : icx_s.empty);
    error:  /* also the normal exit: result is NULL unless the op completed */
        Py_XDECREF(hexp);
        Py_XDECREF(amount_after);
        Py_XDECREF(after_obj);
        Py_XDECREF(neg_debit);
        Py_XDECREF(neg_freed);
        Py_XDECREF(debit_obj);
        Py_XDECREF(entry);
        Py_XDECREF(reserved_obj);
        Py_XDECREF(left);
        Py_XDECREF(holds);
        Py_XDECREF(effects);
        return result;
    }

    /* The ops as the module exposes them: the C path, else the Python reference (charging/store/
       memory.py MemoryStore._reserve_py / _commit_py) with the same arguments. */
    static PyObject *icx_reserve_any(PyObject *store, PyObject *key, PyObject *account,
                                     PyObject *balance, PyObject *reservation, PyObject *amount,
                                     double ttl, double now, PyObject *partial) {
        PyObject *r = icx_reserve(store, key, account, balance, reservation, amount, ttl, now);
        PyObject *args[9], *ttlo, *nowo;
        if (r != NULL || PyErr_Occurred()) return r;
        if ((ttlo = PyFloat_FromDouble(ttl)) == NULL) return NULL;
        if ((nowo = PyFloat_FromDouble(now)) == NULL) { Py_DECREF(ttlo); return NULL; }
        args[0] = store; args[1] = key; args[2] = account; args[3] = balance;
        args[4] = reservation; args[5] = amount; args[6] = ttlo; args[7] = nowo; args[8] = partial;
        r = PyObject_Vectorcall(icx_s.reserve_ref, args, 9, NULL);
        Py_DECREF(ttlo);
        Py_DECREF(nowo);
        return r;
    }

    static PyObject *icx_commit_any(PyObject *store, PyObject *key, PyObject *account,
                                    PyObject *balance, PyObject *reservation, PyObject *used,
                                    double now, PyObject *release_rest) {
        PyObject *r = icx_commit(store, key, account, balance, reservation, used, now,
                                 release_rest);
        PyObject *args[8], *nowo;
        if (r != NULL || PyErr_Occurred()) return r;
        if ((nowo = PyFloat_FromDouble(now)) == NULL) return NULL;
        args[0] = store; args[1] = key; args[2] = account; args[3] = balance;
        args[4] = reservation; args[5] = used; args[6] = nowo; args[7] = release_rest;
        r = PyObject_Vectorcall(icx_s.commit_ref, args, 8, NULL);
        Py_DECREF(nowo);
        return r;
    }

    /* MemoryStore.reserve / .commit when compiled: method descriptors whose C function takes
       the arguments straight from the caller's vector (METH_FASTCALL | METH_KEYWORDS, no
       argument tuple, keyword names matched by identity first: they are interned constants in
       the caller's code object). The usual call, `await store.reserve(key, account, balance,
       reservation, amount, ttl=.., now=..[, partial=..])`, is parsed here; any other shape
       (keywords for positional parameters, missing or unknown arguments, a ttl that is not a
       float or an int) goes to the Cython-parsed reserve_ready / commit_ready, which answer or
       raise exactly as before. The answer is an already-complete awaitable (Ready). */
    static PyObject *icx_generic_call(PyObject *func, PyObject *self, PyObject *const *args,
                                      Py_ssize_t nargs, PyObject *kwnames) {
        PyObject *stack[16];
        Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
        if (nargs + nkw + 1 > 16) {
            PyErr_SetString(PyExc_TypeError, "too many arguments");
            return NULL;
        }
        stack[0] = self;
        for (i = 0; i < nargs + nkw; i++) stack[i + 1] = args[i];
        return PyObject_Vectorcall(func, stack, nargs + 1, kwnames);
    }

    static int icx_kw_is(PyObject *name, PyObject *want) {
        return name == want || (PyUnicode_CheckExact(name) && PyUnicode_Compare(name, want) == 0);
    }

    static int icx_double(PyObject *v, double *out) {
        if (PyFloat_CheckExact(v)) { *out = PyFloat_AS_DOUBLE(v); return 1; }
        if (PyLong_CheckExact(v)) {
            *out = PyLong_AsDouble(v);
            if (*out == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
            return 1;
        }
        return 0;
    }

    static PyObject *icx_s_ttl, *icx_s_now, *icx_s_partial, *icx_s_release_rest;
    static PyObject *icx_reserve_generic, *icx_commit_generic;

    static PyObject *icx_reserve_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kwnames) {
        double ttl = 0.0, now = 0.0;
        int have_ttl = 0, have_now = 0;
        PyObject *partial = Py_False, *r;
        Py_ssize_t i, nkw;
        if (nargs != 5 || kwnames == NULL) goto generic;
        nkw = PyTuple_GET_SIZE(kwnames);
        for (i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i), *val = args[5 + i];
            if (icx_kw_is(name, icx_s_ttl) && !have_ttl) {
                if (!icx_double(val, &ttl)) goto generic;
                have_ttl = 1;
            } else if (icx_kw_is(name, icx_s_now) && !have_now) {
                if (!icx_double(val, &now)) goto generic;
                have_now = 1;
            } else if (icx_kw_is(name, icx_s_partial) && partial == Py_False) {
                partial = val;
            } else goto generic;
        }
        if (!have_ttl || !have_now) goto generic;
        r = icx_reserve_any(self, args[0], args[1], args[2], args[3], args[4], ttl, now, partial);
        return r == NULL ? NULL : icx_ready_wrap(r);
    generic:
        return icx_generic_call(icx_reserve_generic, self, args, nargs, kwnames);
    }

    static PyObject *icx_commit_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames) {
        double now = 0.0;
        int have_now = 0, have_rr = 0;
        PyObject *release_rest = Py_True, *r;
        Py_ssize_t i, nkw;
        if (nargs != 5 || kwnames == NULL) goto generic;
        nkw = PyTuple_GET_SIZE(kwnames);
        for (i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i), *val = args[5 + i];
            if (icx_kw_is(name, icx_s_now) && !have_now) {
                if (!icx_double(val, &now)) goto generic;
                have_now = 1;
            } else if (icx_kw_is(name, icx_s_release_rest) && !have_rr) {
                release_rest = val;
                have_rr = 1;
            } else goto generic;
        }
        if (!have_now) goto generic;
        r = icx_commit_any(self, args[0], args[1], args[2], args[3], args[4], now, release_rest);
        return r == NULL ? NULL : icx_ready_wrap(r);
    generic:
        return icx_generic_call(icx_commit_generic, self, args, nargs, kwnames);
    }

    /* MemoryStore.reserve_sync / .commit_sync when compiled (the ledger's synchronous path,
       cf. charging/ledger/sync_ops.py): all arguments positional, parsed here; any other
       shape goes to the Cython-parsed reserve / commit. */
    static PyObject *icx_reserve_sync_generic, *icx_commit_sync_generic;

    static PyObject *icx_reserve_sync_method(PyObject *self, PyObject *const *args,
                                             Py_ssize_t nargs, PyObject *kwnames) {
        double ttl, now;
        if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames)) || (nargs != 7 && nargs != 8))
            goto generic;
        if (!icx_double(args[5], &ttl) || !icx_double(args[6], &now)) goto generic;
        return icx_reserve_any(self, args[0], args[1], args[2], args[3], args[4], ttl, now,
                               nargs == 8 ? args[7] : Py_False);
    generic:
        return icx_generic_call(icx_reserve_sync_generic, self, args, nargs, kwnames);
    }

    static PyObject *icx_commit_sync_method(PyObject *self, PyObject *const *args,
                                            Py_ssize_t nargs, PyObject *kwnames) {
        double now;
        if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames)) || (nargs != 6 && nargs != 7))
            goto generic;
        if (!icx_double(args[5], &now)) goto generic;
        return icx_commit_any(self, args[0], args[1], args[2], args[3], args[4], now,
                              nargs == 7 ? args[6] : Py_True);
    generic:
        return icx_generic_call(icx_commit_sync_generic, self, args, nargs, kwnames);
    }

    static PyMethodDef icx_reserve_sync_def = {"reserve_sync",
        (PyCFunction)(void (*)(void))icx_reserve_sync_method, METH_FASTCALL | METH_KEYWORDS,
        "reserve_sync(key, account, balance, reservation, amount, ttl, now, partial=False): "
        "the synchronous op (compiled), answers the OpResult."};
    static PyMethodDef icx_commit_sync_def = {"commit_sync",
        (PyCFunction)(void (*)(void))icx_commit_sync_method, METH_FASTCALL | METH_KEYWORDS,
        "commit_sync(key, account, balance, reservation, used, now, release_rest=True): "
        "the synchronous op (compiled), answers the OpResult."};

    static PyMethodDef icx_reserve_def = {"reserve", (PyCFunction)(void (*)(void))icx_reserve_method,
        METH_FASTCALL | METH_KEYWORDS,
        "reserve(key, account, balance, reservation, amount, *, ttl, now, partial=False): "
        "BalanceStore.reserve (compiled), an already-complete awaitable holding the OpResult."};
    static PyMethodDef icx_commit_def = {"commit", (PyCFunction)(void (*)(void))icx_commit_method,
        METH_FASTCALL | METH_KEYWORDS,
        "commit(key, account, balance, reservation, used, *, now, release_rest=True): "
        "BalanceStore.commit (compiled), an already-complete awaitable holding the OpResult."};

    /* Descriptors for MemoryStore (type t): what `store.reserve` / `store.commit` /
       `store.reserve_sync` / `store.commit_sync` resolve to. */
    static PyObject *icx_methods(PyObject *t, PyObject *reserve_generic, PyObject *commit_generic,
                                 PyObject *reserve_sync_generic, PyObject *commit_sync_generic) {
        PyObject *a, *b, *c, *d;
        if (!PyType_Check(t)) { PyErr_SetString(PyExc_TypeError, "a type"); return NULL; }
        if (icx_s_ttl == NULL) {
            icx_s_ttl = PyUnicode_InternFromString("ttl");
            icx_s_now = PyUnicode_InternFromString("now");
            icx_s_partial = PyUnicode_InternFromString("partial");
            icx_s_release_rest = PyUnicode_InternFromString("release_rest");
            if (!icx_s_ttl || !icx_s_now || !icx_s_partial || !icx_s_release_rest) return NULL;
        }
        Py_INCREF(reserve_generic);
        Py_XSETREF(icx_reserve_generic, reserve_generic);
        Py_INCREF(commit_generic);
        Py_XSETREF(icx_commit_generic, commit_generic);
        if ((a = PyDescr_NewMethod((PyTypeObject *)t, &icx_reserve_def)) == NULL) return NULL;
        if ((b = PyDescr_NewMethod((PyTypeObject *)t, &icx_commit_def)) == NULL) {
            Py_DECREF(a);
            return NULL;
        }
        Py_INCREF(reserve_sync_generic);
        Py_XSETREF(icx_reserve_sync_generic, reserve_sync_generic);
        Py_INCREF(commit_sync_generic);
        Py_XSETREF(icx_commit_sync_generic, commit_sync_generic);
        c = PyDescr_NewMethod((PyTypeObject *)t, &icx_reserve_sync_def);
        d = c ? PyDescr_NewMethod((PyTypeObject *)t, &icx_commit_sync_def) : NULL;
        if (d == NULL) {
            Py_DECREF(a);
            Py_DECREF(b);
            Py_XDECREF(c);
            return NULL;
        }
        return Py_BuildValue("(NNNN)", a, b, c, d);
    }
    """
    ctypedef struct IcxStore:
        int fast_new, fast_state
        PyTypeObject *store_t
        PyTypeObject *acct_t
        PyTypeObject *bal_t
        PyTypeObject *result_t
        PyTypeObject *hold_t
        PyTypeObject *effect_t
        Py_ssize_t s_accounts, s_heap, s_epoch, s_ep_end
        Py_ssize_t a_balances, a_ops, a_old, a_epoch, a_kept
        Py_ssize_t b_amount, b_reserved, b_cl, b_exp, b_low, b_res
        Py_ssize_t r_key, r_status, r_effects, r_holds, r_granted, r_bal, r_avail, r_replayed
        Py_ssize_t r_low, r_events
        Py_ssize_t h_account, h_balance, h_res, h_amount, h_expires
        Py_ssize_t e_account, e_balance, e_amount
        PyObject *ok
        PyObject *low_events
        PyObject *empty
        PyObject *s_ok
        PyObject *zero
        PyObject *heappush
        PyObject *rotate_name
        PyObject *reserve_ref
        PyObject *commit_ref
        void *api
    IcxStore icx_s
    object icx_reserve_any(object store, object key, object account, object balance,
                           object reservation, object amount, double ttl, double now,
                           object partial)
    object icx_commit_any(object store, object key, object account, object balance,
                          object reservation, object used, double now, object release_rest)
    object icx_methods(object t, object reserve_generic, object commit_generic,
                       object reserve_sync_generic, object commit_sync_generic)

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

# The objects icx_s points at are kept alive here (icx_s holds borrowed pointers).
cdef list _keep = []
cdef list _keep_api = []


cdef Py_ssize_t _offset(cls, str name) except -1:
    """The C offset of slot *name* of *cls* (its member descriptor), or raise TypeError."""
    d = cls.__dict__.get(name)
    if type(d).__name__ != "member_descriptor" or d.__objclass__ is not cls:
        raise TypeError(f"{cls.__name__}.{name} is not a slot of that class")
    return (<PyMemberDescrObject*>d).d_member.offset


def init(op_result, hold, effect, ok, low_events, reserve_py, commit_py, fast_new=False,
         account_cls=None, balance_cls=None, store_cls=None, results_api=None):
    """Bind the classes and the Python reference (called once by memory.py).

    *fast_new*: the caller checked that the three result classes are slots dataclasses with
    exactly the fields used here, so objects may be allocated and filled slot by slot.
    *account_cls* / *balance_cls*: the store's ``_Account`` / ``_Balance``; when given (and all
    their fields used here are slots) state is read and written at the slots' offsets;
    *store_cls*: MemoryStore, whose ``_accounts``/``_heap``/``_epoch``/``_ep_end`` slots are
    read the same way (for instances of it and its subclasses). Without them every op runs
    the reference. *results_api*: ``cython_ext.store_results._C_API`` when the three result
    classes are that module's (base.py selected them): results are built by its C
    constructors. Returns (fast_new, fast_state) as enabled."""
    icx_s.fast_new = 0
    icx_s.fast_state = 0
    icx_s.api = NULL
    if results_api is not None:
        icx_s.api = PyCapsule_GetPointer(results_api, b"cython_ext.store_results._C_API")
        _keep_api[:] = [results_api]
    _keep[:] = [op_result, hold, effect, ok, low_events, reserve_py, commit_py, (), "ok", 0,
                heappush, "_rotate"]
    icx_s.result_t = <PyTypeObject*>op_result
    icx_s.hold_t = <PyTypeObject*>hold
    icx_s.effect_t = <PyTypeObject*>effect
    icx_s.ok = <PyObject*>ok
    icx_s.low_events = <PyObject*>low_events
    icx_s.reserve_ref = <PyObject*>reserve_py
    icx_s.commit_ref = <PyObject*>commit_py
    icx_s.empty = <PyObject*>_keep[7]
    icx_s.s_ok = <PyObject*>_keep[8]
    icx_s.zero = <PyObject*>_keep[9]
    icx_s.heappush = <PyObject*>heappush
    icx_s.rotate_name = <PyObject*>_keep[11]
    if fast_new:
        try:
            for c in (op_result, hold, effect):
                if c.__new__ is not object.__new__:
                    raise TypeError(f"{c.__name__} overrides __new__")
            icx_s.r_key = _offset(op_result, "key")
            icx_s.r_status = _offset(op_result, "status")
            icx_s.r_effects = _offset(op_result, "effects")
            icx_s.r_holds = _offset(op_result, "holds")
            icx_s.r_granted = _offset(op_result, "granted")
            icx_s.r_bal = _offset(op_result, "balance_after")
            icx_s.r_avail = _offset(op_result, "available_after")
            icx_s.r_replayed = _offset(op_result, "replayed")
            icx_s.r_low = _offset(op_result, "low_balance")
            icx_s.r_events = _offset(op_result, "events")
            icx_s.h_account = _offset(hold, "account")
            icx_s.h_balance = _offset(hold, "balance")
            icx_s.h_res = _offset(hold, "reservation")
            icx_s.h_amount = _offset(hold, "amount")
            icx_s.h_expires = _offset(hold, "expires_at")
            icx_s.e_account = _offset(effect, "account")
            icx_s.e_balance = _offset(effect, "balance")
            icx_s.e_amount = _offset(effect, "amount")
            icx_s.fast_new = 1
        except TypeError:
            icx_s.fast_new = 0
    if account_cls is not None and balance_cls is not None and store_cls is not None:
        try:
            icx_s.s_accounts = _offset(store_cls, "_accounts")
            icx_s.s_heap = _offset(store_cls, "_heap")
            icx_s.s_epoch = _offset(store_cls, "_epoch")
            icx_s.s_ep_end = _offset(store_cls, "_ep_end")
            icx_s.a_balances = _offset(account_cls, "balances")
            icx_s.a_ops = _offset(account_cls, "ops")
            icx_s.a_old = _offset(account_cls, "old")
            icx_s.a_epoch = _offset(account_cls, "epoch")
            icx_s.a_kept = _offset(account_cls, "kept")
            icx_s.b_amount = _offset(balance_cls, "amount")
            icx_s.b_reserved = _offset(balance_cls, "reserved")
            icx_s.b_cl = _offset(balance_cls, "credit_limit")
            icx_s.b_exp = _offset(balance_cls, "exp_us")
            icx_s.b_low = _offset(balance_cls, "low")
            icx_s.b_res = _offset(balance_cls, "res")
            _keep.extend([store_cls, account_cls, balance_cls])
            icx_s.store_t = <PyTypeObject*>store_cls
            icx_s.acct_t = <PyTypeObject*>account_cls
            icx_s.bal_t = <PyTypeObject*>balance_cls
            icx_s.fast_state = 1
        except TypeError:
            icx_s.fast_state = 0
    return bool(icx_s.fast_new), bool(icx_s.fast_state)


def fast_paths():
    """(results filled slot by slot, state accessed at slot offsets): what init() enabled."""
    return bool(icx_s.fast_new), bool(icx_s.fast_state)


def compiled_results():
    """Whether results are built by cython_ext.store_results' C constructors."""
    return icx_s.api != NULL


def reserve(store, key, account, balance, reservation, amount, double ttl, double now,
            partial=False):
    """Twin of MemoryStore._reserve_py (same arguments, same result, same state change)."""
    return icx_reserve_any(store, key, account, balance, reservation, amount, ttl, now, partial)


def commit(store, key, account, balance, reservation, used, double now, release_rest=True):
    """Twin of MemoryStore._commit_py (same arguments, same result, same state change)."""
    return icx_commit_any(store, key, account, balance, reservation, used, now, release_rest)


def reserve_ready(store, key, account, balance, reservation, amount, *, double ttl,
                  double now, partial=False):
    """MemoryStore.reserve (the BalanceStore coroutine method) when compiled, any call shape:
    the op runs now, and the answer comes back as an already-complete awaitable
    (:data:`Ready`): ``await store.reserve(...)`` gives the same result as the reference
    coroutine, without building and running a coroutine per call. Errors (ValueError for a
    bad amount) raise at the call, which for ``await store.reserve(...)`` is the same place.
    The usual call shape is parsed in C first (see :func:`methods`)."""
    return icx_ready_new(icx_reserve_any(store, key, account, balance, reservation, amount,
                                         ttl, now, partial))


def commit_ready(store, key, account, balance, reservation, used, *, double now,
                 release_rest=True):
    """MemoryStore.commit when compiled: see :func:`reserve_ready`."""
    return icx_ready_new(icx_commit_any(store, key, account, balance, reservation, used, now,
                                        release_rest))


def methods(store_cls):
    """(reserve, commit, reserve_sync, commit_sync) method descriptors for *store_cls*
    (MemoryStore): the ops with the usual call shape parsed in C from the caller's argument
    vector; any other shape is handed to :func:`reserve_ready` / :func:`commit_ready` /
    :func:`reserve` / :func:`commit`."""
    return icx_methods(store_cls, reserve_ready, commit_ready, reserve, commit)
