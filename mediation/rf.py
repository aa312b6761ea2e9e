"""Rf (RFC 6733 accounting + TS 32.299): ACR -> ChargingRequest, result -> ACA. Pure translation.

Accounting-Record-Type maps onto the neutral verbs (EVENT_RECORD 1 -> EVENT, START 2 ->
INITIAL, INTERIM 3 -> UPDATE, STOP 4 -> TERMINATE); the idempotency key is
``rf:<Session-Id>:<Accounting-Record-Number>`` (facts A9: the accounting duplicate key).
The ONE outcome -> Result-Code table for Rf is :data:`OUTCOME_RESULT_CODE`.

Usage: the Used-Service-Units (in Multiple-Services-Credit-Control, or at command level) as
``units``, and the top-level Accounting-Input-Octets / Accounting-Output-Octets (RFC 7155
§4.6.1/4.6.2, the session's running totals) as ``session_octets``, both as received: which
one counts is the engine's decision (charging/service_offline.py). The TS 32.299
Service-Data-Containers of Service-Information / PS-Information (a PGW's per-rating-group
usage, each container the usage of its own interval) as ``containers``; an ACR with none
of those but Traffic-Data-Volumes (an SGW's / SGSN's bearer-level volume containers, each
also its own interval) gives those as ``containers`` of the session's service.
"""

from __future__ import annotations

from charging.requests import (
    SERVICE_UNIT,
    ChargingRequest,
    ChargingResult,
    Outcome,
    ServiceKind,
    ServiceUnits,
    UnitKind,
    Verb,
)
from diameter.avp import Avp
from diameter.message import Message
from mediation import avp_codes as C
from mediation.ro import BadRequest, _int, _str, _time, _units, answer, avp, missing, parties
from mediation.ro import _subscriber as subscriber_of
from mediation.service_map import ServiceMap

OUTCOME_RESULT_CODE: dict[Outcome, int] = {
    Outcome.SUCCESS: 2001,
    Outcome.OUT_OF_SPACE: 4002,  # the CDF cannot store the record now (facts C1)
    Outcome.UNABLE_TO_COMPLY: 5012,
    Outcome.INVALID_VALUE: 5004,
    Outcome.MISSING_FIELD: 5005,
    Outcome.RATING_FAILED: 2001,  # stored unrated; settlement re-rates (never drop a record)
    Outcome.USER_UNKNOWN: 2001,  # offline: interconnect records need no subscriber
    Outcome.UNKNOWN_SESSION: 2001,
    Outcome.CREDIT_LIMIT_REACHED: 2001,  # no balance check offline
    Outcome.SERVICE_DENIED: 5012,
    Outcome.NOT_APPLICABLE: 2001,
}
"""Engine outcome -> ACA Result-Code. The only such table for Rf."""

RECORD_VERB = {1: Verb.EVENT, 2: Verb.INITIAL, 3: Verb.UPDATE, 4: Verb.TERMINATE}


def acr_to_request(msg: Message, smap: ServiceMap) -> ChargingRequest:
    """Translate an ACR; raises :class:`~mediation.ro.BadRequest` (5005/5004) when it cannot."""
    sid_avp = msg.find(C.SESSION_ID)
    if sid_avp is None:
        raise missing(C.SESSION_ID)
    session_id = _str(sid_avp) or ""
    _check_application(msg)
    rtype = _int(msg.find(C.ACCOUNTING_RECORD_TYPE))
    if rtype is None:
        raise missing(C.ACCOUNTING_RECORD_TYPE)
    number = _int(msg.find(C.ACCOUNTING_RECORD_NUMBER))
    if number is None:
        raise missing(C.ACCOUNTING_RECORD_NUMBER)
    verb = RECORD_VERB.get(rtype)
    if verb is None:
        raise BadRequest(5004, msg.find(C.ACCOUNTING_RECORD_TYPE),
                         "bad Accounting-Record-Type")
    context = _str(msg.find(C.SERVICE_CONTEXT_ID))
    service = smap.context_service(context)
    if service is None:
        if context is None:
            # No Service-Context-Id and no default service: the AVP we need is missing, so
            # 5005 with a zero-filled example (RFC 6733 §7.5), not 5004 naming the Session-Id.
            raise missing(C.SERVICE_CONTEXT_ID)
        raise BadRequest(5004, msg.find(C.SERVICE_CONTEXT_ID), "unknown Service-Context-Id")
    units: list[ServiceUnits] = []
    for mscc in msg.find_all(C.MULTIPLE_SERVICES_CREDIT_CONTROL):
        kids = mscc.value if isinstance(mscc.value, list) else []
        rg = _int(next((k for k in kids if k.code == C.RATING_GROUP and k.vendor == 0), None))
        # a configured rating group names its own service (time-metered data): its units are
        # read in that service's unit, as a CCR's are
        mservice = smap.service(context, rg) or service
        used, present = _used(kids, SERVICE_UNIT[mservice])
        if present:
            units.append(ServiceUnits(rating_group=rg, used=used, used_present=True,
                                      service=mservice))
    used, present = _used(msg.find_all(C.USED_SERVICE_UNIT), SERVICE_UNIT[service])
    if present:
        units.append(ServiceUnits(used=used, used_present=True, service=service))
    containers = tuple(_container_units(sdc, smap, context, service)
                       for sdc in _ps_information(msg, C.SERVICE_DATA_CONTAINER))
    if not containers and SERVICE_UNIT[service] is UnitKind.OCTETS:
        # An SGW/SGSN reports the bearer's volume in Traffic-Data-Volumes only (TS 32.299,
        # PS-Information). A PGW that sends both breaks the same traffic down twice (by
        # bearer and by rating group): then the Service-Data-Containers alone count.
        containers = tuple(_volume_units(tdv, service)
                           for tdv in _ps_information(msg, C.TRAFFIC_DATA_VOLUMES))
    origin, destination = parties(msg, service)
    subscriber = subscriber_of(msg)
    return ChargingRequest(
        verb=verb, session_id=session_id, request_number=number, service=service,
        subscriber=subscriber, destination=destination, origin=origin or subscriber,
        units=tuple(units), idem_key=f"rf:{session_id}:{number}",
        peer_host=_str(msg.find(C.ORIGIN_HOST)) or "",
        peer_realm=_str(msg.find(C.ORIGIN_REALM)) or "",
        context=context or "", at=_time(msg.find(C.EVENT_TIMESTAMP)), offline=True,
        session_octets=_session_octets(msg), containers=containers,
        session_time=_int(msg.find(C.ACCT_SESSION_TIME)),
    )


def _ps_information(msg: Message, code: int) -> list[Avp]:
    """The 3GPP AVPs *code* of the ACR's Service-Information / PS-Information (TS 32.299):
    Service-Data-Container (2040: a PGW's per-rating-group usage, one per rating group and
    change of charging condition) or Traffic-Data-Volumes (2046: the bearer's volume, one
    per change of QoS / tariff time / charging condition)."""
    out: list[Avp] = []
    for info in msg.find_all(C.SERVICE_INFORMATION, C.V3GPP):
        for ps in info.value if isinstance(info.value, list) else ():
            if ps.code == C.PS_INFORMATION and ps.vendor == C.V3GPP and isinstance(ps.value,
                                                                                   list):
                out.extend(k for k in ps.value if k.code == code and k.vendor == C.V3GPP)
    return out


def _volume_units(tdv: Avp, service: ServiceKind) -> ServiceUnits:
    """One Traffic-Data-Volumes container as usage of the session's *service* (metered in
    octets): its Accounting-Input-Octets + Accounting-Output-Octets (the volume of its own
    interval, like a Service-Data-Container's; no rating group: the bearer's traffic)."""
    kids = tdv.value if isinstance(tdv.value, list) else []

    def octets(code: int) -> int:
        return _int(next((k for k in kids if k.code == code and k.vendor == 0), None)) or 0

    return ServiceUnits(used=octets(C.ACCOUNTING_INPUT_OCTETS)
                        + octets(C.ACCOUNTING_OUTPUT_OCTETS), used_present=True,
                        service=service)


def _container_units(sdc: Avp, smap: ServiceMap, context: str | None,
                     service: ServiceKind) -> ServiceUnits:
    """One Service-Data-Container's usage as a slice of its rating group's service (a
    configured rating group names its own, as an MSCC's does): its Accounting-Input-Octets +
    Accounting-Output-Octets (363/364 inside the container: the volume of this container
    alone, TS 32.299 -- not the session's running totals they are at the top level) for a
    service metered in octets; its Time-Usage (2045, seconds), else Time-Last-Usage minus
    Time-First-Usage (2044 - 2043), for one metered in time; 0 otherwise."""
    kids = sdc.value if isinstance(sdc.value, list) else []

    def first(code: int, vendor: int = 0) -> Avp | None:
        return next((k for k in kids if k.code == code and k.vendor == vendor), None)

    rg = _int(first(C.RATING_GROUP))
    svc = smap.service(context, rg) or service
    unit = SERVICE_UNIT[svc]
    n = 0
    if unit is UnitKind.OCTETS:
        n = (_int(first(C.ACCOUNTING_INPUT_OCTETS)) or 0) + (
            _int(first(C.ACCOUNTING_OUTPUT_OCTETS)) or 0)
    elif unit is UnitKind.TIME:
        t = _int(first(C.TIME_USAGE, C.V3GPP))
        if t is None:
            t0 = _time(first(C.TIME_FIRST_USAGE, C.V3GPP))
            t1 = _time(first(C.TIME_LAST_USAGE, C.V3GPP))
            t = int(t1 - t0) if t0 is not None and t1 is not None and t1 > t0 else 0
        n = t
    return ServiceUnits(rating_group=rg, used=n, used_present=True, service=svc)


def _session_octets(msg: Message) -> tuple[int | None, int | None] | None:
    """(input, output) octets of the ACR's top-level Accounting-Input-Octets /
    Accounting-Output-Octets (RFC 7155 §4.6.1/4.6.2: what the session has carried "in the
    course of this session", a running total), the first of each; None when it carries
    neither, the other None when it carries one. A client still counting in 32 bits, RADIUS
    style, reports its wraps in Acct-Input-/Acct-Output-Gigawords (52/53, RFC 2869
    §5.1/5.2: how many times the counter wrapped around 2^32): each adds gigawords x 2^32 to
    its counter, so a wrap is no decrease. (Inside a TS 32.299 Service-Data-Container the
    same AVPs count one container's interval: :func:`_container_units` reads those.)"""
    first_in = _int(msg.find(C.ACCOUNTING_INPUT_OCTETS))
    first_out = _int(msg.find(C.ACCOUNTING_OUTPUT_OCTETS))
    if first_in is None and first_out is None:
        return None
    if first_in is not None:
        first_in += (_int(msg.find(C.ACCT_INPUT_GIGAWORDS)) or 0) << 32
    if first_out is not None:
        first_out += (_int(msg.find(C.ACCT_OUTPUT_GIGAWORDS)) or 0) << 32
    return (first_in, first_out)


def _check_application(msg: Message) -> None:
    """Raise 5004 when an Application-Id AVP of the ACR names another application than its
    header (validate.py answered any header application but 3 with 3007 already).

    RFC 6733 §3: the header's Application-ID MUST be the same as any relevant Application-Id
    AVP in the message -- here the Acct-Application-Id, or the Acct-/Auth-Application-Id of a
    Vendor-Specific-Application-Id (both optional in the ACR grammar, §9.7.1: absent is
    fine). One that differs is an AVP with an invalid value: 5004 DIAMETER_INVALID_AVP_VALUE
    (§7.1.5), Failed-AVP the offending AVP, inside its Vendor-Specific-Application-Id when it
    is a member (§7.5: the Grouped AVP holding the single offending member). Not 3007
    DIAMETER_APPLICATION_UNSUPPORTED (§7.1.3): that names the request's application -- the
    header's, which we serve -- and would make a client move the whole application away."""
    app = msg.app_id
    for a in msg.avps:
        code = a.code
        if a.vendor:
            continue
        if code == C.ACCT_APPLICATION_ID:
            if _int(a) != app:
                raise BadRequest(5004, a, f"Acct-Application-Id {_int(a)} in an ACR of "
                                          f"application {app}")
        elif code == C.VENDOR_SPECIFIC_APPLICATION_ID:
            for k in a.value if isinstance(a.value, list) else ():
                if (k.code in (C.ACCT_APPLICATION_ID, C.AUTH_APPLICATION_ID)
                        and not k.vendor and _int(k) != app):
                    raise BadRequest(5004, avp(C.VENDOR_SPECIFIC_APPLICATION_ID, [k]),
                                     f"Vendor-Specific-Application-Id names application "
                                     f"{_int(k)} in an ACR of application {app}")


def _used(avps: list[Avp], unit: UnitKind) -> tuple[int, bool]:
    """(units, present) of the Used-Service-Units among *avps*, in *unit*."""
    used, present = 0, False
    for usu in avps:
        if usu.code == C.USED_SERVICE_UNIT and usu.vendor == 0:
            n, _ = _units(usu, unit)
            used += n or 0
            present = True
    return used, present


def _echo(acr: Message) -> list[Avp]:
    out: list[Avp] = []
    for code in (C.ACCOUNTING_RECORD_TYPE, C.ACCOUNTING_RECORD_NUMBER):
        a = acr.find(code)
        if a is not None:
            out.append(avp(code, _int(a, 0)))
    # ours, not the request's: an ACR naming another application is answered 5004 with it
    out.append(avp(C.ACCT_APPLICATION_ID, 3))
    return out


def result_to_aca(acr: Message, result: ChargingResult, *, origin_host: str,
                  origin_realm: str) -> Message:
    """The ACA: Result-Code, Origin-*, echo Accounting-Record-Type/Number (facts C1)."""
    avps = [avp(C.RESULT_CODE, OUTCOME_RESULT_CODE[result.outcome]),
            avp(C.ORIGIN_HOST, origin_host), avp(C.ORIGIN_REALM, origin_realm)]
    avps.extend(_echo(acr))
    return answer(acr, avps)


def error_aca(acr: Message, err: BadRequest, *, origin_host: str, origin_realm: str) -> Message:
    avps = [avp(C.RESULT_CODE, err.result_code), avp(C.ORIGIN_HOST, origin_host),
            avp(C.ORIGIN_REALM, origin_realm)]
    avps.extend(_echo(acr))
    avps.append(avp(C.ERROR_MESSAGE, err.message[:200]))
    if err.failed is not None:
        avps.append(avp(C.FAILED_AVP, [err.failed]))
    return answer(acr, avps)
