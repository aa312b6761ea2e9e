"""Fixtures of the settlement tests: the demo partners file and small record builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from settlement.config import SettlementConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "partners.toml"

# 2026-11-10 12:00:00 UTC in epoch microseconds
T0 = 1_794_312_000_000_000


@pytest.fixture(scope="session")
def cfg() -> SettlementConfig:
    return load_config(DEMO)


def rec(**kw: Any) -> dict[str, Any]:
    """A minimal rated record (schema v1) with overridable fields."""
    base: dict[str, Any] = {
        "v": 1, "type": "rated", "id": f"r-{kw.get('n', 0)}", "ts": T0, "start": T0,
        "service": "voice", "usage": 60, "unit": "s", "a": "+33611111111", "b": "+447700900000",
        "partner": "orange-fr", "direction": "sell", "deck": "sell-eu", "deck_version": "v1",
        "destination": "UK Mobile", "price": "0.0098", "currency": "EUR",
        "balance_effects": [], "holds": [],
    }
    kw.pop("n", None)
    base.update(kw)
    return base
