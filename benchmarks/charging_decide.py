"""CPU per CCR of the charging core alone: ChargingService.decide -> ledger -> embedded store ->
journal records (group commit with fsync), no Diameter, no agent.

``python -m benchmarks.charging_decide [--requests 20000] [--concurrency 256] [--no-fsync]
[--reps 3] [--handle] [--python-path] [--profile out.prof] [--callgrind]`` prints ONE JSON
line. ``value``:
process CPU µs per CCR of the whole core (mix I/U/U/T, voice + data sessions, like
benchmarks/ro.py); ``baseline``: the CPU µs per CCR of the bare store ops the same mix needs
(reserve / commit+reserve / commit, measured in the same run on a fresh store) -- the floor
the core adds to. Medians of ``--reps`` repetitions; ``value_min`` too; ``fast_path``:
decide() ran its compiled twin (``--python-path``: the Python path instead, for an A/B);
``loop_thread_us``: the event-loop thread alone (without the journal writer thread's
write/fsync system time). ``load`` is the 1-minute load average at the start.
``gc_gen0_per_kccr``: young-generation collections per 1,000 CCRs (allocation churn of GC
objects); ``blocks_kept_per_ccr``: allocated blocks still alive after the run per CCR (what
the caches and journal buffers keep). ``--callgrind`` under ``valgrind --tool=callgrind
--instr-atstart=no``: only the measured loop is instrumented (instructions per CCR = Ir /
requests; use ``--reps 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ro import free_port, make_config
from charging.requests import ChargingRequest, ServiceKind, ServiceUnits, Verb

VOICE = ("41790000001", "41791234567")


def requests_for(i: int, updates: int = 2) -> list[ChargingRequest]:
    """The I/U.../T requests of session *i* (odd: voice 60 s, even: data 1 MB)."""
    voice = i % 2 == 1
    sid = f"bench.icx.test;{i}"
    service = ServiceKind.VOICE if voice else ServiceKind.DATA
    rg, amount = (100, 60) if voice else (1, 1_000_000)
    dest = VOICE[1] if voice else "internet"
    out = []
    for n in range(updates + 2):
        if n == 0:
            verb, su = Verb.INITIAL, ServiceUnits(rating_group=rg, requested=amount)
        elif n <= updates:
            verb, su = Verb.UPDATE, ServiceUnits(rating_group=rg, requested=amount,
                                                 used=amount, used_present=True)
        else:
            verb, su = Verb.TERMINATE, ServiceUnits(rating_group=rg, used=amount // 2,
                                                    used_present=True)
        out.append(ChargingRequest(
            verb=verb, session_id=sid, request_number=n, service=service,
            subscriber="41790000001", destination=dest, origin=VOICE[0] if voice else None,
            units=(su,), multiple_services=True, idem_key=f"ro:{sid}:{n}",
            peer_host="bench.icx.test", peer_realm="icx.test"))
    return out


def _callgrind(*opts: str) -> None:
    import subprocess
    subprocess.run(["callgrind_control", *opts, str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)


def drive(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("decide() suspended on the embedded path")


async def core_run(tmp: Path, args: argparse.Namespace, prof: Any) -> tuple[float, float]:
    """CPU µs per CCR of the whole process and of the loop thread; also fills
    ``args.alloc`` (GC gen-0 collections per 1,000 CCRs, allocated blocks kept per CCR)."""
    from icx.charging_app import build_charging
    from icx.settings import load_settings

    cfg = make_config(tmp, free_port(), free_port())
    if not args.fsync:
        cfg.write_text(cfg.read_text().replace("fsync = true", "fsync = false", 1))
    app = await build_charging(load_settings(cfg), tmp / "data", admin=False)
    svc = app.service
    if args.python_path:
        svc._fast = None  # the Python path (the compiled twin's spec), for an A/B
    sessions = args.requests // 4
    reqs = [requests_for(i) for i in range(sessions)]
    await app.journal.flush()
    now = time.time()
    done = 0
    gc0, blocks0 = gc.get_stats()[0]["collections"], sys.getallocatedblocks()
    c0, l0 = time.process_time(), time.thread_time()
    if args.callgrind:  # instrument only the measured loop (run under valgrind)
        _callgrind("-i", "on")
    if prof:
        prof.enable()
    # Waves of `concurrency` sessions, one step each per wave: I for all, then U, U, T; each
    # wave waits once for durability of its mark (what the edge does per read batch).
    eager = hasattr(svc, "decide") and not args.handle
    now_entry = eager and args.decide_now and hasattr(svc, "decide_now")
    args.path = "decide_now" if now_entry else "decide" if eager else "handle"
    for start in range(0, sessions, args.concurrency):
        block = reqs[start:start + args.concurrency]
        for step in range(4):
            if now_entry:  # decide_now (no coroutine), the coroutine only when None
                for r in block:
                    rq = r[step]
                    res = svc.decide_now(rq, now)
                    if res is None:
                        res = drive(svc.decide(rq, now=now))
                    if not res.ok:
                        raise RuntimeError(f"{rq.session_id} {step}: {res.outcome}")
                await svc.wait_durable(svc.durable_mark())
            elif eager:
                for r in block:
                    res = drive(svc.decide(r[step], now=now))
                    if not res.ok:
                        raise RuntimeError(f"{r[step].session_id} {step}: {res.outcome}")
                await svc.wait_durable(svc.durable_mark())
            else:  # handle() per request, one task each (the path before decide() existed)
                results = await asyncio.gather(*(svc.handle(r[step], now=now) for r in block))
                if not all(res.ok for res in results):
                    raise RuntimeError(f"step {step}: {[x.outcome for x in results]}")
            done += len(block)
    if prof:
        prof.disable()
    if args.callgrind:
        _callgrind("-i", "off")
    used, loop_used = time.process_time() - c0, time.thread_time() - l0
    args.alloc.append(((gc.get_stats()[0]["collections"] - gc0) * 1000 / done,
                       (sys.getallocatedblocks() - blocks0) / done))
    await app.close()
    return used / done * 1e6, loop_used / done * 1e6


async def store_run(args: argparse.Namespace) -> float:
    """The bare store ops of the same mix (no rating, no records, no journal)."""
    from charging.store.base import AccountKind, BalanceKind, BalanceSpec
    from charging.store.memory import MemoryStore

    st = MemoryStore()
    await st.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                            [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount=10**15)])
    sessions = args.requests // 4
    now = time.time()
    c0 = time.process_time()
    for i in range(sessions):
        k = f"ro:bench.icx.test;{i}"
        await st.reserve(f"{k}:0:0:r", "a", "EUR", f"{k}|0", 120_000, ttl=1260, now=now)
        for n in (1, 2):
            await st.commit(f"{k}:{n}:0:c", "a", "EUR", f"{k}|{n - 1}", 120_000, now=now)
            await st.reserve(f"{k}:{n}:0:r", "a", "EUR", f"{k}|{n}", 120_000, ttl=1260,
                             now=now)
        await st.commit(f"{k}:3:0:c", "a", "EUR", f"{k}|2", 60_000, now=now)
    return (time.process_time() - c0) / (sessions * 4) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-fsync", dest="fsync", action="store_false")
    ap.add_argument("--profile")
    ap.add_argument("--python-path", action="store_true",
                    help="decide() without its compiled fast path (cython_ext/charging_slice)")
    ap.add_argument("--handle", action="store_true",
                    help="await handle() per request in tasks instead of decide() eagerly "
                         "(automatic for a service without decide(): the old path)")
    ap.add_argument("--decide-now", action="store_true",
                    help="ChargingService.decide_now() per request (the synchronous entry; "
                         "decide() only where it returns None) instead of driving decide()")
    ap.add_argument("--callgrind", action="store_true",
                    help="run under `valgrind --tool=callgrind --instr-atstart=no`: only the "
                         "measured loop is instrumented (instructions per CCR = Ir / "
                         "(requests * reps)); the bare store ops are not")
    args = ap.parse_args()
    args.alloc = []
    load = os.getloadavg()[0]
    prof = None
    if args.profile:
        import cProfile
        prof = cProfile.Profile(time.process_time)
    core: list[float] = []
    loop: list[float] = []
    base: list[float] = []
    for _ in range(args.reps):
        tmp = Path(tempfile.mkdtemp(prefix="icx-decide-"))
        try:
            c, lp = asyncio.run(core_run(tmp, args, prof))
            core.append(c)
            loop.append(lp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        base.append(asyncio.run(store_run(args)))
    if prof:
        prof.dump_stats(args.profile)
    from cython_ext import load as load_ext

    value, floor = statistics.median(core), statistics.median(base)
    print(json.dumps({
        "bench": "charging_decide", "unit": "cpu_us_per_ccr", "value": round(value, 1),
        "value_min": round(min(core), 1),
        "loop_thread_us": round(statistics.median(loop), 1),
        "baseline": {"name": "bare_store_ops", "value": round(floor, 1)},
        "ratio": round(value / floor, 2), "ext": load_ext("store_ops") is not None,
        "path": getattr(args, "path", "decide"),
        "fast_path": load_ext("charging_slice") is not None and not args.python_path,
        "requests": args.requests, "reps": args.reps, "fsync": args.fsync,
        "gc_gen0_per_kccr": round(statistics.median(a[0] for a in args.alloc), 2),
        "blocks_kept_per_ccr": round(statistics.median(a[1] for a in args.alloc), 1),
        "load": round(load, 2)}))


if __name__ == "__main__":
    main()
