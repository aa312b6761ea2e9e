"""The contract-suite harness: one ``harness`` fixture parametrized over every store.

A test writes ``async def body(store): ...`` and calls ``harness.run(body)``: the harness makes a
fresh event loop, a store of its kind with empty state (Redis and the cluster are flushed), runs
the body and closes the store. The Redis fixtures (real servers) are in tests/redis_servers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from charging.store.base import BalanceStore
from charging.store.memory import MemoryStore

KINDS = ["embedded", "redis", "cluster", "redis-unix"]


class Harness:
    """Runs an async test body against a fresh store of one kind."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.url: str | None = None
        self.nodes: list[tuple[str, int]] | None = None
        if kind == "redis":
            self.url = request.getfixturevalue("redis_url")
        elif kind == "redis-unix":  # the Batcher path (TLS URLs take it too)
            self.url = request.getfixturevalue("redis_unix_url")
        elif kind == "cluster":
            self.nodes = request.getfixturevalue("redis_cluster_nodes")

    async def make(self) -> Any:
        if self.kind == "embedded":
            return MemoryStore()
        from charging.store.redis_store import RedisStore

        if self.kind in ("redis", "redis-unix"):
            assert self.url is not None
            store = RedisStore.from_url(self.url)
        else:
            assert self.nodes is not None
            store = RedisStore.from_cluster(self.nodes)
        await store.flush_all_for_tests()
        return store

    def run(self, body: Callable[[Any], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            store = await self.make()
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return Harness(request.param, request)


@pytest.fixture(params=["redis", "cluster", "redis-unix"])
def rh(request: pytest.FixtureRequest) -> Harness:
    """A harness over the Redis kinds only (standalone server, cluster)."""
    return Harness(request.param, request)


@pytest.fixture
def embedded_only(harness: Harness) -> Harness:
    if harness.kind != "embedded":
        pytest.skip("embedded store only")
    return harness


_: type[BalanceStore] | None = None  # the Protocol the suite checks
