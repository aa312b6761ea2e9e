"""Shared fixtures. Area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

# Real redis-server / Redis Cluster fixtures (session-scoped: one server per kind), shared by the
# charging tests and the e2e tests that serve on the Redis stores.
from tests.redis_servers import redis_cluster_nodes, redis_unix_url, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (third-party fixtures); skips the test with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party fixtures not found at {SHARED_DATA}")
    return SHARED_DATA
