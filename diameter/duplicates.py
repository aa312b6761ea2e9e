"""Duplicate request detection: Origin-Host + End-to-End-Id (RFC 6733 §6.2, §5.5.4; facts A9).

A request whose (Origin-Host, End-to-End-Id) was seen within the cache window is a duplicate,
whether or not it carries the T flag, and whichever copy arrived first: the key ignores the T
flag so the search goes "both ways" in time. A duplicate must get the *same* answer as the
original and must not change state, so the application handler is not invoked again:

- :meth:`DuplicateCache.lookup` -> ``MISS`` (new request: call :meth:`begin`, process it),
  ``PENDING`` (the original is still being processed: drop this copy, the original's answer
  will reach the client), or the stored answer bytes (re-send them with the new Hop-by-Hop).
- :meth:`complete` stores the encoded answer once it is sent.

The cache is bounded in size (oldest entries are evicted first) and in time (entries older than
*lifetime* seconds are forgotten). One cache may be shared by every connection of a server so a
retransmission that arrives over another peer connection after failover is caught too.
"""

from __future__ import annotations

import enum
from collections import deque


class Lookup(enum.Enum):
    MISS = "miss"
    PENDING = "pending"


DupKey = tuple[str, int]
# Module constants: Lookup.MISS goes through EnumType's attribute hook (~850 instructions
# per access on the per-request path); a global load does not.
_MISS, _PENDING = Lookup.MISS, Lookup.PENDING


class DuplicateCache:
    """A bounded (size and time) map (Origin-Host, End-to-End-Id) -> answer bytes."""

    __slots__ = ("lifetime", "max_entries", "_entries", "_order", "_oldest")

    def __init__(self, lifetime: float = 240.0, max_entries: int = 100_000) -> None:
        """*lifetime* seconds (RFC 6733 §6.2: End-to-End-Ids are unique for >= 4 minutes)."""
        self.lifetime = lifetime
        self.max_entries = max_entries
        # insertion order == time order, so expiry only ever looks at the head. A plain dict
        # plus a deque of its keys in the same order, not an OrderedDict: the OrderedDict
        # rebuilds its node index whenever its dict resizes, one hash lookup per entry --
        # 25-35 ms of event loop stall at 100k entries every few seconds at 10k CCR/s. A
        # dict's own resize only moves entries (well under a millisecond). Invariant:
        # list(_order) == list(_entries) (the compiled lane, cython_ext/ro_lane.pyx, keeps it).
        self._entries: dict[DupKey, tuple[float, bytes | None]] = {}
        self._order: deque[DupKey] = deque()
        # At most the time of the head entry (the only one expiry looks at): while
        # ``now - lifetime`` is below it nothing is due, and lookup() skips the head
        # inspection (the per-request cost). Whatever changes the head other than the expiry
        # walk sets it to the new head's time or -inf (the next lookup walks and resets it):
        # times are arguments and need not grow, so a new head may be older than the last.
        self._oldest = float("inf")

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(origin_host: str, end_to_end: int) -> DupKey:
        """Origin-Host compares ignoring ASCII case (DiameterIdentity is an FQDN)."""
        return (origin_host.lower(), end_to_end)

    def _expire(self, now: float) -> None:
        limit = now - self.lifetime
        if limit < self._oldest:
            return
        entries, order = self._entries, self._order
        while order:
            k = order[0]
            t = entries[k][0]
            if t > limit:
                self._oldest = t
                return
            order.popleft()
            del entries[k]
        self._oldest = float("inf")

    def lookup(self, key: DupKey, now: float) -> Lookup | bytes:
        """MISS, PENDING, or the stored encoded answer for *key*."""
        if now - self.lifetime >= self._oldest:
            self._expire(now)
        hit = self._entries.get(key)
        if hit is None:
            return _MISS
        answer = hit[1]
        return _PENDING if answer is None else answer

    def claim(self, key: DupKey, now: float) -> Lookup | bytes:
        """:meth:`lookup`, and on a MISS also :meth:`begin` (one call on the hot path). A
        caller that then refuses the request (3004) must :meth:`abandon` the key."""
        if now - self.lifetime >= self._oldest:
            self._expire(now)
        entries = self._entries
        hit = entries.get(key)
        if hit is not None:
            answer = hit[1]
            return _PENDING if answer is None else answer
        if self.lifetime > 0:
            entries[key] = (now, None)  # a new key goes to the end: no move_to_end needed
            self._order.append(key)
            if now < self._oldest:
                self._oldest = now
            if len(entries) > self.max_entries:
                self._evict()
        return _MISS

    def _evict(self) -> None:
        entries, order = self._entries, self._order
        while len(entries) > self.max_entries:
            del entries[order.popleft()]
        self._oldest = entries[order[0]][0] if order else float("inf")

    def begin(self, key: DupKey, now: float) -> None:
        """Mark *key* as being processed (call after a MISS, before invoking the handler)."""
        if self.lifetime <= 0:
            return
        entries, order = self._entries, self._order
        moved = key in entries  # it may have been the head
        if moved:  # rare (begin() follows a MISS): O(n) to keep the order exact
            del entries[key]
            order.remove(key)
        entries[key] = (now, None)
        order.append(key)
        if moved:
            self._oldest = float("-inf")
        elif now < self._oldest:
            self._oldest = now
        if len(entries) > self.max_entries:
            self._evict()

    def complete(self, key: DupKey, answer: bytes) -> None:
        """Store the encoded *answer* for *key* (no-op if the entry was evicted meanwhile)."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries[key] = (hit[0], answer)

    def abandon(self, key: DupKey) -> None:
        """Forget *key* (the request was never answered, e.g. the connection dropped)."""
        hit = self._entries.get(key)
        if hit is not None and hit[1] is None:
            del self._entries[key]
            self._order.remove(key)  # rare (a refused or dropped request): O(n)
            self._oldest = float("-inf")  # it may have been the head
