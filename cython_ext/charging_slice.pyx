# cython: language_level=3
"""Compiled twin of the Ro online slice on the embedded store's synchronous ledger path.

The executable spec is the pure Python of charging/service.py (``decide``),
charging/service_online.py (``_initial`` / ``_update`` / ``_grant_all`` / ``_one_slice`` /
``_reserve``), charging/service_core.py (``_cost``, ``_money_text``),
charging/ledger/sync_ops.py (``reserve_now`` / ``commit_now`` / ``commit_reserve_now``) and
charging/journal/records.py (``op_record_into``). :func:`decide` runs the same steps for the
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

charging/service_core.py selects it (``cython_ext.load("charging_slice")``, once); the
parity tests (tests/charging/test_service_fast_path.py) run random sessions through both
paths and compare answers, balances, holds and journal bytes.
"""

cimport cython
from cpython.dict cimport PyDict_Copy, PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_SIZE

# Bound by init() (cython_ext never imports charging: the dependency rule)
cdef object _INITIAL, _UPDATE, _TERMINATE, _EVENT
cdef object _SUCCESS, _OK, _UNKNOWN_RES, _MONEY
cdef object _ChargingResult, _UnitsResult, _Session
cdef object _MAX_AMOUNT
cdef dict _AMOUNT_CACHE
cdef object _amount_text
cdef object _TYPES = None  # op -> record type
cdef dict _STATUS_TEXT = {}
cdef object _new = object.__new__
cdef tuple _NO_META = (True, None)
cdef bint _ready = False


def init(*, verbs, success, ok, unknown_reservation, money_unit, charging_result_cls,
         units_result_cls, session_cls, max_amount, amount_cache, amount_text, op_types):
    """Bind the reference classes and constants (charging/service_core.py calls it once)."""
    global _INITIAL, _UPDATE, _TERMINATE, _EVENT, _SUCCESS, _OK, _UNKNOWN_RES, _MONEY
    global _ChargingResult, _UnitsResult, _Session, _MAX_AMOUNT, _AMOUNT_CACHE, _amount_text
    global _TYPES, _ready
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
    _ready = True


# ---------------------------------------------------------------------- small helpers

cdef inline object _money_text(svc, object amount):
    """ServiceCore._money_text (its cache dict first)."""
    cdef dict texts = svc._texts
    cdef PyObject *hit = PyDict_GetItem(texts, amount)
    if hit is not NULL:
        return <object>hit
    return svc._money_text(amount)


cdef inline object _amount(object amount, object is_money):
    """records.amount_text."""
    cdef PyObject *hit
    if not is_money:
        return str(amount)
    hit = PyDict_GetItem(_AMOUNT_CACHE, amount)
    if hit is not NULL:
        return <object>hit
    return _amount_text(amount, True)


cdef object _cost(svc, session, grant, object usage):
    """ServiceCore._cost: price of the session's first *usage* units (cached on the grant)."""
    if usage == grant.priced_u:
        return grant.priced_c
    if usage <= 0:
        return 0
    if usage > _MAX_AMOUNT:
        return None
    price_fn = svc._price
    if price_fn is None:
        return svc._cost(session, grant, usage)
    rsvc = grant.rsvc
    if rsvc is None:
        rsvc = grant.rsvc = svc._to_rating(grant.service)
    try:
        price = int(price_fn(session.deck, rsvc, session.destination or "", session.started,
                             usage, session.origin or ""))
    except svc.config.no_tariff_errors:
        return None
    if price > _MAX_AMOUNT:
        return None
    grant.priced_u = usage
    grant.priced_c = price
    return price


cdef object _next_cost(svc, session, grant, object u, object want):
    """OnlineCharging._next_cost: (cost of the first u units, cost of the next want) or None."""
    if grant.unit is _MONEY:
        return (grant.cost_total, want)
    cost_u = _cost(svc, session, grant, u)
    if cost_u is None:
        return None
    cost_w = _cost(svc, session, grant, u + want)
    if cost_w is None:
        return None
    return (cost_u, cost_w - cost_u if cost_w > cost_u else 0)


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


cdef inline str _next_id(ids):
    """RecordIds.next."""
    return ids._prefix + str(next(ids._counter))


cdef inline bint _moved(res):
    return res.status is _OK or bool(res.effects) or bool(res.holds)


cdef void _count_plain(ledger, res) except *:
    """SyncOps._count_plain."""
    cdef dict stats = ledger.stats
    if res.replayed:
        stats["replayed"] += 1
    elif not _moved(res):
        stats["ops"] += 1


cdef void _journaled(ledger, res, now, account, group) except *:
    """SyncOps._journaled."""
    cdef dict stats
    if res.low_balance:
        ledger._journaled(res, now, account, group)
        return
    stats = ledger.stats
    stats["ops"] += 1
    stats["journaled"] += 1
    ledger._since_snapshot += 1
    if ledger.snapshot_dir is not None and ledger._snapshot_task is None:
        ledger._maybe_snapshot()


cdef void _journal_one(ledger, res, str op, now, dict fields, account) except *:
    """SyncOps._journal_now (fields: a fresh dict)."""
    if res.replayed:
        ledger.stats["replayed"] += 1
    elif _moved(res):
        try:
            rec = _record(fields, op, res, _next_id(ledger._ids), int(now * 1_000_000),
                          ledger._meta)
            _pos, group = ledger.journal.append_nowait(rec)
        except BaseException as exc:
            ledger._failed = exc  # the store moved money the journal does not have
            raise
        _journaled(ledger, res, now, account, group)
    else:
        ledger.stats["ops"] += 1


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


cdef object _answer(session, r, bint terminate, cfg):
    """OnlineCharging._slice_answer of a SUCCESS slice result *r*."""
    grants = session.grants
    res = _new(_ChargingResult)
    res.outcome = _SUCCESS
    res.units = (r,)
    res.currency = session.currency
    res.cost = grants[0].cost_total if len(grants) == 1 else session.cost_total
    res.validity_time = None if terminate else cfg.validity_time
    res.final_unit = r.final_unit
    res.enough_credit = None
    res.granted_event_units = None
    res.failed_field = None
    res.message = ""
    return res


cdef void _remember(svc, req, str key, session, result) except *:
    """ChargingService._remember (session: the open session of the request, or None)."""
    cdef object answers = svc._answers
    if session is not None:
        if session.answer is not None and session.answer_n != req.request_number:
            answers[session.answer_key] = session.answer
        session.answer_n = req.request_number
        session.answer = result
        session.answer_key = key
    else:
        answers[key] = result
    excess = len(answers) - svc.config.answer_cache_size
    while excess > 0:
        answers.popitem(last=False)
        excess -= 1


cdef inline void _count(svc, str name) except *:
    cdef dict counters = svc.counters
    counters[name] = counters.get(name, 0) + 1


cdef object _reserved(svc, session, req, su, grant, want, amount, object used_cost, cfg):
    """OnlineCharging._reserve after an OK reserve: book it, build the slice result."""
    grant.granted = want
    grant.held = amount
    grant.held_n = req.request_number
    grant.final = False
    _count(svc, "reserve")
    pct = cfg.quota_threshold_percent
    return _units(su, _SUCCESS, grant.unit, want, cfg.validity_time, False, used_cost,
                  cfg.quota_holding_time, None if pct is None else want * pct // 100)


cdef inline bint _sync_ready(ledger, account, balance) except -1:
    """SyncOps.sync_ready."""
    return (ledger._sync and ledger._failed is None and (account, balance) in ledger._meta
            and not ledger.journal.failed)


cdef inline str _hold_id(str sid, grant, object n):
    """Grant.hold_id."""
    return f"{sid}|{grant.key}|{n}"


cdef inline object _want(svc, unit, requested):
    default, cap = svc._quotas[id(unit)]
    want = requested or default
    return cap if want > cap else want


# ---------------------------------------------------------------------- entry point

def decide(svc, req, now):
    """ChargingService.decide for the plain online request: a ChargingResult, None (nothing
    changed: run the Python path) or a coroutine to await (see the module docstring)."""
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
    cdef dict sessions = svc.sessions._sessions
    cdef PyObject *sp = PyDict_GetItem(sessions, sid)
    session = <object>sp if sp is not NULL else None
    if session is not None and session.answer_n == req.request_number \
            and session.answer is not None:
        return None  # a retransmit: the Python path answers it
    if key in svc._answers or sid in svc._busy:
        return None
    if verb is _INITIAL:
        if session is not None:
            return None
        return _initial(svc, req, key, now, units[0])
    if session is None or (verb is not _UPDATE and verb is not _TERMINATE):
        return None
    return _update(svc, session, req, key, now, units[0], verb is _TERMINATE)


cdef object _initial(svc, req, str key, now, su):
    cfg = svc.config
    if len(svc.sessions) >= cfg.max_sessions:
        return None
    if su.used_present or su.used:
        return None
    subscriber = req.subscriber
    if not subscriber:
        return None
    found = svc._accounts_seen.get(subscriber)
    if found is None:
        return None  # the first request of an account: the Python path looks it up
    account, balance, currency = found
    deck_of = getattr(svc.rater, "deck", None)
    if deck_of is not None:
        try:
            deck_currency = deck_of(cfg.deck).meta.currency
        except cfg.no_tariff_errors:
            return None
        if deck_currency and deck_currency != currency:
            return None
    ledger = svc.ledger
    if not (svc._sync_ledger and _sync_ready(ledger, account, balance)):
        return None
    session = _Session(
        session_id=req.session_id, account=account, balance=balance, currency=currency,
        service=req.service, subscriber=subscriber, destination=req.destination,
        origin=req.origin, peer_host=req.peer_host, peer_realm=req.peer_realm,
        deck=cfg.deck, started=req.at or now, expires=now + cfg.tcc, context=req.context)
    grant = svc._grant_of(session, su)  # (the new session's own: nothing shared changes)
    want = _want(svc, grant.unit, su.requested)
    nxt = _next_cost(svc, session, grant, grant.used_total, want)
    if nxt is None:
        return None
    cost_u, amount = nxt
    skey = key + ":0"
    sid = req.session_id
    fields = {"session": sid, "request": str(req.request_number), "service": grant.svc,
              "price": _money_text(svc, amount)}
    # -- from here on the store moves money: no way back to "None"
    res = ledger._store.reserve_sync(skey + ":r", account, balance,
                                     _hold_id(sid, grant, req.request_number), amount,
                                     cfg.tcc + 60.0, now, False)
    _journal_one(ledger, res, "reserve", now, fields, account)
    if res.status is not _OK:
        svc._busy[sid] = None
        return svc._fast_rest(req, key, now, session, su, grant, False, True, want, None,
                              (cost_u, amount, fields, res), True)
    r = _reserved(svc, session, req, su, grant, want, amount, 0, cfg)
    result = _answer(session, r, False, cfg)
    sessions = svc.sessions._sessions
    sessions.pop(sid, None)
    sessions[sid] = session
    _remember(svc, req, key, session, result)
    return result


cdef object _update(svc, session, req, str key, now, su, bint terminate):
    if session.killed is not None:
        return None
    if not (su.used_present or su.used):
        return None
    requested = su.requested
    grant_next = not terminate and requested is not None
    if not terminate and not grant_next:
        return None  # an UPDATE without RSU: the Python path
    sv = su.service_id
    gkey = sv if sv is not None else (su.rating_group if su.rating_group is not None else -1)
    grant = None
    for g in session.grants:
        if g.key == gkey:
            grant = g
            break
    if grant is None:
        return None  # its first report: the Python path creates the grant
    if terminate:
        for g in session.grants:
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
    ledger = svc.ledger
    if not (svc._sync_ledger and _sync_ready(ledger, account, balance)):
        return None
    cfg = svc.config
    unit = grant.unit
    money = unit is _MONEY
    used = su.used if su.used > 0 else 0
    before = grant.cost_total
    used_total = grant.used_total
    total = before + used if money else _cost(svc, session, grant, used_total + used)
    if total is None:
        return None
    want = 0
    nxt = None
    if grant_next:
        want = _want(svc, unit, requested)
        nxt = _next_cost(svc, session, grant, used_total + used, want)
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
    session.last_number = max(session.last_number, req.request_number)
    grant.undo = (skey, held_n, used_total, before, grant.held, grant.granted)
    used_cost = total - before if total > before else 0
    at = req.at or now
    cdef dict fields = PyDict_Copy(rated)
    fields["request"] = str(req.request_number)
    fields["usage"] = used
    fields["price"] = _money_text(svc, used_cost)
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
        rfields = {"session": sid, "request": str(req.request_number), "service": grant.svc,
                   "price": _money_text(svc, amount)}
        # SyncOps.commit_reserve_now
        op = store.commit_sync(skey + ":c", account, balance, creservation, used_cost, now,
                               True)
        if op.status is _UNKNOWN_RES and not op.effects and not op.holds:
            _count_plain(ledger, op)
        else:
            try:
                rres = store.reserve_sync(skey + ":r", account, balance,
                                          _hold_id(sid, grant, req.request_number), amount,
                                          cfg.tcc + 60.0, now, False)
            except BaseException:
                _journal_one(ledger, op, "commit", now, fields, account)  # it moved money
                raise
            _journal_two(ledger, op, fields, rres, rfields, now, account)
            pre = (cost_u, amount, rfields, rres)
    else:
        op = store.commit_sync(skey + ":c", account, balance, creservation, used_cost, now,
                               True)
        _journal_one(ledger, op, "commit", now, fields, account)
    if op.status is _UNKNOWN_RES or (pre is not None and pre[3].status is not _OK) or (
            grant_next and pre is None):
        svc._busy[sid] = None
        return svc._fast_rest(req, key, now, session, su, grant, terminate, grant_next, want,
                              (op, pre, before, used, used_cost, fields), None, False)
    # OnlineCharging._settle: book the commit
    grant.used_total = used_total + used
    grant.held = 0
    grant.held_n = -1
    grant.granted = 0
    used_cost = op.granted if op.status is _OK else 0
    grant.cost_total = before + used_cost
    _count(svc, "commit")
    if terminate:
        r = _units(su, _SUCCESS, unit, None, None, False, used_cost, None, None)
        result = _answer(session, r, True, cfg)
        # OnlineCharging._end (not killed: checked above)
        svc.sessions._sessions.pop(sid, None)
        if session.answer is not None:
            svc._answers[session.answer_key] = session.answer
        _remember(svc, req, key, None, result)
        return result
    r = _reserved(svc, session, req, su, grant, want, pre[1], used_cost, cfg)
    result = _answer(session, r, False, cfg)
    # SessionTable.touch
    session.expires = now + cfg.tcc
    sessions = svc.sessions._sessions
    if sessions.get(sid) is session:
        del sessions[sid]
        sessions[sid] = session
    _remember(svc, req, key, session, result)
    return result


cdef void _journal_two(ledger, cres, dict cfields, rres, dict rfields, now,
                       account) except *:
    """The journal half of SyncOps.commit_reserve_now (both records in one append)."""
    cdef list recs = []
    ts = int(now * 1_000_000)
    cdef dict meta = ledger._meta
    ids = ledger._ids
    if not cres.replayed and _moved(cres):
        recs.append(_record(cfields, "commit", cres, _next_id(ids), ts, meta))
    if not rres.replayed and _moved(rres):
        recs.append(_record(rfields, "reserve", rres, _next_id(ids), ts, meta))
    if recs:
        try:
            _pos, group = ledger.journal.append_many_nowait(recs, positions=False)
        except BaseException as exc:
            ledger._failed = exc  # the store moved money the journal does not have
            raise
        _journaled(ledger, cres, now, account, group)
        if len(recs) == 2:
            _journaled(ledger, rres, now, account, group)
    if len(recs) < 2:
        _count_plain(ledger, cres)
        _count_plain(ledger, rres)
