"""`icx balance show` over a real server: money in the currency's own minor units, as
`icx sessions list` shows it (ISO 4217 minor units: JPY 0, EUR 2, KWD 3), and exact beyond
them when a balance holds a sub-minor amount (a micro-unit CC-Money debit, RFC 4006 §8.8)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from diameter.message import Message
from icx.cli import main as cli
from icx.diameter_client import A, connect
from icx.settings import AccountsSection
from tests.e2e.conftest import Server, e2e_settings, serving
from tests.e2e.test_admin_audit import cli_output

EUR, JPY, KWD = "41790000019", "81300000001", "96500000001"
MORE = f"""
[[account]]
id = "{JPY}"
currency = "JPY"
amount = "1000"

[[account]]
id = "{KWD}"
currency = "KWD"
amount = "12.345"
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = e2e_settings(tmp_path)
    more = tmp_path / "more-accounts.toml"
    more.write_text(MORE)
    settings = dataclasses.replace(settings, accounts=AccountsSection(
        files=(*settings.accounts.files, str(more))))
    with serving(settings, tmp_path / "data") as srv:
        yield srv


def debit(server: Server, account: str, digits: int, exponent: int) -> None:
    """A CC-Money DIRECT_DEBITING event (RFC 4006 §6.3) of digits x 10^exponent."""
    async def main() -> Message:
        peer = await connect("127.0.0.1", server.port, origin_host="balance.icx.test")
        try:
            return await peer.request(Message.request(272, 4, [
                A("Session-Id", f"balance.icx.test;{account}"),
                A("Origin-Host", "balance.icx.test"), A("Origin-Realm", "icx.test"),
                A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
                A("Service-Context-Id", "32260@3gpp.org"), A("CC-Request-Type", 4),
                A("CC-Request-Number", 0), A("Requested-Action", 0),
                A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                      A("Subscription-Id-Data", account)]),
                A("Requested-Service-Unit", [A("CC-Money", [A("Unit-Value", [
                    A("Value-Digits", digits), A("Exponent", exponent)])])])],
                proxiable=True))
        finally:
            await peer.close()

    assert asyncio.run(main()).get("Result-Code") == 2001


def show(server: Server, account: str) -> tuple[dict, str]:
    runner = CliRunner()
    res = runner.invoke(cli, ["balance", "show", account, "--json", "--admin", server.admin_url])
    assert res.exit_code == 0, res.output
    (b,) = json.loads(cli_output(res))["balances"]
    res = runner.invoke(cli, ["balance", "show", account, "--admin", server.admin_url])
    assert res.exit_code == 0, res.output
    (row,) = [line for line in cli_output(res).splitlines() if b["currency"] in line]
    return b, " ".join(row.replace("│", " ").split())


def test_balance_show_uses_the_currencys_minor_units(server: Server) -> None:
    """Before: at least two decimals whatever the currency -- "1000.00" JPY, "12.345" KWD but
    "0.00" reserved for it, while `sessions list` printed "1000 JPY"."""
    want = {EUR: ("EUR", "50.00", "0.00"), JPY: ("JPY", "1000", "0"),
            KWD: ("KWD", "12.345", "0.000")}
    for account, (cur, amount, zero) in want.items():
        b, row = show(server, account)
        assert (b["currency"], b["amount"], b["reserved"], b["available"],
                b["credit_limit"]) == (cur, amount, zero, amount, zero), b
        assert row == f"{cur} money {cur} {amount} {zero} {amount}", row


def test_balance_show_keeps_sub_minor_amounts_exact(server: Server) -> None:
    """A balance holding less than the currency's minor unit (a micro-unit CC-Money debit)
    is shown with every digit it has, never rounded to the minor units."""
    debit(server, JPY, 5, -1)        # 0.5 JPY
    debit(server, KWD, 1, -4)        # 0.0001 KWD
    debit(server, EUR, 1234, -6)     # 0.001234 EUR
    want = {JPY: "999.5", KWD: "12.3449", EUR: "49.998766"}
    for account, amount in want.items():
        b, row = show(server, account)
        assert (b["amount"], b["available"]) == (amount, amount), b
        assert f" {amount} " in f" {row} ", row
    assert server.balance(JPY) == (999_500_000, 0)
