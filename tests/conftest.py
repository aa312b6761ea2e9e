"""Shared fixtures. Area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (third-party fixtures); skips the test with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party fixtures not found at {SHARED_DATA}")
    return SHARED_DATA
