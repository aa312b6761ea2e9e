# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of mediation.ro.ccr_to_request_py (CCR -> ChargingRequest) for the common case.

:func:`ccr_to_request` reads the received CCR straight from its frame bytes: the top-level
AVPs the codec already split (compiled ``Avp`` objects, read at C speed through
diameter_codec.pxd) and, inside Grouped AVPs (MSCC, RSU/USU, Subscription-Id,
Service-Information), the raw payload -- no Avp object is made for a member. It returns the
same ChargingRequest as the pure function, or None for anything outside the common case:
a message not decoded by the compiled codec (or edited since), a missing or bad field (the
BadRequest cases), CC-Money, an undecodable value, an AVP the dictionary types differently
than expected. The caller (mediation/ro.py, the one selection point) then runs the pure
function, which raises the BadRequest or builds the request, so every outcome is the spec's.

Requests are built without the frozen dataclasses' ``__init__`` (object.__setattr__ per field,
~6 us for ChargingRequest): the instance is allocated with tp_alloc and every field is
written into its slot (the member descriptor's offset; PyObject_GenericSetAttr, the C function
behind object.__setattr__, where a field is not a plain object slot); fields this module does
not know get their declared default (``configure`` refuses a class with a field without one,
or with __post_init__).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject_GenericSetAttr
from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memset

from dataclasses import MISSING


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    ctypedef struct _TypeObject "PyTypeObject":
        PyObject* (*tp_alloc)(_TypeObject*, Py_ssize_t) except NULL
    ctypedef struct _MemberDescrType "PyTypeObject":
        pass
    _MemberDescrType PyMemberDescr_Type

cdef enum:
    _T_OBJECT_EX = 16  # structmember.h: a slot holding an object (AttributeError when NULL)
    _READONLY = 1
    _MAX_FIELDS = 64

from cython_ext.diameter_codec cimport Avp, Message

ABI = 1

# AvpType values (diameter.types.AvpType)
cdef enum:
    T_I32 = 2
    T_I64 = 3
    T_U32 = 4
    T_U64 = 5
    T_GROUPED = 8
    T_UTF8 = 11
    T_IDENT = 12
    T_URI = 13
    T_ENUM = 14
    T_IPFILTER = 15

cdef enum:
    V3GPP = 10415
    _T0_SIZE = 2048
    _T3_SIZE = 8192
    MAX_KIDS = 64
    # vendor 0
    USER_NAME = 1
    CALLED_STATION_ID = 30
    EVENT_TIMESTAMP = 55
    SESSION_ID = 263
    ORIGIN_HOST = 264
    AUTH_APPLICATION_ID = 258
    TERMINATION_CAUSE = 295
    ORIGIN_REALM = 296
    CC_INPUT_OCTETS = 412
    CC_MONEY = 413
    CC_OUTPUT_OCTETS = 414
    CC_REQUEST_NUMBER = 415
    CC_REQUEST_TYPE = 416
    CC_SERVICE_SPECIFIC_UNITS = 417
    CC_TIME = 420
    CC_TOTAL_OCTETS = 421
    RATING_GROUP = 432
    REQUESTED_ACTION = 436
    REQUESTED_SERVICE_UNIT = 437
    SERVICE_IDENTIFIER = 439
    SUBSCRIPTION_ID = 443
    SUBSCRIPTION_ID_DATA = 444
    USED_SERVICE_UNIT = 446
    SUBSCRIPTION_ID_TYPE = 450
    MULTIPLE_SERVICES_INDICATOR = 455
    MULTIPLE_SERVICES_CREDIT_CONTROL = 456
    SERVICE_CONTEXT_ID = 461
    # vendor 10415
    CALLING_PARTY_ADDRESS = 831
    CALLED_PARTY_ADDRESS = 832
    REPORTING_REASON = 872
    SERVICE_INFORMATION = 873
    PS_INFORMATION = 874
    IMS_INFORMATION = 876
    MMS_INFORMATION = 877
    ADDRESS_DATA = 897
    RECIPIENT_ADDRESS = 1201
    SMS_INFORMATION = 2000
    RECIPIENT_INFO = 2026
    AOC_REQUEST_TYPE = 2055

# Slots of the top-level AVPs read as "the first of" (mediation.ro._TOP_SLOTS, same order).
cdef enum:
    S_SESSION = 0
    S_RTYPE = 1
    S_NUMBER = 2
    S_CONTEXT = 3
    S_MSI = 4
    S_RSU = 5
    S_SERVICE_ID = 6
    S_ACTION = 7
    S_ORIGIN_HOST = 8
    S_ORIGIN_REALM = 9
    S_TIMESTAMP = 10
    S_CAUSE = 11
    S_USER_NAME = 12
    N_SLOTS = 13


cdef unsigned char _T0[_T0_SIZE]
cdef unsigned char _T3[_T3_SIZE]

cdef struct Kid:
    uint32_t code
    uint32_t vendor
    Py_ssize_t data  # payload start in the frame
    Py_ssize_t n     # payload length (without padding)


class _Bail(Exception):
    """Internal: leave the common case (the caller runs the pure function)."""


cdef object _BAIL = _Bail

# Handed over by configure().
cdef object _REQ = None    # _Layout of ChargingRequest
cdef object _UNITS = None  # _Layout of ServiceUnits
cdef object _ServiceMap = None
cdef dict _SERVICE_UNIT = {}
cdef object _UNIT_TIME = None
cdef object _UNIT_OCTETS = None
cdef object _UNIT_EVENTS = None
cdef object _normalise = None
cdef object _time = None
cdef tuple _VERBS = ()           # index = CC-Request-Type
cdef object _VERB_EVENT = None
cdef tuple _ACTIONS = ()         # index = Requested-Action
cdef object _PRICE_ENQUIRY = None
cdef tuple _REASONS = ()         # index = Reporting-Reason
cdef object _REASON_OTHER = None
cdef object _VOICE = None
cdef object _SMS = None
cdef object _MMS = None
cdef object _DATA = None
cdef object _DATA_TIME = None
cdef object _EMPTY_TUPLE = ()

_REQ_FIELDS = ("verb", "session_id", "request_number", "service", "subscriber", "destination",
               "origin", "units", "multiple_services", "action", "idem_key", "peer_host",
               "peer_realm", "context", "at", "want_cost", "termination_cause")
_UNITS_FIELDS = ("rating_group", "service_id", "requested", "used", "used_present",
                 "reporting_reasons", "service", "money")
cdef tuple _REQ_NAMES = tuple(_REQ_FIELDS)
cdef tuple _UNITS_NAMES = tuple(_UNITS_FIELDS)


def configure(*, types, request_cls, units_cls, service_map_cls, service_unit, unit_kind,
              service_kind, verb, event_action, reporting_reason, normalise, time_of,
              fields_of):
    """Hand over the dictionary types and the model classes (called once by mediation/ro.py).

    Raises ValueError when a model class cannot be built field by field (a field this module
    does not set has no plain default, or the class has __post_init__): the caller then
    keeps the pure function."""
    global _REQ, _UNITS, _ServiceMap, _SERVICE_UNIT
    global _UNIT_TIME, _UNIT_OCTETS, _UNIT_EVENTS, _normalise, _time, _VERBS, _VERB_EVENT
    global _ACTIONS, _PRICE_ENQUIRY, _REASONS, _REASON_OTHER
    global _VOICE, _SMS, _MMS, _DATA, _DATA_TIME
    _REQ = _Layout(request_cls, _REQ_NAMES, _defaults(request_cls, fields_of, _REQ_NAMES))
    _UNITS = _Layout(units_cls, _UNITS_NAMES, _defaults(units_cls, fields_of, _UNITS_NAMES))
    _ServiceMap = service_map_cls
    _SERVICE_UNIT = dict(service_unit)
    _UNIT_TIME = unit_kind.TIME
    _UNIT_OCTETS = unit_kind.OCTETS
    _UNIT_EVENTS = unit_kind.EVENTS
    _normalise = normalise
    _time = time_of
    _VERBS = tuple(verb(i) if i in verb._value2member_map_ else None for i in range(5))
    _VERB_EVENT = verb.EVENT
    _ACTIONS = tuple(event_action(i) for i in range(4))
    _PRICE_ENQUIRY = event_action.PRICE_ENQUIRY
    _REASONS = tuple(reporting_reason(i) for i in range(9))
    _REASON_OTHER = reporting_reason.OTHER_QUOTA_TYPE
    _VOICE = service_kind.VOICE
    _SMS = service_kind.SMS
    _MMS = service_kind.MMS
    _DATA = service_kind.DATA
    _DATA_TIME = service_kind.DATA_TIME
    memset(_T0, 0, _T0_SIZE)
    memset(_T3, 0, _T3_SIZE)
    for key, t in types.items():
        code = key & 0xFFFFFFFF
        vendor = key >> 32
        if vendor == 0 and code < _T0_SIZE:
            _T0[code] = int(t)
        elif vendor == V3GPP and code < _T3_SIZE:
            _T3[code] = int(t)


cdef tuple _defaults(object cls, object fields_of, tuple known):
    if hasattr(cls, "__post_init__"):
        raise ValueError(f"{cls.__name__} has __post_init__")
    names = set()
    out = []
    for f in fields_of(cls):
        names.add(f.name)
        if f.name in known:
            continue
        if f.default is MISSING or f.default_factory is not MISSING:
            raise ValueError(f"{cls.__name__}.{f.name} has no plain default")
        out.append((f.name, f.default))
    for name in known:
        if name not in names:
            raise ValueError(f"{cls.__name__} has no field {name}")
    return tuple(out)


cdef class _Layout:
    """Where each field of a slots dataclass lives in the instance: the offsets of its
    member descriptors (object slots), in the order names + defaults. ``ok`` is False when a
    field is not a plain writable object slot (then PyObject_GenericSetAttr is used)."""
    cdef object cls
    cdef tuple names
    cdef tuple defaults
    cdef bint ok
    cdef int n
    cdef Py_ssize_t offsets[_MAX_FIELDS]

    def __init__(self, cls, tuple names, tuple defaults):
        cdef PyMemberDef* m
        self.cls = cls
        self.names = names
        self.defaults = defaults
        self.ok = isinstance(cls, type) and len(names) + len(defaults) <= _MAX_FIELDS
        self.n = 0
        if not self.ok:
            return
        for name in names + tuple(pair[0] for pair in defaults):
            descr = cls.__dict__.get(name)
            if descr is None or type(descr) is not <object>&PyMemberDescr_Type:
                self.ok = False
                return
            m = (<PyMemberDescrObject*>descr).d_member
            if m.type != _T_OBJECT_EX or m.flags & _READONLY:
                self.ok = False
                return
            self.offsets[self.n] = m.offset
            self.n += 1


cdef inline void _put(PyObject* o, Py_ssize_t offset, object value) noexcept:
    Py_INCREF(value)
    (<PyObject**>((<char*>o) + offset))[0] = <PyObject*>value


cdef object _build(_Layout lay, tuple values):
    """An instance of a (frozen, slots) dataclass with every field set, no __init__: the
    fields are written into their slots (the tp_alloc'ed instance has them NULL)."""
    cdef Py_ssize_t i, nv = len(values)
    cdef PyObject* o
    if not lay.ok:
        obj = lay.cls.__new__(lay.cls)
        for i in range(nv):
            PyObject_GenericSetAttr(obj, lay.names[i], values[i])
        for pair in lay.defaults:
            PyObject_GenericSetAttr(obj, (<tuple>pair)[0], (<tuple>pair)[1])
        return obj
    if nv != len(lay.names):
        raise ValueError("field count")
    o = (<_TypeObject*>lay.cls).tp_alloc(<_TypeObject*>lay.cls, 0)
    obj = <object>o
    Py_DECREF(obj)  # <object> took a reference of its own
    for i in range(nv):
        _put(o, lay.offsets[i], values[i])
    i = nv
    for pair in lay.defaults:
        _put(o, lay.offsets[i], (<tuple>pair)[1])
        i += 1
    return obj


# ------------------------------------------------------------------------------ byte reading
cdef inline uint32_t _u32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline int _type(uint32_t code, uint32_t vendor) noexcept nogil:
    if vendor == 0:
        return _T0[code] if code < _T0_SIZE else 0
    if vendor == V3GPP:
        return _T3[code] if code < _T3_SIZE else 0
    return 0


cdef int _walk(const unsigned char* p, Py_ssize_t off, Py_ssize_t end, Kid* out) except -1:
    """Split one level of AVPs (diameter_codec.walk's rules); raise _Bail where walk raises
    or when there are more than MAX_KIDS."""
    cdef int n = 0
    cdef uint32_t fl
    cdef Py_ssize_t length, hlen, nxt
    while off < end:
        if end - off < 8 or n >= MAX_KIDS:
            raise _BAIL
        out[n].code = _u32(p + off)
        fl = _u32(p + off + 4)
        length = fl & 0xFFFFFF
        if fl >> 31:  # V bit (a literal > INT_MAX would make this a Python-level &)
            if end - off < 12:
                raise _BAIL
            out[n].vendor = _u32(p + off + 8)
            hlen = 12
        else:
            out[n].vendor = 0
            hlen = 8
        if length < hlen or off + length > end:
            raise _BAIL
        out[n].data = off + hlen
        out[n].n = length - hlen
        n += 1
        nxt = off + ((length + 3) & ~3)
        off = nxt if nxt < end else end
    return n


cdef inline int _first(Kid* kids, int n, uint32_t code, uint32_t vendor) noexcept nogil:
    cdef int i
    for i in range(n):
        if kids[i].code == code and kids[i].vendor == vendor:
            return i
    return -1


cdef object _int(const unsigned char* p, Kid* k):
    """The integer value of an Integer/Unsigned/Enumerated AVP (the codec's decoding)."""
    cdef int t = _type(k.code, k.vendor)
    cdef const unsigned char* d = p + k.data
    if k.n == 4:
        if t == T_U32:
            return _u32(d)
        if t == T_I32 or t == T_ENUM:
            return <int32_t>_u32(d)
    elif k.n == 8:
        if t == T_U64:
            return (<uint64_t>_u32(d) << 32) | _u32(d + 4)
        if t == T_I64:
            return <int64_t>((<uint64_t>_u32(d) << 32) | _u32(d + 4))
    raise _BAIL  # another type or width: the pure function decides


cdef inline object _int_at(const unsigned char* p, Kid* kids, int i):
    return None if i < 0 else _int(p, &kids[i])


cdef object _str(const unsigned char* p, Kid* k):
    cdef int t = _type(k.code, k.vendor)
    if t == T_UTF8 or t == T_IDENT or t == T_URI or t == T_IPFILTER:
        try:
            return PyUnicode_DecodeUTF8(<const char*>(p + k.data), k.n, NULL)
        except UnicodeDecodeError:
            raise _BAIL from None
    raise _BAIL


cdef inline object _str_at(const unsigned char* p, Kid* kids, int i):
    return None if i < 0 else _str(p, &kids[i])


cdef int _members(const unsigned char* p, Kid* k, Kid* out) except -1:
    """One level of a Grouped AVP's members (mediation.ro.children)."""
    if _type(k.code, k.vendor) != T_GROUPED:
        raise _BAIL
    return _walk(p, k.data, k.data + k.n, out)


cdef object _norm(object text):
    """mediation.ro.normalise_address: ASCII digits (and tel:+digits) answered here."""
    cdef str s
    cdef Py_ssize_t i, n, start
    cdef Py_UCS4 c
    if text is None:
        return None
    s = <str>text
    n = len(s)
    start = 0
    if n > 5 and s.startswith("tel:+"):
        start = 5
    if n - start > 0:
        for i in range(start, n):
            c = s[i]
            if c < u'0' or c > u'9':
                return _normalise(text)
        if not (n - start >= 2 and s[start] == u'0' and s[start + 1] == u'0'):
            return s if start == 0 else s[start:]
    return _normalise(text)


# ------------------------------------------------------------------------------ units
cdef object _units(const unsigned char* p, Kid* a, object unit):
    """mediation.ro._units for a present RSU/USU: the amount (never None here)."""
    cdef Kid kids[MAX_KIDS]
    cdef int n = _members(p, a, kids)
    cdef int i
    for i in range(n):
        if kids[i].code == CC_MONEY:
            raise _BAIL  # CC-Money (any vendor): the money-slice rules of the pure function
    if unit is _UNIT_TIME:
        i = _first(kids, n, CC_TIME, 0)
        return 0 if i < 0 else _int(p, &kids[i])
    if unit is _UNIT_OCTETS:
        i = _first(kids, n, CC_TOTAL_OCTETS, 0)
        if i >= 0:
            return _int(p, &kids[i])
        i = _first(kids, n, CC_INPUT_OCTETS, 0)
        inp = 0 if i < 0 else _int(p, &kids[i])
        i = _first(kids, n, CC_OUTPUT_OCTETS, 0)
        out = 0 if i < 0 else _int(p, &kids[i])
        return (inp or 0) + (out or 0)
    if unit is not _UNIT_EVENTS:
        raise _BAIL
    i = _first(kids, n, CC_SERVICE_SPECIFIC_UNITS, 0)
    if i < 0:
        i = _first(kids, n, CC_TIME, 0)
    v = None if i < 0 else _int(p, &kids[i])
    return v or 0


cdef object _reason(const unsigned char* p, Kid* k):
    v = _int(p, k)
    if 0 <= v < 9:
        return _REASONS[v]
    return _REASON_OTHER


cdef object _slice(const unsigned char* p, Kid* mscc, object context, object smap,
                   object base_service):
    """mediation.ro._slice (not a money slice)."""
    cdef Kid kids[MAX_KIDS]
    cdef Kid sub[MAX_KIDS]
    cdef int n = _members(p, mscc, kids)
    cdef int i, j, m, rg_i = -1, sid_i = -1, rsu_i = -1
    cdef list reasons = []
    cdef list own = []
    for i in range(n):
        if kids[i].vendor == 0:
            if kids[i].code == RATING_GROUP:
                if rg_i < 0:
                    rg_i = i
            elif kids[i].code == SERVICE_IDENTIFIER:
                if sid_i < 0:
                    sid_i = i
            elif kids[i].code == REQUESTED_SERVICE_UNIT:
                if rsu_i < 0:
                    rsu_i = i
        elif kids[i].vendor == V3GPP and kids[i].code == REPORTING_REASON:
            own.append(i)
    rg = _int_at(p, kids, rg_i)
    sid = _int_at(p, kids, sid_i)
    service = None
    if rg is not None:
        service = smap.rating_groups.get(rg)
    if not service:
        service = base_service  # smap.service(context, rg) or default: the context's service
    unit = _SERVICE_UNIT[service]
    requested = None
    if rsu_i >= 0:
        requested = _units(p, &kids[rsu_i], unit)
    used = 0
    used_present = False
    for i in range(n):
        if kids[i].vendor == 0 and kids[i].code == USED_SERVICE_UNIT:
            used = used + _units(p, &kids[i], unit)
            used_present = True
            m = _members(p, &kids[i], sub)
            for j in range(m):
                if sub[j].code == REPORTING_REASON and sub[j].vendor == V3GPP:
                    reasons.append(_reason(p, &sub[j]))
    for i in own:
        reasons.append(_reason(p, &kids[i]))
    if used < 0 or (requested is not None and requested < 0):
        raise _BAIL  # BadRequest 5004
    if requested is not None:
        requested = requested or 0
    return _build(<_Layout>_UNITS,
                  (rg, sid, requested, used, used_present, tuple(reasons), service, False))


# ------------------------------------------------------------------------------ parties
cdef object _addr_in(const unsigned char* p, Kid* ra):
    """Address-Data of a Recipient-Address, or None."""
    cdef Kid kids[MAX_KIDS]
    cdef int n = _members(p, ra, kids)
    return _str_at(p, kids, _first(kids, n, ADDRESS_DATA, V3GPP))


cdef tuple _parties(const unsigned char* p, Kid* si, object service):
    """mediation.ro._parties_of: (origin, destination)."""
    cdef Kid kids[MAX_KIDS]
    cdef Kid sub[MAX_KIDS]
    cdef Kid sub2[MAX_KIDS]
    cdef int n, m, m2, i, j, k
    if si == NULL:
        return (None, None)
    n = _members(p, si, kids)
    if n == 0:
        return (None, None)
    if service is _VOICE:
        i = _first(kids, n, IMS_INFORMATION, V3GPP)
        if i < 0:
            return (_norm(None), _norm(None))
        m = _members(p, &kids[i], sub)
        return (_norm(_str_at(p, sub, _first(sub, m, CALLING_PARTY_ADDRESS, V3GPP))),
                _norm(_str_at(p, sub, _first(sub, m, CALLED_PARTY_ADDRESS, V3GPP))))
    if service is _SMS:
        i = _first(kids, n, SMS_INFORMATION, V3GPP)
        if i < 0:
            return (None, None)
        m = _members(p, &kids[i], sub)
        for j in range(m):
            if sub[j].code == RECIPIENT_INFO and sub[j].vendor == V3GPP:
                m2 = _members(p, &sub[j], sub2)
                for k in range(m2):
                    if sub2[k].code == RECIPIENT_ADDRESS and sub2[k].vendor == V3GPP:
                        data = _addr_in(p, &sub2[k])
                        if data:
                            return (None, _norm(data))
        return (None, None)
    if service is _MMS:
        i = _first(kids, n, MMS_INFORMATION, V3GPP)
        if i < 0:
            return (None, None)
        m = _members(p, &kids[i], sub)
        for j in range(m):
            if sub[j].code == RECIPIENT_ADDRESS and sub[j].vendor == V3GPP:
                data = _addr_in(p, &sub[j])
                if data:
                    return (None, _norm(data))
        return (None, None)
    if service is _DATA or service is _DATA_TIME:
        i = _first(kids, n, PS_INFORMATION, V3GPP)
        if i < 0:
            return (None, None)
        m = _members(p, &kids[i], sub)
        apn = _str_at(p, sub, _first(sub, m, CALLED_STATION_ID, 0))
        return (None, apn.lower() if apn else None)
    return (None, None)


cdef object _subscriber(const unsigned char* p, Kid* subs, int nsubs, Kid* si,
                        Kid* user_name):
    """mediation.ro._subscriber_of."""
    cdef Kid kids[MAX_KIDS]
    cdef Kid sub[MAX_KIDS]
    cdef int i, j, n, m, rank, best_rank = 99
    best = None
    for i in range(nsubs):
        n = _members(p, &subs[i], kids)
        j = _first(kids, n, SUBSCRIPTION_ID_TYPE, 0)
        t = -1 if j < 0 else _int(p, &kids[j])
        data = _str_at(p, kids, _first(kids, n, SUBSCRIPTION_ID_DATA, 0))
        if not data:
            continue
        rank = 0 if t == 0 else 1 if t == 1 else 2 if t == 2 else 3
        if best is None or rank < best_rank:
            best_rank = rank
            best = data
            if rank == 0:
                break
    if best is None and si != NULL:
        n = _members(p, si, kids)
        for i in range(n):
            if kids[i].code == SUBSCRIPTION_ID and kids[i].vendor == 0:
                m = _members(p, &kids[i], sub)
                data = _str_at(p, sub, _first(sub, m, SUBSCRIPTION_ID_DATA, 0))
                if data:
                    best = data
                    break
    if best is None:
        name = None if user_name == NULL else _str(p, user_name)
        return _norm(name) if name else None
    return _norm(best)


# ------------------------------------------------------------------------------ the request
cdef object _memo_smap = None  # the ServiceMap whose answers _memo holds
cdef dict _memo = {}  # Service-Context-Id -> ServiceMap.context_service(it) (never None)


cdef object _context_service(object smap, object context):
    """``smap.context_service(context)``, remembered per context for the last map asked (a
    ServiceMap is frozen and built from the config; a peer sends a handful of contexts)."""
    global _memo_smap
    if smap is not _memo_smap:
        _memo.clear()
        _memo_smap = smap
    cdef PyObject *hit = PyDict_GetItem(_memo, context)
    if hit is not NULL:
        return <object>hit
    service = smap.context_service(context)
    if service is not None and len(_memo) < 64:
        _memo[context] = service
    return service


def ccr_to_request(msg, smap):
    """The ChargingRequest of a received CCR (as mediation.ro.ccr_to_request_py builds it),
    or None when the pure function must decide (see the module docstring)."""
    try:
        return _translate(msg, smap)
    except _Bail:
        return None


cdef object _translate(object msg, object smap):
    cdef Kid top[N_SLOTS]
    cdef bint have[N_SLOTS]
    cdef Kid msccs[MAX_KIDS]
    cdef Kid usus[MAX_KIDS]
    cdef Kid subs[MAX_KIDS]
    cdef Kid si
    cdef Kid aoc
    cdef int n_mscc = 0, n_usu = 0, n_sub = 0, slot, i
    cdef bint have_si = False, have_aoc = False
    cdef Avp a
    cdef Kid* k
    if type(msg) is not Message or type(smap) is not _ServiceMap:
        return None
    avps = (<Message>msg).avps
    if not avps:
        return None
    buf = (<Avp>avps[0])._buf
    if type(buf) is not bytes:
        return None
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    for i in range(N_SLOTS):
        have[i] = False
    for obj in avps:
        if type(obj) is not Avp:
            return None
        a = <Avp>obj
        if a._buf is not buf or type(a._value) is list:
            return None  # built or edited in Python: the pure function reads the objects
        if a.vendor == 0:
            slot = -1
            if a.code == SESSION_ID:
                slot = S_SESSION
            elif a.code == CC_REQUEST_TYPE:
                slot = S_RTYPE
            elif a.code == CC_REQUEST_NUMBER:
                slot = S_NUMBER
            elif a.code == SERVICE_CONTEXT_ID:
                slot = S_CONTEXT
            elif a.code == MULTIPLE_SERVICES_INDICATOR:
                slot = S_MSI
            elif a.code == REQUESTED_SERVICE_UNIT:
                slot = S_RSU
            elif a.code == SERVICE_IDENTIFIER:
                slot = S_SERVICE_ID
            elif a.code == REQUESTED_ACTION:
                slot = S_ACTION
            elif a.code == ORIGIN_HOST:
                slot = S_ORIGIN_HOST
            elif a.code == ORIGIN_REALM:
                slot = S_ORIGIN_REALM
            elif a.code == EVENT_TIMESTAMP:
                slot = S_TIMESTAMP
            elif a.code == TERMINATION_CAUSE:
                slot = S_CAUSE
            elif a.code == USER_NAME:
                slot = S_USER_NAME
            elif a.code == AUTH_APPLICATION_ID:
                # another application than the header's: the pure function answers 5004
                if (a._len - a._hlen != 4
                        or _u32(p + a._off + a._hlen) != (<Message>msg).app_id):
                    return None
                continue
            if slot >= 0:
                if have[slot]:
                    continue
                have[slot] = True
                k = &top[slot]
            elif a.code == MULTIPLE_SERVICES_CREDIT_CONTROL:
                if n_mscc >= MAX_KIDS:
                    return None
                k = &msccs[n_mscc]
                n_mscc += 1
            elif a.code == USED_SERVICE_UNIT:
                if n_usu >= MAX_KIDS:
                    return None
                k = &usus[n_usu]
                n_usu += 1
            elif a.code == SUBSCRIPTION_ID:
                if n_sub >= MAX_KIDS:
                    return None
                k = &subs[n_sub]
                n_sub += 1
            else:
                continue
        elif a.vendor == V3GPP:
            if a.code == SERVICE_INFORMATION and not have_si:
                have_si = True
                k = &si
            elif a.code == AOC_REQUEST_TYPE and not have_aoc:
                have_aoc = True
                k = &aoc
            else:
                continue
        else:
            continue
        k.code = a.code
        k.vendor = a.vendor
        k.data = a._off + a._hlen
        k.n = a._len - a._hlen
    if not (have[S_SESSION] and have[S_RTYPE] and have[S_NUMBER] and have[S_CONTEXT]):
        return None  # 5005 missing: the pure function raises it
    session_id = _str(p, &top[S_SESSION]) or ""
    rtype = _int(p, &top[S_RTYPE])
    number = _int(p, &top[S_NUMBER])
    if not 1 <= rtype <= 4:
        return None  # 5004
    verb = _VERBS[rtype]
    context = _str(p, &top[S_CONTEXT])
    base_service = _context_service(smap, context)
    if base_service is None:
        return None  # 5031
    cdef bint msi = have[S_MSI] and _int(p, &top[S_MSI]) == 1
    slices = []
    for i in range(n_mscc):
        slices.append(_slice(p, &msccs[i], context, smap, base_service))
    if not slices:
        unit = _SERVICE_UNIT[base_service]
        rsu_present = have[S_RSU]
        requested = _units(p, &top[S_RSU], unit) if rsu_present else None
        used = 0
        present = False
        for i in range(n_usu):
            used = used + _units(p, &usus[i], unit)
            present = True
        sid = _int(p, &top[S_SERVICE_ID]) if have[S_SERVICE_ID] else None
        if rsu_present or present or verb is _VERB_EVENT:
            slices.append(_build(<_Layout>_UNITS,
                                 (None, sid, (requested or 0) if rsu_present else None, used,
                                  present, _EMPTY_TUPLE, base_service, False)))
    service = base_service
    if slices:
        s0 = slices[0].service
        if s0:
            service = s0
    origin, destination = _parties(p, &si if have_si else NULL, service)
    subscriber = _subscriber(p, subs, n_sub, &si if have_si else NULL,
                             &top[S_USER_NAME] if have[S_USER_NAME] else NULL)
    action = None
    if verb is _VERB_EVENT:
        ra = _int(p, &top[S_ACTION]) if have[S_ACTION] else 0
        if not 0 <= ra <= 3:
            return None  # 5004
        action = _ACTIONS[ra]
    aoc_v = _int(p, &aoc) if have_aoc else 0
    origin_host = (_str(p, &top[S_ORIGIN_HOST]) if have[S_ORIGIN_HOST] else None) or ""
    realm = (_str(p, &top[S_ORIGIN_REALM]) if have[S_ORIGIN_REALM] else None) or ""
    at = None
    if have[S_TIMESTAMP]:
        at = _time(_top_avp(avps, EVENT_TIMESTAMP))
    cause = _int(p, &top[S_CAUSE]) if have[S_CAUSE] else None
    return _build(<_Layout>_REQ, (
        verb, session_id, number, service, subscriber, destination, origin or subscriber,
        tuple(slices), n_mscc > 0 or (msi and not slices), action, f"ro:{session_id}:{number}", origin_host,
        realm, context, at, bool(aoc_v) or action is _PRICE_ENQUIRY, cause))


cdef object _top_avp(list avps, uint32_t code):
    cdef Avp a
    for obj in avps:
        a = <Avp>obj
        if a.code == code and a.vendor == 0:
            return a
    return None
