"""Ro/Rf answers over a real socket, checked against protocol-facts (B1, B5, C1, A6):
edge cases an audit found answered wrongly."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest

from charging.money import format_amount, parse_amount
from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A, connect, mscc, voice_info
from tests.e2e.conftest import Server

EMPTY = "41790000000"  # 0.00 EUR in the e2e accounts


def topup(server: Server, account: str, amount: str) -> None:
    req = urllib.request.Request(
        server.admin_url + f"/api/accounts/{account}/topup",
        data=json.dumps({"amount": amount}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def topup_exactly(server: Server, account: str, amount: str) -> None:
    """Bring *account* (empty) to *amount*, also one with more decimals than the currency's
    (an operator's top-up takes cents only): the cents by top-up, the rest back by a CC-Money
    DIRECT_DEBITING event (RFC 4006 §6.3)."""
    micros = parse_amount(amount)
    cents = -(-micros // 10_000) * 10_000
    topup(server, account, format_amount(cents))
    if cents == micros:
        return
    digits, exponent = cents - micros, -6
    (cca,) = exchange(server, Message.request(272, 4, [
        A("Session-Id", f"audit;exactly;{amount}"), A("Origin-Host", "audit.icx.test"),
        A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local"),
        A("Auth-Application-Id", 4), A("Service-Context-Id", "32260@3gpp.org"),
        A("CC-Request-Type", 4), A("CC-Request-Number", 0), A("Requested-Action", 0),
        A("Subscription-Id", [A("Subscription-Id-Type", 0),
                              A("Subscription-Id-Data", account)]),
        A("Requested-Service-Unit", [A("CC-Money", [A("Unit-Value", [
            A("Value-Digits", digits), A("Exponent", exponent)])])])], proxiable=True))
    assert cca.get("Result-Code") == 2001


def ccr_avps(sid: str, rtype: int, number: int, sub: str, *extra: Avp) -> list[Avp]:
    return [A("Session-Id", sid), A("Origin-Host", "audit.icx.test"),
            A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local"),
            A("Auth-Application-Id", 4), A("Service-Context-Id", "32260@3gpp.org"),
            A("CC-Request-Type", rtype), A("CC-Request-Number", number),
            A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", sub)]),
            voice_info(sub, "41791234567"), *extra]


def exchange(server: Server, *requests: Message) -> list[Message]:
    async def main() -> list[Message]:
        peer = await connect("127.0.0.1", server.port, origin_host="audit.icx.test")
        try:
            return [await peer.request(m) for m in requests]
        finally:
            await peer.close()

    return asyncio.run(main())


@pytest.mark.stores
@pytest.mark.parametrize(("balance", "final"), [
    ("0.12", True),    # 60 s to Switzerland (0.12/min, 60/1) uses the whole balance
    ("0.121", True),   # 0.001 left: less than the next second (0.002): still the last grant
    ("0.13", False),   # 0.01 left buys 5 more seconds: not the last grant
])
def test_final_unit_indication_when_the_grant_exhausts_the_balance(
        server: Server, balance: str, final: bool) -> None:
    """RFC 4006 §5.6.1 / facts B5: Final-Unit-Indication TERMINATE goes with the last grant the
    balance allows -- also when the requested grant fits exactly, not only when it is cut."""
    topup_exactly(server, EMPTY, balance)
    init = Message.request(272, 4, ccr_avps(
        "audit;fui", 1, 0, EMPTY, A("Multiple-Services-Indicator", 1),
        mscc(100, rsu=("CC-Time", 60))), proxiable=True)
    (cca,) = exchange(server, init)
    assert cca.get("Result-Code") == 2001
    m: Any = cca.find("Multiple-Services-Credit-Control")
    assert m.find("Granted-Service-Unit").get("CC-Time") == 60
    fui = m.find("Final-Unit-Indication")
    if final:
        assert fui is not None and fui.get("Final-Unit-Action") == 0  # TERMINATE
    else:
        assert fui is None


def _fui(cca: Message) -> Any:
    m: Any = cca.find("Multiple-Services-Credit-Control")
    assert cca.get("Result-Code") == 2001 and m.find("Granted-Service-Unit").get("CC-Time") == 60
    return m.find("Final-Unit-Indication")


@pytest.mark.stores
def test_final_unit_indication_on_update_and_later_session_of_a_known_account(
        server: Server) -> None:
    """The same rule for an UPDATE whose next grant empties the balance and for an INITIAL of
    an account already seen (the requests the compiled fast path decides)."""
    topup(server, EMPTY, "0.24")
    ext = (A("Multiple-Services-Indicator", 1), mscc(100, rsu=("CC-Time", 60)))
    upd = mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))
    a_init, a_upd, a_term = exchange(
        server,
        Message.request(272, 4, ccr_avps("audit;a", 1, 0, EMPTY, *ext), proxiable=True),
        Message.request(272, 4, ccr_avps("audit;a", 2, 1, EMPTY, upd), proxiable=True),
        Message.request(272, 4, ccr_avps("audit;a", 3, 2, EMPTY,
                                         mscc(100, usu=("CC-Time", 60))), proxiable=True))
    assert _fui(a_init) is None  # 0.12 left
    fui = _fui(a_upd)  # 0.12 committed, 0.12 held: nothing left
    assert fui is not None and fui.get("Final-Unit-Action") == 0
    assert a_term.get("Result-Code") == 2001
    assert server.balance(EMPTY) == (0, 0)
    topup(server, EMPTY, "0.12")
    (b_init,) = exchange(
        server, Message.request(272, 4, ccr_avps("audit;b", 1, 0, EMPTY, *ext), proxiable=True))
    fui = _fui(b_init)
    assert fui is not None and fui.get("Final-Unit-Action") == 0


def _acr(sid: str, drop: int) -> Message:
    avps = [A("Session-Id", sid), A("Origin-Host", "audit.icx.test"),
            A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local"),
            A("Accounting-Record-Type", 2), A("Accounting-Record-Number", 0),
            A("Acct-Application-Id", 3), A("Service-Context-Id", "32260@3gpp.org")]
    return Message.request(271, 3, [a for a in avps if a.code != drop], proxiable=True)


def test_5xxx_answers_to_invalid_requests_keep_the_answer_grammar(server: Server) -> None:
    """A 5xxx answer without the E bit is the command's own answer (facts A6), so a CCA always
    carries {Auth-Application-Id}, and echoes CC-Request-Type and CC-Request-Number (B1); an
    ACA echoes Accounting-Record-Type and -Number (C1) -- also when the request failed the
    Diameter layer's checks (a missing Destination-Realm / Auth-Application-Id)."""
    no_realm = [a for a in ccr_avps("audit;e1", 1, 0, "41790000003") if a.code != 283]
    no_app = [a for a in ccr_avps("audit;e2", 2, 5, "41790000003") if a.code != 258]
    bad_type = [A("CC-Request-Type", 9) if a.code == 416 else a
                for a in ccr_avps("audit;e3", 1, 0, "41790000003")]
    answers = exchange(server, *(Message.request(272, 4, avps, proxiable=True)
                                 for avps in (no_realm, no_app, bad_type)),
                       _acr("audit;e4", 283))
    for cca, code, (rtype, number) in zip(answers[:3], (5005, 5005, 5004),
                                          ((1, 0), (2, 5), (9, 0)), strict=True):
        assert cca.get("Result-Code") == code and not cca.is_error
        assert cca.find("Failed-AVP") is not None
        assert cca.get("Auth-Application-Id") == 4
        assert (cca.get("CC-Request-Type"), cca.get("CC-Request-Number")) == (rtype, number)
    aca = answers[3]
    assert aca.get("Result-Code") == 5005 and not aca.is_error
    assert (aca.get("Accounting-Record-Type"), aca.get("Accounting-Record-Number")) == (2, 0)


@pytest.mark.parametrize("app", [3, 16777238])
def test_a_ccr_naming_another_application_than_its_header_gets_5004(
        server: Server, app: int) -> None:
    """RFC 6733 §3: the header's Application-ID must equal the Auth-Application-Id AVP. A CCR
    of application 4 that names another one was charged and answered 2001; it gets 5004 with
    that AVP in Failed-AVP, in the CCA's grammar, and nothing is charged or journaled. A CCR
    that names 4 is charged as before (the compiled translation reads the AVP too)."""
    sub = "41790000004"
    before = server.balance(sub)
    records = len(server.journal())
    bad = [A("Auth-Application-Id", app) if a.code == 258 else a
           for a in ccr_avps(f"audit;app{app}", 1, 0, sub, mscc(100, rsu=("CC-Time", 60)))]
    (cca,) = exchange(server, Message.request(272, 4, bad, proxiable=True))
    assert cca.get("Result-Code") == 5004 and not cca.is_error
    failed: Any = cca.find("Failed-AVP")
    assert failed is not None and failed.get("Auth-Application-Id") == app
    assert cca.get("Auth-Application-Id") == 4
    assert (cca.get("CC-Request-Type"), cca.get("CC-Request-Number")) == (1, 0)
    assert server.balance(sub) == before and len(server.journal()) == records
    good = ccr_avps(f"audit;app{app};ok", 1, 0, sub, mscc(100, rsu=("CC-Time", 60)))
    (ok,) = exchange(server, Message.request(272, 4, good, proxiable=True))
    assert ok.get("Result-Code") == 2001
    assert server.balance(sub)[1] > before[1]  # held
