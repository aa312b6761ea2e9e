from __future__ import annotations

from decimal import Decimal

import pytest

from charging.money import parse_amount
from settlement.aggregate import aggregate
from settlement.config import ShareTier, parse_config
from settlement.currency import Period, is_currency, round_invoice
from settlement.integrity import check_invoice
from settlement.invoice import InvoiceBuilder, share_of

from .conftest import rec

NOV = Period(2026, 11)


def _invoice(cfg, partner: str, records: list, **kw):
    res = aggregate(records, {p.id: p.timezone for p in cfg.partners.values()}, target=NOV)
    b = InvoiceBuilder(cfg, cfg.partners[partner], NOV, **kw)
    inv = b.build(res.buckets)
    return inv, b.problems, res


def test_line_and_total_rounding_is_shown_and_adds_up(cfg) -> None:
    records = [rec(n=i, price="0.004999") for i in range(3)] + [
        rec(n=9, destination="USA", price="0.001234")]
    inv, problems, res = _invoice(cfg, "orange-fr", records, issue_date="2026-12-01")
    assert not problems
    lines = {ln["destination"]: ln for ln in inv["lines"]}
    assert lines["UK Mobile"]["exact"] == "0.014997"
    assert lines["UK Mobile"]["amount"] == "0.01"
    assert lines["UK Mobile"]["rounding"] == "-0.004997"
    sell = inv["sections"][0]
    assert sell["exact_total"] == "0.016231" and sell["total"] == "0.01"
    assert parse_amount(sell["exact_total"]) + parse_amount(sell["rounding"]) == parse_amount(
        sell["total"])
    assert inv["due_date"] == "2026-12-31"  # 30 payment days
    assert check_invoice(inv, res.buckets) == []


def test_fx_uses_the_agreement_period_rate_and_rounds_once(cfg) -> None:
    inv, problems, _ = _invoice(cfg, "att-us", [rec(partner="att-us", price="1.000001")])
    assert not problems
    line = inv["lines"][0]
    assert (line["currency"], line["fx_rate"], line["fx_source"]) == ("EUR", "1.0850", "agreement")
    assert line["exact"] == "1.085001"  # 1.000001 * 1.085 = 1.085001085 -> micro, half up
    assert line["amount"] == "1.09" and inv["currency"] == "USD"


def test_fx_recorded_on_the_record_wins(cfg) -> None:
    fx = {"from": "USD", "to": "EUR", "rate": "0.8", "date": "2026-11-03"}
    inv, problems, _ = _invoice(cfg, "att-us", [rec(partner="att-us", price="2", fx=fx)])
    assert not problems
    line = inv["lines"][0]
    assert (line["fx_rate"], line["fx_source"], line["exact"]) == ("1/0.8", "record", "2.50")


def test_missing_fx_rate_is_an_inconsistency(cfg) -> None:
    _, problems, _ = _invoice(cfg, "att-us", [rec(partner="att-us", currency="CHF")])
    assert any("no FX rate CHF->USD" in p for p in problems)


def test_revenue_share_tiers_guarantee_and_refunds(cfg) -> None:
    records = [rec(partner="gamesco", service="content", direction="buy", price="100")
               for _ in range(3)] + [rec(partner="gamesco", service="content", direction="buy",
                                         type="refund", price="-100")]
    inv, problems, res = _invoice(cfg, "gamesco", records)
    assert not problems
    kinds = [(ln["kind"], ln["amount"]) for ln in inv["lines"]]
    # gross 200 (refund netted) -> 50% = 100, below the 250 guarantee -> top-up 150
    assert ("share", "100.00") in kinds and ("guarantee", "150.00") in kinds
    assert inv["totals"]["payable"] == "250.00"
    assert inv["sections"][0]["gross_exact"] == "200.00"
    assert check_invoice(inv, res.buckets) == []


def test_share_tiers_volume_and_marginal() -> None:
    tiers = (ShareTier(Decimal(0), Decimal(50)), ShareTier(Decimal(100), Decimal(60)))
    assert share_of(parse_amount("200"), tiers, "volume")[0] == parse_amount("120")
    assert share_of(parse_amount("200"), tiers, "marginal")[0] == parse_amount("110")
    assert share_of(parse_amount("50"), tiers, "marginal")[0] == parse_amount("25")
    assert share_of(parse_amount("-10"), tiers, "volume")[0] == parse_amount("-5")


def _cfg_with(agreement: dict):
    return parse_config({"partners": {"x": {"currency": "EUR"}},
                         "agreements": [{"id": "b", "partner": "x", "type": "bilateral"},
                                        {"id": "c", "partner": "x", **agreement}]}, file="t")


def test_commitment_in_minutes_charges_the_shortfall() -> None:
    cfg = _cfg_with({"type": "commitment", "committed_minutes": 100, "shortfall_rate": "0.01"})
    inv, problems, _ = _invoice(cfg, "x", [rec(partner="x", usage=90 * 60)])
    assert not problems
    short = [ln for ln in inv["lines"] if ln["kind"] == "shortfall"][0]
    assert short["section"] == "commitment_sell" and short["amount"] == "0.10"
    assert "shortfall 10.00 min" in short["destination"]


def test_commitment_in_amount_and_met_commitment() -> None:
    cfg = _cfg_with({"type": "commitment", "direction": "buy", "committed_amount": "10",
                     "shortfall_pct": "50"})
    inv, _, _ = _invoice(cfg, "x", [rec(partner="x", direction="buy", price="4")])
    short = [ln for ln in inv["lines"] if ln["kind"] == "shortfall"][0]
    assert short["amount"] == "3.00" and short["section"] == "commitment_buy"
    assert inv["totals"]["payable"] == "7.00"
    inv2, _, _ = _invoice(cfg, "x", [rec(partner="x", direction="buy", price="12")])
    assert not [ln for ln in inv2["lines"] if ln["kind"] == "shortfall"]


def test_jpy_has_no_minor_unit() -> None:
    assert round_invoice(1_500_000, "JPY") == 2_000_000
    assert round_invoice(1_234_567, "KWD") == 1_235_000


@pytest.mark.parametrize(("currency", "micros", "rounded"), [
    ("XPF", 1_500_000, 2_000_000), ("BIF", 1_499_999, 1_000_000), ("PYG", 2_500_000, 3_000_000),
    ("CLF", 1_234_567, 1_234_600), ("UYW", 1_234_549, 1_234_500), ("EUR", 1_234_567, 1_230_000),
    ("OMR", 1_234_567, 1_235_000),
])
def test_every_iso_4217_minor_unit_rounds_its_invoices(currency: str, micros: int,
                                                       rounded: int) -> None:
    """ISO 4217 table A.1 minor units (0: XPF, BIF, PYG...; 4: CLF, UYW), HALF_UP."""
    assert round_invoice(micros, currency) == rounded


def test_a_code_iso_4217_does_not_know_is_no_currency() -> None:
    assert is_currency("EUR") and is_currency("XPF")
    assert not is_currency("EUX") and not is_currency("eur") and not is_currency("EURO")
