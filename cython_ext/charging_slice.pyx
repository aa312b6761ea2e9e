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
  an account not yet seen, a retry after 5012, a killed session, a Redis store...). NOTHING
  was changed: the caller runs the Python path;
* a coroutine: the store op ran but its outcome is not the plain one (a refused reserve ->
  grant what fits / 4012, a commit that found no hold -> partial debit): the caller awaits it
  (``ChargingService._fast_rest``, the Python path's own code from there on).

charging/service_core.py selects it (``cython_ext.load("charging_slice")``, once; one
:class:`FastPath` per service keeps the service's and ledger's long-lived attributes); the
parity tests (tests/charging/test_service_fast_path.py) run random sessions through both
paths and compare answers, balances, holds and journal bytes.
"""

from cpython.dict cimport PyDict_Copy, PyDict_GetItem
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_SIZE

# Bound by init() (cython_ext never imports charging: the dependency rule)
cdef object _INITIAL, _UPDATE, _TERMINATE, _EVENT
cdef object _SUCCESS, _OK, _UNKNOWN_RES, _MONEY
cdef object _ChargingResult, _UnitsResult, _Session
cdef object _MAX_AMOUNT, _EXACT_C_USAGE
cdef dict _AMOUNT_CACHE
cdef object _amount_text
cdef object _TYPES = None  # op -> record type
cdef dict _STATUS_TEXT = {}
cdef object _new = object.__new__
cdef tuple _NO_META = (True, None)
cdef bint _ready = False


def init(*, verbs, success, ok, unknown_reservation, money_unit, charging_result_cls,
         units_result_cls, session_cls, max_amount, amount_cache, amount_text, op_types,
         exact_usage):
    """Bind the reference classes and constants (charging/service_core.py calls it once)."""
    global _INITIAL, _UPDATE, _TERMINATE, _EVENT, _SUCCESS, _OK, _UNKNOWN_RES, _MONEY
    global _ChargingResult, _UnitsResult, _Session, _MAX_AMOUNT, _AMOUNT_CACHE, _amount_text
    global _TYPES, _ready, _EXACT_C_USAGE
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
    for e in res.effects:
        key = (e.account, e.balance)
        m = PyDict_GetItem(meta, key)
        mt = <object>m if m is not NULL else _NO_META
        effects.append({"account": e.account, "balance": e.balance, "currency": mt[1],
                        "amount": _amount(e.amount, mt[0])})
    for h in res.holds:
        exp = h.expires_at
        key = (h.account, h.balance)
        m = PyDict_GetItem(meta, key)
        mt = <object>m if m is not NULL else _NO_META
        holds.append({"account": h.account, "balance": h.balance,
                      "reservation": h.reservation, "amount": _amount(h.amount, mt[0]),
                      "expires": None if exp is None else round(exp * 1_000_000)})
    status = res.status
    m = PyDict_GetItem(_STATUS_TEXT, status)
    if m is NULL:
        status_text = status.value
        _STATUS_TEXT[status] = status_text
    else:
        status_text = <object>m
    rec["v"] = 1
    rec["id"] = record_id
    rec["ts"] = ts_us
    rec["idem"] = res.key
    rec["op"] = op
    rec["result"] = status_text
    rec["granted"] = res.granted
    rec["balance_effects"] = effects
    rec["holds"] = holds
    return rec


cdef inline bint _moved(res) except -1:
    return res.status is _OK or bool(res.effects) or bool(res.holds)


cdef object _units(su, outcome, unit, granted, validity_time, final_unit, used_cost,
                   qht, threshold):
    """requests.units_result."""
    r = _new(_UnitsResult)
    r.rating_group = su.rating_group
    r.service_id = su.service_id
    r.outcome = outcome
    r.unit = unit
    r.granted = granted
    r.validity_time = validity_time
    r.final_unit = final_unit
    r.used_cost = used_cost
    r.quota_holding_time = qht
    r.quota_threshold = threshold
    return r


cdef inline str _hold_id(str sid, grant, object n):
    """Grant.hold_id."""
    return f"{sid}|{grant.key}|{n}"


cdef inline dict _hold_fields(str sid, req, grant, str price):
    """OnlineCharging._hold_fields."""
    return {"session": sid, "request": str(req.request_number), "service": grant.svc,
            "price": price}


# ---------------------------------------------------------------------- record bytes
# The record as msgpack bytes (docs/journal-schema.md: msgpack.Packer(use_bin_type=True) of
# the op_record_into dict), written straight from the fields and the store result: no record
# dict, no generic encoder walk. The journal frames bytes records as they are. Values other
# than str / int / bool / None / float (and str keys) make it give up (None): the caller
# builds the dict instead. tests/charging/test_service_fast_path.py checks the bytes against
# msgpack's over random fields and results.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

cdef struct Buf:
    unsigned char *p  # a stack array, or heap once a record outgrows it
    Py_ssize_t n
    Py_ssize_t cap
    bint heap

# op_record_into's own keys, in the order it sets them (after "type")
cdef tuple _OVER = ("v", "id", "ts", "idem", "op", "result", "granted", "balance_effects",
                    "holds")
cdef dict _OVER_AT = {k: i for i, k in enumerate(_OVER)}


cdef int _room(Buf *b, Py_ssize_t k) except -1:
    cdef Py_ssize_t cap
    cdef unsigned char *p
    if b.n + k <= b.cap:
        return 0
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
    cdef const char *u = PyUnicode_AsUTF8AndSize(s, &n)
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
        elif x < 4294967296:
            _be(b, 0xce, x, 4)
        else:
            _be(b, 0xcf, x, 8)
    elif x >= -32:
        _b1(b, <unsigned char>(x & 0xff))
    elif x >= -128:
        _be(b, 0xd0, <unsigned long long>x, 1)
    elif x >= -32768:
        _be(b, 0xd1, <unsigned long long>x, 2)
    elif x >= -2147483648:
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



cdef inline int _w_kv(Buf *b, str key, object v) except -1:
    """One map entry: *key* then the scalar *v* (1 = a value type _w_obj does not write)."""
    _w_str(b, key)
    return _w_obj(b, v)

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
    if key is not None and _last_meta_dict is meta and (<tuple>key)[0] == account \
            and (<tuple>key)[1] == balance:
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
        return _w_obj(b, res.key)
    if i == 4:
        return _w_str(b, op)
    if i == 5:
        return _w_obj(b, status_text)
    if i == 6:
        return _w_obj(b, res.granted)
    if i == 7:
        effects = res.effects
        _w_len(b, 0x90, 0xdc, 0xdd, len(effects))
        for e in effects:
            mt = _meta_get(meta, e.account, e.balance)
            _b1(b, 0x84)
            if _w_kv(b, "account", e.account):
                return 1
            if _w_kv(b, "balance", e.balance):
                return 1
            if _w_kv(b, "currency", mt[1]):
                return 1
            if _w_kv(b, "amount", _amount(e.amount, mt[0])):
                return 1
        return 0
    holds = res.holds
    _w_len(b, 0x90, 0xdc, 0xdd, len(holds))
    for h in holds:
        mt = _meta_get(meta, h.account, h.balance)
        exp = h.expires_at
        _b1(b, 0x85)
        if _w_kv(b, "account", h.account):
            return 1
        if _w_kv(b, "balance", h.balance):
            return 1
        if _w_kv(b, "reservation", h.reservation):
            return 1
        if _w_kv(b, "amount", _amount(h.amount, mt[0])):
            return 1
        if _w_kv(b, "expires", None if exp is None else round(exp * 1_000_000)):
            return 1
    return 0


cdef Py_hash_t _OVER_HASH[9]
for _i in range(9):
    _OVER_HASH[_i] = hash(_OVER[_i])
cdef Py_ssize_t _HEAD = 5  # room for the largest map header, written once the size is known


cdef inline int _over_index(str k) except -2:
    """The index of *k* in _OVER, or -1: by the str's cached hash first (no dict lookup)."""
    cdef Py_hash_t h = hash(k)
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
    status = res.status
    m = PyDict_GetItem(_STATUS_TEXT, status)
    if m is NULL:
        status_text = status.value
        _STATUS_TEXT[status] = status_text
    else:
        status_text = <object>m
    n = len(fields)
    for k, v in fields.items():
        if type(k) is not str:
            return None
        _w_str(b, <str>k)
        i = _over_index(<str>k)
        if i >= 0:
            present[i] = True
            if _w_over(b, i, op, res, record_id, ts_us, meta, status_text):
                return None
        else:
            if not has_type and (<str>k) == "type":
                has_type = True
            if _w_obj(b, v):
                return None
    if not has_type:
        n += 1
        _w_str(b, "type")
        _w_str(b, _TYPES.get(op, "rated"))
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


# ---------------------------------------------------------------------- the fast path

cdef class FastPath:
    """The fast path of one ChargingService: its attributes that never change (the session
    table, the caches, the ledger's dicts, config values) read once; refreshed when the
    service's ``config`` or ``ledger`` is replaced. ``decide`` is the entry point."""

    cdef object svc, cfg, ledger, journal, ids, answers, sessions_table, deck_of
    cdef dict sessions, busy, counters, texts, quotas, accounts_seen, meta, stats
    cdef object tcc, ttl, validity_time, qht, pct, answer_cache_size, max_sessions, deck
    cdef object no_tariff_errors
    cdef bint snapshots
    cdef object snapshot_records
    cdef double snapshot_seconds

    def __init__(self, svc):
        self.svc = svc
        self._refresh()

    cdef int _refresh(self) except -1:
        svc = self.svc
        cfg = self.cfg = svc.config
        ledger = self.ledger = svc.ledger
        self.sessions_table = svc.sessions
        self.sessions = svc.sessions._sessions
        self.answers = svc._answers
        self.busy = svc._busy
        self.counters = svc.counters
        self.texts = svc._texts
        self.quotas = svc._quotas
        self.accounts_seen = svc._accounts_seen
        self.deck_of = getattr(svc.rater, "deck", None)
        self.tcc = cfg.tcc
        self.ttl = cfg.tcc + 60.0
        self.validity_time = cfg.validity_time
        self.qht = cfg.quota_holding_time
        self.pct = cfg.quota_threshold_percent
        self.answer_cache_size = cfg.answer_cache_size
        self.max_sessions = cfg.max_sessions
        self.deck = cfg.deck
        self.no_tariff_errors = cfg.no_tariff_errors
        self.journal = ledger.journal
        self.ids = ledger._ids
        self.meta = ledger._meta
        self.stats = ledger.stats
        self.snapshots = ledger.snapshot_dir is not None
        self.snapshot_records = ledger.snapshot_records
        self.snapshot_seconds = ledger.snapshot_seconds
        return 0

    # ------------------------------------------------------------------ entry point

    def decide(self, svc, req, now):
        """ChargingService.decide for the plain online request: a ChargingResult, None
        (nothing changed: run the Python path) or a coroutine to await (module docstring)."""
        if svc is not self.svc:
            return None
        if svc.config is not self.cfg or svc.ledger is not self.ledger:
            self._refresh()
        if not _ready or req.offline or req.failed_field is not None:
            return None
        verb = req.verb
        if verb is _EVENT:
            return None
        key = req.idem_key
        if not key:
            return None
        units = req.units
        if type(units) is not tuple or PyTuple_GET_SIZE(units) != 1:
            return None
        sid = req.session_id
        cdef PyObject *sp = PyDict_GetItem(self.sessions, sid)
        session = <object>sp if sp is not NULL else None
        if session is not None and session.answer_n == req.request_number \
                and session.answer is not None:
            return None  # a retransmit: the Python path answers it
        if key in self.answers or sid in self.busy:
            return None
        if verb is _INITIAL:
            if session is not None:
                return None
            return self._initial(req, key, now, units[0])
        if session is None or (verb is not _UPDATE and verb is not _TERMINATE):
            return None
        return self._update(session, req, key, now, units[0], verb is _TERMINATE)

    # ------------------------------------------------------------------ INITIAL

    cdef object _initial(self, req, str key, now, su):
        svc = self.svc
        if len(self.sessions) >= self.max_sessions:
            return None
        if su.used_present or su.used:
            return None
        subscriber = req.subscriber
        if not subscriber:
            return None
        found = self.accounts_seen.get(subscriber)
        if found is None:
            return None  # the first request of an account: the Python path looks it up
        account, balance, currency = found
        if self.deck_of is not None:
            try:
                deck_currency = self.deck_of(self.deck).meta.currency
            except self.no_tariff_errors:
                return None
            if deck_currency and deck_currency != currency:
                return None
        ledger = self.ledger
        if not (svc._sync_ledger and self._sync_ready(account, balance)):
            return None
        sid = req.session_id
        session = _Session(
            session_id=sid, account=account, balance=balance, currency=currency,
            service=req.service, subscriber=subscriber, destination=req.destination,
            origin=req.origin, peer_host=req.peer_host, peer_realm=req.peer_realm,
            deck=self.deck, started=req.at or now, expires=now + self.tcc, context=req.context)
        grant = svc._grant_of(session, su)  # (the new session's own: nothing shared changes)
        want = self._want(grant.unit, su.requested)
        nxt = self._next_cost(session, grant, grant.used_total, want)
        if nxt is None:
            return None
        cost_u, amount = nxt
        skey = key + ":0"
        fields = _hold_fields(sid, req, grant, self._money_text(amount))
        # -- from here on the store moves money: no way back to "None"
        res = ledger._store.reserve_sync(skey + ":r", account, balance,
                                         _hold_id(sid, grant, req.request_number), amount,
                                         self.ttl, now, False)
        self._journal_one(res, "reserve", now, fields, account)
        if res.status is not _OK:
            self.busy[sid] = None
            return svc._fast_rest(req, key, now, session, su, grant, False, True, want, None,
                                  (cost_u, amount, fields, res), True)
        r = self._reserved(session, req, su, grant, want, amount, 0)
        result = self._answer(session, r, False)
        sessions = self.sessions
        sessions.pop(sid, None)
        sessions[sid] = session
        self._remember(req, key, session, result)
        return result

    # ------------------------------------------------------------------ UPDATE / TERMINATE

    cdef object _update(self, session, req, str key, now, su, bint terminate):
        svc = self.svc
        if session.killed is not None:
            return None
        if not (su.used_present or su.used):
            return None
        requested = su.requested
        grant_next = not terminate and requested is not None
        if not terminate and not grant_next:
            return None  # an UPDATE without RSU: the Python path
        sv = su.service_id
        gkey = sv if sv is not None else (
            su.rating_group if su.rating_group is not None else -1)
        grant = None
        grants = session.grants
        for g in grants:
            if g.key == gkey:
                grant = g
                break
        if grant is None:
            return None  # its first report: the Python path creates the grant
        if terminate:
            for g in grants:
                if g is not grant and g.held > 0:
                    return None  # another grant still holds: the Python path releases it
        skey = key + ":0"
        undo = grant.undo
        if undo is not None and undo[0] == skey:
            return None  # a retry after 5012: the Python path replays it
        held_n = grant.held_n
        if held_n < 0:
            return None  # nothing held: a plain debit (the Python path)
        account, balance = session.account, session.balance
        ledger = self.ledger
        if not (svc._sync_ledger and self._sync_ready(account, balance)):
            return None
        unit = grant.unit
        money = unit is _MONEY
        used = su.used if su.used > 0 else 0
        before = grant.cost_total
        used_total = grant.used_total
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
        rated = grant.fields
        if rated is None:
            rated = svc._rated_fields(session, grant)
        tariff = None
        if used and not money:
            tariff = grant.tariff
            if tariff is None:
                tariff = svc._tariff(session, grant)
        # -- from here on the grant and the store change: no way back to "None"
        n = req.request_number
        if n > session.last_number:
            session.last_number = n
        grant.undo = (skey, held_n, used_total, before, grant.held, grant.granted)
        used_cost = total - before if total > before else 0
        at = req.at or now
        cdef dict fields = PyDict_Copy(rated)
        fields["request"] = str(n)
        fields["usage"] = used
        fields["price"] = self._money_text(used_cost)
        fields["end"] = int(at * 1_000_000)
        if tariff:
            fields.update(tariff)
        sid = session.id
        store = ledger._store
        creservation = _hold_id(sid, grant, held_n)
        pre = None
        cdef dict rfields
        if grant_next:
            cost_u, amount = nxt
            rfields = _hold_fields(sid, req, grant, self._money_text(amount))
            # SyncOps.commit_reserve_now
            op = store.commit_sync(skey + ":c", account, balance, creservation, used_cost,
                                   now, True)
            if op.status is _UNKNOWN_RES and not op.effects and not op.holds:
                self._count_plain(op)
            else:
                try:
                    rres = store.reserve_sync(skey + ":r", account, balance,
                                              _hold_id(sid, grant, n), amount, self.ttl, now,
                                              False)
                except BaseException:
                    self._journal_one(op, "commit", now, fields, account)  # it moved money
                    raise
                self._journal_two(op, fields, rres, rfields, now, account)
                pre = (cost_u, amount, rfields, rres)
        else:
            op = store.commit_sync(skey + ":c", account, balance, creservation, used_cost, now,
                                   True)
            self._journal_one(op, "commit", now, fields, account)
        if op.status is _UNKNOWN_RES or (pre is not None and pre[3].status is not _OK) or (
                grant_next and pre is None):
            self.busy[sid] = None
            return svc._fast_rest(req, key, now, session, su, grant, terminate, grant_next,
                                  want, (op, pre, before, used, used_cost, fields), None, False)
        # OnlineCharging._settle: book the commit
        grant.used_total = used_total + used
        grant.held = 0
        grant.held_n = -1
        grant.granted = 0
        used_cost = op.granted if op.status is _OK else 0
        grant.cost_total = before + used_cost
        self._count("commit")
        if terminate:
            r = _units(su, _SUCCESS, unit, None, None, False, used_cost, None, None)
            result = self._answer(session, r, True)
            # OnlineCharging._end (not killed: checked above)
            self.sessions.pop(sid, None)
            if session.answer is not None:
                self.answers[session.answer_key] = session.answer
            self._remember(req, key, None, result)
            return result
        r = self._reserved(session, req, su, grant, want, pre[1], used_cost)
        result = self._answer(session, r, False)
        # SessionTable.touch
        session.expires = now + self.tcc
        sessions = self.sessions
        if sessions.get(sid) is session:
            del sessions[sid]
            sessions[sid] = session
        self._remember(req, key, session, result)
        return result

    # ------------------------------------------------------------------ service helpers

    cdef inline object _money_text(self, object amount):
        """ServiceCore._money_text (its cache dict first)."""
        cdef PyObject *hit = PyDict_GetItem(self.texts, amount)
        if hit is not NULL:
            return <object>hit
        return self.svc._money_text(amount)

    cdef inline object _want(self, unit, requested):
        default, cap = self.quotas[id(unit)]
        want = requested or default
        return cap if want > cap else want

    cdef inline int _count(self, str name) except -1:
        cdef dict counters = self.counters
        counters[name] = counters.get(name, 0) + 1
        return 0

    cdef object _cost(self, session, grant, object usage):
        """ServiceCore._cost: price of the session's first *usage* units (cached on the grant;
        the tariff row found once per grant: RatingEngine.price_plan)."""
        if usage == grant.priced_u:
            return grant.priced_c
        if usage <= 0:
            return 0
        if usage > _MAX_AMOUNT:
            return None
        svc = self.svc
        price_fn = svc._price
        if price_fn is None:
            return svc._cost(session, grant, usage)
        plan = grant.plan
        if plan is None:
            plan = grant.plan = self._plan(session, grant, price_fn)
        if plan is not False and plan[0] is price_fn and usage <= plan[5] \
                and plan[1]._latest.get(session.deck) is plan[2]:
            price = plan[3].price_row(plan[4], usage)[0]
        else:
            rsvc = grant.rsvc
            if rsvc is None:
                rsvc = grant.rsvc = svc._to_rating(grant.service)
            try:
                price = int(price_fn(session.deck, rsvc, session.destination or "",
                                     session.started, usage, session.origin or ""))
            except self.no_tariff_errors:
                return None
        if price > _MAX_AMOUNT:
            return None
        grant.priced_u = usage
        grant.priced_c = price
        return price

    cdef object _plan(self, session, grant, price_fn):
        """(price_fn, engine, deck, index, row, max usage) or False (price() every time)."""
        engine = getattr(price_fn, "__self__", None)
        plan_fn = getattr(engine, "price_plan", None)
        if plan_fn is None:
            return False
        rsvc = grant.rsvc
        if rsvc is None:
            rsvc = grant.rsvc = self.svc._to_rating(grant.service)
        try:
            found = plan_fn(session.deck, rsvc, session.destination or "", session.started,
                            session.origin or "")
        except self.no_tariff_errors:
            return False
        if found is None:
            return False
        d, index, row = found
        return (price_fn, engine, d, index, row, _EXACT_C_USAGE)

    cdef object _next_cost(self, session, grant, object u, object want):
        """OnlineCharging._next_cost: (cost of the first u units, cost of the next want)."""
        if grant.unit is _MONEY:
            return (grant.cost_total, want)
        cost_u = self._cost(session, grant, u)
        if cost_u is None:
            return None
        cost_w = self._cost(session, grant, u + want)
        if cost_w is None:
            return None
        return (cost_u, cost_w - cost_u if cost_w > cost_u else 0)

    cdef object _reserved(self, session, req, su, grant, want, amount, object used_cost):
        """OnlineCharging._reserve after an OK reserve: book it, build the slice result."""
        grant.granted = want
        grant.held = amount
        grant.held_n = req.request_number
        grant.final = False
        self._count("reserve")
        pct = self.pct
        return _units(su, _SUCCESS, grant.unit, want, self.validity_time, False, used_cost,
                      self.qht, None if pct is None else want * pct // 100)

    cdef object _answer(self, session, r, bint terminate):
        """OnlineCharging._slice_answer of a SUCCESS slice result *r*."""
        grants = session.grants
        res = _new(_ChargingResult)
        res.outcome = _SUCCESS
        res.units = (r,)
        res.currency = session.currency
        res.cost = grants[0].cost_total if len(grants) == 1 else session.cost_total
        res.validity_time = None if terminate else self.validity_time
        res.final_unit = r.final_unit
        res.enough_credit = None
        res.granted_event_units = None
        res.failed_field = None
        res.message = ""
        return res

    cdef int _remember(self, req, str key, session, result) except -1:
        """ChargingService._remember (session: the open session of the request, or None)."""
        answers = self.answers
        if session is not None:
            if session.answer is not None and session.answer_n != req.request_number:
                answers[session.answer_key] = session.answer
            session.answer_n = req.request_number
            session.answer = result
            session.answer_key = key
        else:
            answers[key] = result
        excess = len(answers) - self.answer_cache_size
        while excess > 0:
            answers.popitem(last=False)
            excess -= 1
        return 0

    # ------------------------------------------------------------------ ledger helpers

    cdef inline bint _sync_ready(self, account, balance) except -1:
        """SyncOps.sync_ready."""
        ledger = self.ledger
        return (ledger._sync and ledger._failed is None and (account, balance) in self.meta
                and not self.journal.failed)

    cdef inline str _next_id(self):
        """RecordIds.next."""
        ids = self.ids
        return ids._prefix + str(next(ids._counter))

    cdef int _count_plain(self, res) except -1:
        """SyncOps._count_plain."""
        if res.replayed:
            self.stats["replayed"] += 1
        elif not _moved(res):
            self.stats["ops"] += 1
        return 0

    cdef int _journaled(self, res, now, account, group) except -1:
        """SyncOps._journaled (Ledger._maybe_snapshot called only once one is due)."""
        ledger = self.ledger
        if res.low_balance:
            ledger._journaled(res, now, account, group)
            return 0
        return self._journaled_n(1)

    cdef int _journaled_n(self, int count) except -1:
        """SyncOps._journaled of *count* ops without a low-balance event."""
        ledger = self.ledger
        stats = self.stats
        stats["ops"] += count
        stats["journaled"] += count
        since = ledger._since_snapshot + count
        ledger._since_snapshot = since
        if self.snapshots and ledger._snapshot_task is None and (
                since >= self.snapshot_records
                or _monotonic() - ledger._last_snapshot >= self.snapshot_seconds):
            ledger._maybe_snapshot()
        return 0

    cdef int _journal_one(self, res, str op, now, dict fields, account) except -1:
        """SyncOps._journal_now (fields: a fresh dict)."""
        ledger = self.ledger
        if res.replayed:
            self.stats["replayed"] += 1
        elif _moved(res):
            try:
                rec = _record_out(fields, op, res, self._next_id(), int(now * 1_000_000),
                                  self.meta)
                _pos, group = self.journal.append_nowait(rec)
            except BaseException as exc:
                ledger._failed = exc  # the store moved money the journal does not have
                raise
            self._journaled(res, now, account, group)
        else:
            self.stats["ops"] += 1
        return 0

    cdef int _journal_two(self, cres, dict cfields, rres, dict rfields, now,
                          account) except -1:
        """The journal half of SyncOps.commit_reserve_now (both records in one append)."""
        cdef list recs = []
        ts = int(now * 1_000_000)
        if not cres.replayed and _moved(cres):
            recs.append(_record_out(cfields, "commit", cres, self._next_id(), ts, self.meta))
        if not rres.replayed and _moved(rres):
            recs.append(_record_out(rfields, "reserve", rres, self._next_id(), ts,
                                    self.meta))
        if recs:
            try:
                _pos, group = self.journal.append_many_nowait(recs, positions=False)
            except BaseException as exc:
                self.ledger._failed = exc  # the store moved money the journal does not have
                raise
            if len(recs) == 2 and not cres.low_balance and not rres.low_balance:
                self._journaled_n(2)  # (both at once: the same counts, one snapshot check)
            else:
                self._journaled(cres, now, account, group)
                if len(recs) == 2:
                    self._journaled(rres, now, account, group)
        if len(recs) < 2:
            self._count_plain(cres)
            self._count_plain(rres)
        return 0
