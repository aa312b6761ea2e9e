"""Ro online charging per service (data, time-metered data, SMS, MMS, content) and
multi-service CCRs over a real socket, money checked to the micro-unit (protocol-facts B4/B5,
C2-C4, docs/rating.md): cases an audit found answered or charged wrongly."""

from __future__ import annotations

from typing import Any

from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A, sms_info
from tests.e2e.conftest import Server
from tests.e2e.test_ro_audit import exchange, topup

SUB = "41790000011"  # 50.00 EUR in the e2e accounts


def _ccr(sid: str, rtype: int, number: int, context: str, *extra: Avp) -> Message:
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", "audit.icx.test"), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", context), A("CC-Request-Type", rtype),
        A("CC-Request-Number", number),
        A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", SUB)]),
        *extra], proxiable=True)


def _money(digits: int, exponent: int) -> Avp:
    return A("CC-Money", [A("Unit-Value", [A("Value-Digits", digits), A("Exponent", exponent)]),
                          A("Currency-Code", 978)])


def _unit_value(parent: Any) -> tuple[int, int]:
    uv = parent.find("Unit-Value")
    return uv.get("Value-Digits"), uv.get("Exponent")


def test_event_with_money_units_debits_that_amount_not_that_many_events(
        server: Server) -> None:
    """RFC 4006 §6.3 / §8.18 (facts B4/B5): a DIRECT_DEBITING event whose RSU is CC-Money
    asks for that amount of money. It was priced as 50,000 SMS (the micro-units taken as a
    count of events): 2,500.00 EUR debited for a 0.05 EUR request."""
    topup(server, SUB, "5000")
    top = _ccr("svc;money-ev", 4, 0, "32274@3gpp.org", A("Requested-Action", 0),
               sms_info("41791112233"), A("Requested-Service-Unit", [_money(5, -2)]))
    per_mscc = _ccr("svc;money-ev-mscc", 4, 0, "32274@3gpp.org", A("Requested-Action", 0),
                    A("Multiple-Services-Indicator", 1), sms_info("41791112233"),
                    A("Multiple-Services-Credit-Control", [
                        A("Requested-Service-Unit", [_money(7, -2)]), A("Rating-Group", 3)]))
    enquiry = _ccr("svc;money-pe", 4, 0, "content@icx.local", A("Requested-Action", 3),
                   A("Requested-Service-Unit", [_money(2, 0)]))
    a_top, a_mscc, a_pe = exchange(server, top, per_mscc, enquiry)
    assert a_top.get("Result-Code") == 2001
    assert _unit_value(a_top.find("Granted-Service-Unit").find("CC-Money")) == (5, -2)
    assert a_mscc.get("Result-Code") == 2001
    m: Any = a_mscc.find("Multiple-Services-Credit-Control")
    assert m.get("Rating-Group") == 3 and m.get("Result-Code") == 2001
    assert _unit_value(m.find("Granted-Service-Unit").find("CC-Money")) == (7, -2)
    assert a_pe.get("Result-Code") == 2001
    assert _unit_value(a_pe.find("Cost-Information")) == (2, 0)
    assert server.balance(SUB) == (5_050_000_000 - 50_000 - 70_000, 0)
    debits = [r for r in server.journal() if r.get("op") == "debit"]
    assert [(r["session"], r["unit"], r["usage"], r["price"]) for r in debits] == [
        ("svc;money-ev", "money", 50_000, "0.05"), ("svc;money-ev-mscc", "money", 70_000, "0.07")]


def _mscc(rg: int, ssu: int) -> Avp:
    return A("Multiple-Services-Credit-Control", [
        A("Requested-Service-Unit", [A("CC-Service-Specific-Units", ssu)]), A("Rating-Group", rg)])


def test_event_with_several_msccs_charges_and_answers_each(server: Server) -> None:
    """Facts B4/B5: one MSCC in the answer per MSCC of the request, each with its own
    Result-Code. An SMS event with two MSCCs debited and answered the first one only: the
    second (2 SMS) went through free and unanswered."""
    empty = "41790000000"
    topup(server, empty, "0.12")

    def event(sid: str, action: int, sub: str = SUB) -> Message:
        msg = _ccr(sid, 4, 0, "32274@3gpp.org", A("Requested-Action", action),
                   A("Multiple-Services-Indicator", 1), sms_info("41791112233"),
                   _mscc(3, 1), _mscc(4, 2))
        return Message.request(272, 4, [A("Subscription-Id", [
            A("Subscription-Id-Type", 0), A("Subscription-Id-Data", sub)])
            if a.code == 443 else a for a in msg.avps], proxiable=True)

    debit, enquiry, partial = exchange(server, event("svc;ev2", 0), event("svc;pe2", 3),
                                       event("svc;ev2-low", 0, empty))
    assert debit.get("Result-Code") == 2001
    got = [(m.get("Rating-Group"), m.get("Result-Code"),
            m.find("Granted-Service-Unit").get("CC-Service-Specific-Units"))
           for m in debit.find_all("Multiple-Services-Credit-Control")]
    assert got == [(3, 2001, 1), (4, 2001, 2)]
    assert server.balance(SUB) == (50_000_000 - 150_000, 0)  # 3 SMS at 0.05
    assert _unit_value(enquiry.find("Cost-Information")) == (15, -2)
    # 0.12 pays for the first slice (1 SMS) but not then for the second (2 SMS): 4012 there
    assert partial.get("Result-Code") == 2001
    assert [(m.get("Rating-Group"), m.get("Result-Code"))
            for m in partial.find_all("Multiple-Services-Credit-Control")] == [
        (3, 2001), (4, 4012)]
    assert server.balance(empty) == (70_000, 0)
    debits = {r["idem"]: r["price"] for r in server.journal() if r.get("op") == "debit"}
    assert debits == {"ro:svc;ev2:0:0:d": "0.05", "ro:svc;ev2:0:1:d": "0.10",
                      "ro:svc;ev2-low:0:0:d": "0.05"}
