"""open_store() and the [store] settings section."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from charging.store import open_store
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore
from icx.config_loader import ConfigError
from icx.settings import load_settings


def _cfg(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "icx.toml"
    p.write_text(body)
    return p


def _config_error(tmp_path: Path, body: str) -> str:
    """The ConfigError text of loading *body* (it must fail)."""
    with pytest.raises(ConfigError) as err:
        load_settings(_cfg(tmp_path, body))
    return str(err.value)


def test_store_section_defaults_and_errors(tmp_path: Path) -> None:
    s = load_settings(_cfg(tmp_path, "[store]\n"))
    assert s.store.backend == "embedded" and s.store.idempotency_retention >= 86400
    assert "store.idempotency_retention" in _config_error(
        tmp_path, '[store]\nbackend = "redis-cluster"\nidempotency_retention = 60\n')
    # the embedded store may forget keys after 10 minutes; the Redis stores need a day
    # (recovery journals the ops Redis applied before a crash from their kept results)
    assert load_settings(_cfg(tmp_path, "[store]\nidempotency_retention = 600\n")
                         ).store.idempotency_retention == 600
    assert "store.idempotency_retention" in _config_error(
        tmp_path, "[store]\nidempotency_retention = 599\n")
    text = _config_error(tmp_path, '[store]\nbackend = "redis"\nidempotency_retention = 3600\n')
    assert "store.idempotency_retention" in text and "86400" in text
    assert "store.cluster_nodes" in _config_error(tmp_path, '[store]\nbackend = "redis-cluster"\n')
    assert "store.cluster_nodes[0]" in _config_error(
        tmp_path, '[store]\nbackend = "redis-cluster"\ncluster_nodes = ["localhost"]\n')
    with pytest.raises(ConfigError):
        load_settings(_cfg(tmp_path, '[store]\nbackend = "memcached"\n'))


def test_session_retention_setting_reaches_the_served_store(tmp_path: Path) -> None:
    from icx.charging_app import open_store as serve_store

    assert load_settings(_cfg(tmp_path, "[store]\n")).store.session_retention == 300
    text = _config_error(tmp_path, "[store]\nidempotency_retention = 600\n"
                                   "session_retention = 900\n")
    assert "store.session_retention" in text and "idempotency_retention" in text
    assert "store.session_retention" in _config_error(tmp_path,
                                                      "[store]\nsession_retention = 59\n")
    s = load_settings(_cfg(tmp_path, "[store]\nidempotency_retention = 3600\n"
                                     "session_retention = 120\n"))
    store = asyncio.run(serve_store(s, tmp_path))
    assert isinstance(store, MemoryStore)
    assert (store.retention, store.session_retention) == (3600, 120)


def test_open_store_embedded() -> None:
    assert isinstance(open_store("embedded"), MemoryStore)
    with pytest.raises(ValueError):
        open_store("nope")


def test_open_store_redis(redis_url: str) -> None:
    async def body() -> Any:
        store = open_store("redis", redis_url=redis_url)
        try:
            await store.flush_all_for_tests()
            await store.create_account("o", AccountKind.PREPAID_SUBSCRIBER,
                                       [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 5)])
            return (await store.get("o")).balances[0].amount
        finally:
            await store.close()

    assert asyncio.run(body()) == 5


def test_open_store_cluster(redis_cluster_nodes: list[tuple[str, int]]) -> None:
    async def body() -> Any:
        nodes = [f"{h}:{p}" for h, p in redis_cluster_nodes]
        store = open_store("redis-cluster", cluster_nodes=nodes)
        try:
            await store.flush_all_for_tests()
            await store.create_account("o", AccountKind.PREPAID_SUBSCRIBER,
                                       [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 7)])
            return (await store.get("o")).balances[0].amount
        finally:
            await store.close()

    assert asyncio.run(body()) == 7
