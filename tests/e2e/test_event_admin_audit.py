"""One-off events (RFC 4006 §6), session charging details and the operator's admin API / CLI
over real sockets: what a fresh-eyes audit found answered or charged wrongly (protocol-facts
B2/B5/B6, D)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from diameter.avp import Avp
from diameter.message import Message
from icx.cli import main as cli
from icx.diameter_client import A, data_info, mscc, sms_info
from tests.e2e.conftest import Server, e2e_settings, serving
from tests.e2e.test_admin_audit import cli_output
from tests.e2e.test_rar_asr_audit import post
from tests.e2e.test_ro_audit import exchange

SUB = "41790000013"  # 50.00 EUR in the e2e accounts


@pytest.mark.stores
def test_topup_with_more_decimals_than_the_currency_has_is_refused(server: Server) -> None:
    """An operator's top-up is money in the balance currency's minor unit: "10.001" EUR is a
    typo (no payment credits a tenth of a cent), as the accounts file already refuses it. The
    admin API credited 10.001 (balance 60.001); it is 400 naming the currency, CLI exit 2,
    nothing credited. Two decimals still credit exactly."""
    status, body = post(server, f"/api/accounts/{SUB}/topup", {"amount": "10.001"})
    assert status == 400 and "EUR" in body["error"] and "10.001" in body["error"], body
    res = CliRunner().invoke(cli, ["balance", "topup", SUB, "0.125", "--admin",
                                   server.admin_url])
    assert res.exit_code == 2 and "EUR" in cli_output(res), cli_output(res)
    assert server.balance(SUB) == (50_000_000, 0)
    status, body = post(server, f"/api/accounts/{SUB}/topup", {"amount": "10.10"})
    assert status == 200 and body["balances"][0]["amount"] == "60.10", body
    assert server.balance(SUB) == (60_100_000, 0)


def _data_ccr(sid: str, rtype: int, number: int, *extra: Avp) -> Message:
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", "audit.icx.test"), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", "32251@3gpp.org"), A("CC-Request-Type", rtype),
        A("CC-Request-Number", number),
        A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", SUB)]),
        data_info("internet"), *extra], proxiable=True)


def test_a_volume_threshold_past_unsigned32_is_answered(tmp_path: Path) -> None:
    """Volume-Quota-Threshold is an Unsigned32 (TS 32.299, facts C6) while a grant of octets
    is an Unsigned64 and ``max_octet_quota`` may reach 2^50: a 20 GB grant with a 50 %
    threshold (10^10 octets) could not be encoded, so the CCA never left -- the client timed
    out with 200.00 EUR held. The threshold is capped at 2^32 - 1 (the client re-authorises
    when ~4.3 GB are left instead of 10 GB); the grant and its hold are as before."""
    with serving(e2e_settings(tmp_path, max_octet_quota=50_000_000_000,
                              quota_threshold_percent=50), tmp_path / "data") as server:
        status, _ = post(server, f"/api/accounts/{SUB}/topup", {"amount": "1000"})
        assert status == 200
        sid = "audit;vqt"
        init, term = exchange(
            server,
            _data_ccr(sid, 1, 0, A("Multiple-Services-Indicator", 1),
                      mscc(1, rsu=("CC-Total-Octets", 20_000_000_000))),
            _data_ccr(sid, 3, 1, mscc(1, usu=("CC-Total-Octets", 1_000_000))))
        assert init.get("Result-Code") == 2001
        m: Any = init.find("Multiple-Services-Credit-Control")
        assert m.get("Result-Code") == 2001
        assert m.find("Granted-Service-Unit").get("CC-Total-Octets") == 20_000_000_000
        assert m.get("Volume-Quota-Threshold") == 2**32 - 1
        assert term.get("Result-Code") == 2001
        assert server.balance(SUB) == (1_050_000_000 - 10_000, 0)  # 1 MB at 0.01 EUR


def _event(sid: str, action: int, *extra: Avp, sub: str = SUB,
           context: str = "content@icx.local") -> Message:
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", "audit.icx.test"), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", context), A("CC-Request-Type", 4),
        A("CC-Request-Number", 0), A("Requested-Action", action),
        A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", sub)]),
        *extra], proxiable=True)


def _rsu_money(digits: int, exponent: int) -> Avp:
    return A("Requested-Service-Unit", [A("CC-Money", [
        A("Unit-Value", [A("Value-Digits", digits), A("Exponent", exponent)]),
        A("Currency-Code", 978)])])


@pytest.mark.stores
def test_cc_money_finer_than_a_micro_unit_is_refused_not_cut(server: Server) -> None:
    """Money is exact (architecture invariant 1; RFC 4006 §8.8: Value-Digits x
    10^Exponent). A CC-Money amount with digits below the server's micro-unit was cut
    silently: a DIRECT_DEBITING of 0.1234567 EUR debited 0.123456 and answered 2001 (a
    refund of it credited 0.123456). It is 5004 with the CC-Money in Failed-AVP and nothing
    moves; the same amount written with trailing zeros past the micro-unit is exact and
    debited as it is."""
    fine, refund, exact = exchange(
        server,
        _event("audit;money7", 0, _rsu_money(1_234_567, -7)),
        _event("audit;money7r", 1, _rsu_money(1_234_567, -7)),
        _event("audit;money7x", 0, _rsu_money(1_230_000, -7)))
    for cca in (fine, refund):
        assert cca.get("Result-Code") == 5004 and not cca.is_error
        failed: Any = cca.find("Failed-AVP")
        assert failed is not None and failed.find("CC-Money") is not None
        assert cca.find("Granted-Service-Unit") is None
    assert exact.get("Result-Code") == 2001
    uv = exact.find("Granted-Service-Unit").find("CC-Money").find("Unit-Value")
    assert (uv.get("Value-Digits"), uv.get("Exponent")) == (123, -3)
    assert server.balance(SUB) == (50_000_000 - 123_000, 0)


def test_failed_avp_names_the_missing_avp_not_the_service_context(server: Server) -> None:
    """RFC 4006 §9.1 (5031) / facts B6: Failed-AVP carries the AVP that could not be
    processed or "an example of the missing AVP complete with the Vendor-Id". When the AVP
    at fault was absent -- no Subscription-Id (5030), no Service-Information to rate (5031) --
    the answer's Failed-AVP carried the request's Service-Context-Id, an AVP that was fine:
    the client is told its service context is the problem. It is now a zero-filled example of
    the missing AVP; a session's command-level units that cannot be rated are named by their
    Requested-Service-Unit, as an MSCC's are by the MSCC."""
    def ccr(sid: str, rtype: int, context: str, *extra: Avp) -> Message:
        return Message.request(272, 4, [
            A("Session-Id", sid), A("Origin-Host", "audit.icx.test"),
            A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local"),
            A("Auth-Application-Id", 4), A("Service-Context-Id", context),
            A("CC-Request-Type", rtype), A("CC-Request-Number", 0), *extra], proxiable=True)

    sub = A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", SUB)])
    rsu = A("Requested-Service-Unit", [A("CC-Service-Specific-Units", 1)])
    no_sub_event, no_sub_init, no_si_event, no_si_init = exchange(
        server,
        ccr("audit;fa1", 4, "32274@3gpp.org", A("Requested-Action", 0), sms_info("4179111")),
        ccr("audit;fa2", 1, "32274@3gpp.org", sms_info("4179111")),
        ccr("audit;fa3", 4, "32270@3gpp.org", A("Requested-Action", 0), sub),
        ccr("audit;fa4", 1, "32270@3gpp.org", sub, rsu))

    def failed(cca: Message, code: int) -> Avp:
        assert cca.get("Result-Code") == code and not cca.is_error
        (inner,) = cca.find("Failed-AVP").value
        return inner

    for cca in (no_sub_event, no_sub_init):
        inner = failed(cca, 5030)
        assert (inner.code, inner.vendor) == (443, 0)  # Subscription-Id (example)
    inner = failed(no_si_event, 5031)
    assert (inner.code, inner.vendor, inner.flags & 0x80) == (873, 10415, 0x80)
    inner = failed(no_si_init, 5031)
    assert inner.code == 437 and inner.get("CC-Service-Specific-Units") == 1
    assert server.balance(SUB) == (50_000_000, 0)
