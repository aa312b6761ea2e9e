"""Embedded-store half of benchmarks/stores.py (reserve+commit pairs/s in-process).

Instructions per awaited pair (what the store's commits quote; CPU-noise free): run this
module as the callgrind driver -- it times nothing, it awaits *pairs* reserve+commit pairs
exactly as ``_embedded_once`` does, inside one asyncio task step -- with collection limited
to that task step, once with N pairs and once with 0, and divide the difference by N::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=task_step_impl \
        .venv/bin/python -m benchmarks._stores_embedded 20000      # and 0
    # instructions per pair = (Collected(20000) - Collected(0)) / 20000

The figure includes the driver loop itself (~600 instructions per pair: indexing, the two
calls, the two awaits); the bare-dict baseline loop costs ~600 in all.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

from benchmarks._stores_common import NOW
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore


# ---------------------------------------------------------------------------------- embedded
def _seeded(pairs: int, accounts: int) -> tuple[MemoryStore, list[str], list[str], list[str],
                                               list[str], list[float]]:
    """A store with *accounts* rich EUR accounts and the per-pair keys and times, with the
    setup's garbage already collected."""
    store = MemoryStore()
    for i in range(accounts):
        store.create_account_sync(f"a{i}", AccountKind.PREPAID_SUBSCRIBER,
                                  [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**15)], [])
    names = [f"a{i}" for i in range(accounts)]
    keys = [str(i) for i in range(pairs)]
    rkeys = ["r" + k for k in keys]
    ckeys = ["c" + k for k in keys]
    nows = [NOW + i * 1e-5 for i in range(pairs)]  # time moves on: 100k pairs per second
    # The setup above left ~4 x pairs young objects (three lists of keys/times): collect them
    # now, or the timed loop's first gen0/gen1 collections walk them (measured 30-80 ms per
    # 100k-pair run, i.e. 5-15 % of it, harness cost, not the store's).
    gc.collect()
    return store, names, keys, rkeys, ckeys, nows


async def _awaited_pairs(store: MemoryStore, names: list[str], keys: list[str],
                         rkeys: list[str], ckeys: list[str], nows: list[float]) -> None:
    """Await one reserve+commit pair per key, as the ledger calls the store."""
    accounts = len(names)
    for i in range(len(keys)):
        a = names[i % accounts]
        now = nows[i]
        await store.reserve(rkeys[i], a, "EUR", keys[i], 100, ttl=30.0, now=now)
        await store.commit(ckeys[i], a, "EUR", keys[i], 50, now=now)


def _embedded_once(pairs: int, accounts: int, awaited: bool) -> tuple[float, float]:
    """(pairs/s by the wall clock, pairs/s by this process's CPU time)."""
    store, names, keys, rkeys, ckeys, nows = _seeded(pairs, accounts)

    if not awaited:
        reserve, commit = store.reserve_sync, store.commit_sync
        t, c = time.perf_counter(), time.process_time()
        for i in range(pairs):
            a = names[i % accounts]
            now = nows[i]
            reserve(rkeys[i], a, "EUR", keys[i], 100, 30.0, now)
            commit(ckeys[i], a, "EUR", keys[i], 50, now)
        return pairs / (time.perf_counter() - t), pairs / (time.process_time() - c)

    async def run() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        await _awaited_pairs(store, names, keys, rkeys, ckeys, nows)
        return pairs / (time.perf_counter() - t), pairs / (time.process_time() - c)

    return asyncio.run(run())


def _dict_baseline(pairs: int, accounts: int) -> tuple[float, float]:
    amounts = {f"a{i}": 10**15 for i in range(accounts)}
    names = [f"a{i}" for i in range(accounts)]
    gc.collect()  # same start as _embedded_once
    t, c = time.perf_counter(), time.process_time()
    for i in range(pairs):
        a = names[i % accounts]
        amounts[a] -= 100  # reserve: one read-modify-write
        amounts[a] += 50  # commit: another
    return pairs / (time.perf_counter() - t), pairs / (time.process_time() - c)


def bench_embedded(args: argparse.Namespace) -> dict[str, Any]:
    awaited, sync, base = [], [], []
    for _ in range(args.reps):
        awaited.append(_embedded_once(args.pairs, args.accounts, True))
        gc.collect()
        sync.append(_embedded_once(args.pairs, args.accounts, False))
        gc.collect()
        base.append(_dict_baseline(args.pairs, args.accounts))
    value = statistics.median(v for v, _ in awaited)
    bval = statistics.median(v for v, _ in base)
    return {"bench": "stores.embedded", "unit": "pairs/s", "value": round(value),
            "baseline": {"name": "bare dict increment loop (2 per pair)", "value": round(bval)},
            "ratio": round(value / bval, 4),
            "sync_calls_value": round(statistics.median(v for v, _ in sync)),
            # the same runs timed by this process's CPU time: what the code costs when the
            # shared machine does not hand the process a whole core
            "cpu_value": round(statistics.median(c for _, c in awaited)),
            "sync_calls_cpu_value": round(statistics.median(c for _, c in sync)),
            "baseline_cpu_value": round(statistics.median(c for _, c in base)),
            "ext": _embedded_ext(), "pairs": args.pairs, "reps": args.reps, "target": 200_000}


def _embedded_ext() -> bool:
    from charging.store import memory

    return memory.EXTENSION


def _callgrind_driver(pairs: int, accounts: int = 200) -> None:
    """Await *pairs* reserve+commit pairs like :func:`_embedded_once` (no timing): the body of
    one asyncio task step, which callgrind's ``--toggle-collect=task_step_impl`` isolates."""
    store, names, keys, rkeys, ckeys, nows = _seeded(pairs, accounts)
    asyncio.run(_awaited_pairs(store, names, keys, rkeys, ckeys, nows))


if __name__ == "__main__":
    import sys

    _callgrind_driver(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
