# cython: language_level=3
"""Compiled twin of the Ro online slice on the embedded store's synchronous ledger path.

The executable spec is the pure Python of charging/service.py (``decide``),
charging/service_online.py (``_initial`` / ``_update`` / ``_grant_all`` / ``_one_slice`` /
``_reserve``), charging/service_core.py (``_cost``, ``_money_text``),
charging/ledger/sync_ops.py (``reserve_now`` / ``commit_now`` / ``commit_reserve_now``) and
charging/journal/records.py (``op_record_into``). :meth:`FastPath.decide` runs the same steps for the
plain request of an online session -- one slice, INITIAL / UPDATE / TERMINATE, the session's
account on the ledger's synchronous ops -- without a Python frame per step: the store ops
(compiled, cython_ext/store_ops.pyx), both journal records (same keys, same order, same
values: same bytes), ONE journal append, the result objects, the answer cache.

It returns:

* a ``ChargingResult``: decided, records enqueued (the caller waits for the durable mark as
  after the Python ``decide``);
* ``None``: not a request this path takes (a retransmit, an unknown session, several slices,
  an account not yet seen, a retry after 5012, a killed session, a paused or failed
  ledger...). NOTHING was changed: the caller runs the Python path;
* a coroutine: the store op ran but its outcome is not the plain one (a refused reserve ->
  grant what fits / 4012, a commit that found no hold -> partial debit): the caller awaits it
  (``ChargingService._fast_rest``, the Python path's own code from there on);
* a coroutine, on a store that suspends and pairs ops (Redis, ``Ledger.pairs_ops``): the
  same steps up to the store op, the session's turn taken; the coroutine (``_awaited``)
  awaits the op -- an UPDATE's commit and next reserve as ONE op --, does Ledger._run's
  bookkeeping (in flight, keys unsure after a failed call, the replay of a lost reply,
  each record tracked for its Redis confirmation and booked after its group commit),
  enqueues the records in one append and finishes the decision as the synchronous path
  does (or in ``_fast_rest``), then passes the session's turn on. The caller awaits it.

charging/service_core.py selects it (``cython_ext.load("charging_slice")``, once; one
:class:`FastPath` per service keeps the service's and ledger's long-lived attributes); the
parity tests (tests/charging/test_service_fast_path.py) run random sessions through both
paths and compare answers, balances, holds and journal bytes.
"""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport (PyDict_Contains, PyDict_Copy, PyDict_DelItem, PyDict_GetItem,
                           PyDict_Next, PyDict_SetDefault, PyDict_SetItem, PyDict_Size)
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport (PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong,
                           PyLong_FromDouble, PyLong_FromUnsignedLongLong)
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

include "charging_slots.pxi"

# Bound by init() (cython_ext never imports charging: the dependency rule)
cdef object _INITIAL, _UPDATE, _TERMINATE, _EVENT
cdef object _SUCCESS, _OK, _UNKNOWN_RES, _MONEY
cdef object _ChargingResult, _UnitsResult, _Session, _Grant
cdef dict _SERVICE_UNIT = {}
cdef object _MAX_AMOUNT, _EXACT_C_USAGE
cdef long long _MAX_AMOUNT_C = 0  # _MAX_AMOUNT as a C integer (a store amount: < 2**63)
cdef dict _AMOUNT_CACHE
cdef object _amount_text
cdef object _TYPES = None  # op -> record type
cdef dict _STATUS_TEXT = {}
cdef object _new = object.__new__


cdef extern from *:
    """
    /* object.__new__(cls) for a plain class (object's own tp_new, the generic allocator,
       not abstract): what object_new does once its argument checks pass. NULL without an
       error: not a plain class. */
    static PyObject *icx_make_plain(PyObject *cls) {
        PyTypeObject *tp = (PyTypeObject *)cls;
        if (tp->tp_new == PyBaseObject_Type.tp_new && tp->tp_alloc == PyType_GenericAlloc
                && !(tp->tp_flags & Py_TPFLAGS_IS_ABSTRACT))
            return tp->tp_alloc(tp, 0);
        return NULL;
    }
    """
    PyObject *icx_make_plain(object cls)

from cpython.exc cimport PyErr_Occurred


cdef inline object _make(object cls):
    """``object.__new__(cls)`` (a plain class allocated directly; any other by the call)."""
    cdef PyObject *o = icx_make_plain(cls)
    if o is NULL:
        if PyErr_Occurred() is not NULL:
            raise MemoryError()
        return _new(cls)
    r = <object>o
    Py_XDECREF(o)  # (<object> took its own reference)
    return r
cdef tuple _NO_META = (True, None)
cdef bint _ready = False


def init(*, verbs, success, ok, unknown_reservation, money_unit, charging_result_cls,
         units_result_cls, session_cls, max_amount, amount_cache, amount_text, op_types,
         exact_usage, grant_cls=None, request_cls=None, units_cls=None, op_result_cls=None,
         effect_cls=None, hold_cls=None, service_unit=None):
    """Bind the reference classes and constants (charging/service_core.py calls it once).
    The classes' field layouts are read here (charging_slots.pxi); a class not given is
    reached by attribute name."""
    global _INITIAL, _UPDATE, _TERMINATE, _EVENT, _SUCCESS, _OK, _UNKNOWN_RES, _MONEY
    global _ChargingResult, _UnitsResult, _Session, _MAX_AMOUNT, _AMOUNT_CACHE, _amount_text
    global _TYPES, _ready, _EXACT_C_USAGE, _Grant, _SERVICE_UNIT, _MAX_AMOUNT_C
    _Grant = grant_cls
    _SERVICE_UNIT = dict(service_unit or {})
    _bind_layouts(session_cls, grant_cls, request_cls, units_cls, units_result_cls,
                  charging_result_cls, op_result_cls, effect_cls, hold_cls)
    _INITIAL, _UPDATE, _TERMINATE, _EVENT = verbs
    _SUCCESS = success
    _OK = ok
    _UNKNOWN_RES = unknown_reservation
    _MONEY = money_unit
    _ChargingResult = charging_result_cls
    _UnitsResult = units_result_cls
    _Session = session_cls
    _MAX_AMOUNT = max_amount
    _AMOUNT_CACHE = amount_cache
    _amount_text = amount_text
    _TYPES = op_types
    _EXACT_C_USAGE = exact_usage  # RatingEngine.price: beyond it, rate() prices exactly
    _MAX_AMOUNT_C = max_amount  # (OverflowError: a store amount beyond 64 bits is no store's)
    _ready = True


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *tp)
    int CLOCK_MONOTONIC


cdef inline double _monotonic():
    """time.monotonic() (CLOCK_MONOTONIC on Linux, as CPython's)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


# ---------------------------------------------------------------------- small helpers

cdef inline object _amount(object amount, object is_money):
    """records.amount_text."""
    cdef PyObject *hit
    if not is_money:
        return str(amount)
    hit = PyDict_GetItem(_AMOUNT_CACHE, amount)
    if hit is not NULL:
        return <object>hit
    return _amount_text(amount, True)


cdef dict _record(dict rec, str op, res, str record_id, object ts_us, dict meta):
    """records.op_record_into (same keys, same order, same values)."""
    cdef list effects = []
    cdef list holds = []
    cdef PyObject *m
    if "type" not in rec:
        rec["type"] = _TYPES.get(op, "rated")
    for e in op_(res, O_EFFECTS):
        key = (ef(e, E_ACCOUNT), ef(e, E_BALANCE))
        m = PyDict_GetItem(meta, key)
        mt = <object>m if m is not NULL else _NO_META
        effects.append({"account": ef(e, E_ACCOUNT), "balance": ef(e, E_BALANCE),
                        "currency": mt[1], "amount": _amount(ef(e, E_AMOUNT), mt[0])})
    for h in op_(res, O_HOLDS):
        exp = ho(h, H_EXPIRES_AT)
        key = (ho(h, H_ACCOUNT), ho(h, H_BALANCE))
        m = PyDict_GetItem(meta, key)
        mt = <object>m if m is not NULL else _NO_META
        holds.append({"account": ho(h, H_ACCOUNT), "balance": ho(h, H_BALANCE),
                      "reservation": ho(h, H_RESERVATION),
                      "amount": _amount(ho(h, H_AMOUNT), mt[0]),
                      "expires": None if exp is None else _round_us(exp)})
    status = op_(res, O_STATUS)
    m = PyDict_GetItem(_STATUS_TEXT, status)
    if m is NULL:
        status_text = status.value
        _STATUS_TEXT[status] = status_text
    else:
        status_text = <object>m
    rec["v"] = 1
    rec["id"] = record_id
    rec["ts"] = ts_us
    rec["idem"] = op_(res, O_KEY)
    rec["op"] = op
    rec["result"] = status_text
    rec["granted"] = op_(res, O_GRANTED)
    rec["balance_effects"] = effects
    rec["holds"] = holds
    return rec


cdef inline bint _moved(res) except -1:
    return (op_(res, O_STATUS) is _OK or bool(op_(res, O_EFFECTS))
            or bool(op_(res, O_HOLDS)))


cdef extern from "<math.h>" nogil:
    const double INFINITY
    double rint(double x)
    double floor(double x)
    double ceil(double x)


cdef object _round_us(object t):
    """round(t * 1_000_000) (epoch seconds -> integer microseconds, as records.py does):
    for a float, rint() in the default rounding mode is round-half-even as Python's round()."""
    cdef double d
    if type(t) is float:
        d = (<double>t) * 1000000.0
        if -9.0e15 < d < 9.0e15:
            return PyLong_FromDouble(rint(d))
    return round(t * 1_000_000)


cdef object _units(su, outcome, unit, granted, validity_time, final_unit, used_cost,
                   qht, threshold):
    """requests.units_result."""
    r = _make(_UnitsResult)
    ur_set(r, UR_RATING_GROUP, su_(su, U_RATING_GROUP))
    ur_set(r, UR_SERVICE_ID, su_(su, U_SERVICE_ID))
    ur_set(r, UR_OUTCOME, outcome)
    ur_set(r, UR_UNIT, unit)
    ur_set(r, UR_GRANTED, granted)
    ur_set(r, UR_VALIDITY_TIME, validity_time)
    ur_set(r, UR_FINAL_UNIT, final_unit)
    ur_set(r, UR_USED_COST, used_cost)
    ur_set(r, UR_QHT, qht)
    ur_set(r, UR_THRESHOLD, threshold)
    return r


cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_FromKindAndData(int kind, const void *buf, Py_ssize_t size)
    int PyUnicode_1BYTE_KIND


include "decimal_text.pxi"
include "gc_untrack.pxi"


cdef inline object _grant_key(su):
    """The grant key of an MSCC, as the Python path's OnlineCharging._grant_of: the Service-Identifier,
    else the Rating-Group, else -1."""
    sv = su_(su, U_SERVICE_ID)
    if sv is not None:
        return sv
    rg = su_(su, U_RATING_GROUP)
    return -1 if rg is None else rg


# charging/sessions.py ENDED_KEY_MASK: an EndedSessions key is the Session-Id's hash, 60 bits
cdef unsigned long long _ENDED_MASK = 0xFFFFFFFFFFFFFFF


cdef inline object _ended_key(object sid):
    """EndedSessions' key of *sid*: ``hash(sid) & ENDED_KEY_MASK`` (the low 60 bits of the
    hash's two's complement, as Python's ``&`` of a negative int gives)."""
    cdef Py_hash_t h = hash(sid)
    return PyLong_FromUnsignedLongLong(<unsigned long long>h & _ENDED_MASK)


def ended_key(sid):
    """For the tests: :func:`_ended_key`."""
    return _ended_key(sid)


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)


cdef str _cat(str a, const char *suffix, Py_ssize_t n):
    """``a + suffix`` for an ASCII *suffix* of n chars (one allocation, no concat call)."""
    cdef Py_ssize_t ln
    if PyUnicode_IS_COMPACT_ASCII(a):
        ln = PyUnicode_GET_LENGTH(a)
        r = PyUnicode_New(ln + n, 127)
        memcpy(PyUnicode_DATA(r), PyUnicode_DATA(a), ln)
        memcpy(<char*>PyUnicode_DATA(r) + ln, suffix, n)
        return r
    return a + suffix[:n].decode("ascii")


cdef str _hold_id(str sid, object key, object n):
    """Grant.hold_id: f"{sid}|{key}|{n}" (written by hand for an ASCII id and int parts)."""
    cdef char buf[320]
    cdef int o1 = 0, o2 = 0
    cdef long long k, m
    cdef Py_ssize_t ln, at
    if type(key) is int and type(n) is int and PyUnicode_IS_COMPACT_ASCII(sid):
        ln = PyUnicode_GET_LENGTH(sid)
        if ln <= 256:
            k = PyLong_AsLongLongAndOverflow(key, &o1)
            m = PyLong_AsLongLongAndOverflow(n, &o2)
            if not o1 and not o2:
                memcpy(buf, PyUnicode_DATA(sid), ln)
                at = ln
                buf[at] = 124  # '|'
                at += 1
                at += _put_dec(buf + at, k)
                buf[at] = 124
                at += 1
                at += _put_dec(buf + at, m)
                return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, at)
    return f"{sid}|{key}|{n}"


def hold_id(str sid, key, n):
    """For the tests: :func:`_hold_id`."""
    return _hold_id(sid, key, n)


cdef str _slice0(str key, str tag):
    """``f"{key}:0{tag}"``: the key of a request's only slice (its session's tag in it, see
    Session.tag; one allocation for ASCII parts)."""
    cdef Py_ssize_t lk, lt
    if PyUnicode_IS_COMPACT_ASCII(key) and PyUnicode_IS_COMPACT_ASCII(tag):
        lk = PyUnicode_GET_LENGTH(key)
        lt = PyUnicode_GET_LENGTH(tag)
        r = PyUnicode_New(lk + 2 + lt, 127)
        memcpy(PyUnicode_DATA(r), PyUnicode_DATA(key), lk)
        memcpy(<char*>PyUnicode_DATA(r) + lk, b":0", 2)
        memcpy(<char*>PyUnicode_DATA(r) + lk + 2, PyUnicode_DATA(tag), lt)
        return r
    return f"{key}:0{tag}"


cdef str _tag_text(object n):
    """ServiceCore._new_tag's text of counter value *n*: ``f"~{n:x}"``."""
    cdef char buf[24]
    cdef int overflow = 0, at = 23, k
    cdef long long x
    if type(n) is int:
        x = PyLong_AsLongLongAndOverflow(n, &overflow)
        if not overflow and x >= 0:
            while True:
                k = <int>(x & 15)
                buf[at] = <char>(48 + k if k < 10 else 87 + k)  # '0'-'9', 'a'-'f'
                at -= 1
                x >>= 4
                if x == 0:
                    break
            buf[at] = 126  # '~'
            return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf + at, 24 - at)
    return f"~{n:x}"


def tag_text(n):
    """For the tests: :func:`_tag_text`."""
    return _tag_text(n)


def slice0(str key, str tag):
    """For the tests: :func:`_slice0`."""
    return _slice0(key, tag)




# ---------------------------------------------------------------------- record bytes
# The record as msgpack bytes (docs/journal-schema.md: msgpack.Packer(use_bin_type=True) of
# the op_record_into dict), written straight from the fields and the store result: no record
# dict, no generic encoder walk. The journal frames bytes records as they are. Values other
# than str / int / bool / None / float (and str keys) make it give up (None): the caller
# builds the dict instead. tests/charging/test_service_fast_path.py checks the bytes against
# msgpack's over random fields and results.


cdef struct Buf:
    unsigned char *p  # a stack array, or heap once a record outgrows it
    Py_ssize_t n
    Py_ssize_t cap
    bint heap

# op_record_into's own keys, in the order it sets them (after "type")
cdef tuple _OVER = ("v", "id", "ts", "idem", "op", "result", "granted", "balance_effects",
                    "holds")
cdef dict _OVER_AT = {k: i for i, k in enumerate(_OVER)}


cdef inline int _room(Buf *b, Py_ssize_t k) except -1:
    if b.n + k <= b.cap:
        return 0
    return _grow(b, k)


cdef int _grow(Buf *b, Py_ssize_t k) except -1:
    cdef Py_ssize_t cap
    cdef unsigned char *p
    cap = b.cap * 2
    while cap < b.n + k:
        cap *= 2
    if b.heap:
        p = <unsigned char*>realloc(b.p, cap)
    else:
        p = <unsigned char*>malloc(cap)
        if p is not NULL:
            memcpy(p, b.p, b.n)
    if p is NULL:
        raise MemoryError()
    b.p = p
    b.cap = cap
    b.heap = True
    return 0


cdef inline int _b1(Buf *b, unsigned char c) except -1:
    _room(b, 1)
    b.p[b.n] = c
    b.n += 1
    return 0


cdef inline int _be(Buf *b, unsigned char tag, unsigned long long v, int nbytes) except -1:
    cdef int i
    _room(b, 1 + nbytes)
    b.p[b.n] = tag
    for i in range(nbytes):
        b.p[b.n + 1 + i] = <unsigned char>(v >> (8 * (nbytes - 1 - i)))
    b.n += 1 + nbytes
    return 0


cdef int _w_str(Buf *b, str s) except -1:
    cdef Py_ssize_t n
    cdef const char *u
    if PyUnicode_IS_COMPACT_ASCII(s):
        # an ASCII str is its own UTF-8: no conversion call, one room check
        n = PyUnicode_GET_LENGTH(s)
        if n < 32:
            _room(b, n + 1)
            b.p[b.n] = 0xa0 | <unsigned char>n
            memcpy(b.p + b.n + 1, PyUnicode_DATA(s), n)
            b.n += n + 1
            return 0
        u = <const char*>PyUnicode_DATA(s)
    else:
        u = PyUnicode_AsUTF8AndSize(s, &n)
    if n < 32:
        _b1(b, 0xa0 | <unsigned char>n)
    elif n < 256:
        _be(b, 0xd9, n, 1)
    elif n < 65536:
        _be(b, 0xda, n, 2)
    else:
        _be(b, 0xdb, n, 4)
    _room(b, n)
    memcpy(b.p + b.n, u, n)
    b.n += n
    return 0


# (typed: a literal beyond the C int range would make Cython compare as Python ints)
cdef long long _U32_END = 4294967296
cdef long long _I32_MIN = -2147483648


cdef int _w_int(Buf *b, object v) except -1:
    """msgpack-python's choice: the smallest unsigned form for v >= 0, signed for v < 0.
    Returns 1 when v does not fit 64 bits (msgpack refuses it: leave it to the dict path)."""
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    cdef unsigned long long u
    if overflow > 0:
        try:
            u = PyLong_AsUnsignedLongLong(v)
        except OverflowError:
            return 1
        _be(b, 0xcf, u, 8)
        return 0
    if overflow < 0:
        return 1
    if x >= 0:
        if x < 128:
            _b1(b, <unsigned char>x)
        elif x < 256:
            _be(b, 0xcc, x, 1)
        elif x < 65536:
            _be(b, 0xcd, x, 2)
        elif x < _U32_END:
            _be(b, 0xce, x, 4)
        else:
            _be(b, 0xcf, x, 8)
    elif x >= -32:
        _b1(b, <unsigned char>(x & 0xff))
    elif x >= -128:
        _be(b, 0xd0, <unsigned long long>x, 1)
    elif x >= -32768:
        _be(b, 0xd1, <unsigned long long>x, 2)
    elif x >= _I32_MIN:
        _be(b, 0xd2, <unsigned long long>x, 4)
    else:
        _be(b, 0xd3, <unsigned long long>x, 8)
    return 0


cdef int _w_obj(Buf *b, object v) except -1:
    """One scalar value; 1 = a type this encoder does not write."""
    cdef double d
    cdef unsigned long long bits
    t = type(v)
    if t is str:
        return _w_str(b, <str>v)
    if v is None:
        return _b1(b, 0xc0)
    if t is bool:
        return _b1(b, 0xc3 if v else 0xc2)
    if t is int:
        return _w_int(b, v)
    if t is float:
        d = PyFloat_AS_DOUBLE(v)
        memcpy(&bits, &d, 8)
        return _be(b, 0xcb, bits, 8)
    return 1



cdef inline int _w_len(Buf *b, unsigned char fix, unsigned char t16, unsigned char t32,
                       Py_ssize_t n) except -1:
    if n < 16:
        return _b1(b, fix | <unsigned char>n)
    if n < 65536:
        return _be(b, t16, n, 2)
    return _be(b, t32, n, 4)


cdef object _last_meta_key = None
cdef object _last_meta = None
cdef object _last_meta_dict = None


cdef inline object _meta_get(dict meta, account, balance):
    """meta.get((account, balance), (True, None)); the last answer is kept (a record's effects
    and holds name the same balance). Entries of the ledger's meta dict never change once
    set (an account's balances are fixed: create_account refuses another definition)."""
    global _last_meta_key, _last_meta, _last_meta_dict
    cdef PyObject *m
    key = _last_meta_key
    if key is not None and _last_meta_dict is meta:
        k0 = (<tuple>key)[0]
        k1 = (<tuple>key)[1]
        # (by identity first: a record's ids are the session's own str objects)
        if (k0 is account or k0 == account) and (k1 is balance or k1 == balance):
            return _last_meta
    key = (account, balance)
    m = PyDict_GetItem(meta, key)
    if m is NULL:
        return _NO_META  # (not kept: the ledger may learn it later)
    _last_meta_key = key
    _last_meta = <object>m
    _last_meta_dict = meta
    return _last_meta


cdef int _w_over(Buf *b, Py_ssize_t i, str op, res, str record_id, object ts_us, dict meta,
                 object status_text) except -1:
    """The value of op_record_into's own key _OVER[i]; 1 = give up."""
    cdef PyObject *m
    if i == 0:
        return _b1(b, 1)
    if i == 1:
        return _w_str(b, record_id)
    if i == 2:
        return _w_obj(b, ts_us)
    if i == 3:
        return _w_obj(b, op_(res, O_KEY))
    if i == 4:
        return _w_str(b, op)
    if i == 5:
        return _w_obj(b, status_text)
    if i == 6:
        return _w_obj(b, op_(res, O_GRANTED))
    if i == 7:
        return _w_effects(b, res, meta)
    return _w_holds(b, res, meta)


# The constant parts of an effect / hold map (records.op_record_into's key order): the map
# header with the first key, then each further key, already msgpack-encoded (fixmap, fixstr)
cdef const char *_K_EFFECT = b"\x84\xa7account"
cdef const char *_K_HOLD = b"\x85\xa7account"
cdef const char *_K_BALANCE = b"\xa7balance"
cdef const char *_K_CURRENCY = b"\xa8currency"
cdef const char *_K_RESERVATION = b"\xabreservation"
cdef const char *_K_AMOUNT = b"\xa6amount"
cdef const char *_K_EXPIRES = b"\xa7expires"


cdef inline int _w_raw(Buf *b, const char *s, Py_ssize_t n) except -1:
    _room(b, n)
    memcpy(b.p + b.n, s, n)
    b.n += n
    return 0


cdef inline int _w_short(Buf *b, const char *s, Py_ssize_t n) except -1:
    """A str of n < 32 ASCII chars (fixstr)."""
    _room(b, n + 1)
    b.p[b.n] = 0xa0 | <unsigned char>n
    memcpy(b.p + b.n + 1, s, n)
    b.n += n + 1
    return 0


cdef inline int _w_fast(Buf *b, object v) except -1:
    """_w_obj with its commonest case -- a short ASCII str -- written here."""
    cdef Py_ssize_t n
    if type(v) is str and PyUnicode_IS_COMPACT_ASCII(v):
        n = PyUnicode_GET_LENGTH(v)
        if n < 32:
            return _w_short(b, <const char*>PyUnicode_DATA(v), n)
    return _w_obj(b, v)


cdef Py_ssize_t _money_dec(char *p, long long v):
    """money.format_amount(v) (min_places=2) at *p* (room for 32): sign, whole units, '.',
    the six micro digits with trailing zeros trimmed down to two."""
    cdef unsigned long long u, frac
    cdef Py_ssize_t at = 0, k
    cdef char d[6]
    cdef int i
    if v < 0:
        p[0] = 45  # '-'
        at = 1
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    frac = u % 1000000
    u //= 1000000
    at += _put_dec(p + at, <long long>u)
    p[at] = 46  # '.'
    at += 1
    for i in range(5, -1, -1):
        d[i] = <char>(48 + frac % 10)
        frac //= 10
    k = 6
    while k > 2 and d[k - 1] == 48:
        k -= 1
    memcpy(p + at, d, k)
    return at + k


def money_text(v):
    """For the tests: the text _w_amount writes for a money amount *v* (a C long long)."""
    cdef char buf[32]
    cdef Py_ssize_t n = _money_dec(buf, v)
    return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, n)


cdef inline int _w_amount(Buf *b, object amount, object is_money) except -1:
    """records.amount_text(amount, is_money) as a msgpack str, written without the str (a
    64-bit int; anything else through _amount)."""
    cdef char tmp[32]
    cdef int overflow = 0
    cdef long long x
    if type(amount) is int:
        x = PyLong_AsLongLongAndOverflow(amount, &overflow)
        if not overflow:
            if is_money:
                return _w_short(b, tmp, _money_dec(tmp, x))
            return _w_short(b, tmp, _put_dec(tmp, x))
    return _w_obj(b, _amount(amount, is_money))


cdef int _w_effects(Buf *b, res, dict meta) except -1:
    """op_record_into's "balance_effects" value; 1 = give up."""
    effects = op_(res, O_EFFECTS)
    _w_len(b, 0x90, 0xdc, 0xdd, len(effects))
    for e in effects:
        account, balance = ef(e, E_ACCOUNT), ef(e, E_BALANCE)
        mt = _meta_get(meta, account, balance)
        _w_raw(b, _K_EFFECT, 9)
        if _w_fast(b, account):
            return 1
        _w_raw(b, _K_BALANCE, 8)
        if _w_fast(b, balance):
            return 1
        _w_raw(b, _K_CURRENCY, 9)
        if _w_fast(b, (<tuple>mt)[1]):
            return 1
        _w_raw(b, _K_AMOUNT, 7)
        if _w_amount(b, ef(e, E_AMOUNT), (<tuple>mt)[0]):
            return 1
    return 0


cdef int _w_holds(Buf *b, res, dict meta) except -1:
    """op_record_into's "holds" value; 1 = give up."""
    holds = op_(res, O_HOLDS)
    _w_len(b, 0x90, 0xdc, 0xdd, len(holds))
    for h in holds:
        account, balance = ho(h, H_ACCOUNT), ho(h, H_BALANCE)
        mt = _meta_get(meta, account, balance)
        exp = ho(h, H_EXPIRES_AT)
        _w_raw(b, _K_HOLD, 9)
        if _w_fast(b, account):
            return 1
        _w_raw(b, _K_BALANCE, 8)
        if _w_fast(b, balance):
            return 1
        _w_raw(b, _K_RESERVATION, 12)
        if _w_fast(b, ho(h, H_RESERVATION)):
            return 1
        _w_raw(b, _K_AMOUNT, 7)
        if _w_amount(b, ho(h, H_AMOUNT), (<tuple>mt)[0]):
            return 1
        _w_raw(b, _K_EXPIRES, 8)
        if exp is None:
            _b1(b, 0xc0)
        elif _w_obj(b, _round_us(exp)):
            return 1
    return 0


cdef Py_hash_t _OVER_HASH[9]
for _i in range(9):
    _OVER_HASH[_i] = hash(_OVER[_i])
cdef Py_ssize_t _HEAD = 5  # room for the largest map header, written once the size is known


cdef Py_hash_t _TYPE_HASH = hash("type")


cdef inline int _over_index(str k, Py_hash_t h) except -2:
    """The index of *k* (hash *h*) in _OVER, or -1: by the str's cached hash first."""
    cdef int i
    for i in range(9):
        if _OVER_HASH[i] == h and k == <str>_OVER[i]:
            return i
    return -1


cdef object _pack_record(dict fields, str op, res, str record_id, object ts_us, dict meta):
    """msgpack bytes of op_record_into(fields, op, res, record_id, ts_us, meta), *fields*
    left as it is; None when a value is not one this encoder writes (build the dict)."""
    cdef unsigned char stack[2048]
    cdef Buf buf
    buf.p = stack
    buf.n = _HEAD
    buf.cap = 2048
    buf.heap = False
    try:
        return _pack_into(&buf, fields, op, res, record_id, ts_us, meta)
    finally:
        if buf.heap:
            free(buf.p)


cdef object _pack_into(Buf *b, dict fields, str op, res, str record_id, object ts_us,
                       dict meta):
    cdef PyObject *m
    cdef Py_ssize_t n, start
    cdef int i
    cdef bint present[9]
    cdef bint has_type = False
    for i in range(9):
        present[i] = False
    status = op_(res, O_STATUS)
    m = PyDict_GetItem(_STATUS_TEXT, status)
    if m is NULL:
        status_text = status.value
        _STATUS_TEXT[status] = status_text
    else:
        status_text = <object>m
    cdef Py_hash_t h
    n = len(fields)
    for k, v in fields.items():
        if type(k) is not str:
            return None
        _w_str(b, <str>k)
        h = hash(<str>k)  # (cached on the str)
        i = _over_index(<str>k, h)
        if i >= 0:
            present[i] = True
            if _w_over(b, i, op, res, record_id, ts_us, meta, status_text):
                return None
        else:
            if not has_type and h == _TYPE_HASH and (<str>k) == "type":
                has_type = True
            if _w_obj(b, v):
                return None
    if not has_type:
        n += 1
        _w_str(b, "type")
        m = PyDict_GetItem(_TYPES, op) if type(_TYPES) is dict else NULL
        _w_str(b, <object>m if m is not NULL else _TYPES.get(op, "rated"))
    for i in range(9):
        if not present[i]:
            n += 1
            _w_str(b, <str>_OVER[i])
            if _w_over(b, i, op, res, record_id, ts_us, meta, status_text):
                return None
    # the map header, just before the entries
    if n < 16:
        start = _HEAD - 1
        b.p[start] = 0x80 | <unsigned char>n
    elif n < 65536:
        start = _HEAD - 3
        b.p[start] = 0xde
        b.p[start + 1] = <unsigned char>(n >> 8)
        b.p[start + 2] = <unsigned char>n
    else:
        start = _HEAD - 5
        b.p[start] = 0xdf
        b.p[start + 1] = <unsigned char>(n >> 24)
        b.p[start + 2] = <unsigned char>(n >> 16)
        b.p[start + 3] = <unsigned char>(n >> 8)
        b.p[start + 4] = <unsigned char>n
    return PyBytes_FromStringAndSize(<char*>b.p + start, b.n - start)


cdef object _record_out(dict fields, str op, res, str record_id, object ts_us, dict meta):
    """The record to append: its bytes, or (a value the encoder does not write) the dict."""
    packed = _pack_record(fields, op, res, record_id, ts_us, meta)
    if packed is None:
        return _record(fields, op, res, record_id, ts_us, meta)
    return packed


def pack_record(dict fields, str op, res, str record_id, ts_us, dict meta):
    """For the tests: :func:`_pack_record` (None: the dict path)."""
    return _pack_record(fields, op, res, record_id, ts_us, meta)


# ---------------------------------------------------------------------- record templates
# Every commit record of the online path has the same keys in the same order (the grant's
# rated fields, request/usage/price/end, the tariff fields, then the record's own keys), and
# so has every reserve record: only values change. A template is that shape packed once --
# the map header, every key, the constant values ("v", "op", "type") -- with a code where a
# value is written per record: the next entry of the fields dict (its key checked against
# the template's: same key, same place), the status, the store result's parts, or one of the
# per-record values. A record whose dicts do not have the template's keys (another shape)
# gets a template of its own shape; one the packer cannot write goes the dict path. Same
# bytes as _pack_record of the dict the Python path builds (hypothesis: test_service_fast_path).

cdef enum:
    V_ID = 1
    V_TS = 2
    V_IDEM = 3
    V_RESULT = 4
    V_GRANTED = 5
    V_EFFECTS = 6
    V_HOLDS = 7
    V_REQUEST = 8   # the per-record values (_pack_tmpl's v_* arguments)
    V_USAGE = 9
    V_PRICE = 10
    V_END = 11
    V_DICT = 12          # the value of the current dict's next entry
    V_DICT_RESULT = 13   # the current dict's next entry is "result": the status text
    V_SECOND = 14        # the entries that follow are the second dict's
    V_SESSION = 15       # (a reserve record's per-record values)
    V_SERVICE = 16

# _OVER index -> its code (0: a constant written into the run: "v" is 1, "op" the op)
cdef int _OVER_CODE[9]
_OVER_CODE[:] = [0, V_ID, V_TS, V_IDEM, 0, V_RESULT, V_GRANTED, V_EFFECTS, V_HOLDS]
cdef tuple _COMMIT_VARS = (("request", V_REQUEST), ("usage", V_USAGE), ("price", V_PRICE),
                           ("end", V_END))
# a reserve record's fields (OnlineCharging._hold_fields: same keys, same order), all per record
cdef tuple _RESERVE_VARS = (("session", V_SESSION), ("request", V_REQUEST),
                            ("service", V_SERVICE), ("price", V_PRICE))
cdef dict _NO_FIELDS = {}  # (never changed)


@cython.final
cdef class Tmpl:
    """A record shape packed once (see above)."""
    cdef tuple pieces  # (bytes, code, bytes, code, ..., bytes)
    cdef tuple keys  # the dict keys, in the order the codes consume them
    cdef str op  # the record's op (its "op" and "type" are in the runs)
    cdef Py_ssize_t n1, n2  # the sizes of the first and second dict
    # pieces as C arrays (the packer reads no tuple item, converts no code): run k's bytes
    # (owned by pieces), then code k; nc codes, nc + 1 runs; keys' items (owned by keys)
    cdef Py_ssize_t nc
    cdef const char **run_p
    cdef Py_ssize_t *run_n
    cdef int *codes
    cdef PyObject **keyp

    def __dealloc__(self):
        free(self.run_p)
        free(self.run_n)
        free(self.codes)
        free(self.keyp)

    cdef int _arrays(self) except -1:
        cdef Py_ssize_t i, nk = len(self.keys)
        self.nc = (len(self.pieces) - 1) // 2
        self.run_p = <const char**>malloc((self.nc + 1) * sizeof(char*))
        self.run_n = <Py_ssize_t*>malloc((self.nc + 1) * sizeof(Py_ssize_t))
        self.codes = <int*>malloc((self.nc + 1) * sizeof(int))
        self.keyp = <PyObject**>malloc((nk + 1) * sizeof(PyObject*))
        if not self.run_p or not self.run_n or not self.codes or not self.keyp:
            raise MemoryError()
        for i in range(self.nc + 1):
            piece = <bytes>self.pieces[2 * i]
            self.run_p[i] = <const char*>piece
            self.run_n[i] = len(piece)
            if i < self.nc:
                self.codes[i] = <int>self.pieces[2 * i + 1]
        for i in range(nk):
            self.keyp[i] = <PyObject*>self.keys[i]
        return 0


cdef int _flush(Buf *b, list pieces) except -1:
    pieces.append(PyBytes_FromStringAndSize(<char*>b.p, b.n))
    b.n = 0
    return 0


cdef int _shape_keys(dict d, list keys, bint *present, bint *has_type) except -2:
    """Check the keys of one fields dict for a template: str keys, none of the record's own
    keys but "result" (0: fine; -1: not templatable)."""
    cdef int i
    for k in d:
        if type(k) is not str:
            return -1
        i = _over_index(<str>k, hash(<str>k))
        if i == 5:
            present[5] = True
        elif i >= 0:
            return -1
        elif (<str>k) == "type":
            has_type[0] = True
        keys.append(k)
    return 0


cdef Tmpl _template(dict d1, tuple var, dict d2, str op):
    """The template of records whose fields are d1's entries, then *var*'s keys ((key,
    code), values given per record), then d2's entries (d2 may be None); None when the
    shape is not one a template writes (a key set twice, a record key in the fields)."""
    cdef unsigned char stack[2048]
    cdef Buf buf
    cdef Py_ssize_t n
    cdef int i, code
    cdef bint present[9]
    cdef bint has_type = False
    cdef list pieces = []
    cdef list keys = []
    for i in range(9):
        present[i] = False
    if _shape_keys(d1, keys, present, &has_type) < 0:
        return None
    for k, code in var:
        if k in d1 or _over_index(<str>k, hash(<str>k)) >= 0 or k == "type":
            return None
    if d2:
        for k in d2:
            if k in d1 or any(k == kv[0] for kv in var):
                return None
        if _shape_keys(d2, keys, present, &has_type) < 0:
            return None
    n = len(keys) + len(var) + (0 if has_type else 1)
    for i in range(9):
        if not present[i]:
            n += 1
    buf.p = stack
    buf.n = 0
    buf.cap = 2048
    buf.heap = False
    try:
        if n < 16:
            _b1(&buf, 0x80 | <unsigned char>n)
        else:
            _be(&buf, 0xde, n, 2)
        for k in d1:
            _w_str(&buf, <str>k)
            _flush(&buf, pieces)
            pieces.append(V_DICT_RESULT if k == "result" else V_DICT)
        for k, code in var:
            _w_str(&buf, <str>k)
            _flush(&buf, pieces)
            pieces.append(code)
        if d2:
            _flush(&buf, pieces)
            pieces.append(V_SECOND)
            for k in d2:
                _w_str(&buf, <str>k)
                _flush(&buf, pieces)
                pieces.append(V_DICT_RESULT if k == "result" else V_DICT)
        if not has_type:
            _w_str(&buf, "type")
            _w_str(&buf, _TYPES.get(op, "rated"))
        for i in range(9):
            if not present[i]:
                _w_str(&buf, <str>_OVER[i])
                code = _OVER_CODE[i]
                if code == 0:
                    if i == 0:
                        _b1(&buf, 1)  # "v"
                    else:
                        _w_str(&buf, op)  # "op"
                else:
                    _flush(&buf, pieces)
                    pieces.append(code)
        _flush(&buf, pieces)
    finally:
        if buf.heap:
            free(buf.p)
    cdef Tmpl t = Tmpl.__new__(Tmpl)
    t.pieces = tuple(pieces)
    t.keys = tuple(keys)
    t.n1 = len(d1)
    t.n2 = len(d2) if d2 else 0
    t.op = op
    t._arrays()
    return t


cdef object _pack_tmpl(Tmpl t, res, str record_id, object ts_us, dict meta, dict d1, dict d2,
                       object v_request, object v_usage, object v_price, object v_end,
                       object v_session=None, object v_service=None):
    """The record bytes by template *t*; None: the dicts are not of its shape, or a value
    the packer does not write (build the dict record instead). One pass over the template's
    C arrays: a run of constant bytes, then the value its code names."""
    cdef unsigned char stack[2048]
    cdef Buf buf
    cdef Py_ssize_t k, ln, nc = t.nc, pos = 0, ki = 0
    cdef int code, r
    cdef PyObject *dk = NULL
    cdef PyObject *dv = NULL
    cdef PyObject *key
    cdef dict cur = d1
    status_text = None
    if len(d1) != t.n1 or (len(d2) if d2 else 0) != t.n2:
        return None
    buf.p = stack
    buf.n = 0
    buf.cap = 2048
    buf.heap = False
    try:
        for k in range(nc):
            ln = t.run_n[k]
            if ln:
                _w_raw(&buf, t.run_p[k], ln)
            code = t.codes[k]
            if code == V_DICT or code == V_DICT_RESULT:
                if not PyDict_Next(cur, &pos, &dk, &dv):
                    return None
                key = t.keyp[ki]
                ki += 1
                if dk is not key and not (<object>dk == <object>key):
                    return None  # another shape
                if code == V_DICT:
                    r = _w_fast(&buf, <object>dv)
                else:
                    if status_text is None:
                        status_text = _status_text(res)
                    r = _w_fast(&buf, status_text)
            elif code == V_SECOND:
                cur = d2
                pos = 0
                r = 0
            elif code == V_ID:
                r = _w_fast(&buf, record_id)
            elif code == V_TS:
                r = _w_obj(&buf, ts_us)
            elif code == V_IDEM:
                r = _w_obj(&buf, op_(res, O_KEY))
            elif code == V_RESULT:
                if status_text is None:
                    status_text = _status_text(res)
                r = _w_fast(&buf, status_text)
            elif code == V_GRANTED:
                r = _w_obj(&buf, op_(res, O_GRANTED))
            elif code == V_EFFECTS:
                r = _w_effects(&buf, res, meta)
            elif code == V_HOLDS:
                r = _w_holds(&buf, res, meta)
            elif code == V_REQUEST:
                r = _w_fast(&buf, v_request)
            elif code == V_USAGE:
                r = _w_obj(&buf, v_usage)
            elif code == V_PRICE:
                r = _w_fast(&buf, v_price)
            elif code == V_SESSION:
                r = _w_fast(&buf, v_session)
            elif code == V_SERVICE:
                r = _w_fast(&buf, v_service)
            else:
                r = _w_obj(&buf, v_end)
            if r:
                return None
        ln = t.run_n[nc]
        if ln:
            _w_raw(&buf, t.run_p[nc], ln)
        return PyBytes_FromStringAndSize(<char*>buf.p, buf.n)
    finally:
        if buf.heap:
            free(buf.p)


cdef inline object _status_text(res):
    cdef PyObject *m
    status = op_(res, O_STATUS)
    m = PyDict_GetItem(_STATUS_TEXT, status)
    if m is not NULL:
        return <object>m
    text = status.value
    _STATUS_TEXT[status] = text
    return text


def template_record(dict d1, tuple var, d2, str op, res, str record_id, ts_us, dict meta,
                    v_request, v_usage, v_price, v_end, dict other1=None, other2=None):
    """For the tests: the record bytes by a template of (d1, var, d2), packing (other1,
    other2) when given (a record of another shape: None) -- None when not templatable or a
    value the packer does not write."""
    t = _template(d1, var, d2, op)
    if t is None:
        return None
    if other1 is not None:
        d1, d2 = other1, other2
    return _pack_tmpl(t, res, record_id, ts_us, meta, d1, d2, v_request, v_usage, v_price,
                      v_end)


def reserve_record(str sid, str request, service, str price, res, str record_id, ts_us,
                   dict meta):
    """For the tests: a reserve record's bytes by the reserve template (no fields dict)."""
    t = _template(_NO_FIELDS, _RESERVE_VARS, None, "reserve")
    return _pack_tmpl(t, res, record_id, ts_us, meta, _NO_FIELDS, None, request, None, price,
                      None, sid, service)


@cython.freelist(8)
cdef class _Rec:
    """The fields of one record the fast path journals, packed by template without a dict
    where it can; the fields dict built only when needed (``dict_()``: a value the packer
    does not write, the rare rest of a request)."""

    cdef int kind  # T_COMMIT (rated + request/usage/price/end + tariff) or T_RESERVE
    cdef dict fields  # the fields dict (built lazily)
    cdef dict rated  # commit: the grant's rated fields ...
    cdef dict tariff  # ... and its tariff fields (or None)
    cdef object request, usage, price, end  # (a reserve: request and price)
    cdef object session, service  # reserve: session id, journal service

    cdef dict dict_(self):
        """The fields dict the Python path builds (OnlineCharging._settle, _hold_fields)."""
        cdef dict f = self.fields
        if f is None and self.kind == T_RESERVE:
            f = {"session": self.session, "request": self.request, "service": self.service,
                 "price": self.price}
            self.fields = f
        elif f is None:
            f = PyDict_Copy(self.rated)
            f["request"] = self.request
            f["usage"] = self.usage
            f["price"] = self.price
            f["end"] = self.end
            if self.tariff:
                f.update(self.tariff)
            self.fields = f
        return f


cdef enum:
    T_COMMIT = 0
    T_RESERVE = 1


cdef _Rec _commit_rec(dict rated, object tariff, object request, object usage, object price,
                      object end):
    cdef _Rec r = _Rec.__new__(_Rec)
    r.kind = T_COMMIT
    r.rated = rated
    r.tariff = tariff if tariff else None
    r.request = request
    r.usage = usage
    r.price = price
    r.end = end
    return r


cdef _Rec _reserve_rec(str sid, str request, grant, str price):
    """The fields of OnlineCharging._hold_fields, its dict not built (dict_())."""
    cdef _Rec r = _Rec.__new__(_Rec)
    r.kind = T_RESERVE
    r.session = sid
    r.request = request
    r.service = gr(grant, G_SVC)
    r.price = price
    return r


cdef str _int_text(object n):
    """str(n) (an int in 64 bits written by hand)."""
    cdef char buf[24]
    cdef int overflow = 0
    cdef long long x
    if type(n) is int:
        x = PyLong_AsLongLongAndOverflow(n, &overflow)
        if not overflow:
            return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, _put_dec(buf, x))
    return str(n)


cdef list _VALUES = []  # [(enum member, its .value), ...]: members and values never change


cdef object _enum_value(member):
    """``member.value`` of an Enum member (a Python property per read), remembered."""
    for pair in _VALUES:
        if (<tuple>pair)[0] is member:
            return (<tuple>pair)[1]
    v = member.value
    if len(_VALUES) < 64:
        _VALUES.append((member, v))
    return v


cdef dict _rated_fields(session, grant):
    """OnlineCharging._rated_fields: the constant journal fields of the grant's rated
    records, built once (same keys, same order, same values), kept on the grant."""
    f = gr(grant, G_FIELDS)
    if f is None:
        origin = ses(session, S_ORIGIN)
        f = {"session": ses(session, S_ID), "service": gr(grant, G_SVC),
             "unit": _enum_value(gr(grant, G_UNIT)),
             "a": origin or ses(session, S_SUBSCRIBER), "b": ses(session, S_DESTINATION),
             "account": ses(session, S_ACCOUNT), "deck": ses(session, S_DECK),
             "currency": ses(session, S_CURRENCY), "result": "ok",
             "start": int(ses(session, S_STARTED) * 1_000_000)}
        gr_set(grant, G_FIELDS, f)
    return f


cdef long long _BIG_COUNT = 4611686018427387904  # 2**62 (typed: a C comparison)


cdef inline int _bump(dict d, str key, long long n) except -1:
    """``d[key] += n`` (a C addition when the count is an int that stays in 64 bits)."""
    cdef int overflow = 0
    cdef long long x
    cdef PyObject *v = PyDict_GetItem(d, key)
    if v is not NULL and type(<object>v) is int:
        x = PyLong_AsLongLongAndOverflow(<object>v, &overflow)
        if not overflow and x < _BIG_COUNT:
            d[key] = x + n
            return 0
    d[key] = d[key] + n
    return 0


@cython.final
@cython.no_gc
@cython.freelist(16)
cdef class _Plan:
    """How a grant's prices are found without RatingEngine.price(): the row price_plan
    found, priced by its deck index's price_row, valid while price is the same bound method
    and ``latest[deck] is d`` (the engine's own dict of latest deck versions: a re-import
    replaces the entry) and for usages up to max_usage (EXACT_C_USAGE).

    Out of the cyclic collector's sight (``no_gc``): a plan refers to the rating engine's
    objects only, which never refer back to a plan, so it cannot be in a cycle; a plan is
    made per session start (destination, origin, second) and lives until the plan cache is
    cleared, and every young collection walked the thousands alive (with a bound method
    each: ``index`` is kept instead, its ``price_row`` called unbound)."""
    cdef object price_fn, d, index, row
    cdef dict latest
    cdef long long max_usage


cdef class FastPath:
    """The fast path of one ChargingService: its attributes that never change (the session
    table, the caches, the ledger's dicts, config values) read once; refreshed when the
    service's ``config`` or ``ledger`` is replaced. ``decide`` is the entry point."""

    cdef object svc, cfg, ledger, journal, ids, answers, sessions_table, deck_of, store
    cdef object answer_order  # svc._answer_order: the answers' keys, oldest first
    cdef object answer_until  # svc._answer_until: when each is forgotten, same order
    cdef object tags  # svc._tags: the per-session tags' counter (ServiceCore._new_tag)
    cdef dict retry_tags  # svc._retry_tags: failed INITIALs' tags, for their retries
    cdef dict latest  # the rater's latest deck versions (RatingEngine._latest), or None
    cdef object currency_of, deck_currency  # the deck version whose currency is kept
    cdef dict sessions, busy, counters, texts, quotas, accounts_seen, meta, stats
    cdef object tcc, ttl, validity_time, qht, pct, answer_cache_size, max_sessions, deck
    cdef object no_tariff_errors, to_rating, id_prefix, id_counter
    cdef bint snapshots, sync, paired, journal_failed_attr
    cdef Layout l_led  # the ledger's per-request fields (Ledger.__slots__), by offset
    cdef double snapshot_seconds
    cdef list rsvcs  # [(service, rating service), ...]: ServiceCore._to_rating, memoised
    cdef dict plans  # (deck version, rating service, destination, origin, start second) -> _Plan
    cdef list quota_pairs  # [(unit kind, (default, max quota)), ...]: _quotas, memoised
    cdef Tmpl t_commit, t_commit_tariff, t_reserve  # record templates (None: none yet)
    # svc._ended (sessions.EndedSessions): its dict (never replaced), its limit, the config's
    # session_retention (s; <= 0: not kept), the last expiry given out and its float
    cdef object ended_obj
    cdef dict ended
    cdef Py_ssize_t ended_max
    cdef double retention, stamp_v
    cdef object stamp

    def __init__(self, svc):
        self.svc = svc
        self._refresh()

    cdef int _refresh(self) except -1:
        svc = self.svc
        cfg = self.cfg = svc.config
        ledger = self.ledger = svc.ledger
        _layout(&self.l_led, type(ledger), N_LED, None)
        self.sessions_table = svc.sessions
        self.sessions = svc.sessions._sessions
        self.answers = svc._answers
        self.answer_order = svc._answer_order
        self.answer_until = svc._answer_until
        self.tags = svc._tags
        self.retry_tags = svc._retry_tags
        self.busy = svc._busy
        self.counters = svc.counters
        self.texts = svc._texts
        self.quotas = svc._quotas
        self.accounts_seen = svc._accounts_seen
        self.deck_of = getattr(svc.rater, "deck", None)
        latest = getattr(svc.rater, "_latest", None)
        self.latest = latest if type(latest) is dict else None
        self.currency_of = self.deck_currency = None
        self.to_rating = svc._to_rating
        self.rsvcs = []
        self.plans = {}
        self.quota_pairs = []
        self.ended_obj = svc._ended
        self.ended = self.ended_obj.until
        self.ended_max = self.ended_obj.limit
        self.retention = cfg.session_retention
        self.stamp_v = 0.0
        self.stamp = None
        self.tcc = cfg.tcc
        self.ttl = cfg.hold_ttl
        self.validity_time = cfg.validity_time
        self.qht = cfg.quota_holding_time
        self.pct = cfg.quota_threshold_percent
        self.answer_cache_size = cfg.answer_cache_size
        self.max_sessions = cfg.max_sessions
        self.deck = cfg.deck
        self.no_tariff_errors = cfg.no_tariff_errors
        self.journal = ledger.journal
        self.ids = ledger._ids
        self.id_prefix = self.ids._prefix
        self.id_counter = self.ids._counter
        self.meta = ledger._meta
        self.stats = ledger.stats
        self.snapshots = ledger.snapshot_dir is not None
        self.snapshot_seconds = ledger.snapshot_seconds
        self.store = None  # (ledger._store and its _sync / _pair: read by _mode)
        self.sync = False
        self.paired = False
        # Journal.failed is ``self._failed is not None``: read the attribute itself (no
        # property frame per request) when the journal has it as an instance attribute.
        # (Not by looking into its __dict__: reading an instance's __dict__ materialises it,
        # and CPython 3.11 then stops specialising the journal's attribute loads in every
        # Python method of the per-request path.)
        # A class-level ``_failed`` is fine when it is a compiled base's slot (journal_hot's
        # JournalHot: a getset/member descriptor that reads the object's own field).
        jt = type(self.journal)
        self.journal_failed_attr = (hasattr(self.journal, "_failed") and not any(
            "_failed" in c.__dict__ and type(c.__dict__["_failed"]).__name__
            not in ("getset_descriptor", "member_descriptor") for c in jt.__mro__))
        return 0

    # ------------------------------------------------------------------ entry point

    def layouts_known(self):
        """For the tests: whether the ledger's per-request fields are read by offset
        (Ledger.__slots__; False: by name, correct but slower)."""
        return {"Ledger": self.l_led.tp != NULL}

    def decide(self, svc, req, now):
        """ChargingService.decide for the plain online request: a ChargingResult, None
        (nothing changed: run the Python path) or a coroutine to await (module docstring)."""
        if svc is not self.svc:
            return None
        if svc.config is not self.cfg or svc.ledger is not self.ledger:
            self._refresh()
        if not _ready or rq(req, R_OFFLINE) or rq(req, R_FAILED_FIELD) is not None:
            return None
        verb = rq(req, R_VERB)
        if verb is _EVENT:
            return None
        key = rq(req, R_IDEM_KEY)
        if not key:
            return None
        units = rq(req, R_UNITS)
        if type(units) is not tuple or PyTuple_GET_SIZE(units) != 1:
            return None
        sid = rq(req, R_SESSION_ID)
        cdef PyObject *sp = PyDict_GetItem(self.sessions, sid)
        session = <object>sp if sp is not NULL else None
        if session is not None and ses(session, S_ANSWER_N) == rq(req, R_REQUEST_NUMBER) \
                and ses(session, S_ANSWER) is not None:
            return None  # a retransmit: the Python path answers it
        if key in self.answers or sid in self.busy:
            return None
        su = <object>PyTuple_GET_ITEM(units, 0)
        if verb is _INITIAL:
            if session is not None:
                return None
            return self._initial(req, key, now, su)
        if session is None or (verb is not _UPDATE and verb is not _TERMINATE):
            return None
        return self._update(session, req, key, now, su, verb is _TERMINATE)

    # ------------------------------------------------------------------ INITIAL

    cdef object _initial(self, req, str key, now, su):
        svc = self.svc
        if len(self.sessions) >= self.max_sessions:
            return None
        if PyDict_Size(self.ended) and PyDict_Contains(self.ended,
                                                       _ended_key(rq(req, R_SESSION_ID))):
            return None  # its Session-Id's session ended lately: the Python path (5002)
        if su_(su, U_USED_PRESENT) or su_(su, U_USED):
            return None
        subscriber = rq(req, R_SUBSCRIBER)
        if not subscriber:
            return None
        found = self.accounts_seen.get(subscriber)
        if found is None:
            return None  # the first request of an account: the Python path looks it up
        account, balance, currency = found
        if self.deck_of is not None:
            # rater.deck(deck).meta.currency; the currency of the latest version is kept with
            # that version (a LoadedDeck's meta never changes; a re-import is another object)
            dv = PyDict_GetItem(self.latest, self.deck) if self.latest is not None else NULL
            if dv is not NULL and <object>dv is self.currency_of:
                deck_currency = self.deck_currency
            else:
                try:
                    d = self.deck_of(self.deck)
                except self.no_tariff_errors:
                    return None
                deck_currency = d.meta.currency
                if dv is not NULL and <object>dv is d:
                    self.currency_of = d
                    self.deck_currency = deck_currency
            if deck_currency and deck_currency != currency:
                return None
        cdef int mode = self._mode(account, balance)
        if mode == 0:
            return None
        sid = rq(req, R_SESSION_ID)
        at = rq(req, R_AT)
        session = self._new_session(req, sid, account, balance, currency, subscriber,
                                    at or now, now + self.tcc)
        grant = self._grant_of(session, su)  # (the new session's own: nothing shared changes)
        unit = gr(grant, G_UNIT)
        want = self._want(unit, su_(su, U_REQUESTED))
        nxt = self._next_cost(session, grant, gr(grant, G_USED_TOTAL), want)
        if nxt is None:
            return None
        cost_u, amount = nxt
        # the session's tag (ServiceCore._new_tag, the same counter): drawn only now, as
        # the Python path draws one per session it creates (parity: the same tags)
        tag = None
        if PyDict_Size(self.retry_tags):  # ServiceCore._new_tag: a retry's own tag?
            kept = self.retry_tags.pop(sid, None)
            if kept is not None and (<tuple>kept)[1] > now:
                tag = (<tuple>kept)[0]
        if tag is None:
            tag = _tag_text(next(self.tags))
        ses_set(session, S_TAG, tag)
        skey = _slice0(key, tag)
        n = rq(req, R_REQUEST_NUMBER)
        rec = _reserve_rec(sid, _int_text(n), grant, self._money_text(amount))
        rkey = _cat(skey, b":r", 2)
        hold = _hold_id(sid, gr(grant, G_KEY), n)
        if mode == 2:  # a store that suspends (Redis): the rest runs in a coroutine
            self.busy[sid] = None
            return _awaited(self, _pending(req, key, now, session, su, grant, True, False,
                                           want, account, balance, None, None, 0, None,
                                           rkey, hold, cost_u, amount, rec, 0, 0, 0))
        # -- from here on the store moves money: no way back to "None"
        try:
            res = self.store.reserve_sync(rkey, account, balance, hold, amount, self.ttl,
                                          now, False)
            self._journal_one(res, "reserve", now, rec, account)
            return self._initial_done(req, key, now, session, su, grant, want, cost_u,
                                      amount, rec, res, True)
        except BaseException:
            svc._initial_failed(session, now)  # (its retry takes the same tag)
            raise

    cdef object _initial_done(self, req, str key, now, session, su, grant, want, cost_u,
                              amount, _Rec rec, res, bint mark_busy):
        """_initial once its reserve ran (*res*): the plain outcome booked and answered,
        else the coroutine of ChargingService._fast_rest (*mark_busy*: mark the session's
        turn taken first -- the suspending path took it before its op)."""
        sid = rq(req, R_SESSION_ID)
        if op_(res, O_STATUS) is not _OK or self._last_grant(session, grant, want, res):
            if mark_busy:
                self.busy[sid] = None
            return self.svc._fast_rest(req, key, now, session, su, grant, False, True, want,
                                       None, (cost_u, amount, rec.dict_(), res), True,
                                       self.sync)
        r = self._reserved(session, req, su, grant, want, amount, 0, op_(res, O_KEY))
        result = self._answer(session, r, False)
        sessions = self.sessions
        sessions.pop(sid, None)
        sessions[sid] = session
        self._remember(req, key, session, result, now)
        return result

    cdef object _new_session(self, req, sid, account, balance, currency, subscriber,
                             started, expires):
        """Session(...) of an online request (Session.__init__, offline=False)."""
        if not L_SES.complete:
            return _Session(
                session_id=sid, account=account, balance=balance, currency=currency,
                service=rq(req, R_SERVICE), subscriber=subscriber,
                destination=rq(req, R_DESTINATION), origin=rq(req, R_ORIGIN),
                peer_host=rq(req, R_PEER_HOST), peer_realm=rq(req, R_PEER_REALM),
                deck=self.deck, started=started, expires=expires,
                context=rq(req, R_CONTEXT))
        s = _make(_Session)
        ses_set(s, S_ID, sid)
        ses_set(s, S_ACCOUNT, account)
        ses_set(s, S_BALANCE, balance)
        ses_set(s, S_CURRENCY, currency)
        ses_set(s, S_SERVICE, rq(req, R_SERVICE))
        ses_set(s, S_SUBSCRIBER, subscriber)
        ses_set(s, S_DESTINATION, rq(req, R_DESTINATION))
        ses_set(s, S_ORIGIN, rq(req, R_ORIGIN))
        ses_set(s, S_PEER_HOST, rq(req, R_PEER_HOST))
        ses_set(s, S_PEER_REALM, rq(req, R_PEER_REALM))
        ses_set(s, S_DECK, self.deck)
        ses_set(s, S_STARTED, started)
        ses_set(s, S_EXPIRES, expires)
        ses_set(s, S_LAST_NUMBER, 0)
        ses_set(s, S_GRANTS, [])
        ses_set(s, S_OFFLINE, False)
        ses_set(s, S_SEEN, None)
        ses_set(s, S_CONTEXT, rq(req, R_CONTEXT))
        ses_set(s, S_ANSWER_N, -1)
        ses_set(s, S_ANSWER, None)
        ses_set(s, S_ANSWER_KEY, "")
        ses_set(s, S_KILLED, None)
        ses_set(s, S_COUNTERS, None)
        ses_set(s, S_TAG, "")  # (its own is set once it is sure to be decided here)
        return s

    cdef object _grant_of(self, session, su):
        """OnlineCharging._grant_of for a new session (no grant yet): Grant(...) appended."""
        service = su_(su, U_SERVICE)
        if not service:
            service = ses(session, S_SERVICE)
        money = su_(su, U_MONEY)
        cdef PyObject *hit = NULL
        if not money:
            hit = PyDict_GetItem(_SERVICE_UNIT, service)
        if not L_GR.complete or (not money and hit is NULL):
            return self.svc._grant_of(session, su)
        gkey = _grant_key(su)
        g = _make(_Grant)
        gr_set(g, G_KEY, gkey)
        gr_set(g, G_SERVICE, service)
        gr_set(g, G_UNIT, _MONEY if money else <object>hit)
        gr_set(g, G_GRANTED, 0)
        gr_set(g, G_USED_TOTAL, 0)
        gr_set(g, G_COST_TOTAL, 0)
        gr_set(g, G_HELD, 0)
        gr_set(g, G_HELD_N, -1)
        gr_set(g, G_FINAL, False)
        gr_set(g, G_SVC, _enum_value(service))
        gr_set(g, G_RSVC, None)
        gr_set(g, G_PRICED_U, -1)
        gr_set(g, G_PRICED_C, 0)
        gr_set(g, G_FIELDS, None)
        gr_set(g, G_TARIFF, None)
        gr_set(g, G_UNDO, None)
        gr_set(g, G_PLAN, None)
        gr_set(g, G_HOLD_KEY, None)
        gr_set(g, G_RSVC, self._rsvc(service))
        (<list>ses(session, S_GRANTS)).append(g)
        return g

    cdef object _rsvc(self, service):
        """ServiceCore._to_rating(service), memoised per service (a fixed mapping)."""
        for pair in self.rsvcs:
            if (<tuple>pair)[0] is service:
                return (<tuple>pair)[1]
        r = self.to_rating(service)
        if len(self.rsvcs) < 64:
            self.rsvcs.append((service, r))
        return r

    # ------------------------------------------------------------------ UPDATE / TERMINATE

    cdef object _update(self, session, req, str key, now, su, bint terminate):
        svc = self.svc
        if ses(session, S_KILLED) is not None:
            return None
        used_present = su_(su, U_USED_PRESENT)
        su_used = su_(su, U_USED)
        if not (used_present or su_used):
            return None
        requested = su_(su, U_REQUESTED)
        grant_next = not terminate and requested is not None
        if not terminate and not grant_next:
            return None  # an UPDATE without RSU: the Python path
        gkey = _grant_key(su)
        grant = None
        cdef list grants = ses(session, S_GRANTS)
        for g in grants:
            if gr(g, G_KEY) == gkey:
                grant = g
                break
        if grant is None:
            return None  # its first report: the Python path creates the grant
        if terminate:
            for g in grants:
                if g is not grant and gr(g, G_HELD) > 0:
                    return None  # another grant still holds: the Python path releases it
        skey = _slice0(key, ses(session, S_TAG))
        undo = gr(grant, G_UNDO)
        if undo is not None and undo[0] == skey:
            return None  # a retry after 5012: the Python path replays it
        held_n = gr(grant, G_HELD_N)
        if held_n < 0:
            return None  # nothing held: a plain debit (the Python path)
        account, balance = ses(session, S_ACCOUNT), ses(session, S_BALANCE)
        cdef int mode = self._mode(account, balance)
        if mode == 0:
            return None
        unit = gr(grant, G_UNIT)
        money = unit is _MONEY
        used = su_used if su_used > 0 else 0
        before = gr(grant, G_COST_TOTAL)
        used_total = gr(grant, G_USED_TOTAL)
        total = before + used if money else self._cost(session, grant, used_total + used)
        if total is None:
            return None
        want = 0
        nxt = None
        if grant_next:
            want = self._want(unit, requested)
            nxt = self._next_cost(session, grant, used_total + used, want)
            if nxt is None:
                return None
        rated = gr(grant, G_FIELDS)
        if rated is None:
            rated = _rated_fields(session, grant)
        tariff = None
        if used and not money:
            tariff = gr(grant, G_TARIFF)
            if tariff is None:
                tariff = svc._tariff(session, grant)
        # -- from here on the grant and the store change: no way back to "None"
        n = rq(req, R_REQUEST_NUMBER)
        if n > ses(session, S_LAST_NUMBER):
            ses_set(session, S_LAST_NUMBER, n)
        held = gr(grant, G_HELD)
        gr_set(grant, G_UNDO, (skey, held_n, used_total, before, held, gr(grant, G_GRANTED),
                               gr(grant, G_HOLD_KEY)))
        used_cost = total - before if total > before else 0
        at = rq(req, R_AT) or now
        if not tariff:
            tariff = None
        ntext = _int_text(n)
        crec = _commit_rec(rated, tariff, ntext, used, self._money_text(used_cost),
                           int(at * 1_000_000))
        sid = ses(session, S_ID)
        store = self.store
        gk = gr(grant, G_KEY)
        creservation = _hold_id(sid, gk, held_n)
        pre = None
        cdef _Rec rrec = None
        ckey = _cat(skey, b":c", 2)
        if grant_next:
            cost_u, amount = nxt
            rrec = _reserve_rec(sid, ntext, grant, self._money_text(amount))
        if mode == 2:  # a store that suspends (Redis): the rest runs in a coroutine
            self.busy[sid] = None
            if grant_next:
                return _awaited(self, _pending(
                    req, key, now, session, su, grant, False, terminate, want, account,
                    balance, ckey, creservation, used_cost, crec, _cat(skey, b":r", 2),
                    _hold_id(sid, gk, n), cost_u, amount, rrec, before, used, used_total))
            return _awaited(self, _pending(
                req, key, now, session, su, grant, False, terminate, want, account, balance,
                ckey, creservation, used_cost, crec, None, None, 0, 0, None, before, used,
                used_total))
        if grant_next:
            # SyncOps.commit_reserve_now
            op = store.commit_sync(ckey, account, balance, creservation, used_cost, now, True)
            if op_(op, O_STATUS) is _UNKNOWN_RES and not op_(op, O_EFFECTS) \
                    and not op_(op, O_HOLDS):
                self._count_plain(op)
            else:
                try:
                    rres = store.reserve_sync(_cat(skey, b":r", 2), account, balance,
                                              _hold_id(sid, gk, n), amount, self.ttl, now,
                                              False)
                except BaseException:
                    self._journal_one(op, "commit", now, crec, account)  # it moved money
                    raise
                self._journal_two(op, crec, rres, rrec, now, account)
                pre = (cost_u, amount, rrec, rres)
        else:
            op = store.commit_sync(ckey, account, balance, creservation, used_cost, now, True)
            self._journal_one(op, "commit", now, crec, account)
        return self._update_done(req, key, now, session, su, grant, terminate, want, op, pre,
                                 before, used, used_cost, crec, used_total, True)

    cdef object _update_done(self, req, str key, now, session, su, grant, bint terminate,
                             want, op, pre, before, used, used_cost, _Rec crec, used_total,
                             bint mark_busy):
        """_update once its commit (and the next reserve, *pre*: (cost so far, amount,
        record, result) or None) ran: the plain outcome booked and answered, else the
        coroutine of ChargingService._fast_rest (*mark_busy*: see _initial_done)."""
        svc = self.svc
        sid = ses(session, S_ID)
        unit = gr(grant, G_UNIT)
        grant_next = not terminate
        op_status = op_(op, O_STATUS)
        if op_status is _UNKNOWN_RES or (
                pre is not None and op_((<tuple>pre)[3], O_STATUS) is not _OK) or (
                grant_next and pre is None) or (
                pre is not None and self._last_grant(session, grant, used_total + used + want,
                                                     (<tuple>pre)[3])):
            if mark_busy:
                self.busy[sid] = None
            if pre is not None:  # (the reserve's fields as the dict _hold_fields builds)
                pre = ((<tuple>pre)[0], (<tuple>pre)[1], (<_Rec>(<tuple>pre)[2]).dict_(),
                       (<tuple>pre)[3])
            return svc._fast_rest(req, key, now, session, su, grant, terminate, grant_next,
                                  want, (op, pre, before, used, used_cost, crec.dict_()), None,
                                  False, self.sync)
        # OnlineCharging._settle: book the commit
        gr_set(grant, G_USED_TOTAL, used_total + used)
        gr_set(grant, G_HELD, 0)
        gr_set(grant, G_HELD_N, -1)
        gr_set(grant, G_HOLD_KEY, None)
        gr_set(grant, G_GRANTED, 0)
        used_cost = op_(op, O_GRANTED) if op_status is _OK else 0
        gr_set(grant, G_COST_TOTAL, before + used_cost)
        self._count("commit")
        if terminate:
            r = _units(su, _SUCCESS, unit, None, None, False, used_cost, None, None)
            result = self._answer(session, r, True)
            # OnlineCharging._end (not killed when decided; a suspending store's op lets an
            # ASR with ASA 2001 mark it meanwhile)
            self.sessions.pop(sid, None)
            # ServiceCore._ended_at: remembered for session_retention, and its ro_end record
            # journaled (after the commit's, as the Python path: same records, same order)
            self._ended_at(session, sid, now)
            if ses(session, S_KILLED) is not None:
                svc._killed.pop(sid, None)
            answer = ses(session, S_ANSWER)
            if answer is not None:
                self._keep(ses(session, S_ANSWER_KEY), answer, now)
            self._remember(req, key, None, result, now)
            return result
        r = self._reserved(session, req, su, grant, want, (<tuple>pre)[1], used_cost,
                           op_((<tuple>pre)[3], O_KEY))
        result = self._answer(session, r, False)
        # SessionTable.touch
        ses_set(session, S_EXPIRES, now + self.tcc)
        sessions = self.sessions
        cdef PyObject *cur = PyDict_GetItem(sessions, sid)
        if cur is <PyObject*>session:
            del sessions[sid]
            sessions[sid] = session
        self._remember(req, key, session, result, now)
        return result

    # ------------------------------------------------------------------ service helpers

    cdef inline object _money_text(self, object amount):
        """ServiceCore._money_text (its cache dict first)."""
        cdef PyObject *hit = PyDict_GetItem(self.texts, amount)
        if hit is not NULL:
            return <object>hit
        return self.svc._money_text(amount)

    cdef inline object _want(self, unit, requested):
        """OnlineCharging._want: the requested units, else the unit's default quota, capped
        (the quotas of a unit kind looked up once: ServiceCore._quotas never changes)."""
        cdef tuple dc = None
        for pair in self.quota_pairs:
            if (<tuple>pair)[0] is unit:
                dc = <tuple>(<tuple>pair)[1]
                break
        if dc is None:
            dc = tuple(self.quotas[id(unit)])
            self.quota_pairs.append((unit, dc))
        default, cap = dc
        want = requested or default
        return cap if want > cap else want

    cdef int _ended_at(self, session, sid, now) except -1:
        """ServiceCore._ended_at: the session *sid* ended at *now* -- EndedSessions.add, and
        its ro_end record (the dict Ledger.record_many_now makes of ServiceCore's: same keys,
        same order, same values) enqueued."""
        cdef double until
        if not self.retention > 0:
            return 0
        until = <double>now + self.retention
        if self.stamp is None or not (self.stamp_v - 1.0 < until <= self.stamp_v):
            self.stamp_v = ceil(until)  # (its second's expiry, shared by its entries)
            self.stamp = self.stamp_v
        k = _ended_key(sid)
        cdef dict d = self.ended
        cdef Py_ssize_t n = PyDict_Size(d)
        PyDict_SetDefault(d, k, self.stamp)  # (one lookup: the common case, a new id)
        if PyDict_Size(d) == n:  # ended again: to the end, end order
            PyDict_DelItem(d, k)
            PyDict_SetItem(d, k, self.stamp)
        elif n >= self.ended_max:
            self.ended_obj.trim()
        rec = {"type": "ro_end", "op": "end", "session": sid,
               "idem": f"ro:{sid}:end:{ses(session, S_LAST_NUMBER)}{ses(session, S_TAG)}",
               "balance_effects": [],
               "holds": [], "v": 1, "id": self._next_id(), "ts": int(now * 1_000_000)}
        self.journal.append_nowait(rec)
        return 0

    cdef inline int _count(self, str name) except -1:
        cdef dict counters = self.counters
        counters[name] = counters.get(name, 0) + 1
        return 0

    cdef object _cost(self, session, grant, object usage):
        """ServiceCore._cost: price of the session's first *usage* units (cached on the grant;
        the tariff row found once per grant: RatingEngine.price_plan, kept as a _Plan)."""
        cdef int overflow = 0
        cdef long long u = 0
        cdef _Plan plan
        cdef PyObject *latest
        cdef bint small = type(usage) is int
        if small:
            u = PyLong_AsLongLongAndOverflow(usage, &overflow)
            small = not overflow
        pu = gr(grant, G_PRICED_U)
        if small and type(pu) is int:
            if u == PyLong_AsLongLongAndOverflow(pu, &overflow) and not overflow:
                return gr(grant, G_PRICED_C)
        elif usage == pu:
            return gr(grant, G_PRICED_C)
        if small:
            if u <= 0:
                return 0
            if u > _MAX_AMOUNT_C:
                return None
        else:
            if usage <= 0:
                return 0
            if usage > _MAX_AMOUNT:
                return None
        svc = self.svc
        price_fn = svc._price
        if price_fn is None:
            return svc._cost(session, grant, usage)
        p = gr(grant, G_PLAN)
        if p is None:
            p = self._plan(session, grant, price_fn)
            gr_set(grant, G_PLAN, p)
        deck = ses(session, S_DECK)
        price = None
        if type(p) is _Plan:
            plan = <_Plan>p
            if plan.price_fn is price_fn and small and u <= plan.max_usage:
                # the deck version the row was found in must still be the latest (a
                # re-imported deck prices from its own rows: price() again)
                latest = PyDict_GetItem(plan.latest, deck)
                if latest is <PyObject*>plan.d:
                    price = plan.index.price_row(plan.row, usage)[0]
        if price is None:
            rsvc = gr(grant, G_RSVC)
            if rsvc is None:
                rsvc = svc._to_rating(gr(grant, G_SERVICE))
                gr_set(grant, G_RSVC, rsvc)
            try:
                price = int(price_fn(deck, rsvc, ses(session, S_DESTINATION) or "",
                                     ses(session, S_STARTED), usage,
                                     ses(session, S_ORIGIN) or ""))
            except self.no_tariff_errors:
                return None
        if type(price) is int:
            u = PyLong_AsLongLongAndOverflow(price, &overflow)
            if overflow > 0 or (overflow == 0 and u > _MAX_AMOUNT_C):
                return None
        elif price > _MAX_AMOUNT:
            return None
        gr_set(grant, G_PRICED_U, usage)
        gr_set(grant, G_PRICED_C, price)
        return price

    cdef object _plan(self, session, grant, price_fn):
        """A _Plan (the row RatingEngine.price_plan found) or False (price() every time).

        Plans are shared between grants: what price_plan returns depends only on the deck
        version (``latest[deck]``), the rating service, the destination, the origin and the
        start second (it finds the row at ``floor(at)``, its band is the start minute's), so
        a plan found for one session serves every later one with the same key while that
        deck version is the latest -- the sessions of one APN, or of one B-number, starting
        within the same second. A re-imported deck is another version: its key differs."""
        cdef _Plan plan
        cdef PyObject *hit
        cdef PyObject *dv
        cdef long long sec
        engine = getattr(price_fn, "__self__", None)
        plan_fn = getattr(engine, "price_plan", None)
        if plan_fn is None:
            return False
        latest = getattr(engine, "_latest", None)
        if type(latest) is not dict:
            return False
        rsvc = gr(grant, G_RSVC)
        if rsvc is None:
            rsvc = self.svc._to_rating(gr(grant, G_SERVICE))
            gr_set(grant, G_RSVC, rsvc)
        deck = ses(session, S_DECK)
        destination = ses(session, S_DESTINATION) or ""
        origin = ses(session, S_ORIGIN) or ""
        started = ses(session, S_STARTED)
        key = None
        dobj = None  # (the deck version looked up: a strong reference across plan_fn)
        dv = PyDict_GetItem(<dict>latest, deck)
        if dv is not NULL and type(started) is float and -9.0e15 < <double>started < 9.0e15:
            sec = <long long>floor(<double>started)
            # (the deck version by identity: a plan keeps its deck alive, so no other object
            # can have that id while the entry exists)
            dobj = <object>dv
            key = (<Py_ssize_t>dv, rsvc, destination, origin, sec)
            hit = PyDict_GetItem(self.plans, key)
            if hit is not NULL:
                plan = <_Plan>hit
                if plan.price_fn is price_fn and plan.d is dobj:
                    return plan
        try:
            found = plan_fn(deck, rsvc, destination, started, origin)
        except self.no_tariff_errors:
            return False
        if found is None:
            return False
        d, index, row = found
        plan = _Plan.__new__(_Plan)
        plan.price_fn = price_fn
        plan.latest = latest
        plan.d = d
        plan.index = index
        plan.row = row
        plan.max_usage = _EXACT_C_USAGE
        if key is not None and d is dobj:
            if len(self.plans) >= 4096:
                self.plans.clear()  # (bounded: keys of past seconds are dead)
            self.plans[key] = plan
        return plan

    cdef bint _last_grant(self, session, grant, object units, object res) except -1:
        """OnlineCharging._last_grant of an OK reserve *res*: nothing left for one unit past
        the first *units* (FUI TERMINATE; the Python path then builds the answer). The
        grant's one-price cache is left as it was."""
        available = res.available_after
        if available is None:
            return False
        if gr(grant, G_UNIT) is _MONEY:
            return available <= 0
        pu = gr(grant, G_PRICED_U)
        pc = gr(grant, G_PRICED_C)
        held = self._cost(session, grant, units)
        more = self._cost(session, grant, units + 1)
        gr_set(grant, G_PRICED_U, pu)
        gr_set(grant, G_PRICED_C, pc)
        if held is None or more is None:
            return False
        return more - held > available

    cdef object _next_cost(self, session, grant, object u, object want):
        """OnlineCharging._next_cost: (cost of the first u units, cost of the next want)."""
        if gr(grant, G_UNIT) is _MONEY:
            return (gr(grant, G_COST_TOTAL), want)
        cost_u = self._cost(session, grant, u)
        if cost_u is None:
            return None
        cost_w = self._cost(session, grant, u + want)
        if cost_w is None:
            return None
        return (cost_u, cost_w - cost_u if cost_w > cost_u else 0)

    cdef object _reserved(self, session, req, su, grant, want, amount, object used_cost,
                          object hold_key):
        """OnlineCharging._reserve after an OK reserve (its key: *hold_key*): book it, build
        the slice result."""
        gr_set(grant, G_GRANTED, want)
        gr_set(grant, G_HELD, amount)
        gr_set(grant, G_HELD_N, rq(req, R_REQUEST_NUMBER))
        gr_set(grant, G_HOLD_KEY, hold_key)
        gr_set(grant, G_FINAL, False)
        self._count("reserve")
        pct = self.pct
        return _units(su, _SUCCESS, gr(grant, G_UNIT), want, self.validity_time, False,
                      used_cost, self.qht, None if pct is None else want * pct // 100)

    cdef object _answer(self, session, r, bint terminate):
        """OnlineCharging._slice_answer of a SUCCESS slice result *r*."""
        cdef list grants = ses(session, S_GRANTS)
        res = _make(_ChargingResult)
        cr_set(res, CR_OUTCOME, _SUCCESS)
        cr_set(res, CR_UNITS, (r,))
        cr_set(res, CR_CURRENCY, ses(session, S_CURRENCY))
        if len(grants) == 1:
            cost = gr(<object>PyList_GET_ITEM(grants, 0), G_COST_TOTAL)
        else:
            cost = session.cost_total
        cr_set(res, CR_COST, cost)
        cr_set(res, CR_VALIDITY_TIME, None if terminate else self.validity_time)
        cr_set(res, CR_FINAL_UNIT, ur(r, UR_FINAL_UNIT))
        cr_set(res, CR_ENOUGH_CREDIT, None)
        cr_set(res, CR_GRANTED_EVENT_UNITS, None)
        cr_set(res, CR_FAILED_FIELD, None)
        cr_set(res, CR_MESSAGE, "")
        return res

    cdef int _keep(self, key, result, now) except -1:
        """ServiceCore.keep_answer: the dict plus its FIFO deques of keys and expiries."""
        cdef dict answers = self.answers
        cdef Py_ssize_t n = len(answers)
        answers[key] = result
        order = self.answer_order
        until = self.answer_until
        if len(answers) != n:
            order.append(key)
            until.append(<double>now + self.retention if self.retention > 0 else INFINITY)
        excess = len(order) - self.answer_cache_size
        while excess > 0:  # FIFO eviction, oldest first
            answers.pop(order.popleft(), None)
            until.popleft()
            excess -= 1
        return 0

    cdef int _remember(self, req, str key, session, result, now) except -1:
        """ChargingService._remember (session: the open session of the request, or None)."""
        untrack_result(result, _ChargingResult, _UnitsResult)  # gc_untrack.pxi
        n = rq(req, R_REQUEST_NUMBER)
        if session is not None:
            answer = ses(session, S_ANSWER)
            if answer is not None and ses(session, S_ANSWER_N) != n:
                self._keep(ses(session, S_ANSWER_KEY), answer, now)
            ses_set(session, S_ANSWER_N, n)
            ses_set(session, S_ANSWER, result)
            ses_set(session, S_ANSWER_KEY, key)
        else:
            self._keep(key, result, now)
        return 0

    # ------------------------------------------------------------------ ledger helpers

    cdef inline int _mode(self, account, balance) except -1:
        """How this path may run the account's ops: 1, the ledger's synchronous ops
        (``svc._sync_ledger and ledger.sync_ready(account, balance)``: the embedded store);
        2, awaited, the commit and the next reserve as one op (a store that suspends and
        pairs ops: Redis; Ledger._run's checks hold: not paused, not failed, the balance's
        metadata cached); 0, neither (the Python path). The ledger's ``_sync`` and
        ``_pair`` change only with its store (SyncOps.store's setter), so they are read again
        only when ``ledger._store`` is another object."""
        ledger = self.ledger
        cdef Layout *ll = &self.l_led
        store = _get(ll, N_LED, ledger, LD_STORE)
        if store is not self.store:
            self.store = store
            self.sync = (bool(self.svc._sync_ledger)
                         and bool(_get(ll, N_LED, ledger, LD_SYNC)))
            self.paired = (not self.sync and bool(self.svc._sync_ledger)
                           and getattr(ledger, "_pair", None) is not None)
        if not (self.sync or self.paired) or _get(ll, N_LED, ledger, LD_FAILED) is not None \
                or (account, balance) not in self.meta:
            return 0
        if self.journal_failed_attr:
            if self.journal._failed is not None:
                return 0
        elif self.journal.failed:
            return 0
        if self.sync:
            return 1
        return 2 if _get(ll, N_LED, ledger, LD_PAUSE) is None else 0

    cdef int _next_turn(self, sid) except -1:
        """ChargingService._next_turn: free session *sid*'s turn (no request waits for it:
        the common case, inline) or hand it to the next waiting request."""
        cdef PyObject *w = PyDict_GetItem(self.busy, sid)
        if w is NULL:
            return 0
        if <object>w is None:
            del self.busy[sid]
            return 0
        self.svc._next_turn(sid)
        return 0

    cdef int _journal_awaited(self, list done, now, account) except -1:
        """Ledger._run / Ledger.commit_reserve after the store's reply (``wait=False``):
        *done* is [(result, op, replayed, _Rec), ...] in op order; the records of the ops
        that moved money, by the same templates as the synchronous path, in ONE append;
        each tracked for its Redis confirmation and booked (Ledger._after) once its group
        commit succeeded."""
        cdef list recs = []
        cdef list journaled = []
        ledger = self.ledger
        stats = self.stats
        ts = int(now * 1_000_000)
        for item in done:
            res, op, replayed, rec = <tuple>item
            if replayed:
                stats["replayed"] += 1
            elif _moved(res):
                try:
                    recs.append(self._out(<_Rec>rec, op, res, self._next_id(), ts))
                except BaseException as exc:
                    ledger._failed = exc  # the store moved money the journal does not have
                    raise
                journaled.append(res)
            else:
                stats["ops"] += 1  # refused, nothing moved: nothing to journal
        if not recs:
            return 0
        try:
            positions, group = self.journal.append_many_nowait(recs)
        except BaseException as exc:
            ledger._failed = exc
            raise
        # each record tracked for its Redis confirmation (Ledger._track), all booked by one
        # callback once their group commit succeeded
        track = ledger._track
        cdef list seqs = [track(pos, op_(res, O_KEY)) for res, pos in zip(journaled, positions)]
        group.add_done_callback(_Booked(ledger, journaled, seqs, now, account))
        return 0

    cdef str _next_id(self):
        """RecordIds.next: f"{prefix}{next(counter)}" (written by hand: an ASCII prefix, a
        64-bit count; the prefix and the counter object are fixed per RecordIds)."""
        cdef char buf[160]
        cdef int overflow = 0
        cdef long long c
        cdef Py_ssize_t ln
        prefix = self.id_prefix
        n = next(self.id_counter)
        if type(n) is int and PyUnicode_IS_COMPACT_ASCII(prefix):
            ln = PyUnicode_GET_LENGTH(prefix)
            c = PyLong_AsLongLongAndOverflow(n, &overflow)
            if ln <= 128 and not overflow:
                memcpy(buf, PyUnicode_DATA(prefix), ln)
                ln += _put_dec(buf + ln, c)
                return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, ln)
        return f"{prefix}{n}"

    cdef int _count_plain(self, res) except -1:
        """SyncOps._count_plain."""
        if op_(res, O_REPLAYED):
            self.stats["replayed"] += 1
        elif not _moved(res):
            self.stats["ops"] += 1
        return 0

    cdef int _journaled(self, res, now, account, group) except -1:
        """SyncOps._journaled (Ledger._maybe_snapshot called only once one is due)."""
        ledger = self.ledger
        if op_(res, O_LOW_BALANCE):
            ledger._journaled(res, now, account, group)
            return 0
        return self._journaled_n(1)

    cdef int _journaled_n(self, int count) except -1:
        """SyncOps._journaled of *count* ops without a low-balance event (the counters added
        as C integers when they are ints, as Python's += otherwise)."""
        cdef int overflow = 0
        cdef int every_overflow = 0
        cdef long long since_c = 0
        cdef long long every_c
        cdef bint due
        ledger = self.ledger
        stats = self.stats
        _bump(stats, "ops", count)
        _bump(stats, "journaled", count)
        cdef Layout *ll = &self.l_led
        since = _get(ll, N_LED, ledger, LD_SINCE)
        if type(since) is int:
            since_c = PyLong_AsLongLongAndOverflow(since, &overflow) + count
            if overflow:
                since = since + count
            else:
                since = since_c
        else:
            since = since + count
        _put(ll, N_LED, ledger, LD_SINCE, since)
        if self.snapshots and _get(ll, N_LED, ledger, LD_TASK) is None:
            # ops between snapshots: the ledger's current spacing (Ledger._maybe_snapshot)
            every = _get(ll, N_LED, ledger, LD_EVERY)
            if not overflow and type(since) is int and type(every) is int:
                every_c = PyLong_AsLongLongAndOverflow(every, &every_overflow)
                due = every_overflow == 0 and since_c >= every_c  # (overflow: never due)
            else:
                due = since >= every
            if due:
                ledger._maybe_snapshot()
                return 0
            last_snapshot = _get(ll, N_LED, ledger, LD_LAST)
            if type(last_snapshot) is float:
                if _monotonic() - PyFloat_AS_DOUBLE(last_snapshot) >= self.snapshot_seconds:
                    ledger._maybe_snapshot()
            elif _monotonic() - last_snapshot >= self.snapshot_seconds:
                ledger._maybe_snapshot()
        return 0

    cdef object _out(self, _Rec rec, str op, res, str record_id, object ts_us):
        """The record to append: its bytes by the template of its shape (built on the first
        record of a shape, again when a record's shape differs), else _record_out of its
        fields dict."""
        cdef Tmpl t
        cdef dict d1, d2
        if rec.kind == T_COMMIT:
            d1, d2 = rec.rated, rec.tariff
            t = self.t_commit_tariff if d2 is not None else self.t_commit
        else:
            d1, d2 = _NO_FIELDS, None
            t = self.t_reserve
        if t is not None and t.op != op:
            t = None
        for attempt in range(2):
            if t is not None:
                packed = _pack_tmpl(t, res, record_id, ts_us, self.meta, d1, d2, rec.request,
                                    rec.usage, rec.price, rec.end, rec.session, rec.service)
                if packed is not None:
                    return packed
            if attempt:
                break
            t = _template(d1, _COMMIT_VARS if rec.kind == T_COMMIT else _RESERVE_VARS, d2, op)
            if t is None:
                break
            if rec.kind == T_RESERVE:
                self.t_reserve = t
            elif d2 is not None:
                self.t_commit_tariff = t
            else:
                self.t_commit = t
        return _record_out(rec.dict_(), op, res, record_id, ts_us, self.meta)

    cdef int _journal_one(self, res, str op, now, _Rec fields, account) except -1:
        """SyncOps._journal_now (fields: a fresh dict)."""
        ledger = self.ledger
        if op_(res, O_REPLAYED):
            self.stats["replayed"] += 1
        elif _moved(res):
            try:
                rec = self._out(fields, op, res, self._next_id(), int(now * 1_000_000))
                _pos, group = self.journal.append_nowait(rec)
            except BaseException as exc:
                ledger._failed = exc  # the store moved money the journal does not have
                raise
            self._journaled(res, now, account, group)
        else:
            self.stats["ops"] += 1
        return 0

    cdef int _journal_two(self, cres, _Rec cfields, rres, _Rec rfields, now,
                          account) except -1:
        """The journal half of SyncOps.commit_reserve_now (both records in one append)."""
        cdef list recs = []
        ts = int(now * 1_000_000)
        if not op_(cres, O_REPLAYED) and _moved(cres):
            recs.append(self._out(cfields, "commit", cres, self._next_id(), ts))
        if not op_(rres, O_REPLAYED) and _moved(rres):
            recs.append(self._out(rfields, "reserve", rres, self._next_id(), ts))
        if recs:
            try:
                _pos, group = self.journal.append_many_nowait(recs, positions=False)
            except BaseException as exc:
                self.ledger._failed = exc  # the store moved money the journal does not have
                raise
            if len(recs) == 2 and not op_(cres, O_LOW_BALANCE) \
                    and not op_(rres, O_LOW_BALANCE):
                self._journaled_n(2)  # (both at once: the same counts, one snapshot check)
            else:
                self._journaled(cres, now, account, group)
                if len(recs) == 2:
                    self._journaled(rres, now, account, group)
        if len(recs) < 2:
            self._count_plain(cres)
            self._count_plain(rres)
        return 0


@cython.final
cdef class _Booked:
    """The group commit's done callback of one append of a suspending store's records:
    Ledger._after_group for each, in order (one callback per append, not one per record).
    A failed group books nothing (the ledger fails closed)."""

    cdef object ledger, now, account
    cdef list results, seqs

    def __cinit__(self, ledger, list results, list seqs, now, account):
        self.ledger = ledger
        self.results = results
        self.seqs = seqs
        self.now = now
        self.account = account

    def __call__(self, group):
        if group.cancelled() or group.exception() is not None:
            return
        after = self.ledger._after
        for res, seq in zip(self.results, self.seqs):
            after(res, self.now, self.account, seq)


# ---------------------------------------------------------------------- a store that suspends
# The same steps as the synchronous path, with the store op awaited in between (Redis): the
# session's turn is taken before the op (ChargingService.decide's ``busy``) and passed on
# after, or by ChargingService._fast_rest when the outcome is not the plain one. The
# ledger's part is Ledger._run's / Ledger.commit_reserve's (``wait=False``): in flight
# counted, keys noted unsure when the call fails (a retry replays them), a replay of a lost
# reply checked, the records enqueued (the caller waits for the durable mark).

@cython.final
@cython.freelist(64)
cdef class _Pending:
    """A request decided up to its store op, on a store that suspends: what the op needs
    (``ckey`` None: no commit; ``rkey`` None: no reserve) and what the rest of the decision
    (_initial_done / _update_done) reads."""

    cdef object req, key, now, session, su, grant, want, account, balance
    cdef bint initial, terminate
    cdef object ckey, creservation, used_cost, rkey, rreservation, cost_u, amount
    cdef _Rec crec, rrec
    cdef object before, used, used_total


cdef _Pending _pending(req, key, now, session, su, grant, bint initial, bint terminate, want,
                       account, balance, ckey, creservation, used_cost, _Rec crec, rkey,
                       rreservation, cost_u, amount, _Rec rrec, before, used, used_total):
    cdef _Pending p = _Pending.__new__(_Pending)
    p.req, p.key, p.now, p.session, p.su, p.grant = req, key, now, session, su, grant
    p.initial, p.terminate, p.want, p.account, p.balance = initial, terminate, want, account, \
        balance
    p.ckey, p.creservation, p.used_cost, p.crec = ckey, creservation, used_cost, crec
    p.rkey, p.rreservation, p.cost_u, p.amount, p.rrec = rkey, rreservation, cost_u, amount, \
        rrec
    p.before, p.used, p.used_total = before, used, used_total
    return p


async def _awaited(FastPath fp, _Pending p):
    """The store op of *p* awaited -- the reserve of an INITIAL, the commit + next reserve
    of an UPDATE as ONE op (Ledger.commit_reserve), the commit of a TERMINATE -- with
    Ledger._run's bookkeeping, its records journaled, then the rest of the decision as the
    synchronous path takes it. Holds the session's turn (taken by the caller) until done."""
    sid = rq(p.req, R_SESSION_ID)
    ledger = fp.ledger
    account, now = p.account, p.now
    handed = False
    rres = None
    try:
        ledger._inflight += 1
        try:
            try:
                if p.ckey is None:
                    rres = await fp.store.reserve(p.rkey, account, p.balance, p.rreservation,
                                                  p.amount, ttl=fp.ttl, now=now, partial=False)
                    cres = None
                elif p.rkey is None:
                    cres = await fp.store.commit(p.ckey, account, p.balance, p.creservation,
                                                 p.used_cost, now=now, release_rest=True)
                else:
                    cres, rres = await ledger._pair(p.ckey, account, p.balance,
                                                    p.creservation, p.used_cost, p.rkey,
                                                    p.rreservation, p.amount, ttl=fp.ttl,
                                                    now=now)
            except Exception:
                if p.ckey is not None:
                    ledger._note_unsure(p.ckey)  # did it run? a retry replays it by key
                if p.rkey is not None:
                    ledger._note_unsure(p.rkey)
                raise
            done = []
            for res, op, rec in ((cres, "commit", p.crec), (rres, "reserve", p.rrec)):
                if res is None:
                    continue
                replayed = op_(res, O_REPLAYED)
                if replayed and _unsure(ledger, res):
                    replayed = await ledger._replay_of_lost_reply(res, account)
                done.append((res, op, replayed, rec))
            fp._journal_awaited(done, now, account)
        finally:
            ledger._inflight -= 1
        if p.initial:
            out = fp._initial_done(p.req, p.key, now, p.session, p.su, p.grant, p.want,
                                   p.cost_u, p.amount, p.rrec, rres, False)
        else:
            out = fp._update_done(p.req, p.key, now, p.session, p.su, p.grant, p.terminate,
                                  p.want, cres, None if rres is None else (
                                      p.cost_u, p.amount, p.rrec, rres),
                                  p.before, p.used, p.used_cost, p.crec, p.used_total, False)
        if out.__class__ is not _ChargingResult:
            handed = True  # ChargingService._fast_rest passes the turn on
            return await out
        return out
    except BaseException:
        if p.initial:
            fp.svc._initial_failed(p.session, now)  # (its retry takes the same tag)
        raise
    finally:
        if not handed:
            fp._next_turn(sid)


cdef inline bint _unsure(ledger, res) except -1:
    """Ledger._run's replay test, its rare half: the replayed result's key had an earlier
    call fail (then Ledger._replay_of_lost_reply says whether nobody journaled it)."""
    unsure = ledger._unsure
    return bool(unsure) and op_(res, O_KEY) in unsure
