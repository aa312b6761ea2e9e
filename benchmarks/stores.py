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
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore

NOW = 1_800_000_000.0


def _loop_runner() -> tuple[str, Any]:
    try:
        import uvloop

        return "uvloop", uvloop.run
    except ImportError:  # pragma: no cover
        return "asyncio", asyncio.run


# ---------------------------------------------------------------------------------- embedded
def _embedded_once(pairs: int, accounts: int, awaited: bool) -> tuple[float, float]:
    """(pairs/s by the wall clock, pairs/s by this process's CPU time)."""
    store = MemoryStore()
    for i in range(accounts):
        store.create_account_sync(f"a{i}", AccountKind.PREPAID_SUBSCRIBER,
                                  [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**15)], [])
    names = [f"a{i}" for i in range(accounts)]
    keys = [str(i) for i in range(pairs)]
    rkeys = ["r" + k for k in keys]
    ckeys = ["c" + k for k in keys]
    nows = [NOW + i * 1e-5 for i in range(pairs)]  # time moves on: 100k pairs per second

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
        for i in range(pairs):
            a = names[i % accounts]
            now = nows[i]
            await store.reserve(rkeys[i], a, "EUR", keys[i], 100, ttl=30.0, now=now)
            await store.commit(ckeys[i], a, "EUR", keys[i], 50, now=now)
        return pairs / (time.perf_counter() - t), pairs / (time.process_time() - c)

    return asyncio.run(run())


def _dict_baseline(pairs: int, accounts: int) -> tuple[float, float]:
    amounts = {f"a{i}": 10**15 for i in range(accounts)}
    names = [f"a{i}" for i in range(accounts)]
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


# ------------------------------------------------------------------------------------- redis
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", workdir,
                             "--protected-mode", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def _evalsha_usec(port: int) -> float | None:
    """Server CPU microseconds per EVALSHA since the last CONFIG RESETSTAT (INFO commandstats):
    the server's cost per script, which the machine's load disturbs far less than rates."""
    for line in _cli(port, "info", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            fields = dict(f.split("=", 1) for f in line.split(":", 1)[1].split(","))
            return float(fields["usec_per_call"])
    return None


def _redis_benchmark(port: int, pipeline: int, n: int) -> float:
    script = "return redis.call('HINCRBY', KEYS[1], 'amt', ARGV[1])"
    sha = _cli(port, "script", "load", script).strip()
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n),
                          "-P", str(pipeline), "--csv", "evalsha", sha, "1", "bench:k", "1"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    row = [line for line in out.splitlines() if line.startswith('"evalsha')][-1]
    return float(row.split(",")[1].strip('"'))


async def _redis_once(url: str, seconds: float, tasks: int, accounts: int,
                      rep: int) -> tuple[float, float, float]:
    """(pairs/s, share of the wall time this client process was on a CPU, client CPU
    microseconds per pair)."""
    from charging.store.redis_store import RedisStore

    store = RedisStore.from_url(url)
    try:
        if rep == 0:
            await store.flush_all_for_tests()
            for i in range(accounts):
                await store.create_account(f"a{i}", AccountKind.PREPAID_SUBSCRIBER,
                                           [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**15)])
        done = 0
        stop = time.perf_counter() + seconds
        journaled: list[tuple[str, str]] = []

        async def confirmer() -> None:
            # what the ledger does after each group commit: confirm the journaled op keys in
            # batches (keeps {acct:ID}:unj small, and its cost is part of the store's)
            while time.perf_counter() < stop or journaled:
                await asyncio.sleep(0.05)
                batch = journaled[:]
                del journaled[:len(batch)]
                if batch:
                    await store.confirm_journaled(batch)

        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < stop:
                k = f"{rep}-{w}-{i}"
                a = f"a{(w + i * tasks) % accounts}"
                r = await store.reserve("r" + k, a, "EUR", k, 100, ttl=30.0, now=NOW)
                c = await store.commit("c" + k, a, "EUR", k, 50, now=NOW)
                if not (r.ok and c.ok):
                    raise RuntimeError(f"benchmark op failed: {r} {c}")
                journaled.append((a, r.key))
                journaled.append((a, c.key))
                i += 1
                done += 1

        t, c = time.perf_counter(), time.process_time()
        await asyncio.gather(confirmer(), *(worker(w) for w in range(tasks)))
        wall = time.perf_counter() - t
        cpu = time.process_time() - c
        return done / wall, cpu / wall, cpu / max(done, 1) * 1e6
    finally:
        await store.close()


def bench_redis(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        return {"bench": "stores.redis", "skipped": "redis-server/redis-benchmark not on PATH"}
    loop_name, runner = _loop_runner()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _start_redis(tmp)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            runs = []
            for rep in range(args.reps):
                runs.append(runner(_redis_once(url, args.seconds, args.tasks, args.accounts,
                                               rep)))
                if rep == 0 and args.reps > 1:  # count the measured ops, not the setup
                    _cli(port, "config", "resetstat")
            usec_store = _evalsha_usec(port)
            _cli(port, "config", "resetstat")
            plain = [_redis_benchmark(port, 1, args.baseline_n) for _ in range(args.reps)]
            piped = [_redis_benchmark(port, 16, args.baseline_n * 4) for _ in range(args.reps)]
            usec_base = _evalsha_usec(port)
        finally:
            proc.terminate()
            proc.wait(10)
    values = [v for v, _, _ in runs]
    value = statistics.median(values)
    base = statistics.median(plain) / 2
    return {"bench": "stores.redis", "unit": "pairs/s", "value": round(value),
            "baseline": {"name": "redis-benchmark -c 50 minimal EVALSHA (HINCRBY), /2 per pair",
                         "value": round(base)},
            "ratio": round(value / base, 4),
            "baseline_pipelined": {"name": "redis-benchmark -c 50 -P 16 minimal EVALSHA, /2",
                                   "value": round(statistics.median(piped) / 2)},
            "ratio_pipelined": round(value / (statistics.median(piped) / 2), 4),
            "runs": [round(v) for v in values],
            "client_cpu_share": round(statistics.median(c for _, c, _ in runs), 3),
            "client_cpu_us_per_pair": round(statistics.median(u for _, _, u in runs), 1),
            # server CPU per script call (INFO commandstats), ours (reps 2.. incl. confirms)
            # vs the baseline's one-HINCRBY script: the load-independent cost comparison
            "server_usec_per_evalsha": usec_store, "baseline_server_usec_per_evalsha": usec_base,
            "tasks": args.tasks, "accounts": args.accounts,
            "seconds": args.seconds, "reps": args.reps, "loop": loop_name, "target": 25_000}


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
