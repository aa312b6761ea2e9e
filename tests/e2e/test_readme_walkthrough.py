"""The README's "Try it" steps against a running server, as a new user types them (the CLI,
its text and JSON output), with the balances computed by hand from the demo tariff: voice to
41 0.12 EUR/min (60/1), to 44 0.20 EUR/min (1/1), elsewhere 0.50 EUR/min (60/60); SMS 0.05."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from icx.cli import main as cli
from tests.e2e.conftest import Server

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


@pytest.mark.stores
def test_send_a_ccr_and_watch_the_balance_move(server: Server) -> None:
    runner = CliRunner()
    admin = ["--admin", server.admin_url]
    port = ["--port", str(server.port)]

    def icx(*args: str, exit_code: int = 0) -> str:
        res = runner.invoke(cli, list(args))
        assert res.exit_code == exit_code, res.output
        # the in-process server's log lines land in the same captured stdout
        return "".join(line for line in res.output.splitlines(keepends=True)
                       if not LOG_LINE.match(line))

    assert "50.00" in icx("balance", "show", "41790000001", *admin)
    out = icx("ccr", "--from", "41790000001", "--to", "41791234567", "--seconds", "90", *port)
    assert out == ("CCR-I: Result-Code 2001\n"
                   "  RG 100: 2001, granted CC-Time 90\n"
                   "CCR-T: Result-Code 2001, used 90, cost 0.18 EUR\n"
                   "  RG 100: 2001\n")
    out = icx("ccr", "--service", "sms", "--to", "447700900123", *port)
    assert out == "CCR-Event: Result-Code 2001, cost 0.05 EUR\n"
    view = json.loads(icx("balance", "show", "41790000001", "--json", *admin))
    assert view["balances"][0]["amount"] == "49.77"  # 50.00 - 0.18 - 0.05
    # elsewhere, 61 s at 60/60: two whole minutes, 1.00 EUR (a cost of whole euros keeps its
    # cents, as every other amount the CLI prints)
    out = icx("ccr", "--from", "41790000002", "--to", "33123456789", "--seconds", "61", *port)
    assert "CCR-T: Result-Code 2001, used 61, cost 1.00 EUR\n" in out
    out = icx("ccr", "--from", "41790000000", *port, exit_code=3)  # 3: the server refused
    assert out == "CCR-I: Result-Code 4012\n  RG 100: 4012\n"  # empty balance: nothing granted
    assert json.loads(icx("balance", "topup", "41790000000", "10.00", "--json", *admin))[
        "balances"][0]["amount"] == "10.00"
    out = icx("ccr", "--from", "41790000000", "--to", "447700900123", "--seconds", "61", *port)
    assert "cost 0.203333 EUR" in out  # 1/1: 61 s of 0.20/min
    assert json.loads(icx("balance", "show", "41790000000", "--json", *admin))["balances"][0][
        "amount"] == "9.796667"
    assert json.loads(icx("sessions", "list", "--json", *admin)) == {"sessions": [], "count": 0}
