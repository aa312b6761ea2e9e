"""max_units honours band_mode=split: the budget buys each second at its own band's rate, as
price() charges it (it used to answer from the start band alone)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from charging.rating.model import Service
from tests.charging.rating.test_engine import at, banded


def test_split_max_units_follows_the_band_change(tmp_path: Path, deck_csv: Callable[..., str],
                                                 compiled: bool) -> None:
    e = banded(tmp_path, deck_csv, compiled, "split")
    t = at(2026, 3, 27, 18, 59)  # Fri 18:59 Zurich: 60 s of peak (0.60/min), then offpeak 0.30
    n = e.max_units(deck="d", service=Service.VOICE, destination="4179", at=t, budget=900_000)
    assert n == 120  # 60 s peak (0.60) + 60 s offpeak (0.30); the start band alone gives 90
    assert e.price("d", Service.VOICE, "4179", t, n) <= 900_000
    assert e.price("d", Service.VOICE, "4179", t, n + 1) > 900_000
    for budget in (0, 9_999, 10_000, 599_999, 600_000, 600_001, 1_234_567):
        m = e.max_units(deck="d", service=Service.VOICE, destination="4179", at=t,
                        budget=budget)
        assert m == 0 or e.price("d", Service.VOICE, "4179", t, m) <= budget
        assert e.price("d", Service.VOICE, "4179", t, m + 1) > budget
    # within one band split and start agree
    start = banded(tmp_path / "s", deck_csv, compiled, "start")
    mid = at(2026, 3, 27, 10)
    assert (e.max_units(deck="d", service=Service.VOICE, destination="4179", at=mid,
                        budget=900_000)
            == start.max_units(deck="d", service=Service.VOICE, destination="4179", at=mid,
                               budget=900_000) == 90)
