"""What the first touch of a growing heap costs the thread that allocates, with and without
the heap populator (`[server] heap_populate_ahead_mb`, cython_ext/arena.pyx).

Each contender is a fresh interpreter on the huge-page heap (``arena.install()``, as
`icx serve` runs) that grows its heap the way a busy server does: ~1 MiB of small objects
(arena memory) in one go, then a pause, ``--steps`` times. It times each step. Ours: with
the populator keeping ``--ahead`` MiB populated; baseline: without it, same run. Prints one
JSON line; value = our p99 step time in ms.

    .venv/bin/python -m benchmarks.heap_touch [--steps 300] [--ahead 8] [--pause-ms 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cython_ext

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import gc, json, sys, time
from cython_ext import arena
gc.disable()  # the chain below holds no cycle; a full collection over it would be the figure
steps, ahead_mb, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
assert arena.install()
if ahead_mb:
    assert arena.populate_ahead(ahead_mb << 20)
    time.sleep(0.1)
head, times = None, []
start = arena.stats()[0]
for _ in range(steps):
    t = time.perf_counter()
    for i in range(12_000):  # ~1 MiB of tuples: arena memory, no container big enough for malloc
        head = (head, i)
    times.append((time.perf_counter() - t) * 1000)
    time.sleep(pause)
times.sort()
q = lambda p: round(times[min(len(times) - 1, int(p * len(times)))], 3)
print(json.dumps({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(times[-1], 3),
                  "total_ms": round(sum(times), 1), "grown_mb": (arena.stats()[0] - start) >> 20,
                  "populate_errno": arena.populated()[1]}))
"""


def run(steps: int, ahead_mb: int, pause_ms: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(ahead_mb), str(pause_ms)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ahead", type=int, default=8, help="MiB kept populated (ours)")
    ap.add_argument("--pause-ms", type=float, default=20.0)
    args = ap.parse_args()
    if cython_ext.load("arena") is None:
        sys.exit("benchmarks.heap_touch: cython_ext.arena is not built (make build)")
    # baseline first, then ours, then both again: the medians of two runs each
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
    for _ in range(2):
        runs["baseline"].append(run(args.steps, 0, args.pause_ms))
        runs["ours"].append(run(args.steps, args.ahead, args.pause_ms))

    def median(side: str, key: str) -> float:
        values = sorted(r[key] for r in runs[side])
        return float(values[len(values) // 2] if len(values) % 2 else
                     (values[0] + values[1]) / 2)

    keys = ("p50", "p90", "p99", "max", "total_ms")
    ours = {k: round(median("ours", k), 3) for k in keys}
    base = {k: round(median("baseline", k), 3) for k in keys}
    print(json.dumps({
        "bench": "heap_touch", "unit": "ms p99 per ~1 MiB allocation step",
        "value": ours["p99"], "ours": ours, "ahead_mb": args.ahead,
        "baseline": {"name": "same heap, no populator", "value": base["p99"], **base},
        "ratio": round(base["p99"] / ours["p99"], 2) if ours["p99"] else None,
        "grown_mb": runs["ours"][0]["grown_mb"],
        "populate_errno": runs["ours"][0]["populate_errno"],
    }))


if __name__ == "__main__":
    main()
