"""How long the embedded store's expiry-heap compaction stops the event loop.

The heap keeps a stale entry for every hold committed or released before its TTL; once they
dominate, ``MemoryStore.compact_expiry_heap`` drops them a slice per loop turn. Ours: that,
timed as the longest gap between two loop turns while it runs. Baseline, same run, same heap:
the one-go rebuild it replaced (every open hold's entry rebuilt from the accounts, then
``heapify``), timed whole. ``--holds`` open holds over 999 accounts, ``--stale`` stale
entries; GC thresholds as `icx serve` sets them. Prints one JSON line; value = our longest
gap in ms (median of ``--reps``).

    .venv/bin/python -m benchmarks.expiry_heap [--holds 41000] [--stale 230000] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import json
import statistics
import time
from typing import Any

from charging.store.base import AccountKind, BalanceKind, BalanceSpec, to_us
from charging.store.memory import COMPACT_SLICE, MemoryStore
from icx.charging_app import GC_THRESHOLDS

NOW = 1_800_000_000.0
EUR = BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**12, 0)


async def _store(holds: int) -> MemoryStore:
    s = MemoryStore()
    for a in range(999):
        await s.create_account(f"a{a}", AccountKind.PREPAID_SUBSCRIBER, [EUR])
    for i in range(holds):
        ok = await s.reserve(f"k{i}", f"a{i % 999}", "EUR", f"r{i}", 1, ttl=300,
                             now=NOW + i * 0.001)
        assert ok.ok
    return s


def _stale(s: MemoryStore, n: int) -> None:
    s._heap.extend((to_us(NOW + 500 + i), "a1", "EUR", f"gone{i}") for i in range(n))


def _rebuild_in_one_go(s: MemoryStore) -> None:
    """The compaction before round 13 (charging/store/memory.py ``_compact_heap``)."""
    s._heap = [(r[1], a.id, b.id, rid) for a in s._accounts.values()
               for b in a.balances.values() for rid, r in b.res.items()]
    heapq.heapify(s._heap)


async def _sliced(s: MemoryStore) -> tuple[float, float, int]:
    task = asyncio.create_task(s.compact_expiry_heap())
    gaps: list[float] = []
    t0 = last = time.perf_counter()
    while not task.done():
        await asyncio.sleep(0)
        t = time.perf_counter()
        gaps.append((t - last) * 1000)
        last = t
    assert task.result() > 0, "nothing was compacted"
    return max(gaps), (time.perf_counter() - t0) * 1000, len(gaps)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    s = await _store(args.holds)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    ours: list[float] = []
    totals: list[float] = []
    turns = 0
    base: list[float] = []
    for _ in range(args.reps):
        _stale(s, args.stale)
        t = time.perf_counter()
        _rebuild_in_one_go(s)
        base.append((time.perf_counter() - t) * 1000)
        assert len(s._heap) == args.holds
        _stale(s, args.stale)
        gap, total, turns = await _sliced(s)
        assert len(s._heap) == args.holds
        ours.append(gap)
        totals.append(total)
    value = statistics.median(ours)
    baseline = statistics.median(base)
    return {"bench": "expiry_heap", "unit": "ms longest loop stall", "value": round(value, 2),
            "baseline": {"name": "one-go rebuild + heapify (before round 13)",
                         "value": round(baseline, 2)},
            "ratio": round(baseline / value, 1) if value else None,
            "ours_total_ms": round(statistics.median(totals), 1), "ours_loop_turns": turns,
            "slice": COMPACT_SLICE, "holds": args.holds, "stale": args.stale,
            "reps": args.reps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holds", type=int, default=41_000)
    ap.add_argument("--stale", type=int, default=230_000)
    ap.add_argument("--reps", type=int, default=5)
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()
