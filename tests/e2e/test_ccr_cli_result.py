"""`icx ccr` against a real server whose deck prices in JPY: the cost is printed in the
currency the answer's Cost-Information names (Currency-Code 392, RFC 4006 §8.7/§8.11) with
that currency's minor places -- it was printed as "EUR" whatever the deck -- and the exit
status tells a refusal (non-2xxx Result-Code: 3) from a charge (0)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from icx.cli import main as cli
from icx.settings import AccountsSection, RatingDeckFile
from tests.e2e.conftest import Server, e2e_settings, serving
from tests.e2e.test_admin_audit import cli_output

JPY_SUB, EMPTY_SUB = "81300000001", "81300000002"
DECK = """service,prefix,destination,rate,billing,connection fee
voice,41,Switzerland,15,60/60,0
voice,*,Rest of world,50,1/1,0
sms,*,Any destination,3.5,1/1,0
"""
ACCOUNTS = f"""
[[account]]
id = "{JPY_SUB}"
currency = "JPY"
amount = "1000"

[[account]]
id = "{EMPTY_SUB}"
currency = "JPY"
amount = "0"
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    deck = tmp_path / "retail-jpy.csv"
    deck.write_text(DECK)
    accounts = tmp_path / "jpy-accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = e2e_settings(tmp_path)
    settings = dataclasses.replace(
        settings, accounts=AccountsSection(files=(str(accounts),)),
        rating=dataclasses.replace(settings.rating, decks=(
            RatingDeckFile(file=str(deck), deck="retail", currency="JPY"),)))
    with serving(settings, tmp_path / "data") as srv:
        yield srv


def ccr(server: Server, *args: str) -> tuple[int, str]:
    res = CliRunner(mix_stderr=False).invoke(cli, ["ccr", "--port", str(server.port), *args])
    return res.exit_code, cli_output(res)


def test_cost_in_the_deck_currency_and_exit_status(server: Server) -> None:
    code, out = ccr(server, "--from", JPY_SUB, "--to", "41791234567", "--seconds", "61")
    assert code == 0, out
    # 61 s at 15 JPY/min 60/60: two minutes, 30 JPY (no decimals: JPY has none)
    assert "CCR-T: Result-Code 2001, used 61, cost 30 JPY\n" in out
    code, out = ccr(server, "--from", JPY_SUB, "--service", "sms", "--to", "447700900123")
    assert (code, out) == (0, "CCR-Event: Result-Code 2001, cost 3.5 JPY\n")  # exact, not "4"
    code, out = ccr(server, "--from", JPY_SUB, "--to", "447700900123", "--seconds", "6",
                    "--json")
    assert code == 0
    steps = json.loads(out)
    # 6 s at 50 JPY/min 1/1: 5 JPY
    assert (steps[-1]["cost"], steps[-1]["currency"]) == ("5", "JPY")
    assert server.balance(JPY_SUB)[0] == 961_500_000  # 1000 - 30 - 3.5 - 5 JPY, micro-units


def test_a_refusal_exits_3_and_still_prints_the_answer(server: Server) -> None:
    code, out = ccr(server, "--from", EMPTY_SUB)
    assert (code, out) == (3, "CCR-I: Result-Code 4012\n  RG 100: 4012\n")
    code, out = ccr(server, "--from", "81399999999")  # unknown subscriber
    assert code == 3 and out.startswith("CCR-I: Result-Code 5030\n")
