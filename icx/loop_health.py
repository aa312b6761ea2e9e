"""How long the event loop stalls, and how much of that is the cyclic garbage collector.

Every answer of `icx serve` goes out from one event loop thread, so anything that holds that
thread (a big container freed at once, a collection, a fork, a burst of work) delays every
request behind it: the p99 is made of such stalls. :class:`LoopHealth` measures them for
/metrics, where the on-call engineer can see them without a profiler:

* **loop lag**: a timer due every ``interval`` (25 ms) records how late it ran. A stall at
  least ``interval`` long is always seen; a shorter one when it covers a due time.
  ``icx_event_loop_lag_seconds`` (histogram) and ``icx_event_loop_lag_seconds_max``;
  a lag over ``log_over`` (100 ms) is also logged (``event_loop_stalled``, at most every 10 s).
* **GC pauses**: ``gc.callbacks`` time every collection. ``icx_gc_collections_total`` and
  ``icx_gc_pause_seconds_total`` by generation, ``icx_gc_pause_seconds_max``.

This is how round 10 found the 25-35 ms stalls of an OrderedDict's index rebuild and of a
heap compaction (docs/diameter.md). Cost: 40 timer callbacks a second and two clock reads
per collection.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import time
from typing import Any

import structlog

from icx.prom_text import histogram_lines

log = structlog.get_logger("icx.loop")

__all__ = ["LoopHealth", "LAG_BUCKETS"]

LAG_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LOG_EVERY = 10.0  # seconds between two event_loop_stalled lines


class LoopHealth:
    """Call :meth:`start` on the running loop, :meth:`stop` before the loop closes (it also
    removes the GC callback, which is process-wide); :meth:`render` gives the Prometheus
    lines (a :class:`mediation.metrics.Metrics` collector)."""

    def __init__(self, *, interval: float = 0.025, log_over: float = 0.1) -> None:
        self.interval = interval
        self.log_over = log_over
        self.lag_counts = [0] * (len(LAG_BUCKETS) + 1)
        self.lag_sum = 0.0
        self.lag_max = 0.0
        self.gc_collections = [0, 0, 0]
        self.gc_seconds = [0.0, 0.0, 0.0]
        self.gc_max = 0.0
        self._gc_t0 = 0.0
        self._due = 0.0
        self._logged = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start both measurements on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self.interval
        self._timer = self._loop.call_at(self._due, self._tick)
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        lag = max(0.0, now - self._due)
        self.lag_counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        self.lag_sum += lag
        if lag > self.lag_max:
            self.lag_max = lag
        if lag > self.log_over and now - self._logged >= LOG_EVERY:
            self._logged = now
            log.warning("event_loop_stalled", lag_ms=round(lag * 1e3, 1),
                        hint="see icx_event_loop_lag_seconds and icx_gc_pause_seconds_total")
        # the next due time keeps the grid; after a stall longer than one interval it
        # restarts from now (the missed ticks would only count the same stall again)
        self._due = max(self._due + self.interval, now)
        self._timer = loop.call_at(self._due, self._tick)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_t0
        gen = min(int(info.get("generation", 2)), 2)
        self.gc_collections[gen] += 1
        self.gc_seconds[gen] += took
        if took > self.gc_max:
            self.gc_max = took

    def render(self) -> list[str]:
        """Prometheus text lines (format 0.0.4) for everything measured."""
        out = histogram_lines("icx_event_loop_lag_seconds",
                              "How late the event loop ran a timer due every 25 ms (its "
                              "stalls).", LAG_BUCKETS, self.lag_counts, self.lag_sum)
        out += ["# HELP icx_event_loop_lag_seconds_max The longest event loop lag since start.",
                "# TYPE icx_event_loop_lag_seconds_max gauge",
                f"icx_event_loop_lag_seconds_max {self.lag_max:.6f}",
                "# HELP icx_gc_collections_total Cyclic garbage collections, by generation.",
                "# TYPE icx_gc_collections_total counter"]
        out += [f'icx_gc_collections_total{{generation="{g}"}} {n}'
                for g, n in enumerate(self.gc_collections)]
        out += ["# HELP icx_gc_pause_seconds_total Time the cyclic garbage collector held "
                "the process, by generation.",
                "# TYPE icx_gc_pause_seconds_total counter"]
        out += [f'icx_gc_pause_seconds_total{{generation="{g}"}} {s:.6f}'
                for g, s in enumerate(self.gc_seconds)]
        out += ["# HELP icx_gc_pause_seconds_max The longest garbage collection since start.",
                "# TYPE icx_gc_pause_seconds_max gauge",
                f"icx_gc_pause_seconds_max {self.gc_max:.6f}"]
        return out
