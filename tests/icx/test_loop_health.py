"""icx/loop_health.py: event loop stalls and GC pauses, measured on a real loop, and their
/metrics lines."""

from __future__ import annotations

import asyncio
import gc
import time

from icx.loop_health import LAG_BUCKETS, LoopHealth
from mediation.metrics import Metrics


def _sample(lines: list[str], name: str) -> float:
    return float(next(line for line in lines if line.startswith(name + " ")).split()[-1])


def test_a_blocked_loop_shows_as_lag_and_is_exposed() -> None:
    async def main() -> LoopHealth:
        health = LoopHealth(interval=0.01, log_over=0.05)
        health.start()
        try:
            await asyncio.sleep(0.05)  # on time: small lags only
            before = health.lag_max
            time.sleep(0.12)  # the loop's thread is held: the next tick runs ~0.11 s late
            await asyncio.sleep(0.05)
            assert before < 0.05
        finally:
            health.stop()
        return health

    health = asyncio.run(main())
    assert 0.1 <= health.lag_max < 1.0
    assert health.lag_counts[LAG_BUCKETS.index(0.25)] >= 1  # the 0.1-0.25 s bucket
    assert sum(health.lag_counts) >= 5
    metrics = Metrics()
    metrics.collector(health.render)
    lines = metrics.render().splitlines()
    assert 'icx_event_loop_lag_seconds_bucket{le="0.1"} ' + str(
        sum(health.lag_counts[:LAG_BUCKETS.index(0.1) + 1])) in lines
    assert _sample(lines, 'icx_event_loop_lag_seconds_bucket{le="+Inf"}') == sum(
        health.lag_counts)
    assert _sample(lines, "icx_event_loop_lag_seconds_max") == round(health.lag_max, 6)
    assert "# TYPE icx_event_loop_lag_seconds histogram" in lines


def test_gc_pauses_are_counted_by_generation_until_stopped() -> None:
    async def main() -> LoopHealth:
        health = LoopHealth()
        gc.disable()  # only the collections below (explicit ones still run the callbacks)
        try:
            health.start()
            junk = [[i] for i in range(50_000)]  # something for the collector to walk
            gc.collect(1)
            gc.collect(2)
            health.stop()
            gc.collect(2)  # after stop(): not counted, and the callback is gone
            del junk
        finally:
            gc.enable()
        return health

    health = asyncio.run(main())
    assert health.gc_collections == [0, 1, 1]
    assert health.gc_seconds[2] > 0 and health.gc_max >= health.gc_seconds[2]
    assert all(cb.__self__ is not health for cb in gc.callbacks
               if hasattr(cb, "__self__"))
    lines = health.render()
    assert _sample(lines, 'icx_gc_collections_total{generation="2"}') == 1
    assert _sample(lines, 'icx_gc_pause_seconds_total{generation="2"}') == round(
        health.gc_seconds[2], 6)


def test_a_broken_collector_does_not_break_the_scrape() -> None:
    metrics = Metrics()
    metrics.gauge("icx_up", "Up.", lambda: 1.0)

    def broken() -> list[str]:
        raise RuntimeError("boom")

    metrics.collector(broken)
    metrics.collector(lambda: ["icx_extra 2"])
    text = metrics.render()
    assert "icx_up 1.0" in text and "icx_extra 2" in text
