"""Shared bits of the store benchmarks (benchmarks/stores.py)."""

from __future__ import annotations

import asyncio
from typing import Any

NOW = 1_800_000_000.0


def _loop_runner() -> tuple[str, Any]:
    try:
        import uvloop

        return "uvloop", uvloop.run
    except ImportError:  # pragma: no cover
        return "asyncio", asyncio.run
