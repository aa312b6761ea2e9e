"""Origin-Host + End-to-End-Id duplicate cache: hit, pending, expiry, bounded size."""

from __future__ import annotations

from diameter.duplicates import DuplicateCache, Lookup


def test_miss_pending_hit() -> None:
    cache = DuplicateCache(lifetime=240.0)
    k = cache.key("Client.Example", 7)
    assert cache.lookup(k, 0.0) is Lookup.MISS
    cache.begin(k, 0.0)
    assert cache.lookup(cache.key("client.example", 7), 1.0) is Lookup.PENDING
    cache.complete(k, b"answer")
    assert cache.lookup(k, 2.0) == b"answer"


def test_entries_expire_after_lifetime() -> None:
    cache = DuplicateCache(lifetime=10.0)
    k = cache.key("c", 1)
    cache.begin(k, 0.0)
    cache.complete(k, b"a")
    assert cache.lookup(k, 9.0) == b"a"
    assert cache.lookup(k, 10.5) is Lookup.MISS
    assert len(cache) == 0


def test_size_is_bounded_oldest_first() -> None:
    cache = DuplicateCache(lifetime=1000.0, max_entries=3)
    for e2e in range(5):
        cache.begin(cache.key("c", e2e), float(e2e))
    assert len(cache) == 3
    assert cache.lookup(cache.key("c", 0), 5.0) is Lookup.MISS
    assert cache.lookup(cache.key("c", 4), 5.0) is Lookup.PENDING


def test_abandon_forgets_unanswered_only() -> None:
    cache = DuplicateCache()
    a, b = cache.key("c", 1), cache.key("c", 2)
    cache.begin(a, 0.0)
    cache.begin(b, 0.0)
    cache.complete(b, b"x")
    cache.abandon(a)
    cache.abandon(b)
    assert cache.lookup(a, 1.0) is Lookup.MISS
    assert cache.lookup(b, 1.0) == b"x"


def test_zero_lifetime_disables() -> None:
    cache = DuplicateCache(lifetime=0.0)
    k = cache.key("c", 1)
    cache.begin(k, 0.0)
    assert cache.lookup(k, 0.0) is Lookup.MISS
