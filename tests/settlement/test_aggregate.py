from __future__ import annotations

from settlement.aggregate import KEY_FIELDS, aggregate
from settlement.currency import Period

from .conftest import T0, rec

TZ = {"orange-fr": "Europe/Paris", "globalhub": "UTC", "gamesco": "UTC"}
NOV = Period(2026, 11)


def _field(key: tuple, name: str) -> str:
    return key[KEY_FIELDS.index(name)]


def test_sums_exact_micro_units_per_key() -> None:
    res = aggregate([rec(n=1), rec(n=2, price="0.000001", usage=1), rec(n=3, direction="buy")],
                    TZ, target=NOV)
    assert res.records == 3 and res.settled == 3 and not res.problems
    sells = [v for k, v in res.buckets.items() if _field(k, "direction") == "sell"]
    assert sells == [[2, 61, 9801]]


def test_period_is_the_month_in_the_partner_timezone() -> None:
    # 2026-10-31 23:30 UTC is already November in Paris (UTC+1), still October in UTC
    late_oct = 1_793_489_400_000_000
    res = aggregate([rec(start=late_oct),
                     rec(start=late_oct, partner="globalhub")], TZ, target=NOV)
    periods = {(_field(k, "partner"), _field(k, "period")) for k in res.buckets}
    assert periods == {("orange-fr", "2026-11"), ("globalhub", "2026-10")}


def test_legs_settle_with_each_leg_partner_and_not_the_top_level_price() -> None:
    r = rec(price="9.99", legs=[
        {"partner": "orange-fr", "direction": "sell", "deck": "hub-in", "price": "0.04",
         "currency": "EUR"},
        {"partner": "globalhub", "direction": "buy", "deck": "hub-out", "price": "0.031",
         "currency": "EUR"}])
    res = aggregate([r], TZ, target=NOV)
    got = sorted((_field(k, "partner"), _field(k, "direction"), v[2])
                 for k, v in res.buckets.items())
    assert got == [("globalhub", "buy", 31_000), ("orange-fr", "sell", 40_000)]
    assert res.settled == 1


def test_refunds_are_signed_and_kept_apart_holds_are_ignored() -> None:
    res = aggregate([rec(partner="gamesco", service="content", price="1.99"),
                     rec(partner="gamesco", service="content", type="refund", price="-1.99"),
                     rec(type="hold"), rec(type="topup")], TZ, target=NOV)
    kinds = {_field(k, "kind"): v[2] for k, v in res.buckets.items()}
    assert kinds == {"usage": 1_990_000, "refund": -1_990_000}
    assert res.records == 4 and res.settled == 2


def test_inconsistent_records_are_problems_not_silently_dropped() -> None:
    res = aggregate([rec(partner="nobody"), rec(price="0.0000001"), rec(price=None),
                     rec(direction="sideways"), rec(start=None, ts=None)], TZ, target=NOV)
    assert len(res.problems) == 5
    assert not res.buckets


def test_prepaid_movements_are_summed_per_account_and_period() -> None:
    eff = [{"account": "p:1", "balance": "EUR", "currency": "EUR", "amount": "-0.0098"}]
    res = aggregate([rec(balance_effects=eff), rec(balance_effects=eff, start=T0 + 1)],
                    TZ, prepaid={"p:1": "orange-fr"}, target=NOV)
    assert res.movements == {("p:1", "EUR", "2026-11"): -19_600}


def test_fx_of_the_record_is_part_of_the_key() -> None:
    fx = {"from": "USD", "to": "EUR", "rate": "0.92", "date": "2026-11-01"}
    res = aggregate([rec(fx=fx), rec()], TZ, target=NOV)
    assert sorted(_field(k, "fx_rate") for k in res.buckets) == ["", "0.92"]


def test_ro_path_records_settle_by_deck() -> None:
    ro = rec(deck="carrier_a_sell")
    del ro["partner"], ro["direction"]
    res = aggregate([ro], {**TZ, "carrier_a": "Europe/Zurich"}, target=NOV,
                    deck_partners={"carrier_a_sell": ("carrier_a", "sell")})
    (key,) = res.buckets
    assert (_field(key, "partner"), _field(key, "direction")) == ("carrier_a", "sell")
