"""The compiled rater is exact for absurd rates and usages (cython_ext/rating.pyx ``_price``):
a product beyond 64 bits is priced in Python integers, never truncated, and ``rate_batch``
raises OverflowError exactly when the pure twin's ``array("q")`` does."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.rating.deckdata import DeckData
from charging.rating.index import PureDeckIndex, build_groups
from charging.rating.model import Row, Service
from charging.rating.price import price_micros

ext = cython_ext.load("rating")
pytestmark = pytest.mark.skipif(ext is None, reason="compiled twin not built or ICX_NO_EXTENSIONS=1")

I64 = 2**63 - 1
BIG = st.one_of(st.integers(0, I64), st.integers(2**40, 2**45), st.sampled_from([0, 1, I64]))


def _row(rate: int, first: int, a: int, b: int, unit: int, fee: int, minc: int) -> Row:
    return Row(service=Service.VOICE, prefix="4", destination="x", rate=rate, rate_first=first,
               inc_first=a, inc_next=b, rate_unit=unit, connection_fee=fee, minimum_charge=minc)


def _both(rows: list[Row]) -> tuple[PureDeckIndex, object]:
    data = DeckData.from_rows(rows)
    assert ext is not None
    return PureDeckIndex(data, build_groups(data)), ext.CompiledDeck(data)


def test_a_rate_of_1000_per_second_is_not_truncated() -> None:
    # 1000.00 EUR per second (10**12 nano-units per unit) for 2**35 s: 3.4e19 micro-units,
    # beyond 2**63. The 128-bit branch cast this to int64 (a wrapped, wrong price).
    row = _row(10**12, 10**12, 1, 1, 1, 0, 0)
    pure, comp = _both([row])
    usage = 2**35
    exact = 1000 * 10**6 * usage
    assert price_micros(usage, row) == (exact, usage)
    assert comp.price_row(0, usage) == pure.price_row(0, usage) == (exact, usage)  # type: ignore[attr-defined]
    assert comp.price(0, "41", 0, usage) == exact  # type: ignore[attr-defined]
    prices, rows = array("q", [0]), array("q", [0])
    with pytest.raises(OverflowError):
        comp.rate_batch(0, ["41"], array("q", [usage]), array("q", [0]), prices, rows)  # type: ignore[attr-defined]
    with pytest.raises(OverflowError):
        pure.rate_batch(0, ["41"], array("q", [usage]), array("q", [0]), prices, rows)


def test_a_price_just_inside_64_bits_is_exact_in_both() -> None:
    # 200 EUR per second for 2**35 s = 6.87e18 micro-units (< 2**63): an int64 result that
    # the 64-bit fast path cannot compute (the rate is above 2**30 nano-units)
    row = _row(200 * 10**9, 200 * 10**9, 1, 1, 1, 7, 0)
    pure, comp = _both([row])
    usage = 2**35
    want = 200 * 10**6 * usage + 7
    prices = []
    for impl in (pure, comp):
        p, r = array("q", [0]), array("q", [0])
        assert impl.rate_batch(0, ["4"], array("q", [usage]), array("q", [0]), p, r) == 1  # type: ignore[attr-defined]
        prices.append(p[0])
    assert prices == [want, want]


def test_engine_prices_an_absurd_rate_exactly_with_the_compiled_index(tmp_path: Path) -> None:
    from charging.rating import RatingEngine

    deck = tmp_path / "d.csv"
    deck.write_text("prefix,rate,billing\n41,60000,1/1\n")  # 60000 EUR/min = 1000 EUR/s
    engine = RatingEngine.open(tmp_path / "data", compiled=True)
    engine.import_csv(str(deck), deck="d")
    usage = 2**34  # below EXACT_C_USAGE: the compiled index prices it
    want = 1000 * 10**6 * usage  # 1.7e19 micro-units > 2**63
    assert engine.price("d", Service.VOICE, "4179", 0, usage) == want
    assert engine.rate(deck="d", service=Service.VOICE, destination="4179", at=0,
                       usage=usage).price == want


@settings(max_examples=150, deadline=None)
@given(rate=BIG, first=BIG, a=st.integers(1, 2**31 - 1), b=st.integers(1, 2**31 - 1),
       unit=st.sampled_from([1, 60, 1_000_000, 2**31 - 1]), fee=BIG, minc=BIG,
       usages=st.lists(st.one_of(st.integers(-2, 2**40), BIG), min_size=1, max_size=8))
def test_huge_rates_and_usages_agree_with_the_pure_reference(
        rate: int, first: int, a: int, b: int, unit: int, fee: int, minc: int,
        usages: list[int]) -> None:
    row = _row(rate, first, a, b, unit, fee, minc)
    pure, comp = _both([row])
    for u in usages:
        want = pure.price_row(0, u)
        assert want == price_micros(u, row)
        assert comp.price_row(0, u) == want  # type: ignore[attr-defined]
        assert comp.price(0, "4", 0, u) == want[0]  # type: ignore[attr-defined]
    got = []
    for impl in (pure, comp):
        n = len(usages)
        p, r = array("q", bytes(8 * n)), array("q", bytes(8 * n))
        try:
            ok = impl.rate_batch(0, ["4"] * n, array("q", usages), array("q", [0] * n), p, r)  # type: ignore[attr-defined]
            got.append((ok, list(p), list(r)))
        except OverflowError:
            got.append("overflow")
    assert got[0] == got[1]
