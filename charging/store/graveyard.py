"""Free big containers a slice at a time instead of all at once.

Dropping the last reference to a list or dict of N entries frees all N on the spot: CPython
has no incremental deallocation. In the embedded store two such drops happen while serving:

* the expiry heap's compaction replaces a list of 100k+ stale ``(expiry, account, balance,
  reservation)`` tuples (measured: a 25-35 ms stall of the event loop at 10k CCR/s, every
  few seconds -- the paced benchmark's p99);
* an idempotency epoch's end drops every account's previous op-key dict (at 10k CCR/s and
  ``session_retention = 300`` some 4.5 million entries, most of a second of frees).

A :class:`Graveyard` takes such containers (:meth:`bury`) and frees them later in bounded
slices (:meth:`reclaim`), which the ledger calls every few milliseconds from the event loop
(charging/ledger/core.py). Memory stays bounded without a caller too: past ``limit``
pending entries :meth:`bury` frees the oldest at once, so a store used without a ledger
(replay, tests, tools) behaves as if it had none.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Graveyard"]

# Pending entries past which bury() frees synchronously (about 0.5 GB of cache entries).
DEFAULT_LIMIT = 5_000_000


class Graveyard:
    """Containers waiting to be freed. Not thread-safe: use from the store's thread."""

    __slots__ = ("_items", "pending", "limit")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._items: list[Any] = []
        self.pending = 0  # entries still held (an approximation for dicts being emptied)
        self.limit = limit

    def __bool__(self) -> bool:
        return bool(self._items)

    def bury(self, obj: list[Any] | dict[Any, Any]) -> None:
        """Take *obj* (a list or dict nobody else references any more) and free it later.
        Empty or small containers are cheap to free at once and are not kept."""
        n = len(obj)
        if n < 256:
            return  # the caller's reference goes away: freed now, in microseconds
        self._items.append(obj)
        self.pending += n
        if self.pending > self.limit:
            self.reclaim(self.pending - self.limit)

    def reclaim(self, budget: int) -> int:
        """Free up to *budget* entries, oldest container first; return how many were freed.
        About 0.1-0.2 us per entry: a budget of 5,000 costs well under a millisecond."""
        items = self._items
        freed = 0
        while items and freed < budget:
            obj = items[0]
            room = budget - freed
            n = len(obj)
            if n <= room:
                del items[0]  # the last reference: its remaining entries are freed here
                freed += n
            elif type(obj) is list:
                del obj[n - room:]
                freed += room
            else:
                popitem = obj.popitem
                for _ in range(room):
                    popitem()
                freed += room
        self.pending = max(0, self.pending - freed)
        return freed

    def reclaim_all(self) -> int:
        """Free everything now (shutdown, or a caller that does not mind the pause)."""
        freed = sum(len(o) for o in self._items)
        self._items.clear()
        self.pending = 0
        return freed
