"""Memory kept per closed Rf call: what the service remembers of an accounting session after
its STOP, for ``[store] session_retention`` (300 s), to drop duplicates and price late records.

``python -m benchmarks._rf_closed_memory [--calls 100000] [--interims 1]`` prints one JSON line (a measurement, not a `make bench` benchmark: there is no baseline to run beside it).
Each call is START, INTERIM x k (60 s of voice), STOP (30 s), every ACR encoded, decoded by
the codec in use and translated by mediation/rf.py as a received one is (so the strings a
session keeps are the decoder's, one set per call, as on the wire), then decided by the
service of `icx serve` (embedded store, journal without fsync). Distinct Session-Ids,
subscribers and destinations per call.

``bytes_per_closed_call``: tracemalloc's traced memory freed when the closed calls are
dropped (the dict of closed calls and everything only it holds), divided by the calls.
``rss_bytes_per_call``: the process's RSS growth over the run (journal buffers and the
allocator's slack included), divided by the calls -- a rough cross-check, run separately
(tracemalloc off) with ``--rss``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks._ro_inproc import bench_settings
from diameter.message import Message, decode_message
from icx.diameter_client import A, mscc, voice_info
from mediation import rf


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def acr(sid: str, sub: str, dest: str, rtype: int, number: int) -> bytes:
    avps = [A("Session-Id", sid), A("Origin-Host", "pgw1.mnc001.mcc228.3gppnetwork.org"),
            A("Origin-Realm", "mnc001.mcc228.3gppnetwork.org"),
            A("Destination-Realm", "icx.local"),
            A("Accounting-Record-Type", rtype), A("Accounting-Record-Number", number),
            A("Acct-Application-Id", 3), A("Service-Context-Id", "32260@3gpp.org"),
            A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", sub)]),
            A("Event-Timestamp", 1_800_000_000 + 60 * number), voice_info(sub, dest)]
    if rtype == 3:
        avps.append(mscc(100, usu=("CC-Time", 60)))
    elif rtype == 4:
        avps.append(mscc(100, usu=("CC-Time", 30)))
    return Message.request(271, 3, avps, proxiable=True).encode()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from icx.charging_app import build_charging

    tmp = Path(tempfile.mkdtemp(prefix="icx-rf-mem-"))
    try:
        settings = bench_settings(tmp, fsync=False, request_log=False)
        app = await build_charging(settings, tmp / "data", admin=False)
        svc, smap = app.service, app.agent.smap
        now = time.time()
        kinds = [2] + [3] * args.interims + [4]

        async def call(i: int) -> None:
            sid = f"pgw1.mnc001.mcc228.3gppnetwork.org;{1_700_000_000 + i};{i}"
            sub, dest = f"4179{i % 10_000_000:07d}", f"4179{(i * 7919) % 10_000_000:07d}"
            for n, rtype in enumerate(kinds):
                req = rf.acr_to_request(decode_message(acr(sid, sub, dest, rtype, n)), smap)
                result = await svc.handle(req, now=now)
                assert result.ok, result

        async def calls(first: int, count: int) -> None:
            for lo in range(first, first + count, 500):  # 500 calls at a time
                await asyncio.gather(*(call(i) for i in range(lo, min(lo + 500, first + count))))

        await calls(-1000, 1000)  # warm-up: caches, pools, the journal's first buffers
        svc._closed_offline.clear()
        await app.journal.flush()
        gc.collect()
        if not args.rss:
            tracemalloc.start()
        rss0 = _rss()
        t0 = time.perf_counter()
        await calls(0, args.calls)
        await app.journal.flush()
        elapsed = time.perf_counter() - t0
        gc.collect()
        closed = len(svc._closed_offline)
        assert closed == args.calls, closed
        out: dict[str, Any] = {
            "bench": "rf_closed_memory", "calls": args.calls, "acrs_per_call": len(kinds),
            "closed": closed, "compiled": os.environ.get("ICX_NO_EXTENSIONS") != "1",
            "seconds": round(elapsed, 1)}
        if args.rss:
            out["rss_bytes_per_call"] = round((_rss() - rss0) / args.calls)
        else:
            before = tracemalloc.get_traced_memory()[0]
            svc._closed_offline.clear()
            gc.collect()
            freed = before - tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            out["bytes_per_closed_call"] = round(freed / args.calls)
            out["mb_at_1000_calls_per_s_x_300_s"] = round(freed / args.calls * 300_000 / 1e6)
        await app.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--interims", type=int, default=1)
    p.add_argument("--rss", action="store_true", help="RSS growth instead of tracemalloc")
    print(json.dumps(asyncio.run(run(p.parse_args()))))


if __name__ == "__main__":
    main()
