"""Selection point and Python side of the compiled settlement aggregator (placeholder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charging.journal import Position
from settlement.aggregate import Aggregator


def available() -> bool:
    return False


def read_journal(directory: Path, cp: Position | None, agg: Aggregator, progress: Any) -> Position | None:
    raise NotImplementedError
