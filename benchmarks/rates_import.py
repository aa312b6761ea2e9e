"""Rate-deck import benchmark: import a generated --rows deck (default 1,000,000 rows) with
``charging.rating.importer.import_csv`` in a fresh subprocess (so its peak RSS is its own).

Issue 3 targets: <= 5 s and peak RSS <= 500 MB for 1M rows. value = rows/s of our import
(median of --reps, wall clock; ``seconds`` and ``cpu_seconds`` are printed too); baseline =
a naive importer (csv.DictReader + Decimal + a msgpack list of row dicts) on a --baseline-rows
slice of the same file, in its own subprocess. Also: the engine load time of the stored deck
(``RatingEngine.open`` + first rate) and the on-disk size.

    .venv/bin/python -m benchmarks.rates_import [--rows 1000000] [--reps 2] [--baseline-rows 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD_OURS = r"""
import json, resource, sys, time
from charging.rating.store import DeckStore
from charging.rating.importer import import_csv
from charging.rating.engine import extension_active
c0, t0 = time.process_time(), time.perf_counter()
s = import_csv(DeckStore(sys.argv[2]), sys.argv[1], deck="bench")
t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({"seconds": t1 - t0, "cpu": c1 - c0, "rows": s.rows, "ext": extension_active(),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_LOAD = r"""
import json, resource, sys, time
from charging.rating import RatingEngine, Service
t0 = time.perf_counter()
e = RatingEngine.open(sys.argv[1])
e.price("bench", Service.VOICE, "4912345678", 1_800_000_000.0, 60)
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_NAIVE = r"""
import csv, json, resource, sys, time
from decimal import Decimal
import msgpack
t0 = time.perf_counter()
rows = []
with open(sys.argv[1], newline="") as fh:
    for i, r in enumerate(csv.DictReader(fh)):
        if i >= int(sys.argv[3]):
            break
        a, b = r["billing"].split("/")
        rows.append({"prefix": r["prefix"], "destination": r["destination"],
                     "rate": str(Decimal(r["rate"])), "inc": [int(a), int(b)],
                     "effective": r["effective"]})
with open(sys.argv[2], "wb") as out:
    out.write(msgpack.packb(rows))
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(rows),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(path: Path, rows: int, seed: int) -> None:
    """A realistic wholesale deck: distinct digit prefixes, ~900 destination names, 5-decimal
    rates, 60/1-style billing, an effective date."""
    rng = random.Random(seed)
    seen: set[str] = set()
    bills = ["60/1", "1/1", "60/60", "30/6"]
    with open(path, "w") as fh:
        fh.write("prefix,destination,rate,billing,effective\n")
        while len(seen) < rows:
            p = str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=rng.randint(2, 8)))
            if p in seen:
                continue
            seen.add(p)
            fh.write(f"{p},Dest {p[:3]},0.{rng.randint(1, 99999):05d},{bills[rng.randrange(4)]},2026-01-01\n")


def run(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--baseline-rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / "deck.csv"
        generate(deck, args.rows, args.seed)
        ours = []
        for i in range(args.reps):
            ours.append(run(CHILD_OURS, str(deck), str(Path(tmp) / f"data{i}")))
        load = run(CHILD_LOAD, str(Path(tmp) / "data0"))
        disk = sum(f.stat().st_size for f in (Path(tmp) / "data0" / "rates" / "bench").glob("*.deck"))
        naive = run(CHILD_NAIVE, str(deck), str(Path(tmp) / "naive.msgpack"), str(args.baseline_rows))
    secs = statistics.median(o["seconds"] for o in ours)
    value = args.rows / secs
    base = naive["rows"] / naive["seconds"]
    print(json.dumps({
        "bench": "rates_import", "unit": "rows/s", "value": round(value),
        "baseline": {"name": f"naive csv.DictReader+Decimal+msgpack ({int(naive['rows'])} rows)",
                     "value": round(base)},
        "ratio": round(value / base, 2), "ext": bool(ours[0]["ext"]), "rows": args.rows,
        "seconds": round(secs, 2), "cpu_seconds": round(statistics.median(o["cpu"] for o in ours), 2),
        "peak_rss_mb": round(max(o["rss_mb"] for o in ours), 1),
        "engine_load_seconds": round(load["seconds"], 2), "engine_load_rss_mb": round(load["rss_mb"], 1),
        "deck_file_mb": round(disk / 1e6, 1), "loadavg_1m": os.getloadavg()[0],
        "targets": {"seconds": 5, "peak_rss_mb": 500},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
