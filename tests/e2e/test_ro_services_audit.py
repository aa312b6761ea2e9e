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
