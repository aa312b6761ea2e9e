"""Balance-store throughput: reserve+commit pairs/s, embedded and Redis. Prints ONE JSON line.

    python -m benchmarks.stores [--seconds 3] [--reps 3] [--tasks 64] [--accounts 1000]
                                [--only embedded|redis] [--pairs 200000]

Redis: the store's own redis-server on a free loopback port; 64 tasks in one process each
running reserve -> commit (two EVALSHA scripts) over ``--accounts`` accounts, plus the
ledger's confirm_journaled batches every 50 ms; the store's auto-batcher pipelines what the
tasks issue in each loop tick. Baseline in the same run:
``redis-benchmark`` (50 clients, and 50 clients x pipeline 16) running a minimal EVALSHA
(one HINCRBY), converted to pairs/s (= EVALSHA/s / 2, a pair being two scripts).

Embedded: ``--pairs`` reserve+commit pairs awaited in a loop (how the ledger calls the store),
and the same through the synchronous methods. Baseline: a bare loop doing the two dict
increments a pair needs at minimum. Medians of ``--reps`` repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks._stores_embedded import _embedded_ext, bench_embedded
from benchmarks._stores_redis import bench_redis


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stores", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="Redis: seconds per repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=100_000, help="embedded: pairs per repetition")
    ap.add_argument("--baseline-n", type=int, default=20_000,
                    help="redis-benchmark requests per run (x4 when pipelined)")
    ap.add_argument("--only", choices=["embedded", "redis"])
    args = ap.parse_args(argv)
    emb = bench_embedded(args) if args.only != "redis" else None
    red = bench_redis(args) if args.only != "embedded" else None
    ext = _embedded_ext()  # the Redis store is pure Python; the embedded one has a twin
    head = red if red is not None and "value" in red else emb
    assert head is not None
    line = {"bench": "stores", "unit": "pairs/s", "value": head["value"],
            "baseline": head["baseline"], "ratio": head["ratio"], "ext": ext,
            "redis": red, "embedded": emb, "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0]}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
