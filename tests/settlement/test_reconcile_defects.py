"""Reconciliation defects of the last review, each pinned with exact values on real files:
currencies are converted (never added raw), durations are exact with the agreement's rounding.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from icx.cli import main
from settlement.config import load_config
from settlement.currency import Period
from settlement.generate import write_journal
from settlement.reconcile import ReconcileError, billed_seconds, read_partner_cdrs, reconcile

from .conftest import T0, rec

S = 1_000_000
NOV = Period(2026, 11)

PARTNERS = """
[settlement]
home_currency = "EUR"

[partners.usco]
name = "US Carrier"
currency = "USD"
timezone = "UTC"
cdr_mapping = "plain"

[partners.gbco]
name = "UK Carrier"
currency = "GBP"
timezone = "UTC"
cdr_mapping = "plain"

[[agreements]]
id = "US-BIL"
partner = "usco"
type = "bilateral"
sell_deck = "sell-eu"

[[agreements]]
id = "GB-BIL"
partner = "gbco"
type = "bilateral"
sell_deck = "sell-gb"

[[fx]]
period = "2026-11"
from = "EUR"
to = "USD"
rate = "1.0850"
date = "2026-10-23"

[cdr_mappings.plain]
a = "a"
b = "b"
start = "start"
duration = "dur"
amount = "amount"
currency = "ccy"
id = "id"
start_format = "epoch"
{extra}
"""


def _cfg(tmp_path: Path, extra: str = ""):
    f = tmp_path / "partners.toml"
    f.write_text(PARTNERS.format(extra=extra))
    return load_config(f)


def _csv(tmp_path: Path, rows: list[tuple[object, ...]]) -> Path:
    f = tmp_path / "theirs.csv"
    lines = ["id,a,b,start,dur,amount,ccy"]
    lines += [",".join(str(x) for x in r) for r in rows]
    f.write_text("\n".join(lines) + "\n")
    return f


def _ours(partner: str, n: int, price: str = "1.00", usage: int = 60) -> list[dict]:
    return [rec(n=i, id=f"r{i}", partner=partner, start=T0 + i * 600 * S, usage=usage,
                a="+3361000000" + str(i), b="+12125550100", price=price, currency="EUR")
            for i in range(n)]


# -- 1. currencies --------------------------------------------------------------------------
def test_reconcile_converts_eur_records_to_the_usd_partner_with_the_period_fx(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ours = _ours("usco", 3)
    # the partner bills in USD: 1.00 EUR at 1.0850 is 1.085 USD, the same call
    theirs = _csv(tmp_path, [(f"P{i}", "3361000000" + str(i), "12125550100",
                              (T0 + i * 600 * S) // S, 60, "1.085", "USD") for i in range(3)])
    s = reconcile(cfg, ours, partner="usco", period=NOV, their_cdrs=theirs).summary
    assert s["currency"] == "USD"
    assert s["counts"]["exact"] == 3 and s["counts"]["mismatch"] == 0
    assert s["our_amount"] == "3.255" and s["their_amount"] == "3.255"
    assert s["variance"] == "0.00"
    assert s["our_amount_by_currency"] == {"EUR": "3.00"}
    assert s["their_amount_by_currency"] == {"USD": "3.255"}
    assert s["invoice_compare"] == {"ours": "3.26", "theirs": "3.26", "difference": "0.00",
                                    "within_tolerance": True}
    assert s["fx"] == [{"from": "EUR", "to": "USD", "rate": "1.0850", "date": "2026-10-23",
                        "source": "agreement"}]


def test_reconcile_converts_a_mixed_currency_partner_file(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ours = _ours("usco", 2)
    # one row in EUR, one in USD: both are 1.085 USD; never 1.00 + 1.085 = 2.085 "USD"
    theirs = _csv(tmp_path, [("P0", "33610000000", "12125550100", T0 // S, 60, "1.00", "EUR"),
                             ("P1", "33610000001", "12125550100", (T0 + 600 * S) // S, 60,
                              "1.085", "USD")])
    res = reconcile(cfg, ours, partner="usco", period=NOV, their_cdrs=theirs, out_dir=tmp_path / "o")
    s = res.summary
    assert s["their_amount"] == "2.17" and s["their_amount_by_currency"] == {"EUR": "1.00",
                                                                             "USD": "1.085"}
    assert s["counts"]["exact"] == 2 and s["variance"] == "0.00"
    rows = (tmp_path / "o" / "2026-11" / "usco" / "RECON-2026-11-USCO.csv").read_text().splitlines()
    assert rows[0].endswith("our_source_amount,their_source_amount")
    assert rows[1].endswith(",1.085,1.085,0.00,60,60,0,1.00 EUR,1.00 EUR")
    html = (tmp_path / "o" / "2026-11" / "usco" / "RECON-2026-11-USCO.html").read_text()
    assert "Amounts in USD; EUR&rarr;USD 1.0850 (2026-10-23, agreement)." in html


def test_reconcile_without_an_fx_rate_refuses_naming_both_currencies(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ours = _ours("gbco", 1)
    theirs = _csv(tmp_path, [("P0", "33610000000", "12125550100", T0 // S, 60, "0.87", "GBP")])
    with pytest.raises(ReconcileError, match=r"our record 'r0' is in EUR, the partner invoices "
                                             r"in GBP: no FX rate EUR->GBP for period 2026-11"):
        reconcile(cfg, ours, partner="gbco", period=NOV, their_cdrs=theirs)


def test_cli_reconcile_without_fx_exits_1_with_the_currencies(tmp_path: Path) -> None:
    cfg_file = tmp_path / "partners.toml"
    _cfg(tmp_path)
    write_journal(str(tmp_path / "journal"), iter(_ours("gbco", 1)))
    theirs = _csv(tmp_path, [("P0", "33610000000", "12125550100", T0 // S, 60, "0.87", "GBP")])
    r = CliRunner(mix_stderr=False).invoke(
        main, ["reconcile", "--partner", "gbco", "--period", "2026-11", "--their-cdrs",
               str(theirs), "--data-dir", str(tmp_path), "--partners", str(cfg_file)])
    assert r.exit_code == 1 and r.stdout == ""
    assert "no FX rate EUR->GBP for period 2026-11" in r.stderr
    assert "is in EUR, the partner invoices in GBP" in r.stderr


# -- 2. durations ---------------------------------------------------------------------------
def test_partner_durations_are_exact_and_billed_by_the_agreement_rule(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ours = [rec(n=i, id=f"r{i}", partner="usco", start=T0 + i * 600 * S, usage=u,
                a="+3361000000" + str(i), b="+12125550100", price=None)
            for i, u in enumerate((61, 60, 60, 60))]
    theirs = _csv(tmp_path, [
        ("P0", "33610000000", "12125550100", T0 // S, "60.7", "", ""),  # billed up: 61 = ours
        ("P1", "33610000001", "12125550100", (T0 + 600 * S) // S, "60.7", "", ""),  # 0.7 s
        ("P2", "33610000002", "12125550100", (T0 + 1200 * S) // S, "62.5", "", ""),  # 2.5 s
        ("P3", "33610000003", "12125550100", (T0 + 1800 * S) // S, "62.0", "", ""),  # 2 s
    ])
    got = read_partner_cdrs(theirs, cfg.cdr_mappings["plain"])
    assert [(c.duration, c.billed) for c in got] == [
        (Decimal("60.7"), 61), (Decimal("60.7"), 61), (Decimal("62.5"), 63), (Decimal("62.0"), 62)]
    res = reconcile(cfg, ours, partner="usco", period=NOV, their_cdrs=theirs,
                    tolerance_seconds=2, out_dir=tmp_path / "o", data_dir=tmp_path)
    cls = {p.ours.id: p.cls for p in res.pairs if p.ours}
    assert cls == {"r0": "exact", "r1": "within_tolerance", "r2": "mismatch",
                   "r3": "within_tolerance"}
    rows = (tmp_path / "o" / "2026-11" / "usco" / "RECON-2026-11-USCO.csv").read_text().splitlines()
    r1 = rows[2].split(",")
    assert (r1[0], r1[8], r1[9], r1[13], r1[14], r1[15]) == (
        "within_tolerance", "60", "60.7", "60", "61", "-0.7")
    doc = json.loads((tmp_path / "settlement" / "disputes" / "DSP-2026-11-USCO.json").read_text())
    assert [(d["our_duration"], d["their_duration"]) for d in doc["disputes"]] == [(60, "62.5")]


def test_duration_rounding_and_increment_come_from_the_mapping(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 'duration_rounding = "down"\nbilling_increment = 30')
    m = cfg.cdr_mappings["plain"]
    assert (m.duration_rounding, m.billing_increment) == ("down", 30)
    assert billed_seconds(Decimal("60.7"), 30, "down") == 60
    assert billed_seconds(Decimal("60.7"), 30, "up") == 90
    assert billed_seconds(Decimal("75"), 30, "half_up") == 90
    ours = _ours("usco", 1, usage=89)
    for r in ours:
        r["price"] = None
    theirs = _csv(tmp_path, [("P0", "33610000000", "12125550100", T0 // S, "60.7", "", "")])
    (p,) = reconcile(cfg, ours, partner="usco", period=NOV, their_cdrs=theirs).pairs
    # 89 s and 60.7 s are both billed as 60 s (down to 30 s steps): the same billed call
    assert (p.cls, p.ours.billed, p.theirs.billed) == ("exact", 60, 60)


def test_bad_duration_rules_are_config_errors(tmp_path: Path) -> None:
    from settlement.config import SettlementConfigError

    with pytest.raises(SettlementConfigError) as exc:
        _cfg(tmp_path, 'duration_rounding = "truncate"\nbilling_increment = 0')
    f = tmp_path / "partners.toml"
    assert exc.value.problems[:2] == [
        f"{f}:cdr_mappings.plain.duration_rounding: must be one of up, half_up, down, "
        "got 'truncate'",
        f"{f}:cdr_mappings.plain.billing_increment: must be a positive number of seconds"]
    theirs = _csv(tmp_path, [("P0", "3361", "1212", T0 // S, "NaN", "", "")])
    with pytest.raises(Exception, match=rf"^{theirs}:2: bad dur 'NaN'"):
        read_partner_cdrs(theirs, _cfg(tmp_path).cdr_mappings["plain"])


# -- 7. more of the same kind ---------------------------------------------------------------
def test_ro_path_records_with_only_a_deck_reconcile_with_the_decks_partner(tmp_path: Path) -> None:
    """settle bills a record that names only its deck to the partner whose agreement names
    that deck; reconcile ignored such records (every one of them became only_theirs)."""
    cfg = _cfg(tmp_path)
    ours = _ours("usco", 2)
    for r in ours:
        del r["partner"], r["direction"]  # as the Ro/Rf path writes them: deck sell-eu only
    theirs = _csv(tmp_path, [(f"P{i}", "3361000000" + str(i), "12125550100",
                              (T0 + i * 600 * S) // S, 60, "1.085", "USD") for i in range(2)])
    for res in (reconcile(cfg, ours, partner="usco", period=NOV, their_cdrs=theirs),
                _journal_reconcile(tmp_path, cfg, ours, theirs)):
        assert res.summary["counts"]["exact"] == 2 and res.summary["counts"]["only_theirs"] == 0


def _journal_reconcile(tmp_path: Path, cfg, records, theirs):
    from settlement.reconcile import reconcile_journal

    j = tmp_path / "j"
    if not j.exists():
        write_journal(str(j), iter(records))
    return reconcile_journal(cfg, j, partner="usco", period=NOV, their_cdrs=theirs)


@pytest.mark.parametrize("pure", [False, True])
def test_a_deck_only_record_of_a_shared_sell_deck_is_an_inconsistency(tmp_path: Path,
                                                                      pure: bool) -> None:
    """sell-eu is named by two agreements (orange-fr and att-us): a record with only that deck
    was billed silently to the last one (att-us). Now the run reports it and exits 1."""
    from .conftest import DEMO

    r = rec(id="ro-1", price="1.00")
    del r["partner"], r["direction"]
    write_journal(str(tmp_path / "journal"), iter([r, rec(id="ok-1", price="0.50")]))
    env = {"ICX_NO_EXTENSIONS": "1"} if pure else {}
    res = CliRunner(mix_stderr=False).invoke(
        main, ["settle", "--period", "2026-11", "--data-dir", str(tmp_path), "--partners",
               str(DEMO), "--json"], env=env)
    assert res.exit_code == 1
    assert ("inconsistency: record 'ro-1': no partner, and its deck 'sell-eu' is named by "
            "several agreements (att-us (sell), orange-fr (sell)): cannot tell whose it is"
            ) in res.stderr
    doc = json.loads(res.stdout)
    rows = {row["partner"]: row for row in doc["partners"]}
    assert rows["att-us"]["receivable"] == "0.00"  # not 1.09 USD of a call that is not theirs
    # orange-fr: its own 0.50 call + the 100.00 shortfall of its 50,000-minute commitment
    assert rows["orange-fr"]["receivable"] == "100.50"


def test_a_partner_row_with_a_bad_currency_is_bad_input_exit_2(tmp_path: Path) -> None:
    """An unreadable currency cell is the partner file's fault (file:line, exit 2), not a
    missing FX rate of ours (exit 1)."""
    cfg_file = tmp_path / "partners.toml"
    _cfg(tmp_path)
    write_journal(str(tmp_path / "journal"), iter(_ours("usco", 1)))
    theirs = _csv(tmp_path, [("P0", "33610000000", "12125550100", T0 // S, 60, "1.085", "USD"),
                             ("P1", "33610000001", "12125550100", T0 // S, 60, "1.085", "usd $")])
    r = CliRunner(mix_stderr=False).invoke(
        main, ["reconcile", "--partner", "usco", "--period", "2026-11", "--their-cdrs",
               str(theirs), "--data-dir", str(tmp_path), "--partners", str(cfg_file)])
    assert r.exit_code == 2
    assert r.stderr == f"{theirs}:3: bad ccy 'usd $' (an ISO 4217 code such as EUR)\n"
