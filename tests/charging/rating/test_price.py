"""The price arithmetic (charging/rating/price.py): G2 worked checks, rounding, max_units."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from charging.rating.model import MB_OCTETS, UNLIMITED_UNITS, Row, Service, Tier
from charging.rating.price import (
    billed_units,
    exact_price,
    max_units,
    price_micros,
    round_half_up,
    tiered_amount,
)


def voice(rate: int, a: int, b: int, fee: int = 0, minimum: int = 0, first: int | None = None) -> Row:
    return Row(service=Service.VOICE, prefix="41", destination="x", rate=rate,
               rate_first=rate if first is None else first, inc_first=a, inc_next=b, rate_unit=60,
               connection_fee=fee, minimum_charge=minimum)


def test_protocol_facts_g2_worked_checks() -> None:
    assert billed_units(100, 6, 6) == 102
    assert billed_units(45, 30, 6) == 48
    assert billed_units(42, 60, 60) == 60
    assert billed_units(205, 6, 6) == 210


def test_billed_units_edges() -> None:
    assert billed_units(0, 60, 60) == 0
    assert billed_units(-5, 60, 60) == 0
    assert billed_units(1, 60, 60) == 60
    assert billed_units(60, 60, 60) == 60
    assert billed_units(61, 60, 60) == 120
    assert billed_units(61, 60, 1) == 61
    assert billed_units(31, 30, 6) == 36


def test_price_is_exact_and_rounded_once_half_up() -> None:
    # 125 s at 0.12/min, 60/1: 0.25 exactly.
    assert price_micros(125, voice(120_000_000, 60, 1)) == (250_000, 125)
    # 61 s at 0.20/min per second: 0.2033333.. -> 0.203333
    assert price_micros(61, voice(200_000_000, 1, 1)) == (203_333, 61)
    # exactly half a micro-unit rounds up: 1 s at 0.00003/min = 0.5 micro
    assert price_micros(1, voice(30_000, 1, 1)) == (1, 1)
    # just under half rounds down
    assert price_micros(1, voice(29_999, 1, 1)) == (0, 1)
    assert round_half_up(5, 2) == 3 and round_half_up(-5, 2) == -3 and round_half_up(4, 3) == 1


def test_rounding_happens_once_per_record_not_per_increment() -> None:
    # 0.001 per second rounded per second would differ: 7 s at 0.1/min = 0.0116666.. -> 0.011667
    assert price_micros(7, voice(100_000_000, 1, 1))[0] == 11_667
    assert 7 * round_half_up(100_000_000, 60_000) != 11_667  # what per-increment rounding gives


def test_fee_minimum_and_zero_usage() -> None:
    row = voice(120_000_000, 60, 60, fee=50_000, minimum=200_000)
    assert price_micros(0, row) == (0, 0)  # unanswered: no fee, no minimum
    assert price_micros(1, row) == (200_000, 60)  # 0.05 + 0.12 < minimum 0.20
    assert price_micros(120, row) == (290_000, 120)
    assert str(exact_price(1, row)) == "0.200000"


def test_first_rate_and_subsequent_rate() -> None:
    # CGRateS-style: 0.2/min for the first 60 s (60 s block), then 0.1/min per second; fee 0.4
    row = voice(100_000, 60, 1, fee=400_000, first=200_000_000)
    row = Row(**{**{s: getattr(row, s) for s in row.__slots__}, "rate": 100_000_000})
    assert price_micros(130, row) == (716_667, 130)
    assert price_micros(120, row) == (700_000, 120)
    assert price_micros(30, row) == (600_000, 60)


def test_data_is_priced_per_mb_with_kb_increments() -> None:
    row = Row(service=Service.DATA, prefix="", destination="", rate=10_000_000, rate_first=10_000_000,
              inc_first=1000, inc_next=1000, rate_unit=MB_OCTETS)
    assert price_micros(MB_OCTETS, row) == (10_000, MB_OCTETS)
    assert price_micros(1, row) == (10, 1000)
    assert price_micros(1_500_001, row) == (15_010, 1_501_000)


def test_max_units_examples() -> None:
    row = voice(120_000_000, 60, 1)
    assert max_units(1_000_000, row) == 500
    assert max_units(119_999, row) == 0
    assert max_units(120_000, row) == 60
    assert max_units(1_000_000, voice(500_000_000, 60, 60)) == 120
    assert max_units(10, voice(0, 60, 60)) == UNLIMITED_UNITS
    assert max_units(10_000, voice(100, 1, 1, fee=20_000)) == 0
    assert max_units(10_000, voice(100, 1, 1, minimum=20_000)) == 0


rows = st.builds(
    voice,
    rate=st.integers(0, 10**10),
    a=st.integers(1, 120),
    b=st.integers(1, 60),
    fee=st.integers(0, 10**6),
    minimum=st.integers(0, 10**6),
    first=st.one_of(st.none(), st.integers(0, 10**10)),
)


@given(row=rows, budget=st.integers(0, 10**9))
def test_max_units_is_the_largest_affordable_boundary(row: Row, budget: int) -> None:
    units = max_units(budget, row)
    if units == 0:
        assert price_micros(1, row)[0] > budget
        return
    if units == UNLIMITED_UNITS:
        assert row.rate == 0
        return
    assert billed_units(units, row.inc_first, row.inc_next) == units  # on a boundary
    assert price_micros(units, row)[0] <= budget
    assert price_micros(units + 1, row)[0] > budget


@given(row=rows, usage=st.integers(0, 10**6), more=st.integers(0, 10**4))
def test_price_is_monotone_in_usage(row: Row, usage: int, more: int) -> None:
    assert price_micros(usage, row)[0] <= price_micros(usage + more, row)[0] or usage == 0


def test_volume_tiers() -> None:
    # 0.10/min, from 1000 min on 0.08, from 5000 min on 0.05 (tier thresholds in rate units)
    row = Row(service=Service.VOICE, prefix="", destination="", rate=100_000_000, rate_first=100_000_000,
              inc_first=60, inc_next=60, rate_unit=60,
              tiers=(Tier(after_units=60_000, rate=80_000_000), Tier(after_units=300_000, rate=50_000_000)))
    assert tiered_amount(60 * 500, row) == 50_000_000
    assert tiered_amount(60 * 2000, row) == 100_000_000 + 80_000_000
    assert tiered_amount(60 * 6000, row) == 100_000_000 + 4000 * 80_000 * 1000 // 1000 + 50_000_000
    assert tiered_amount(60 * 6000, row, ()) == 600_000_000
