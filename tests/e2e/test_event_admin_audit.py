"""One-off events (RFC 4006 §6), session charging details and the operator's admin API / CLI
over real sockets: what a fresh-eyes audit found answered or charged wrongly (protocol-facts
B2/B5/B6, D)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from icx.cli import main as cli
from tests.e2e.conftest import Server
from tests.e2e.test_admin_audit import cli_output
from tests.e2e.test_rar_asr_audit import post

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
