# Included by charging_slice.pyx: typed field access to the slots objects of the online path.
#
# Session / Grant (charging/sessions.py), ChargingRequest / ServiceUnits / UnitsResult /
# ChargingResult (charging/requests.py) are classes with __slots__, and the store's
# OpResult / Effect / Hold are cdef classes (cython_ext/store_results.pyx): every field is at
# a fixed offset in the object, read and written through a Layout (slot_layout.pxi).

include "slot_layout.pxi"


# ---- the layouts (field indices are positions in the name tuples)

cdef Layout L_SES, L_GR, L_REQ, L_SU, L_UR, L_CR, L_OP, L_EF, L_HO

cdef tuple N_SES = ("id", "account", "balance", "currency", "service", "subscriber",
                    "destination", "origin", "peer_host", "peer_realm", "deck", "started",
                    "expires", "last_number", "grants", "offline", "seen", "context",
                    "answer_n", "answer", "answer_key", "killed", "counters", "tag")
cdef enum:
    S_ID, S_ACCOUNT, S_BALANCE, S_CURRENCY, S_SERVICE, S_SUBSCRIBER, S_DESTINATION, S_ORIGIN
    S_PEER_HOST, S_PEER_REALM, S_DECK, S_STARTED, S_EXPIRES, S_LAST_NUMBER, S_GRANTS
    S_OFFLINE, S_SEEN, S_CONTEXT, S_ANSWER_N, S_ANSWER, S_ANSWER_KEY, S_KILLED, S_COUNTERS
    S_TAG

cdef tuple N_GR = ("key", "service", "unit", "granted", "used_total", "cost_total", "held",
                   "held_n", "final", "svc", "rsvc", "priced_u", "priced_c", "fields",
                   "tariff", "undo", "plan", "hold_key")
cdef enum:
    G_KEY, G_SERVICE, G_UNIT, G_GRANTED, G_USED_TOTAL, G_COST_TOTAL, G_HELD, G_HELD_N
    G_FINAL, G_SVC, G_RSVC, G_PRICED_U, G_PRICED_C, G_FIELDS, G_TARIFF, G_UNDO, G_PLAN
    G_HOLD_KEY

cdef tuple N_REQ = ("verb", "session_id", "request_number", "service", "subscriber",
                    "destination", "origin", "units", "idem_key", "peer_host", "peer_realm",
                    "context", "at", "offline", "failed_field")
cdef enum:
    R_VERB, R_SESSION_ID, R_REQUEST_NUMBER, R_SERVICE, R_SUBSCRIBER, R_DESTINATION
    R_ORIGIN, R_UNITS, R_IDEM_KEY, R_PEER_HOST, R_PEER_REALM, R_CONTEXT, R_AT, R_OFFLINE
    R_FAILED_FIELD

cdef tuple N_SU = ("rating_group", "service_id", "requested", "used", "used_present",
                   "service", "money")
cdef enum:
    U_RATING_GROUP, U_SERVICE_ID, U_REQUESTED, U_USED, U_USED_PRESENT, U_SERVICE, U_MONEY

cdef tuple N_UR = ("rating_group", "service_id", "outcome", "unit", "granted",
                   "validity_time", "final_unit", "used_cost", "quota_holding_time",
                   "quota_threshold")
cdef enum:
    UR_RATING_GROUP, UR_SERVICE_ID, UR_OUTCOME, UR_UNIT, UR_GRANTED, UR_VALIDITY_TIME
    UR_FINAL_UNIT, UR_USED_COST, UR_QHT, UR_THRESHOLD

cdef tuple N_CR = ("outcome", "units", "currency", "cost", "validity_time", "final_unit",
                   "enough_credit", "granted_event_units", "failed_field", "message")
cdef enum:
    CR_OUTCOME, CR_UNITS, CR_CURRENCY, CR_COST, CR_VALIDITY_TIME, CR_FINAL_UNIT
    CR_ENOUGH_CREDIT, CR_GRANTED_EVENT_UNITS, CR_FAILED_FIELD, CR_MESSAGE

cdef tuple N_OP = ("key", "status", "effects", "holds", "granted", "replayed", "low_balance")
cdef enum:
    O_KEY, O_STATUS, O_EFFECTS, O_HOLDS, O_GRANTED, O_REPLAYED, O_LOW_BALANCE

cdef tuple N_EF = ("account", "balance", "amount")
cdef enum:
    E_ACCOUNT, E_BALANCE, E_AMOUNT

cdef tuple N_HO = ("account", "balance", "reservation", "amount", "expires_at")
cdef enum:
    H_ACCOUNT, H_BALANCE, H_RESERVATION, H_AMOUNT, H_EXPIRES_AT


cdef tuple N_LED = ("_store", "_sync", "_failed", "_pause", "_since_snapshot", "_snapshot_task",
                    "_snapshot_every", "_last_snapshot")
cdef enum:
    LD_STORE, LD_SYNC, LD_FAILED, LD_PAUSE, LD_SINCE, LD_TASK, LD_EVERY, LD_LAST


cdef object _slots_of(cls):
    """The class's own __slots__ as a tuple (None when it has none)."""
    s = cls.__dict__.get("__slots__")
    if s is None:
        return None
    return (s,) if isinstance(s, str) else tuple(s)


cdef int _bind_layouts(session_cls, grant_cls, request_cls, units_cls, units_result_cls,
                       charging_result_cls, op_result_cls, effect_cls, hold_cls) except -1:
    _layout(&L_SES, session_cls, N_SES, _slots_of(session_cls))
    _layout(&L_GR, grant_cls, N_GR, _slots_of(grant_cls))
    _layout(&L_REQ, request_cls, N_REQ, None)
    _layout(&L_SU, units_cls, N_SU, None)
    _layout(&L_UR, units_result_cls, N_UR, _slots_of(units_result_cls))
    _layout(&L_CR, charging_result_cls, N_CR, _slots_of(charging_result_cls))
    _layout(&L_OP, op_result_cls, N_OP, None)
    if L_OP.tp == NULL:
        _layout_probe(&L_OP, op_result_cls, N_OP)
    _layout(&L_EF, effect_cls, N_EF, None)
    if L_EF.tp == NULL:
        _layout_probe(&L_EF, effect_cls, N_EF)
    _layout(&L_HO, hold_cls, N_HO, None)
    if L_HO.tp == NULL:
        _layout_probe(&L_HO, hold_cls, N_HO)
    return 0


cdef tuple _known(Layout *L):
    return (L.tp != NULL, L.tp != NULL and L.complete)


def layouts_known():
    """For the tests: class name -> (read by offset, C-constructible) of every layout."""
    return {"Session": _known(&L_SES), "Grant": _known(&L_GR),
            "ChargingRequest": _known(&L_REQ), "ServiceUnits": _known(&L_SU),
            "UnitsResult": _known(&L_UR), "ChargingResult": _known(&L_CR),
            "OpResult": _known(&L_OP), "Effect": _known(&L_EF), "Hold": _known(&L_HO)}


# per-class accessors (i: one of the enum constants above)
cdef inline object ses(o, int i):
    return _get(&L_SES, N_SES, o, i)

cdef inline int ses_set(o, int i, v) except -1:
    return _put(&L_SES, N_SES, o, i, v)

cdef inline object gr(o, int i):
    return _get(&L_GR, N_GR, o, i)

cdef inline int gr_set(o, int i, v) except -1:
    return _put(&L_GR, N_GR, o, i, v)

cdef inline object rq(o, int i):
    return _get(&L_REQ, N_REQ, o, i)

cdef inline object su_(o, int i):
    return _get(&L_SU, N_SU, o, i)

cdef inline int ur_set(o, int i, v) except -1:
    return _put(&L_UR, N_UR, o, i, v)

cdef inline object ur(o, int i):
    return _get(&L_UR, N_UR, o, i)

cdef inline int cr_set(o, int i, v) except -1:
    return _put(&L_CR, N_CR, o, i, v)

cdef inline object op_(o, int i):
    return _get(&L_OP, N_OP, o, i)

cdef inline object ef(o, int i):
    return _get(&L_EF, N_EF, o, i)

cdef inline object ho(o, int i):
    return _get(&L_HO, N_HO, o, i)
