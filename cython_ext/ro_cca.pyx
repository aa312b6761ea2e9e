# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of mediation.ro_wire.CcaWriter.encode: the CCA bytes of the common case,
written into one buffer from pre-encoded pieces (only Session-Id, the numbers, the grants and
the result codes are patched in).

mediation/ro_wire.py builds every piece with the codec and hands them over (this module
imports nothing from the project); it stays the executable spec. :meth:`CcaEncoder.encode`
returns the same bytes as the Python writer, or calls the Python writer for anything it
declines (a value that is not a plain int in range, an unknown outcome or unit, a message not
decoded by the compiled codec, an answer over the buffer size), so the bytes are always the
spec's.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

from cython_ext.diameter_codec cimport Avp, Message

include "slot_layout.pxi"

ABI = 1

# The fields read per answer (by offset once ``layouts`` named the classes; by name else).
cdef tuple N_Q = ("multiple_services", "want_cost", "verb", "request_number")
cdef enum:
    Q_MULTIPLE_SERVICES, Q_WANT_COST, Q_VERB, Q_REQUEST_NUMBER
cdef tuple N_RES = ("outcome", "units", "cost", "enough_credit", "failed_field")
cdef enum:
    RES_OUTCOME, RES_UNITS, RES_COST, RES_ENOUGH_CREDIT, RES_FAILED_FIELD
cdef tuple N_U = ("unit", "granted", "service_id", "rating_group", "validity_time",
                  "outcome", "final_unit", "quota_threshold", "quota_holding_time")
cdef enum:
    UR_UNIT, UR_GRANTED, UR_SERVICE_ID, UR_RATING_GROUP, UR_VALIDITY_TIME, UR_OUTCOME
    UR_FINAL_UNIT, UR_THRESHOLD, UR_QHT

cdef enum:
    BUF = 4096
    SESSION_ID = 263
    PROXY_INFO = 284


cdef inline void _put32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef class _Scalar:
    """An Unsigned32/64 AVP: the codec's header bytes and the payload width."""
    cdef bytes prefix
    cdef int width

    def __init__(self, bytes prefix, int width):
        self.prefix = prefix
        self.width = width


cdef inline Py_ssize_t _copy(unsigned char* out, Py_ssize_t pos, bytes b) except -2:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    if pos < 0 or pos + n > BUF:
        return -1
    memcpy(out + pos, PyBytes_AS_STRING(b), n)
    return pos + n


cdef Py_ssize_t _scalar(unsigned char* out, Py_ssize_t pos, _Scalar s, object value) except -2:
    """Write the AVP for *value*; -1 (decline) unless it is a plain int the width holds."""
    cdef uint64_t v
    if pos < 0 or type(value) is not int:
        return -1
    try:
        v = <uint64_t>value
    except OverflowError:
        return -1
    if s.width == 4 and v >> 32:  # C arithmetic: 0xFFFFFFFF is a Python int to Cython
        return -1
    pos = _copy(out, pos, s.prefix)
    if pos < 0 or pos + s.width > BUF:
        return -1
    if s.width == 4:
        _put32(out + pos, <uint32_t>v)
    else:
        _put32(out + pos, <uint32_t>(v >> 32))
        _put32(out + pos + 4, <uint32_t>v)  # the low 32 bits
    return pos + s.width


cdef class CcaEncoder:
    """Built once per CcaWriter (see mediation/ro_wire.py); :meth:`encode` per answer."""

    cdef object fallback
    cdef bytes tail
    cdef dict heads
    cdef _Scalar rc
    cdef dict rtype
    cdef _Scalar rnum, sid, rg, vt, qht
    cdef tuple units       # ((UnitKind, _Scalar unit, _Scalar threshold), ...)
    cdef tuple outcomes    # ((Outcome, result code, encoded Result-Code), ...)
    cdef object money
    cdef bytes fui
    cdef uint32_t gsu_code, gsu_word, mscc_code, mscc_word
    cdef Py_ssize_t gsu_hdr, mscc_hdr
    cdef Layout l_req, l_res, l_ur  # ChargingRequest, ChargingResult, UnitsResult

    def __init__(self, *, fallback, tail, rc, rtype, rnum, sid, rg, vt, qht, units, outcomes,
                 money, fui, gsu, mscc, layouts=None):
        """*fallback*: the Python writer's encode (called for what this one declines).
        Scalars are (header bytes, width); *units* ((kind, unit scalar, threshold scalar),
        ...); *outcomes* ((outcome, result code), ...); *gsu*/*mscc* (code, flags, header
        size) of the Grouped AVPs. *layouts*: the (ChargingRequest, ChargingResult,
        UnitsResult) classes, whose fields are then read by offset (slot_layout.pxi)."""
        self.l_req.tp = self.l_res.tp = self.l_ur.tp = NULL
        if layouts is not None:
            _layout(&self.l_req, layouts[0], N_Q, None)
            _layout(&self.l_res, layouts[1], N_RES, None)
            _layout(&self.l_ur, layouts[2], N_U, None)
        self.fallback = fallback
        self.tail = tail
        self.heads = {}
        self.rc = _Scalar(*rc)
        self.rtype = dict(rtype)
        self.rnum = _Scalar(*rnum)
        self.sid = _Scalar(*sid)
        self.rg = _Scalar(*rg)
        self.vt = _Scalar(*vt)
        self.qht = _Scalar(*qht)
        self.units = tuple((k, _Scalar(*u), _Scalar(*t)) for k, u, t in units)
        out = []
        cdef unsigned char tmp[16]
        for outcome, code in outcomes:
            n = _scalar(tmp, 0, self.rc, code)
            out.append((outcome, code, PyBytes_FromStringAndSize(<char*>tmp, n)))
        self.outcomes = tuple(out)
        self.money = money
        self.fui = fui
        self.gsu_code = gsu[0]
        self.gsu_word = <uint32_t>gsu[1] << 24
        self.gsu_hdr = gsu[2]
        self.mscc_code = mscc[0]
        self.mscc_word = <uint32_t>mscc[1] << 24
        self.mscc_hdr = mscc[2]

    cdef tuple _outcome(self, object outcome):
        for entry in self.outcomes:
            if (<tuple>entry)[0] is outcome:
                return <tuple>entry
        return None

    def encode(self, ccr, request, result):
        """The CCA bytes (as mediation.ro_wire.CcaWriter.encode), or None outside the
        common case (then the caller uses result_to_cca)."""
        out = self._encode(ccr, request, result)
        if out is None:
            return self.fallback(ccr, request, result)
        return out

    def layouts_known(self):
        """For the tests: which classes' fields are read by offset (False: by name)."""
        return {"ChargingRequest": self.l_req.tp != NULL,
                "ChargingResult": self.l_res.tp != NULL, "UnitsResult": self.l_ur.tp != NULL}

    cdef object _encode(self, object ccr, object request, object result):
        cdef unsigned char buf[BUF]
        cdef Py_ssize_t pos = 20, start, i
        cdef Message msg
        cdef Avp a
        cdef Avp session = None
        cdef tuple oc
        cdef Layout *lq = &self.l_req
        cdef Layout *lr = &self.l_res
        if type(ccr) is not Message:
            return None
        if (not _get(lq, N_Q, request, Q_MULTIPLE_SERVICES)
                or _get(lr, N_RES, result, RES_ENOUGH_CREDIT) is not None
                or (_get(lq, N_Q, request, Q_WANT_COST)
                    and _get(lr, N_RES, result, RES_COST) is not None)):
            return None
        oc = self._outcome(_get(lr, N_RES, result, RES_OUTCOME))
        if oc is None:
            return None
        code = oc[1]
        if _get(lr, N_RES, result, RES_FAILED_FIELD) and code in (5030, 5031, 5004, 5005):
            return None
        msg = <Message>ccr
        for obj in msg.avps:
            if type(obj) is not Avp:
                return None
            a = <Avp>obj
            if a.vendor == 0:
                if a.code == PROXY_INFO:
                    return None
                if a.code == SESSION_ID and session is None:
                    session = a
        if session is not None:
            pos = _copy(buf, pos, session.encode())
        head = self.heads.get(code)
        if head is None:
            head = self.heads[code] = (<bytes>oc[2]) + self.tail
        pos = _copy(buf, pos, <bytes>head)
        rt = self.rtype.get(int(_get(lq, N_Q, request, Q_VERB)))
        if rt is None:
            return None
        pos = _copy(buf, pos, <bytes>rt)
        pos = _scalar(buf, pos, self.rnum, _get(lq, N_Q, request, Q_REQUEST_NUMBER))
        for r in _get(lr, N_RES, result, RES_UNITS):
            pos = self._mscc(buf, pos, r)
            if pos < 0:
                return None
        if pos < 0:
            return None
        _put32(buf, (1 << 24) | <uint32_t>pos)
        _put32(buf + 4, ((<uint32_t>msg.flags & 0x40) << 24) | (msg.code & 0xFFFFFF))
        _put32(buf + 8, msg.app_id)
        _put32(buf + 12, msg.hop_by_hop)
        _put32(buf + 16, msg.end_to_end)
        return PyBytes_FromStringAndSize(<char*>buf, pos)

    cdef Py_ssize_t _mscc(self, unsigned char* buf, Py_ssize_t pos, object r) except -2:
        # Same member order as mediation.ro._mscc / ro_wire.CcaWriter._mscc.
        cdef Py_ssize_t start = pos, g
        cdef _Scalar us = None, ts = None
        cdef tuple oc
        cdef Layout *lu = &self.l_ur
        if pos < 0 or pos + self.mscc_hdr > BUF:
            return -1
        unit = _get(lu, N_U, r, UR_UNIT)
        if unit is self.money:
            return -1
        for entry in self.units:
            if (<tuple>entry)[0] is unit:
                us = <_Scalar>(<tuple>entry)[1]
                ts = <_Scalar>(<tuple>entry)[2]
                break
        if us is None:
            return -1
        pos += self.mscc_hdr
        granted = _get(lu, N_U, r, UR_GRANTED)
        if granted is not None:
            g = pos
            if pos + self.gsu_hdr > BUF:
                return -1
            pos = _scalar(buf, pos + self.gsu_hdr, us, granted)
            if pos < 0:
                return -1
            _put32(buf + g, self.gsu_code)
            _put32(buf + g + 4, self.gsu_word | <uint32_t>(pos - g))
        v = _get(lu, N_U, r, UR_SERVICE_ID)
        if v is not None:
            pos = _scalar(buf, pos, self.sid, v)
        v = _get(lu, N_U, r, UR_RATING_GROUP)
        if v is not None:
            pos = _scalar(buf, pos, self.rg, v)
        v = _get(lu, N_U, r, UR_VALIDITY_TIME)
        if v is not None:
            pos = _scalar(buf, pos, self.vt, v)
        oc = self._outcome(_get(lu, N_U, r, UR_OUTCOME))
        if oc is None or pos < 0:
            return -1
        pos = _copy(buf, pos, <bytes>oc[2])
        if _get(lu, N_U, r, UR_FINAL_UNIT):
            pos = _copy(buf, pos, self.fui)
        v = _get(lu, N_U, r, UR_THRESHOLD)
        if v:
            pos = _scalar(buf, pos, ts, v)
        v = _get(lu, N_U, r, UR_QHT)
        if v:
            pos = _scalar(buf, pos, self.qht, v)
        if pos < 0:
            return -1
        _put32(buf + start, self.mscc_code)
        _put32(buf + start + 4, self.mscc_word | <uint32_t>(pos - start))
        return pos
