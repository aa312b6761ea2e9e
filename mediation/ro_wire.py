"""ChargingResult -> CCA bytes from pre-encoded pieces: the common case of
:func:`mediation.ro.result_to_cca`, byte-identical to it (tests/mediation/test_ro_wire.py
checks that with hypothesis), without building an Avp tree per answer.

:meth:`CcaWriter.encode` returns None for anything outside the common case (money units,
Cost-Information, Check-Balance-Result, Failed-AVP, Proxy-Info, no MSCC); the caller then uses
``result_to_cca``. Every AVP header here comes from the codec itself (an AVP of the same code
encoded once at start), so flags and widths follow the dictionary.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from charging.requests import ChargingRequest, ChargingResult, Outcome, UnitKind, UnitsResult
from cython_ext import load
from diameter.avp import EXT as _CODEC_EXT
from diameter.avp import Avp
from diameter.message import Message
from mediation import avp_codes as C
from mediation.ro import OUTCOME_RESULT_CODE

__all__ = ["CcaWriter"]

_HDR = struct.Struct("!IIIII")
_GRP = struct.Struct("!II")
_FLAG_P = 0x40
_PACK = {4: struct.Struct("!I").pack, 8: struct.Struct("!Q").pack}


class _Scalar:
    """An Unsigned32/64 AVP: the codec's header bytes, then the packed value."""

    __slots__ = ("prefix", "pack", "width")

    def __init__(self, code: int, vendor: int = 0) -> None:
        enc = Avp.new(code, 0, vendor=vendor).encode()
        hdr = 12 if vendor else 8
        self.prefix = enc[:hdr]
        self.width = len(enc) - hdr
        self.pack = _PACK[self.width]

    @property
    def piece(self) -> tuple[bytes, int]:
        """(header bytes, payload width): what the compiled twin needs."""
        return self.prefix, self.width

    def __call__(self, value: int) -> bytes:
        return self.prefix + self.pack(value)


def _grouped(code: int, vendor: int = 0) -> tuple[int, int]:
    """(flags byte, header size) of a Grouped AVP as the codec writes it."""
    enc = Avp.new(code, [], vendor=vendor).encode()
    return enc[4], len(enc)


def _select_twin() -> Any:
    """The one selection point of cython_ext/ro_cca.pyx (None: the Python writer only)."""
    ext = load("ro_cca")
    if ext is None or _CODEC_EXT is None or getattr(ext, "ABI", None) != 1:
        return None
    return ext


_TWIN = _select_twin()


class CcaWriter:
    """Writes CCAs for one Origin-Host/Realm. Construct once; per answer call
    ``encode(ccr, request, result)``: the CCA bytes (Hop-by-Hop/End-to-End of *ccr*), or None
    outside the common case (then use ``result_to_cca``). ``encode`` is the compiled twin
    (cython_ext/ro_cca.pyx) when it is built, else :meth:`encode_py`, its spec; the twin
    calls :meth:`encode_py` for whatever it declines."""

    encode: Callable[[Message, ChargingRequest, ChargingResult], bytes | None]

    def __init__(self, origin_host: str, origin_realm: str) -> None:
        self._tail = (Avp.new(C.ORIGIN_HOST, origin_host).encode()
                      + Avp.new(C.ORIGIN_REALM, origin_realm).encode()
                      + Avp.new(C.AUTH_APPLICATION_ID, 4).encode())
        self._rc = _Scalar(C.RESULT_CODE)
        self._heads: dict[int, bytes] = {}  # Result-Code -> Result-Code + Origin-* + Auth-App
        self._rtype = {v: Avp.new(C.CC_REQUEST_TYPE, v).encode() for v in (1, 2, 3, 4)}
        self._rnum = _Scalar(C.CC_REQUEST_NUMBER)
        self._sid = _Scalar(C.SERVICE_IDENTIFIER)
        self._rg = _Scalar(C.RATING_GROUP)
        self._vt = _Scalar(C.VALIDITY_TIME)
        self._units = {UnitKind.TIME: _Scalar(C.CC_TIME),
                       UnitKind.OCTETS: _Scalar(C.CC_TOTAL_OCTETS),
                       UnitKind.EVENTS: _Scalar(C.CC_SERVICE_SPECIFIC_UNITS)}
        self._thresholds = {UnitKind.TIME: _Scalar(C.TIME_QUOTA_THRESHOLD, C.V3GPP),
                            UnitKind.OCTETS: _Scalar(C.VOLUME_QUOTA_THRESHOLD, C.V3GPP),
                            UnitKind.EVENTS: _Scalar(C.UNIT_QUOTA_THRESHOLD, C.V3GPP)}
        self._qht = _Scalar(C.QUOTA_HOLDING_TIME, C.V3GPP)
        self._fui = Avp.new(C.FINAL_UNIT_INDICATION,
                            [Avp.new(C.FINAL_UNIT_ACTION, 0)]).encode()
        self._gsu_flags, self._gsu_hdr = _grouped(C.GRANTED_SERVICE_UNIT)
        self._mscc_flags, self._mscc_hdr = _grouped(C.MULTIPLE_SERVICES_CREDIT_CONTROL)
        self._mscc_rc: dict[Outcome, bytes] = {}
        self.encode = self.encode_py
        if _TWIN is not None:
            self.encode = _TWIN.CcaEncoder(
                fallback=self.encode_py, tail=self._tail, rc=self._rc.piece,
                rtype=self._rtype, rnum=self._rnum.piece, sid=self._sid.piece,
                rg=self._rg.piece, vt=self._vt.piece, qht=self._qht.piece,
                units=[(k, u.piece, self._thresholds[k].piece)
                       for k, u in self._units.items()],
                outcomes=list(OUTCOME_RESULT_CODE.items()), money=UnitKind.MONEY,
                fui=self._fui,
                gsu=(C.GRANTED_SERVICE_UNIT, self._gsu_flags, self._gsu_hdr),
                mscc=(C.MULTIPLE_SERVICES_CREDIT_CONTROL, self._mscc_flags, self._mscc_hdr),
                layouts=(ChargingRequest, ChargingResult, UnitsResult)).encode

    def _head(self, code: int) -> bytes:
        head = self._heads.get(code)
        if head is None:
            head = self._heads[code] = self._rc(code) + self._tail
        return head

    def encode_py(self, ccr: Message, request: ChargingRequest,
                  result: ChargingResult) -> bytes | None:
        """The CCA bytes (Hop-by-Hop/End-to-End of *ccr*), or None outside the common case."""
        if (not request.multiple_services or result.enough_credit is not None
                or (request.want_cost and result.cost is not None)):
            return None
        code = OUTCOME_RESULT_CODE[result.outcome]
        if result.failed_field and code in (5030, 5031, 5004, 5005):
            return None
        if ccr.find(C.PROXY_INFO) is not None:
            return None
        sid = ccr.find(C.SESSION_ID)
        try:
            parts = [sid.encode() if sid is not None else b"", self._head(code),
                     self._rtype[int(request.verb)], self._rnum(request.request_number)]
            for r in result.units:
                mscc = self._mscc(r)
                if mscc is None:
                    return None
                parts.append(mscc)
        except (struct.error, KeyError, OverflowError):
            return None  # a value the codec must judge (range): the Message path
        body = b"".join(parts)
        return _HDR.pack((1 << 24) | (20 + len(body)), ((ccr.flags & _FLAG_P) << 24) | ccr.code,
                         ccr.app_id, ccr.hop_by_hop, ccr.end_to_end) + body

    def _mscc(self, r: UnitsResult) -> bytes | None:
        # Same member order as mediation.ro._mscc.
        unit = r.unit
        if unit is UnitKind.MONEY:
            return None
        kids: list[bytes] = []
        granted = r.granted
        if granted is not None:
            u = self._units[unit](granted)
            kids.append(_GRP.pack(C.GRANTED_SERVICE_UNIT,
                                  (self._gsu_flags << 24) | (self._gsu_hdr + len(u))) + u)
        if r.service_id is not None:
            kids.append(self._sid(r.service_id))
        if r.rating_group is not None:
            kids.append(self._rg(r.rating_group))
        if r.validity_time is not None:
            kids.append(self._vt(r.validity_time))
        outcome = r.outcome
        rc = self._mscc_rc.get(outcome)
        if rc is None:
            rc = self._mscc_rc[outcome] = self._rc(OUTCOME_RESULT_CODE[outcome])
        kids.append(rc)
        if r.final_unit:
            kids.append(self._fui)
        if r.quota_threshold:
            kids.append(self._thresholds[unit](r.quota_threshold))
        if r.quota_holding_time:
            kids.append(self._qht(r.quota_holding_time))
        body = b"".join(kids)
        return _GRP.pack(C.MULTIPLE_SERVICES_CREDIT_CONTROL,
                         (self._mscc_flags << 24) | (self._mscc_hdr + len(body))) + body
