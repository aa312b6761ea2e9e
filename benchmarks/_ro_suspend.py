"""Suspension micro-benchmark (profiling aid for issue 5, Ro over the Redis store): what one
store suspension costs through the coroutine chain the Python spec runs, against a flat
state machine resumed by the store future's done callback.

With the Redis store every CCR runs in one Task (mediation/agent.py ``_spawn``) and suspends
~1.5 times (one per store op) through a chain of ~9 coroutine frames (agent ``_finish`` ->
``decide`` -> ``_dispatch`` -> ``_update`` -> ``_grant_all`` -> ``_one_slice`` ->
``_reserve`` -> ``Ledger._run`` -> ``RedisStore.reserve``). This measures the machinery
alone (no charging work): a request = one Task + *suspends* awaits of a future completed by
``call_soon`` through a chain of *depth* frames; the baseline = the same futures, each
resumed by ``add_done_callback`` (what a compiled state machine would do).

``python -m benchmarks._ro_suspend [--requests 50000] [--reps 5] [--depth 9]
[--suspends 2]`` prints one JSON line: median ``time.process_time()`` µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

Step = Callable[[asyncio.AbstractEventLoop, int], Coroutine[Any, Any, int]]


async def _leaf(loop: asyncio.AbstractEventLoop, suspends: int) -> int:
    n = 0
    for _ in range(suspends):
        f: asyncio.Future[int] = loop.create_future()
        loop.call_soon(f.set_result, 1)
        n += await f
    return n


def _chain(depth: int) -> Step:
    fn: Step = _leaf
    for _ in range(depth - 1):
        def wrap(inner: Step) -> Step:
            async def level(loop: asyncio.AbstractEventLoop, suspends: int) -> int:
                return await inner(loop, suspends)
            return level
        fn = wrap(fn)
    return fn


async def _tasks(requests: int, depth: int, suspends: int) -> float:
    """CPU µs per request: one Task each, *suspends* suspensions through *depth* frames."""
    loop = asyncio.get_running_loop()
    fn = _chain(depth)
    batch = 256  # in flight at once, like the benchmark's concurrency
    t0 = time.process_time()
    for _ in range(requests // batch):
        tasks = [loop.create_task(fn(loop, suspends)) for _ in range(batch)]
        for t in tasks:
            await t
    return (time.process_time() - t0) / (requests // batch * batch) * 1e6


async def _flat(requests: int, suspends: int) -> float:
    """CPU µs per request: the same futures resumed by a done callback (no Task, no frames)."""
    loop = asyncio.get_running_loop()
    left = [requests * suspends]
    fin: asyncio.Future[None] = loop.create_future()

    def step(f: asyncio.Future[int]) -> None:
        left[0] -= 1
        if left[0] == 0:
            fin.set_result(None)
        elif f.result() == suspends:  # last suspension of this request: nothing more
            return
        else:
            nxt: asyncio.Future[int] = loop.create_future()
            nxt.add_done_callback(step)
            loop.call_soon(nxt.set_result, f.result() + 1)

    t0 = time.process_time()
    for _ in range(requests):
        f: asyncio.Future[int] = loop.create_future()
        f.add_done_callback(step)
        loop.call_soon(f.set_result, 1)
    await fin
    return (time.process_time() - t0) / requests * 1e6


async def run(args: argparse.Namespace) -> dict[str, Any]:
    chain: list[float] = []
    task1: list[float] = []
    flat: list[float] = []
    for _ in range(args.reps):  # interleaved: the machine is shared and noisy
        chain.append(await _tasks(args.requests, args.depth, args.suspends))
        task1.append(await _tasks(args.requests, 1, args.suspends))
        flat.append(await _flat(args.requests, args.suspends))
    med = statistics.median(chain)
    base = statistics.median(flat)
    return {"bench": "ro_suspend", "unit": "us CPU per request", "value": round(med, 2),
            "baseline": {"name": "flat done-callback state machine", "value": round(base, 2)},
            "ratio": round(med / base, 3), "ext": False,
            "depth": args.depth, "suspends": args.suspends,
            "one_frame_task": round(statistics.median(task1), 2),
            "min": {"chain": round(min(chain), 2), "flat": round(min(flat), 2)},
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--depth", type=int, default=9)
    ap.add_argument("--suspends", type=int, default=2)
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
