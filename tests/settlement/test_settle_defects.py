"""Settlement defects found in review (money across periods and currencies), each pinned
with exact values through the real CLI on a real journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from icx.cli import main
from settlement.generate import write_journal

from .conftest import DEMO, T0, rec


def _settle(d: Path, *args: str, pure: bool = False) -> Any:
    env = {"ICX_NO_EXTENSIONS": "1"} if pure else {}
    return CliRunner(mix_stderr=False).invoke(
        main, ["settle", *args, "--data-dir", str(d), "--partners", str(DEMO)], env=env)


def _att(i: int, start: int) -> dict[str, Any]:
    return rec(id=f"att-{i}", start=start, ts=start, partner="att-us", direction="sell",
               destination="USA", price="10.00", currency="EUR")


@pytest.mark.parametrize("pure", [False, True])
def test_a_late_record_converts_at_the_rate_of_its_closed_period(tmp_path: Path,
                                                                 pure: bool) -> None:
    """att-us invoices in USD; [[fx]] has EUR->USD 1.0850 for 2026-11 and 1.0900 for 2026-12.
    A November call that arrives after November was closed is an adjustment on the December
    invoice referencing INV-2026-11: it converts at November's 1.0850 (10.85 USD), not at
    December's 1.0900 (10.90 USD)."""
    write_journal(str(tmp_path / "journal"), iter([_att(1, T0)]))
    r = _settle(tmp_path, "--period", "2026-11", "--close", "--partner", "att-us", pure=pure)
    assert r.exit_code == 0, r.stderr
    nov = json.loads((tmp_path / "settlement" / "out" / "2026-11" / "att-us" /
                      "INV-2026-11-ATT-US.json").read_text())
    assert nov["totals"]["receivable"] == "10.85"
    write_journal(str(tmp_path / "journal"), iter([_att(2, T0 + 1_000_000)]))
    r = _settle(tmp_path, "--period", "2026-12", "--partner", "att-us", "--json", pure=pure)
    assert r.exit_code == 0, r.stderr
    dec = json.loads((tmp_path / "settlement" / "out" / "2026-12" / "att-us" /
                      "INV-2026-12-ATT-US.json").read_text())
    (adj,) = [ln for ln in dec["lines"] if ln["section"] == "adjustment_sell"]
    assert (adj["ref"], adj["ref_period"], adj["source_amount"], adj["fx_rate"],
            adj["fx_date"], adj["exact"], adj["amount"]) == (
        "INV-2026-11-ATT-US", "2026-11", "10.00", "1.0850", "2026-10-23", "10.85", "10.85")
    assert dec["totals"]["receivable"] == "10.85"


def _mvno(i: int, price: str, ccy: str, moved: str, moved_ccy: str) -> dict[str, Any]:
    return rec(id=f"mv-{i}", start=T0 + i * 1_000_000, partner="mvno-uk", direction="sell",
               deck="sell-mvno", destination="UK Mobile", price=price, currency=ccy,
               account="partner:mvno-uk",
               balance_effects=[{"account": "partner:mvno-uk", "balance": moved_ccy,
                                 "currency": moved_ccy, "amount": moved}])


@pytest.mark.parametrize("pure", [False, True])
def test_prepaid_check_covers_records_in_another_currency(tmp_path: Path, pure: bool) -> None:
    """mvno-uk is prepaid and invoiced in GBP. A 1.00 EUR call that debited only 0.50 EUR of
    its account does not tie: the check looked at GBP only and passed (exit 0)."""
    write_journal(str(tmp_path / "journal"), iter([
        _mvno(1, "0.15", "GBP", "-0.15", "GBP"),  # ties in GBP
        _mvno(2, "1.00", "EUR", "-0.50", "EUR"),  # does not tie in EUR
    ]))
    r = _settle(tmp_path, "--period", "2026-11", "--partner", "mvno-uk", pure=pure)
    assert r.exit_code == 1
    assert ("inconsistency: INV-2026-11-MVNO-UK: prepaid account partner:mvno-uk moved "
            "-500000 micro-EUR, billed usage 1000000 micro-EUR") in r.stderr
    assert "micro-GBP" not in r.stderr


@pytest.mark.parametrize("pure", [False, True])
def test_prepaid_check_passes_when_every_currency_ties(tmp_path: Path, pure: bool) -> None:
    write_journal(str(tmp_path / "journal"), iter([
        _mvno(1, "0.15", "GBP", "-0.15", "GBP"), _mvno(2, "1.00", "EUR", "-1.00", "EUR")]))
    r = _settle(tmp_path, "--period", "2026-11", "--partner", "mvno-uk", "--json", pure=pure)
    assert r.exit_code == 0, r.stderr
    # 0.15 GBP + 1.00 EUR at the agreed EUR->GBP 0.8700 = 0.15 + 0.87
    assert json.loads(r.stdout)["partners"][0]["receivable"] == "1.02"


@pytest.mark.parametrize("rate", ["Infinity", "abc", "0", "-1.08"])
def test_a_record_fx_rate_that_is_no_positive_number_is_an_inconsistency(
        tmp_path: Path, rate: str) -> None:
    """att-us (USD) record priced in EUR "converted from USD": a record rate of Infinity made
    1/Infinity = 0 (an OverflowError traceback), "abc" an InvalidOperation traceback, and 0
    or a negative rate silently fell back to the period rate. Now: a named inconsistency."""
    r = _att(1, T0)
    r["fx"] = {"from": "USD", "to": "EUR", "rate": rate, "date": "2026-11-01"}
    write_journal(str(tmp_path / "journal"), iter([r]))
    res = _settle(tmp_path, "--period", "2026-11", "--partner", "att-us")
    assert res.exit_code == 1
    assert (f"inconsistency: partner 'att-us': record fx rate {rate!r} (USD->EUR) is not a "
            "positive decimal") in res.stderr
    assert "Traceback" not in res.stderr and "settle failed" not in res.stderr


def test_settle_json_leaves_stderr_empty_when_it_is_no_terminal(tmp_path: Path) -> None:
    """A disabled progress bar still wrote a blank line to stderr (a log file got one per
    run); `settle generate` wrote it too."""
    r = CliRunner(mix_stderr=False).invoke(
        main, ["settle", "generate", "--period", "2026-11", "--records", "10", "--data-dir",
               str(tmp_path), "--partners", str(DEMO)])
    assert r.exit_code == 0 and r.stderr == ""
    r = _settle(tmp_path, "--period", "2026-11", "--partner", "orange-fr", "--json")
    assert r.exit_code == 0 and r.stderr == ""
    assert json.loads(r.stdout)["records_read"] == 10
