"""Journal benchmark: group-commit append throughput and append-to-durable latency.

Prints ONE JSON line. ``value`` is records/s made durable (fdatasync per group) by 64
concurrent appender tasks, each appending batches (``append_many``, 32 records: what one busy
Diameter connection hands over per loop turn). Also measured in the same run:

* ``per_record_tasks_rps``: 256 tasks each awaiting ``append()`` for every single record;
* ``paced``: 20,000 records/s offered (the appends that fell due issued once per 1 ms tick);
  append-to-durable p50/p99 in ms taken when each record's group commit completes, from the
  append call and from the record's scheduled send time (no coordinated omission);
* ``reader``: settlement's fast path, records/s through ``JournalReader.chunks()`` decoded
  and raw;
* baseline: one ``os.write`` + ``os.fdatasync`` per record (no group commit), same records;
* ``records_per_cpu_second`` (records / CPU time of the process, all threads),
  ``loop_thread_cpu_us_per_record`` (the event-loop thread alone: what caps throughput, as
  the writer thread runs without the GIL) and the load average: on a shared, oversubscribed
  machine wall-clock rates say more about the neighbours than about the code;
* ``paced.group_p50_ms`` / ``group_p99_ms``: where a group's time goes -- ``writer_wake``
  (queue put -> writer thread running: GIL hand-off and CPU run queue), ``write_dsync`` (the
  one O_DSYNC write: the disk), ``release`` (write done -> the loop releases the waiters:
  GIL hand-off back and loop wake-up); ``gc_max_ms`` the longest GC pause in the paced run.

The journal's default writer is measured: the native GIL-free writer threads when the
extensions are built (``--writer-threads N``, 0 = the Python writer thread; ``writer`` in the
output says which ran).

Medians of ``--reps`` repetitions. ``python -m benchmarks.journal [--seconds S] [--reps N]``.
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

import msgpack

import cython_ext
from charging.journal import Journal, JournalReader
from charging.journal.framing import frame
from charging.journal.writer import WRITER_THREADS


def record(i: int) -> dict[str, Any]:
    return {"v": 1, "type": "rated", "id": f"bench-{i}", "ts": 1_800_000_000_000_000 + i,
            "idem": f"ro:sess-{i // 4}:{i % 4}", "session": f"sess-{i // 4}",
            "request": str(i % 4), "service": "voice", "usage": 60, "unit": "s",
            "a": "31612345678", "b": "4915123456789", "account": f"acct{i % 1000}",
            "partner": "DTAG", "direction": "sell", "deck": "retail", "deck_version": "7",
            "price": "0.0600", "currency": "EUR", "result": "ok", "op": "commit",
            "granted": 60_000,
            "balance_effects": [{"account": f"acct{i % 1000}", "balance": "EUR",
                                 "currency": "EUR", "amount": "-0.06"}],
            "holds": [{"account": f"acct{i % 1000}", "balance": "EUR",
                       "reservation": f"sess-{i // 4}", "amount": "-0.10", "expires": None}]}


RECORDS = [record(i) for i in range(4096)]
PREALLOCATE = True  # --no-preallocate: segments grow with each write (the old layout)
DSYNC = True  # --fdatasync: pwrite + fdatasync per group instead of one O_DSYNC pwrite
THREADS = WRITER_THREADS  # --writer-threads: native writer threads (0 = Python writer)
GC_FREEZE = False  # --gc-freeze: gc.freeze() once the journal is open (option (d) of issue 4)
# The paced phase issues the appends that fell due once per TICK. 1 ms: uvloop timers have
# millisecond resolution, so a shorter sleep (0.5 ms was used) returns at once and the loop
# spins a whole core (~130k iterations/s), which a server at 20k records/s never does.
TICK = 0.001


async def _open(d: Path) -> Journal:
    """A journal in *d*, its first segment zero-filled before the clock starts (steady state:
    a running server prepares segments ahead of need; only its very first start fills one)."""
    j = await Journal.open(d, preallocate=PREALLOCATE, dsync=DSYNC, writer_threads=THREADS)
    await j.wait_preallocated(full=True)
    if GC_FREEZE:
        # what a server can do once loaded: the objects alive now (records, modules) leave
        # the collector's generations, so a full collection no longer walks them
        gc.collect()
        gc.freeze()
    return j


async def batched(d: Path, seconds: float, appenders: int = 64, batch: int = 32
                  ) -> tuple[float, float, float]:
    """(records/s wall clock, records per CPU-second of this process (all threads), CPU
    microseconds per record of the event-loop thread alone)."""
    j = await _open(d)
    stop = time.perf_counter() + seconds
    count = 0

    async def worker(w: int) -> None:
        nonlocal count
        k = w * batch
        while time.perf_counter() < stop:
            recs = [RECORDS[(k + x) & 4095] for x in range(batch)]
            k += batch * appenders
            await j.append_many(recs)
            count += batch

    t = time.perf_counter()
    cpu = time.process_time()
    main_cpu = time.thread_time()
    await asyncio.gather(*(worker(w) for w in range(appenders)))
    el = time.perf_counter() - t
    cpu = time.process_time() - cpu
    main_cpu = time.thread_time() - main_cpu
    await j.close()
    return count / el, count / cpu if cpu > 0 else 0.0, main_cpu / count * 1e6


async def per_record(d: Path, seconds: float, tasks: int = 256) -> float:
    j = await _open(d)
    stop = time.perf_counter() + seconds
    count = 0

    async def worker(w: int) -> None:
        nonlocal count
        k = w
        while time.perf_counter() < stop:
            await j.append(RECORDS[k & 4095])
            k += tasks
            count += 1

    t = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    el = time.perf_counter() - t
    await j.close()
    return count / el


async def paced(d: Path, seconds: float, rate: int = 20_000) -> dict[str, Any]:
    """Offer ``rate`` records/s; append-to-durable latency of every record, taken when its
    group commit completes (the moment the journal releases its waiters), measured from the
    append call and from the record's scheduled time (so a late loop counts against us)."""
    j = await _open(d)
    j.trace = []  # per group: (dispatched, write started, write+sync ended, waiters released)
    gc_pauses: list[float] = []
    gc_start = [0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_start[0])

    gc.callbacks.append(on_gc)
    from_call: list[float] = []
    from_sched: list[float] = []
    clock = time.perf_counter

    def done_cb(calls: list[float], dues: list[float]) -> Any:
        def cb(_f: Any) -> None:
            t = clock()
            from_call.extend(t - c for c in calls)
            from_sched.extend(t - x for x in dues)
        return cb

    t0 = clock()
    total = int(rate * seconds)
    sent = 0
    last_group = None
    while sent < total:
        now = clock()
        due_n = min(total, int((now - t0) * rate) + 1)
        calls: list[float] = []
        dues: list[float] = []
        group = None
        while sent < due_n:
            calls.append(clock())
            dues.append(t0 + sent / rate)
            _pos, group = j.append_nowait(RECORDS[sent & 4095])
            sent += 1
        if group is not None:
            group.add_done_callback(done_cb(calls, dues))
            last_group = group
        await asyncio.sleep(TICK)
    if last_group is not None:
        await last_group
    el = clock() - t0
    await j.close()
    gc.callbacks.remove(on_gc)

    def q(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else 0.0

    tr = j.trace
    wake = [b - a for a, b, _c, _d in tr]  # queue put -> writer thread running (GIL, CPU)
    sync = [c - b for _a, b, c, _d in tr]  # one O_DSYNC write (the disk)
    back = [dd - c for _a, _b, c, dd in tr]  # writer done -> loop releases waiters
    return {"offered_rps": rate, "achieved_rps": round(total / el),
            "p50_ms": round(q(from_call, 0.5), 3), "p99_ms": round(q(from_call, 0.99), 3),
            "p99_from_schedule_ms": round(q(from_sched, 0.99), 3),
            "max_ms": round(q(from_call, 1.0), 3), "groups": j.groups,
            "group_p99_ms": {"writer_wake": round(q(wake, 0.99), 3),
                             "write_dsync": round(q(sync, 0.99), 3),
                             "release": round(q(back, 0.99), 3)},
            "group_p50_ms": {"writer_wake": round(q(wake, 0.5), 3),
                             "write_dsync": round(q(sync, 0.5), 3),
                             "release": round(q(back, 0.5), 3)},
            "gc_max_ms": round(max(gc_pauses, default=0.0) * 1000, 3)}


def baseline(d: Path, seconds: float) -> float:
    """One os.write + os.fdatasync per record: what the journal would do without groups.
    Its inverse is the disk's fdatasync latency at the time of the run."""
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / "plain", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    frames = [frame(msgpack.packb(r)) for r in RECORDS[:512]]
    n = 0
    t = time.perf_counter()
    stop = t + seconds
    while time.perf_counter() < stop:
        os.write(fd, frames[n & 511])
        os.fdatasync(fd)
        n += 1
    el = time.perf_counter() - t
    os.close(fd)
    return n / el


def reader_speed(d: Path) -> dict[str, float]:
    r = JournalReader(d)
    t = time.perf_counter()
    n = sum(len(c.records) for c in r.chunks())
    decoded = n / (time.perf_counter() - t)
    t = time.perf_counter()
    n2 = sum(len(c.records) for c in r.chunks(raw=True))
    raw = n2 / (time.perf_counter() - t)
    return {"records": n, "decoded_rps": round(decoded), "raw_rps": round(raw)}


def _median(xs: Any) -> Any:
    """Median of numbers, or of dicts of numbers key by key (the paced breakdown)."""
    xs = list(xs)
    if isinstance(xs[0], dict):
        return {k: _median(x[k] for x in xs) for k in xs[0]}
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=20_000, help="paced load, records/s")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--no-preallocate", action="store_true",
                    help="segments grow with each write (the layout before preallocation)")
    ap.add_argument("--fdatasync", action="store_true",
                    help="Python writer: pwrite + fdatasync per group instead of one O_DSYNC "
                    "pwrite")
    ap.add_argument("--writer-threads", type=int, default=WRITER_THREADS,
                    help="native writer threads = groups in flight (0: the Python writer)")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="gc.freeze() after opening each journal (GC pauses, option (d))")
    args = ap.parse_args()
    global PREALLOCATE, DSYNC, THREADS, GC_FREEZE
    GC_FREEZE = args.gc_freeze
    PREALLOCATE = not args.no_preallocate
    DSYNC = not args.fdatasync
    THREADS = args.writer_threads
    native = THREADS > 0 and cython_ext.load("journal_io") is not None
    try:
        import uvloop

        run: Any = uvloop.run
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover
        run = asyncio.run
        loop_name = "asyncio"
    root = Path(tempfile.mkdtemp(prefix="icx-bench-journal-", dir=args.dir))
    try:
        thr, cpu, main_us, prt, base, lat = [], [], [], [], [], []
        reader: dict[str, float] = {}
        for rep in range(args.reps):
            wall, per_cpu, loop_us = run(batched(root / f"b{rep}", args.seconds))
            thr.append(wall)
            cpu.append(per_cpu)
            main_us.append(loop_us)
            prt.append(run(per_record(root / f"p{rep}", args.seconds)))
            base.append(baseline(root / f"base{rep}", min(args.seconds, 2.0)))
            lat.append(run(paced(root / f"l{rep}", args.seconds, args.rate)))
            if rep == 0:
                reader = reader_speed(root / "b0")
            for sub in ("p", "base"):
                shutil.rmtree(root / f"{sub}{rep}", ignore_errors=True)
        value = statistics.median(thr)
        b = statistics.median(base)
        lat_med = {k: _median(x[k] for x in lat) for k in lat[0]}
        out = {"bench": "journal", "unit": "records/s", "value": round(value),
               "baseline": {"name": "os.write+fdatasync per record", "value": round(b)},
               "ratio": round(value / b, 2) if b else None,
               "ext": cython_ext.load("journal_frame") is not None
               and cython_ext.load("journal_scan") is not None,
               "mode": "64 appenders x append_many(32), fdatasync per group",
               "preallocate": PREALLOCATE,
               "writer": f"native x{THREADS} (GIL-free threads, eventfd)" if native
               else "python thread",
               "sync": "pwrite+fdatasync" if native or not DSYNC else "O_DSYNC pwrite",
               "gc_freeze": GC_FREEZE,
               "crc_fold": bool(getattr(cython_ext.load("journal_frame"), "SIMD_CRC", False)),
               "reps": args.reps, "seconds": args.seconds, "loop": loop_name,
               "all_values": [round(x) for x in thr],
               "records_per_cpu_second": round(statistics.median(cpu)),
               "loop_thread_cpu_us_per_record": round(statistics.median(main_us), 3),
               "switch_interval_ms": sys.getswitchinterval() * 1000,
               "fdatasync_ms": round(1000 / b, 3) if b else None,
               "load_avg_1m": os.getloadavg()[0],
               "per_record_tasks_rps": round(statistics.median(prt)),
               "paced": lat_med, "reader": reader,
               "targets": {"value": 200_000, "paced_p99_ms": 5.0},
               "record_bytes": len(frame(msgpack.packb(RECORDS[0])))}
        sys.stdout.write(json.dumps(out) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
