# cython: language_level=3
"""Compiled twins of the store's result classes: ``Effect``, ``Hold``, ``OpResult``.

The reference is charging/store/base.py (slots dataclasses, ``unsafe_hash=True``): same
constructor (positional or keyword, same defaults), same fields (read-only here: base.py
says never assign to one), same ``ok`` property, and dataclass semantics for ``==`` (equal
when the class is the same and the fields are equal, else NotImplemented), ``hash`` (of the
field tuple) and ``repr``. base.py selects these when the extension is built (one selection
point, ``cython_ext.load``); tests/charging/store/test_result_classes.py checks both agree.

Why (callgrind, per awaited reserve+commit pair of the embedded store): the five result
objects a pair answers with cost ~2.5k instructions as heap-type slots instances -- a generic
allocation (malloc + memset + GC link) and ``subtype_dealloc`` (GC untrack, trashcan, a walk
over the slot descriptors) each -- about a quarter of the pair. As extension types they come
from a free list and are freed by a field-by-field decref:

* ``@cython.freelist``: instances are recycled without malloc/free;
* ``@cython.no_gc``: they hold atoms (str, int, float, bool, None, an OpStatus member) and
  tuples of the other two classes, so they can close no reference cycle, and the cyclic GC
  has no reason to track them (nor do millions of cached results cost a collection anything);
* :data:`_C_API` (a capsule) hands cython_ext.store_ops the C constructors, which fill the
  fields without parsing arguments.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_New
from cpython.ref cimport Py_INCREF

cdef extern from *:
    """
    typedef struct {
        PyObject *(*result)(PyObject *key, PyObject *status, PyObject *effects,
                            PyObject *holds, PyObject *granted, PyObject *bal_after,
                            PyObject *avail_after, PyObject *replayed, PyObject *low,
                            PyObject *events);
        PyObject *(*hold)(PyObject *account, PyObject *balance, PyObject *reservation,
                          PyObject *amount, PyObject *expires);
        PyObject *(*effect)(PyObject *account, PyObject *balance, PyObject *amount);
    } IcxResultsAPI;
    typedef PyObject *(*result_fn)(PyObject *, PyObject *, PyObject *, PyObject *,
                                   PyObject *, PyObject *, PyObject *, PyObject *,
                                   PyObject *, PyObject *);
    typedef PyObject *(*hold_fn)(PyObject *, PyObject *, PyObject *, PyObject *, PyObject *);
    typedef PyObject *(*effect_fn)(PyObject *, PyObject *, PyObject *);
    """
    ctypedef PyObject *(*result_fn)(PyObject *, PyObject *, PyObject *, PyObject *,
                                    PyObject *, PyObject *, PyObject *, PyObject *,
                                    PyObject *, PyObject *)
    ctypedef PyObject *(*hold_fn)(PyObject *, PyObject *, PyObject *, PyObject *, PyObject *)
    ctypedef PyObject *(*effect_fn)(PyObject *, PyObject *, PyObject *)
    ctypedef struct IcxResultsAPI:
        result_fn result
        hold_fn hold
        effect_fn effect


@cython.no_gc
@cython.freelist(64)
cdef class Effect:
    """A settled money/unit movement (debit negative). Journaled as ``balance_effects``."""

    # dataclasses.fields / replace / asdict / is_dataclass and match statements work as on
    # base.py's dataclass: bind() copies its field table into this dict
    __dataclass_fields__ = {}
    __match_args__ = ("account", "balance", "amount")

    cdef readonly object account
    cdef readonly object balance
    cdef readonly object amount

    def __init__(self, account, balance, amount):
        self.account = account
        self.balance = balance
        self.amount = amount

    def __repr__(self):
        return (f"Effect(account={self.account!r}, balance={self.balance!r}, "
                f"amount={self.amount!r})")

    cdef tuple _t(self):
        return (self.account, self.balance, self.amount)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._t() == (<Effect>other)._t()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._t() != (<Effect>other)._t()

    def __hash__(self):
        return hash(self._t())

    def __reduce__(self):
        return (type(self), self._t())


@cython.no_gc
@cython.freelist(64)
cdef class Hold:
    """A reservation change: ``amount`` > 0 places a hold, < 0 removes (part of) it.

    ``expires_at`` is the reservation's expiry after the change; ``None`` means the reservation
    is gone (committed with release_rest, released, expired). Replaying holds in journal order
    (``apply_record``) rebuilds the reservations exactly.
    """

    # dataclasses.fields / replace / asdict / is_dataclass and match statements work as on
    # base.py's dataclass: bind() copies its field table into this dict
    __dataclass_fields__ = {}
    __match_args__ = ("account", "balance", "reservation", "amount", "expires_at")

    cdef readonly object account
    cdef readonly object balance
    cdef readonly object reservation
    cdef readonly object amount
    cdef readonly object expires_at

    def __init__(self, account, balance, reservation, amount, expires_at):
        self.account = account
        self.balance = balance
        self.reservation = reservation
        self.amount = amount
        self.expires_at = expires_at

    def __repr__(self):
        return (f"Hold(account={self.account!r}, balance={self.balance!r}, "
                f"reservation={self.reservation!r}, amount={self.amount!r}, "
                f"expires_at={self.expires_at!r})")

    cdef tuple _t(self):
        return (self.account, self.balance, self.reservation, self.amount, self.expires_at)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._t() == (<Hold>other)._t()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._t() != (<Hold>other)._t()

    def __hash__(self):
        return hash(self._t())

    def __reduce__(self):
        return (type(self), self._t())


@cython.no_gc
@cython.freelist(64)
cdef class OpResult:
    """What an operation did. The same key always returns the same result."""

    # dataclasses.fields / replace / asdict / is_dataclass and match statements work as on
    # base.py's dataclass: bind() copies its field table into this dict
    __dataclass_fields__ = {}
    __match_args__ = ("key", "status", "effects", "holds", "granted", "balance_after",
                      "available_after", "replayed", "low_balance", "events")

    cdef readonly object key
    cdef readonly object status
    cdef readonly object effects
    cdef readonly object holds
    cdef readonly object granted  # reserve: units held; debit/commit: units debited
    cdef readonly object balance_after  # amount after the op (None when unknown account)
    cdef readonly object available_after
    cdef readonly object replayed
    cdef readonly object low_balance  # this op took the balance below its low threshold
    cdef readonly object events

    def __init__(self, key, status, effects=(), holds=(), granted=0, balance_after=None,
                 available_after=None, replayed=False, low_balance=False, events=()):
        self.key = key
        self.status = status
        self.effects = effects
        self.holds = holds
        self.granted = granted
        self.balance_after = balance_after
        self.available_after = available_after
        self.replayed = replayed
        self.low_balance = low_balance
        self.events = events

    @property
    def ok(self):
        return self.status is _OK

    def __repr__(self):
        return (f"OpResult(key={self.key!r}, status={self.status!r}, "
                f"effects={self.effects!r}, holds={self.holds!r}, granted={self.granted!r}, "
                f"balance_after={self.balance_after!r}, "
                f"available_after={self.available_after!r}, replayed={self.replayed!r}, "
                f"low_balance={self.low_balance!r}, events={self.events!r})")

    cdef tuple _t(self):
        return (self.key, self.status, self.effects, self.holds, self.granted,
                self.balance_after, self.available_after, self.replayed, self.low_balance,
                self.events)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._t() == (<OpResult>other)._t()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._t() != (<OpResult>other)._t()

    def __hash__(self):
        return hash(self._t())

    def __reduce__(self):
        return (type(self), self._t())


cdef object _OK = None


def bind(ok, effect_ref=None, hold_ref=None, result_ref=None):
    """Tell the module which status means OK (``OpStatus.OK``) and which dataclasses these
    classes twin (base.py calls this once; cython_ext imports nothing from charging: the
    dependency rule). Their field tables are copied, so the ``dataclasses`` functions work on
    these classes as on the reference."""
    global _OK
    _OK = ok
    for cls, ref in ((Effect, effect_ref), (Hold, hold_ref), (OpResult, result_ref)):
        if ref is not None:
            if tuple(ref.__dataclass_fields__) != FIELDS[cls.__name__]:
                raise TypeError(f"{ref.__name__}: fields differ from the compiled twin's")
            table = cls.__dataclass_fields__
            table.clear()
            table.update(ref.__dataclass_fields__)


# Field names in constructor order, as dataclasses.fields() gives them for base.py's classes.
FIELDS = {
    "Effect": ("account", "balance", "amount"),
    "Hold": ("account", "balance", "reservation", "amount", "expires_at"),
    "OpResult": ("key", "status", "effects", "holds", "granted", "balance_after",
                 "available_after", "replayed", "low_balance", "events"),
}


# ---------------------------------------------------------------- C constructors (_C_API)
# New references; the arguments are borrowed (taken as they are: no checks, no defaults).
cdef PyObject *_new_result(PyObject *key, PyObject *status, PyObject *effects,
                           PyObject *holds, PyObject *granted, PyObject *bal_after,
                           PyObject *avail_after, PyObject *replayed, PyObject *low,
                           PyObject *events) except NULL:
    cdef OpResult r = OpResult.__new__(OpResult)
    r.key = <object>key
    r.status = <object>status
    r.effects = <object>effects
    r.holds = <object>holds
    r.granted = <object>granted
    r.balance_after = <object>bal_after
    r.available_after = <object>avail_after
    r.replayed = <object>replayed
    r.low_balance = <object>low
    r.events = <object>events
    Py_INCREF(r)  # the PyObject* returned owns a reference; the local's is dropped on return
    return <PyObject*>r


cdef PyObject *_new_hold(PyObject *account, PyObject *balance, PyObject *reservation,
                         PyObject *amount, PyObject *expires) except NULL:
    cdef Hold h = Hold.__new__(Hold)
    h.account = <object>account
    h.balance = <object>balance
    h.reservation = <object>reservation
    h.amount = <object>amount
    h.expires_at = <object>expires
    Py_INCREF(h)
    return <PyObject*>h


cdef PyObject *_new_effect(PyObject *account, PyObject *balance,
                           PyObject *amount) except NULL:
    cdef Effect e = Effect.__new__(Effect)
    e.account = <object>account
    e.balance = <object>balance
    e.amount = <object>amount
    Py_INCREF(e)
    return <PyObject*>e


cdef IcxResultsAPI _api
_api.result = <result_fn>_new_result
_api.hold = <hold_fn>_new_hold
_api.effect = <effect_fn>_new_effect
_C_API = PyCapsule_New(<void*>&_api, b"cython_ext.store_results._C_API", NULL)
