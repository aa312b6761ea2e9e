"""RatingEngine.price_plan (the charging fast path's per-grant tariff row): for every usage
``index.price_row(row, usage)[0]`` equals ``price(...)``, on both raters, plain and banded
decks; None where the shortcut does not apply (split band pricing, no tariff, closed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from charging.rating import NoTariff, RatingEngine, Service
from tests.charging.rating.conftest import IMPLS
from tests.charging.rating.test_engine import ROOT, at, banded

DESTS = ["41791234567", "447700900123", "33612345678", "0041791234567", "4915112345678",
         "internet", ""]


def _check(e: RatingEngine, deck: str, service: Service, dest: str, t: float,
           usages: list[int], origin: str = "") -> None:
    try:
        plan = e.price_plan(deck, service, dest, t, origin)
    except NoTariff:
        plan = None
    if plan is None:
        return
    d, index, row = plan
    assert e._latest.get(deck) is d
    for u in usages:
        assert index.price_row(row, u)[0] == e.price(deck, service, dest, t, u, origin)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(DESTS), st.sampled_from(list(Service)),
       st.lists(st.integers(1, 2**36), min_size=1, max_size=6),
       st.integers(0, 3 * 365 * 86400))
def test_price_plan_prices_as_price(dest: str, service: Service,
                                    usages: list[int], dt: int) -> None:
    import tempfile

    for compiled in (impl == "compiled" for impl in IMPLS):
        with tempfile.TemporaryDirectory() as tmp:
            e = RatingEngine.open(Path(tmp) / "data", compiled=compiled)
            e.ensure_imported(str(ROOT / "config/decks/retail.csv"), deck="retail")
            _check(e, "retail", service, dest, 1_700_000_000.0 + dt, usages,
                   origin="41790000001")


def test_price_plan_banded_and_split(tmp_path: Path, deck_csv: Callable[..., str],
                                     compiled: bool) -> None:
    e = banded(tmp_path / "start", deck_csv, compiled, "start")
    for t in (at(2026, 3, 27, 7, 30), at(2026, 3, 27, 19), at(2026, 3, 29, 12)):
        plan = e.price_plan("d", Service.VOICE, "4179", t)
        assert plan is not None
        _check(e, "d", Service.VOICE, "4179", t, [1, 59, 60, 61, 3600])
    assert e.price_plan("d", Service.VOICE, "33", at(2026, 3, 27, 12)) is None  # no tariff
    split = banded(tmp_path / "split", deck_csv, compiled, "split")
    assert split.price_plan("d", Service.VOICE, "4179", at(2026, 3, 27, 18, 59)) is None
