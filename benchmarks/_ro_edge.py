"""Edge micro-benchmark (profiling aid for issue 5): CPU µs per CCR of each step of the Ro
edge without the charging core -- decode_message, check_request, ccr_to_request and the CCA
writer -- on the same I/U/U/T voice + data CCRs as benchmarks/_ro_inproc.

``python -m benchmarks._ro_edge [--requests 20000] [--reps 5]`` prints one JSON line with
the median (over *reps*) of ``time.process_time()`` per CCR for each step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

from benchmarks._ro_inproc import _tail, ccr_templates
from charging.requests import ChargingResult, Outcome, UnitKind, UnitsResult
from diameter.avp import EXT
from diameter.message import decode_message
from diameter.validate import check_request
from mediation import ro
from mediation.ro_wire import CcaWriter
from mediation.service_map import ServiceMap

_HDR = struct.Struct("!IIIII")


def frames(n: int) -> list[bytes]:
    """*n* CCR frames: sessions of I, U, U, T alternating voice and data."""
    tpls = ccr_templates()
    out: list[bytes] = []
    i = 0
    while len(out) < n:
        kind = "voice" if i % 2 else "data"
        for step in range(4):
            body = tpls[kind].body(f"bench.icx.test;{i}", *_tail(kind, step, 2))
            h = len(out) + 1
            out.append(_HDR.pack((1 << 24) | (20 + len(body)), (0xC0 << 24) | 272, 4, h, h)
                       + body)
        i += 1
    return out[:n]


def _timed(fn: Callable[[Any], Any], items: list[Any]) -> float:
    c0 = time.process_time()
    for x in items:
        fn(x)
    return (time.process_time() - c0) / len(items) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    raw = frames(args.requests)
    smap = ServiceMap()
    writer = CcaWriter("ocs.icx.local", "icx.local")
    res = ChargingResult(outcome=Outcome.SUCCESS, units=(UnitsResult(
        rating_group=100, outcome=Outcome.SUCCESS, unit=UnitKind.TIME, granted=60,
        validity_time=3600),))
    steps: dict[str, list[float]] = {"decode": [], "check": [], "translate": [], "cca": []}
    batch = 256  # like _ro_inproc's concurrency: few live messages, as in the server
    for _ in range(args.reps):
        acc = dict.fromkeys(steps, 0.0)
        for i in range(0, len(raw), batch):
            chunk = raw[i:i + batch]
            acc["decode"] += _timed(decode_message, chunk) * len(chunk)
            msgs = [decode_message(r) for r in chunk]
            acc["check"] += _timed(check_request, msgs) * len(chunk)
            acc["translate"] += _timed(lambda m: ro.ccr_to_request(m, smap), msgs) * len(chunk)
            pairs = [(m, ro.ccr_to_request(m, smap)) for m in msgs]
            acc["cca"] += _timed(lambda p: writer.encode(p[0], p[1], res), pairs) * len(chunk)
        for k, v in acc.items():
            steps[k].append(v / len(raw))
    med = {k: round(statistics.median(v), 2) for k, v in steps.items()}
    print(json.dumps({"bench": "ro_edge", "unit": "cpu_us_per_ccr", "value":
                      round(sum(med.values()), 2), **med, "ext": EXT is not None,
                      "requests": args.requests, "reps": args.reps}))


if __name__ == "__main__":
    main()
