"""Ro (RFC 4006 / TS 32.299): CCR -> ChargingRequest and ChargingResult -> CCA. Pure translation.

The agent never prices anything: it reads the wire, builds a neutral request, and writes the
engine's decision back. The ONE table from engine outcomes to Result-Codes is
:data:`OUTCOME_RESULT_CODE` (facts A6/B6).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable, Sequence
from typing import Any

from charging.currency import currency_numeric
from charging.requests import (
    SERVICE_UNIT,
    ChargingRequest,
    ChargingResult,
    EventAction,
    Outcome,
    ReportingReason,
    ServiceKind,
    ServiceUnits,
    UnitKind,
    UnitsResult,
    Verb,
)
from cython_ext import load
from diameter.avp import _TYPES as _AVP_TYPES
from diameter.avp import Avp, decode_avps, zero_filled
from diameter.message import Message
from mediation import avp_codes as C
from mediation.service_map import ServiceMap

OUTCOME_RESULT_CODE: dict[Outcome, int] = {
    Outcome.SUCCESS: 2001,  # DIAMETER_SUCCESS
    Outcome.CREDIT_LIMIT_REACHED: 4012,  # RFC 4006 §9.1
    Outcome.SERVICE_DENIED: 4010,
    Outcome.NOT_APPLICABLE: 4011,
    Outcome.USER_UNKNOWN: 5030,
    Outcome.RATING_FAILED: 5031,  # Failed-AVP required (B6)
    Outcome.UNKNOWN_SESSION: 5002,
    Outcome.INVALID_VALUE: 5004,
    Outcome.MISSING_FIELD: 5005,
    Outcome.UNABLE_TO_COMPLY: 5012,
    Outcome.OUT_OF_SPACE: 4002,
}
"""Engine outcome -> Result-Code (command level and per MSCC). The only such table for Ro."""

_U32_MAX = 0xFFFF_FFFF  # largest Unsigned32 (RFC 6733 §4.2)
_NTP_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (RFC 6733 §4.3.1 Time)


class BadRequest(Exception):
    """The CCR cannot be turned into a request: answer ``result_code`` with Failed-AVP."""

    def __init__(self, result_code: int, failed: Avp | None, message: str) -> None:
        super().__init__(message)
        self.result_code = result_code
        self.failed = failed
        self.message = message


# ---------------------------------------------------------------------------- AVP helpers
def avp(code: int, value: Any, vendor: int = 0) -> Avp:
    """Build an AVP by code (the dictionary supplies type and flags)."""
    return Avp.new(code, value, vendor=vendor)


_EMPTY: list[Avp] = []


def children(a: Avp | None) -> list[Avp]:
    """Members of a Grouped AVP ([] for None or a non-Grouped value). The result may be a
    shared empty list: callers must not mutate it."""
    if a is None:
        return _EMPTY
    value = a.value
    return value if value.__class__ is list else _EMPTY


def first(avps: Iterable[Avp], code: int, vendor: int = 0) -> Avp | None:
    for a in avps:
        if a.code == code and a.vendor == vendor:
            return a
    return None


def every(avps: Iterable[Avp], code: int, vendor: int = 0) -> list[Avp]:
    return [a for a in avps if a.code == code and a.vendor == vendor]


def _int(a: Avp | None, default: int | None = None) -> int | None:
    if a is None:
        return default
    v = a.value
    if v.__class__ is int or isinstance(v, int):
        return v
    if isinstance(v, bytes) and 0 < len(v) <= 8:
        return int.from_bytes(v, "big")
    return default


def _str(a: Avp | None) -> str | None:
    if a is None:
        return None
    v = a.value
    if v.__class__ is str:
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _time(a: Avp | None) -> float | None:
    """Epoch seconds of a Time AVP (decoded as Unix seconds int, or datetime)."""
    if a is None:
        return None
    v = a.value
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.UTC)
        return v.timestamp()
    if isinstance(v, int):
        # The codec already turns NTP seconds into Unix seconds (RFC 2030 rollover, both codec
        # modes); subtracting the offset again sent every time after 2039-12-31 back to 1970.
        return float(v)
    if isinstance(v, bytes) and len(v) == 4:
        return float(int.from_bytes(v, "big") - _NTP_OFFSET)
    return None


def normalise_address(text: str | None) -> str | None:
    """``tel:+41 79 123``, ``sip:+4179123@ims;user=phone`` -> ``4179123`` (E.164 digits).

    Anything that is not a number (an APN, a SIP name) is returned lower-cased, unchanged."""
    if text is None:
        return None
    if text.isdigit() and not text.startswith("00"):
        return text  # already plain digits: the common case, same answer as below
    if text.startswith("tel:+"):
        rest = text[5:]
        if rest.isdigit() and not rest.startswith("00"):
            return rest  # "tel:+E164" (IMS Calling/Called-Party-Address): same answer
    t = text.strip()
    low = t.lower()
    for scheme in ("tel:", "sip:", "sips:"):
        if low.startswith(scheme):
            t = t[len(scheme):]
            break
    t = t.split(";", 1)[0].split("@", 1)[0]
    digits = t.replace(" ", "").replace("-", "").lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    return digits if digits.isdigit() else t.lower()


def missing(code: int, vendor: int = 0) -> BadRequest:
    """5005 with a zero-filled example of the missing AVP (RFC 6733 §7.5)."""
    flags = 0xC0 if vendor else 0x40
    example = decode_avps(zero_filled(code, vendor, flags))[0]
    return BadRequest(5005, example, f"missing AVP {code}")


def answer(request: Message, avps: list[Avp], *, error: bool = False) -> Message:
    """An answer with Session-Id first and Proxy-Info copied in order (facts A5)."""
    out: list[Avp] = []
    sid = request.find(C.SESSION_ID)
    if sid is not None:
        out.append(sid)
    out.extend(avps)
    out.extend(request.find_all(C.PROXY_INFO))
    return request.answer(out, error=error)


# ---------------------------------------------------------------------------- CCR -> request
def _units(a: Avp | None, unit: UnitKind) -> tuple[int | None, bool]:
    """(amount, present) of an RSU/USU/GSU in *unit*; octets add input+output when no total."""
    if a is None:
        return None, False
    kids = children(a)
    if unit is UnitKind.TIME:
        return _int(first(kids, C.CC_TIME), 0), True
    if unit is UnitKind.OCTETS:
        total = _int(first(kids, C.CC_TOTAL_OCTETS))
        if total is None:
            total = (_int(first(kids, C.CC_INPUT_OCTETS), 0) or 0) + (
                _int(first(kids, C.CC_OUTPUT_OCTETS), 0) or 0)
        return total, True
    n = _int(first(kids, C.CC_SERVICE_SPECIFIC_UNITS))
    if n is None:
        n = _int(first(kids, C.CC_TIME))  # some SMSCs send CC-Time 1 for one event
    return (n or 0), True


_UNIT_CODES = frozenset((C.CC_TIME, C.CC_TOTAL_OCTETS, C.CC_INPUT_OCTETS, C.CC_OUTPUT_OCTETS,
                         C.CC_SERVICE_SPECIFIC_UNITS))


_MAX_EXPONENT = 18  # |Exponent| beyond this cannot describe a real amount of money


def _money(a: Avp | None) -> int | None:
    """Micro-units of a CC-Money member (Unit-Value = Value-Digits x 10^Exponent, RFC 4006
    §8.8) when the RSU/USU counts money only; None when it names a service unit. The
    Currency-Code is not converted: the account's currency is assumed (documented). Raises
    :class:`BadRequest` 5004 for an amount that is negative, out of range or finer than a
    micro-unit."""
    kids = children(a)
    cm = None
    for k in kids:
        code = k.code
        if code in _UNIT_CODES:
            return None
        if cm is None and code == C.CC_MONEY and k.vendor == 0:
            cm = k
    if cm is None:
        return None
    uv = children(first(children(cm), C.UNIT_VALUE))
    digits = _int(first(uv, C.VALUE_DIGITS), 0) or 0
    exponent = _int(first(uv, C.EXPONENT), 0) or 0
    # Exponent is an Integer32: 10 ** 2_000_000_000 would stall the server (invariant 5), and
    # a negative amount would turn a debit into a credit. Both are bad values: 5004 + Failed-AVP.
    if digits < 0:
        raise BadRequest(5004, cm, "negative CC-Money")
    if not -_MAX_EXPONENT <= exponent <= _MAX_EXPONENT:
        raise BadRequest(5004, cm, "CC-Money Exponent out of range")
    exp = exponent + 6
    if exp >= 0:
        return digits * 10 ** exp
    micros, rest = divmod(digits, 10 ** (-exp))
    if rest:
        # Money is exact (invariant 1): digits below the micro-unit are not cut off silently
        # (0.1234567 debited as 0.123456); the client's amount cannot be held, so it is a bad
        # value. Trailing zeros past it (1230000 x 10^-7) are exact and taken.
        raise BadRequest(5004, cm, "CC-Money finer than the server's money unit (10^-6)")
    return micros


def _money_slice(rsu: Avp | None, usus: list[Avp]) -> tuple[int | None, int, bool] | None:
    """(requested, used, used_present) in micro-units when the slice counts money only."""
    if rsu is None and not usus:
        return None
    req = _money(rsu) if rsu is not None else None
    if rsu is not None and req is None:
        return None  # the RSU names service units: not a money slice (the common case)
    used_vals = [_money(u) for u in usus]
    if (rsu is not None and req is None) or any(v is None for v in used_vals):
        return None
    if rsu is None and not usus:
        return None
    return req, sum(v or 0 for v in used_vals), bool(usus)


def _slice(mscc: Avp, context: str | None, smap: ServiceMap, default: ServiceKind,
           verb: Verb) -> ServiceUnits:
    # One pass over the members (first RG / SI / RSU, every USU and Reporting-Reason).
    rg_avp = sid_avp = rsu = None
    usus: list[Avp] = []
    own_reasons: list[Avp] = []
    for k in children(mscc):
        code, vendor = k.code, k.vendor
        if vendor == 0:
            if code == C.RATING_GROUP:
                if rg_avp is None:
                    rg_avp = k
            elif code == C.SERVICE_IDENTIFIER:
                if sid_avp is None:
                    sid_avp = k
            elif code == C.REQUESTED_SERVICE_UNIT:
                if rsu is None:
                    rsu = k
            elif code == C.USED_SERVICE_UNIT:
                usus.append(k)
        elif vendor == C.V3GPP and code == C.REPORTING_REASON:
            own_reasons.append(k)
    rg = _int(rg_avp)
    sid = _int(sid_avp)
    service = smap.service(context, rg) or default
    unit = SERVICE_UNIT[service]
    money = _money_slice(rsu, usus)
    if money is not None:
        return ServiceUnits(rating_group=rg, service_id=sid, requested=money[0],
                            used=money[1], used_present=money[2], service=service, money=True)
    requested, rsu_present = _units(rsu, unit)
    used = 0
    used_present = False
    reasons: list[ReportingReason] = []
    for usu in usus:
        n, _ = _units(usu, unit)
        used += n or 0
        used_present = True
        for rr in every(children(usu), C.REPORTING_REASON, C.V3GPP):
            reasons.append(_reason(rr, mscc))
    for rr in own_reasons:
        reasons.append(_reason(rr, mscc))
    if used < 0 or (requested is not None and requested < 0):
        raise BadRequest(5004, mscc, "negative units")
    return ServiceUnits(rating_group=rg, service_id=sid,
                        requested=(requested or 0) if rsu_present else None,
                        used=used, used_present=used_present,
                        reporting_reasons=tuple(reasons), service=service)


def _reason(rr: Avp, mscc: Avp) -> ReportingReason:
    v = _int(rr, -1)
    try:
        return ReportingReason(v if v is not None else -1)
    except ValueError:
        return ReportingReason.OTHER_QUOTA_TYPE


_SUB_RANK = {C.SUB_E164: 0, C.SUB_IMSI: 1, C.SUB_SIP_URI: 2}  # preferred Subscription-Id types


def _subscriber(msg: Message) -> str | None:
    return _subscriber_of(msg.find_all(C.SUBSCRIPTION_ID),
                          msg.find(C.SERVICE_INFORMATION, C.V3GPP), msg.find(C.USER_NAME))


def _subscriber_of(subs: list[Avp], service_information: Avp | None,
                   user_name: Avp | None) -> str | None:
    best: tuple[int, str] | None = None
    for s in subs:
        kids = children(s)
        t = _int(first(kids, C.SUBSCRIPTION_ID_TYPE), -1)
        data = _str(first(kids, C.SUBSCRIPTION_ID_DATA))
        if not data:
            continue
        rank = _SUB_RANK.get(t if t is not None else -1, 3)
        if best is None or rank < best[0]:
            best = (rank, data)
            if rank == 0:
                break  # E.164 is the best rank; a later one never replaces it (strict <)
    if best is None:
        # Service-Information may carry Subscription-Id too (C3); else User-Name.
        for s in every(children(service_information), C.SUBSCRIPTION_ID):
            data = _str(first(children(s), C.SUBSCRIPTION_ID_DATA))
            if data:
                best = (0, data)
                break
    if best is None:
        name = _str(user_name)
        return normalise_address(name) if name else None
    return normalise_address(best[1])


def parties(msg: Message, service: ServiceKind) -> tuple[str | None, str | None]:
    """(origin, destination) used for pricing, per service (facts C3/C4):
    voice: IMS-Information Calling/Called-Party-Address; SMS: Recipient-Info/Recipient-Address/
    Address-Data; MMS: MMS-Information/Recipient-Address/Address-Data; data: the APN."""
    return _parties_of(msg.find(C.SERVICE_INFORMATION, C.V3GPP), service)


def _parties_of(service_information: Avp | None,
                service: ServiceKind) -> tuple[str | None, str | None]:
    si = children(service_information)
    if not si:
        return None, None
    if service is ServiceKind.VOICE:
        ims = children(first(si, C.IMS_INFORMATION, C.V3GPP))
        return (normalise_address(_str(first(ims, C.CALLING_PARTY_ADDRESS, C.V3GPP))),
                normalise_address(_str(first(ims, C.CALLED_PARTY_ADDRESS, C.V3GPP))))
    if service is ServiceKind.SMS:
        sms = children(first(si, C.SMS_INFORMATION, C.V3GPP))
        for ri in every(sms, C.RECIPIENT_INFO, C.V3GPP):
            for ra in every(children(ri), C.RECIPIENT_ADDRESS, C.V3GPP):
                data = _str(first(children(ra), C.ADDRESS_DATA, C.V3GPP))
                if data:
                    return None, normalise_address(data)
        return None, None
    if service is ServiceKind.MMS:
        mms = children(first(si, C.MMS_INFORMATION, C.V3GPP))
        for ra in every(mms, C.RECIPIENT_ADDRESS, C.V3GPP):
            data = _str(first(children(ra), C.ADDRESS_DATA, C.V3GPP))
            if data:
                return None, normalise_address(data)
        return None, None
    if service in (ServiceKind.DATA, ServiceKind.DATA_TIME):
        ps = children(first(si, C.PS_INFORMATION, C.V3GPP))
        apn = _str(first(ps, C.CALLED_STATION_ID))
        return None, apn.lower() if apn else None
    return None, None


# Top-level AVPs (vendor 0) ccr_to_request reads the first of, by slot.
_TOP_SLOTS = {code: i for i, code in enumerate((
    C.SESSION_ID, C.CC_REQUEST_TYPE, C.CC_REQUEST_NUMBER, C.SERVICE_CONTEXT_ID,
    C.MULTIPLE_SERVICES_INDICATOR, C.REQUESTED_SERVICE_UNIT, C.SERVICE_IDENTIFIER,
    C.REQUESTED_ACTION, C.ORIGIN_HOST, C.ORIGIN_REALM, C.EVENT_TIMESTAMP, C.TERMINATION_CAUSE,
    C.USER_NAME))}
_NO_TOP: tuple[Avp | None, ...] = (None,) * len(_TOP_SLOTS)


def ccr_to_request_py(msg: Message, smap: ServiceMap) -> ChargingRequest:
    """Translate a CCR. Raises :class:`BadRequest` (5005/5004/5031 + Failed-AVP) when the
    request cannot be understood. Caller answers with :func:`result_to_cca` or
    :func:`error_cca`. The executable spec of the compiled twin (see :func:`ccr_to_request`,
    which callers use)."""
    # One pass over the top-level AVPs (first of each, every MSCC/USU/Subscription-Id) instead
    # of a find() scan per field; members of Grouped AVPs are only read where needed.
    top = list(_NO_TOP)
    slot_of = _TOP_SLOTS.get
    msccs: list[Avp] = []
    usus: list[Avp] = []
    subs: list[Avp] = []
    si_avp = aoc_avp = None
    for a in msg.avps:
        code = a.code
        vendor = a.vendor
        if vendor == 0:
            i = slot_of(code)
            if i is not None:
                if top[i] is None:
                    top[i] = a
            elif code == C.MULTIPLE_SERVICES_CREDIT_CONTROL:
                msccs.append(a)
            elif code == C.USED_SERVICE_UNIT:
                usus.append(a)
            elif code == C.SUBSCRIPTION_ID:
                subs.append(a)
            elif code == C.AUTH_APPLICATION_ID and _int(a) != msg.app_id:
                # RFC 6733 §3: the header's Application-ID MUST equal the message's
                # Application-Id AVP. One that differs is an invalid value, 5004 (§7.1.5),
                # Failed-AVP the AVP; not 3007 (§7.1.3): the header's application is served.
                raise BadRequest(5004, a, f"Auth-Application-Id {_int(a)} in a CCR of "
                                          f"application {msg.app_id}")
        elif vendor == C.V3GPP:
            if code == C.SERVICE_INFORMATION:
                if si_avp is None:
                    si_avp = a
            elif code == C.AOC_REQUEST_TYPE and aoc_avp is None:
                aoc_avp = a
    (sid_avp, rtype_avp, number_avp, context_avp, msi_avp, rsu, service_id_avp, action_avp,
     origin_host_avp, origin_realm_avp, timestamp_avp, cause_avp, user_name_avp) = top
    if sid_avp is None:
        raise missing(C.SESSION_ID)
    session_id = _str(sid_avp) or ""
    rtype = _int(rtype_avp)
    if rtype is None:
        raise missing(C.CC_REQUEST_TYPE)
    number = _int(number_avp)
    if number is None:
        raise missing(C.CC_REQUEST_NUMBER)
    try:
        verb = Verb(rtype)
    except ValueError:
        raise BadRequest(5004, rtype_avp, "bad CC-Request-Type") from None
    context = _str(context_avp)
    if context is None:
        raise missing(C.SERVICE_CONTEXT_ID)
    base_service = smap.context_service(context)
    if base_service is None:
        raise BadRequest(5031, context_avp, "unknown Service-Context-Id")
    msi = _int(msi_avp, 0) == 1
    slices: list[ServiceUnits] = [_slice(m, context, smap, base_service, verb) for m in msccs]
    if not slices:
        unit = SERVICE_UNIT[base_service]
        requested, rsu_present = _units(rsu, unit)
        used = 0
        present = False
        for usu in usus:
            n, _ = _units(usu, unit)
            used += n or 0
            present = True
        sid = _int(service_id_avp)
        money = _money_slice(rsu, usus)
        if money is not None:
            slices.append(ServiceUnits(service_id=sid, requested=money[0], used=money[1],
                                       used_present=money[2], service=base_service,
                                       money=True))
        elif rsu_present or present or verb is Verb.EVENT:
            slices.append(ServiceUnits(service_id=sid,
                                       requested=(requested or 0) if rsu_present else None,
                                       used=used, used_present=present, service=base_service))
    service = slices[0].service if slices and slices[0].service else base_service
    origin, destination = _parties_of(si_avp, service)
    subscriber = _subscriber_of(subs, si_avp, user_name_avp)
    action = None
    if verb is Verb.EVENT:
        ra = _int(action_avp, 0)
        try:
            action = EventAction(ra if ra is not None else 0)
        except ValueError:
            raise BadRequest(5004, action_avp, "bad Requested-Action") from None
    aoc = _int(aoc_avp, 0)
    origin_host = _str(origin_host_avp) or ""
    return ChargingRequest(
        verb=verb, session_id=session_id, request_number=number, service=service,
        subscriber=subscriber, destination=destination,
        origin=origin or subscriber, units=tuple(slices),
        # answered per MSCC: the MSCCs' units; with MSI=1 and no units at all, nothing is
        # asked. Command-level units (no MSCC, even with MSI=1) are answered at command level:
        # they name no rating group / service id an MSCC could carry (RFC 4006 §5.1.2).
        multiple_services=bool(msccs) or (msi and not slices),
        action=action, idem_key=f"ro:{session_id}:{number}",
        peer_host=origin_host, peer_realm=_str(origin_realm_avp) or "",
        context=context, at=_time(timestamp_avp),
        want_cost=bool(aoc) or action is EventAction.PRICE_ENQUIRY,
        termination_cause=_int(cause_avp),
    )


def _select_twin() -> Any:
    """The one selection point of cython_ext/ro_request.pyx (None: pure Python only). The
    twin reads the frame bytes through the compiled codec's AVPs, so it needs that codec."""
    from diameter.avp import EXT

    ext = load("ro_request")
    if ext is None or EXT is None or getattr(ext, "ABI", None) != 1:
        return None
    try:
        ext.configure(types=_AVP_TYPES, request_cls=ChargingRequest, units_cls=ServiceUnits,
                      service_map_cls=ServiceMap, service_unit=SERVICE_UNIT,
                      unit_kind=UnitKind, service_kind=ServiceKind, verb=Verb,
                      event_action=EventAction, reporting_reason=ReportingReason,
                      normalise=normalise_address, time_of=_time, fields_of=dataclasses.fields)
    except ValueError:  # the request model changed shape: keep the spec
        return None
    return ext


_TWIN = _select_twin()


def ccr_to_request(msg: Message, smap: ServiceMap) -> ChargingRequest:
    """Translate a CCR (the compiled twin for the common case of a received CCR, else
    :func:`ccr_to_request_py`; same request, same :class:`BadRequest`). Caller answers with
    :func:`result_to_cca` or :func:`error_cca`."""
    if _TWIN is not None:
        req: ChargingRequest | None = _TWIN.ccr_to_request(msg, smap)
        if req is not None:
            return req
    return ccr_to_request_py(msg, smap)


# ---------------------------------------------------------------------------- result -> CCA
def _unit_avp(unit: UnitKind, amount: int, currency: str | None = None) -> Avp:
    if unit is UnitKind.MONEY:
        return avp(C.CC_MONEY, money_avps(amount, currency))
    if unit is UnitKind.TIME:
        return avp(C.CC_TIME, amount)
    if unit is UnitKind.OCTETS:
        return avp(C.CC_TOTAL_OCTETS, amount)
    return avp(C.CC_SERVICE_SPECIFIC_UNITS, amount)


def money_avps(micros: int, currency: str | None) -> list[Avp]:
    """Unit-Value {Value-Digits, Exponent} + Currency-Code for an amount (RFC 4006 §8.8)."""
    digits, exponent = micros, -6
    while exponent < 0 and digits % 10 == 0:
        digits //= 10
        exponent += 1
    out = [avp(C.UNIT_VALUE, [avp(C.VALUE_DIGITS, digits), avp(C.EXPONENT, exponent)])]
    out.append(avp(C.CURRENCY_CODE, currency_numeric(currency or "EUR")))
    return out


def _mscc(r: UnitsResult, *, currency: str | None) -> Avp:
    kids: list[Avp] = []
    if r.granted is not None:
        kids.append(avp(C.GRANTED_SERVICE_UNIT, [_unit_avp(r.unit, r.granted, currency)]))
    if r.service_id is not None:
        kids.append(avp(C.SERVICE_IDENTIFIER, r.service_id))
    if r.rating_group is not None:
        kids.append(avp(C.RATING_GROUP, r.rating_group))
    if r.validity_time is not None:
        kids.append(avp(C.VALIDITY_TIME, r.validity_time))
    kids.append(avp(C.RESULT_CODE, OUTCOME_RESULT_CODE[r.outcome]))
    if r.final_unit:
        kids.append(avp(C.FINAL_UNIT_INDICATION, [avp(C.FINAL_UNIT_ACTION, 0)]))  # TERMINATE
    if r.quota_threshold and r.unit is not UnitKind.MONEY:
        code = {UnitKind.TIME: C.TIME_QUOTA_THRESHOLD, UnitKind.OCTETS: C.VOLUME_QUOTA_THRESHOLD,
                UnitKind.EVENTS: C.UNIT_QUOTA_THRESHOLD}[r.unit]
        # The thresholds are Unsigned32 (TS 32.299, facts C6) while a grant of octets is an
        # Unsigned64: a share of a grant past 4.3 GB is capped (the client re-authorises a
        # little later) rather than failing the CCA's encoding -- no answer at all. (The
        # pre-encoded writers decline such a value and come here.)
        kids.append(avp(code, min(r.quota_threshold, _U32_MAX), C.V3GPP))
    if r.quota_holding_time:
        kids.append(avp(C.QUOTA_HOLDING_TIME, r.quota_holding_time, C.V3GPP))
    return avp(C.MULTIPLE_SERVICES_CREDIT_CONTROL, kids)


_CONST: dict[tuple[int, Any], Avp] = {}


def _const(code: int, value: Any) -> Avp:
    """A shared, never-mutated AVP for a (code, value) that repeats in every answer (its
    encoded bytes are cached inside it). Bounded: only a handful of distinct values."""
    key = (code, value)
    a = _CONST.get(key)
    if a is None:
        if len(_CONST) > 1024:
            _CONST.clear()
        a = _CONST[key] = avp(code, value)
    return a


def result_to_cca(ccr: Message, request: ChargingRequest, result: ChargingResult, *,
                  origin_host: str, origin_realm: str) -> Message:
    """Build the CCA (B1 grammar): Session-Id first, echo CC-Request-Type/Number."""
    code = OUTCOME_RESULT_CODE[result.outcome]
    avps: list[Avp] = [
        _const(C.RESULT_CODE, code),
        _const(C.ORIGIN_HOST, origin_host),
        _const(C.ORIGIN_REALM, origin_realm),
        _const(C.AUTH_APPLICATION_ID, 4),
        _const(C.CC_REQUEST_TYPE, int(request.verb)),
        avp(C.CC_REQUEST_NUMBER, request.request_number),
    ]
    if request.multiple_services:
        for r in result.units:
            avps.append(_mscc(r, currency=result.currency))
    elif result.units:
        r = result.units[0]
        if r.granted is not None and (code == 2001):
            avps.append(avp(C.GRANTED_SERVICE_UNIT,
                            [_unit_avp(r.unit, r.granted, result.currency)]))
        if r.final_unit or result.final_unit:
            avps.append(avp(C.FINAL_UNIT_INDICATION, [avp(C.FINAL_UNIT_ACTION, 0)]))
        if r.validity_time is not None and code == 2001:
            avps.append(avp(C.VALIDITY_TIME, r.validity_time))
    if result.enough_credit is not None:
        avps.append(avp(C.CHECK_BALANCE_RESULT, 0 if result.enough_credit else 1))
    if request.want_cost and result.cost is not None:
        avps.append(avp(C.COST_INFORMATION, money_avps(result.cost, result.currency)))
    if code in (5030, 5031, 5004, 5005) and result.failed_field:
        failed = _failed_for(ccr, result.failed_field)
        if failed is not None:
            avps.append(avp(C.FAILED_AVP, [failed]))
    return answer(ccr, avps)


# An engine result's failed_field -> the AVP (code, vendor) Failed-AVP names.
_FAILED_AVPS = {"Subscription-Id": (C.SUBSCRIPTION_ID, 0),
                "CC-Request-Number": (C.CC_REQUEST_NUMBER, 0),
                "Multiple-Services-Credit-Control": (C.MULTIPLE_SERVICES_CREDIT_CONTROL, 0),
                "destination": (C.SERVICE_INFORMATION, C.V3GPP)}


def _failed_for(ccr: Message, name: str) -> Avp | None:
    """The Failed-AVP member for a result's *failed_field*: the request's AVP, or -- when the
    request lacks it -- "an example of the missing AVP complete with the Vendor-Id" (RFC 4006
    §9.1 for 5030/5031, RFC 6733 §7.5), never another AVP of the request that was fine."""
    spec = _FAILED_AVPS.get(name)
    if spec is None:
        return None
    code, vendor = spec
    found = ccr.find(code, vendor)
    if found is not None:
        return found
    if code == C.MULTIPLE_SERVICES_CREDIT_CONTROL:
        # units asked at command level (no MSCC): the slice that failed is its RSU / USU
        found = ccr.find(C.REQUESTED_SERVICE_UNIT) or ccr.find(C.USED_SERVICE_UNIT)
        if found is not None:
            return found
    return decode_avps(zero_filled(code, vendor, 0xC0 if vendor else 0x40))[0]


def error_cca(ccr: Message, err: BadRequest, *, origin_host: str,
              origin_realm: str) -> Message:
    """A CCA for a request we could not translate (5xxx, no E bit, normal grammar)."""
    avps: list[Avp] = [
        avp(C.RESULT_CODE, err.result_code),
        avp(C.ORIGIN_HOST, origin_host),
        avp(C.ORIGIN_REALM, origin_realm),
        avp(C.AUTH_APPLICATION_ID, 4),
    ]
    for code in (C.CC_REQUEST_TYPE, C.CC_REQUEST_NUMBER):
        a = ccr.find(code)
        if a is not None:
            avps.append(avp(code, _int(a, 0)))
    avps.append(avp(C.ERROR_MESSAGE, err.message[:200]))
    if err.failed is not None:
        avps.append(avp(C.FAILED_AVP, [err.failed]))
    return answer(ccr, avps)


def build_rar(*, session_id: str, origin_host: str, origin_realm: str, dest_host: str,
              dest_realm: str, rating_groups: Sequence[int] = ()) -> list[Avp]:
    """AVPs of a Ro RAR (facts D): AUTHORIZE_ONLY for the whole session or named groups."""
    avps = [avp(C.SESSION_ID, session_id), avp(C.ORIGIN_HOST, origin_host),
            avp(C.ORIGIN_REALM, origin_realm), avp(C.DESTINATION_REALM, dest_realm),
            avp(C.DESTINATION_HOST, dest_host), avp(C.AUTH_APPLICATION_ID, 4),
            avp(C.RE_AUTH_REQUEST_TYPE, 0)]
    avps.extend(avp(C.RATING_GROUP, rg) for rg in rating_groups)
    return avps


def build_asr(*, session_id: str, origin_host: str, origin_realm: str, dest_host: str,
              dest_realm: str) -> list[Avp]:
    """AVPs of an ASR (facts D)."""
    return [avp(C.SESSION_ID, session_id), avp(C.ORIGIN_HOST, origin_host),
            avp(C.ORIGIN_REALM, origin_realm), avp(C.DESTINATION_REALM, dest_realm),
            avp(C.DESTINATION_HOST, dest_host), avp(C.AUTH_APPLICATION_ID, 4)]
