"""The compiled twin (cython_ext/rating.pyx) agrees exactly with the pure reference
(charging/rating/index.py) over random decks and usages."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.rating.deckdata import DeckData
from charging.rating.index import PureDeckIndex, build_groups
from charging.rating.model import NEVER, Row, Service

ext = cython_ext.load("rating")
pytestmark = pytest.mark.skipif(ext is None, reason="compiled twin not built or ICX_NO_EXTENSIONS=1")

digits = st.text(alphabet="1234", min_size=0, max_size=5)
keys = st.one_of(digits, st.text(alphabet="ab.1é", min_size=0, max_size=4))
times = st.integers(-5, 5)

row = st.builds(
    lambda svc, prefix, origin, band, blocked, rate, first, a, b, unit, fee, minc, f, t: Row(
        service=svc, prefix=prefix, destination=prefix, rate=rate, rate_first=first, inc_first=a,
        inc_next=b, rate_unit=unit, connection_fee=fee, minimum_charge=minc,
        eff_from=-NEVER if f is None else f, eff_to=NEVER if t is None else (f or 0) + t + 1,
        origin=origin, band=band, blocked=blocked),
    st.sampled_from([Service.VOICE, Service.SMS, Service.DATA]),
    keys,
    st.one_of(st.just(""), st.text(alphabet="123", min_size=1, max_size=3)),
    st.sampled_from(["", "", "peak", "offpeak"]),
    st.booleans(),
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.integers(1, 120),
    st.integers(1, 60),
    st.sampled_from([1, 60, 1_000_000]),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.one_of(st.none(), times),
    st.one_of(st.none(), st.integers(0, 6)),
)

query = st.tuples(
    st.sampled_from([Service.VOICE, Service.SMS, Service.DATA, Service.MMS]),
    keys,
    st.one_of(st.just(""), digits),
    times,
    st.integers(-1, 3),
    st.integers(0, 10**7),
    st.integers(0, 10**9),
)


def both(rows: list[Row]) -> tuple[PureDeckIndex, object]:
    data = DeckData.from_rows(rows)
    groups = build_groups(data)
    assert ext is not None
    return PureDeckIndex(data, groups), ext.CompiledDeck(data)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(row, min_size=0, max_size=25), queries=st.lists(query, min_size=1, max_size=20))
def test_find_price_and_max_units_agree(rows: list[Row], queries: list[tuple]) -> None:  # type: ignore[type-arg]
    pure, comp = both(rows)
    for svc, key, origin, t, band, usage, budget in queries:
        i = pure.find(svc.code, key, origin, t, band)
        assert comp.find(svc.code, key, origin, t, band) == i  # type: ignore[attr-defined]
        assert comp.price(svc.code, key, t, usage, origin, band) == pure.price(svc.code, key, t, usage, origin, band)  # type: ignore[attr-defined]
        if i >= 0:
            assert comp.price_row(i, usage) == pure.price_row(i, usage)  # type: ignore[attr-defined]
            assert comp.max_units_row(i, budget) == pure.max_units_row(i, budget)  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=25), queries=st.lists(query, min_size=1, max_size=30),
       with_origin=st.booleans(), with_band=st.booleans())
def test_rate_batch_agrees(rows: list[Row], queries: list[tuple], with_origin: bool, with_band: bool) -> None:  # type: ignore[type-arg]
    pure, comp = both(rows)
    n = len(queries)
    ks = [q[1] for q in queries]
    us = array("q", [q[5] for q in queries])
    ts = array("q", [q[3] for q in queries])
    origins = [q[2] for q in queries] if with_origin else None
    bands = array("q", [q[4] for q in queries]) if with_band else None
    out = []
    for impl in (pure, comp):
        prices, found = array("q", bytes(8 * n)), array("q", bytes(8 * n))
        ok = impl.rate_batch(Service.VOICE.code, ks, us, ts, prices, found, origins, bands)  # type: ignore[attr-defined]
        out.append((ok, list(prices), list(found)))
    assert out[0] == out[1]


def test_long_keys_beyond_the_stack_buffer() -> None:
    long_prefix = "1" * 80
    pure, comp = both([Row(service=Service.VOICE, prefix=long_prefix, destination="", rate=1, rate_first=1,
                           inc_first=1, inc_next=1, rate_unit=1)])
    for key in (long_prefix + "2", long_prefix[:-1], "1" * 200):
        assert comp.find(0, key, "", 0, 0) == pure.find(0, key, "", 0, 0)  # type: ignore[attr-defined]


def test_values_beyond_the_compiled_widths_fall_back_to_pure() -> None:
    from charging.rating.engine import make_index

    data = DeckData.from_rows([Row(service=Service.VOICE, prefix="1", destination="", rate=1,
                                   rate_first=1, inc_first=2**40, inc_next=1, rate_unit=60)])
    assert isinstance(make_index(data), PureDeckIndex)
    with pytest.raises(OverflowError):
        make_index(data, compiled=True)
