"""How long the journal's group commits take on the disk: a histogram for ``/metrics``.

Every answer waits for its group's ``pwrite`` + ``fdatasync`` (invariant 3), so a slow disk
shows in the answers' latency tail; this is the figure that tells an engineer on call whether
it does. One observation per group commit (not per record): write start to sync end, as the
writer thread measured it (cython_ext/journal_io.pyx ``Job.t_start``/``t_end``, or the Python
writer thread's clock), so the time the group waited for its turn is not in it.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["SYNC_BUCKETS", "SyncStats"]

# seconds; an fdatasync on a local SSD takes ~0.1-1 ms, on this VM's disk 0.3-5 ms, more when
# another writer shares the disk
SYNC_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25, 1.0)


class SyncStats:
    """Counts of group commits by duration (Prometheus ``le`` buckets), their sum and max.

    The journal calls :meth:`observe` on the event loop once per completed group; the admin
    server's ``/metrics`` renders it (icx/prom_text.py ``journal_sync_lines``)."""

    __slots__ = ("counts", "total", "max")

    def __init__(self) -> None:
        self.counts = [0] * (len(SYNC_BUCKETS) + 1)  # the last one: over the largest bound
        self.total = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        """Count one group commit that took *seconds* (a negative or zero time counts as 0)."""
        if seconds < 0.0:
            seconds = 0.0
        self.counts[bisect_left(SYNC_BUCKETS, seconds)] += 1  # le: value <= bound
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    @property
    def count(self) -> int:
        return sum(self.counts)
