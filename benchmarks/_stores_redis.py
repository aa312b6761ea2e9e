"""Redis-store half of benchmarks/stores.py (reserve+commit pairs/s against redis-server)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

from benchmarks._stores_common import NOW, _loop_runner
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from cython_ext import load


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


def _server_cpu(port: int) -> float:
    """The server's main-thread CPU seconds so far (INFO cpu): unlike usec_per_call (wall time
    inside the call, which a loaded machine inflates whenever the server is preempted) it only
    counts the CPU the server really spent, parsing and replying included."""
    d = dict(line.split(":", 1) for line in _cli(port, "info", "cpu").splitlines()
             if line.startswith("used_cpu_") and "main_thread" in line)
    return float(d["used_cpu_sys_main_thread"]) + float(d["used_cpu_user_main_thread"])


def _evalsha_calls(port: int) -> int:
    for line in _cli(port, "info", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def _shapes(port: int, accounts: int) -> dict[str, Any]:
    """Sizes and encodings of the keys the op scripts touch: the account hashes (their op
    records accumulate for the retention), the slot indexes (unj sets, ix:x zsets)."""
    sample = [f"{{acct:a{i}}}:a" for i in range(0, accounts, max(1, accounts // 20))]
    lens = [int(_cli(port, "hlen", k)) for k in sample]
    encs = sorted({_cli(port, "object", "encoding", k).strip() for k in sample})
    unj = [k for k in _cli(port, "--scan", "--pattern", "*:unj").split()]
    ixs = [k for k in _cli(port, "--scan", "--pattern", "*:ix:x").split()]
    return {"account_hash_fields_median": statistics.median(lens) if lens else 0,
            "account_hash_encodings": encs, "unj_sets": len(unj),
            "unj_max_members": max((int(_cli(port, "scard", k)) for k in unj[:200]), default=0),
            "ix_x_zsets": len(ixs)}


def _redis_benchmark(port: int, pipeline: int, n: int) -> float:
    script = "return redis.call('HINCRBY', KEYS[1], 'amt', ARGV[1])"
    sha = _cli(port, "script", "load", script).strip()
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n),
                          "-P", str(pipeline), "--csv", "evalsha", sha, "1", "bench:k", "1"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    row = [line for line in out.splitlines() if line.startswith('"evalsha')][-1]
    return float(row.split(",")[1].strip('"'))


async def _redis_once(url: str, seconds: float, tasks: int, accounts: int,
                      rep: int) -> tuple[float, float, float, int]:
    """(pairs/s, share of the wall time this client process was on a CPU, client CPU
    microseconds per pair, pairs done)."""
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
        return done / wall, cpu / wall, cpu / max(done, 1) * 1e6, done
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
            cpu0 = 0.0
            for rep in range(args.reps):
                runs.append(runner(_redis_once(url, args.seconds, args.tasks, args.accounts,
                                               rep)))
                if rep == 0 and args.reps > 1:  # count the measured ops, not the setup
                    _cli(port, "config", "resetstat")
                    cpu0 = _server_cpu(port)
            usec_store = _evalsha_usec(port)
            shapes = _shapes(port, args.accounts)
            # server CPU per EVALSHA (reps 2..; the confirms' SREMs are included in the CPU).
            # An EVALSHA may be a batch of ops (charging/store/redis_opbatch.py): per op too.
            cpu_delta = _server_cpu(port) - cpu0
            calls = _evalsha_calls(port)
            ops = 2 * sum(r[3] for r in runs[1:]) if len(runs) > 1 else 2 * runs[0][3]
            cpu_store = cpu_delta / max(calls, 1) * 1e6
            cpu_store_op = cpu_delta / max(ops, 1) * 1e6
            usec_store_op = None if usec_store is None else usec_store * calls / max(ops, 1)
            _cli(port, "config", "resetstat")
            cpu0 = _server_cpu(port)
            plain = [_redis_benchmark(port, 1, args.baseline_n) for _ in range(args.reps)]
            piped = [_redis_benchmark(port, 16, args.baseline_n * 4) for _ in range(args.reps)]
            usec_base = _evalsha_usec(port)
            cpu_base = (_server_cpu(port) - cpu0) / max(_evalsha_calls(port), 1) * 1e6
        finally:
            proc.terminate()
            proc.wait(10)
    values = [v for v, _, _, _ in runs]
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
            "client_cpu_share": round(statistics.median(c for _, c, _, _ in runs), 3),
            "client_cpu_us_per_pair": round(statistics.median(u for _, _, u, _ in runs), 1),
            # server CPU per script call (INFO commandstats), ours (reps 2.. incl. confirms)
            # vs the baseline's one-HINCRBY script: the load-independent cost comparison
            "server_usec_per_evalsha": usec_store, "baseline_server_usec_per_evalsha": usec_base,
            # server main-thread CPU per EVALSHA (INFO cpu): what the load disturbs least
            "server_cpu_us_per_evalsha": round(cpu_store, 1),
            "baseline_server_cpu_us_per_evalsha": round(cpu_base, 1),
            # per store op (reserve or commit): an EVALSHA now carries a batch of them
            "ops_per_evalsha": round(ops / max(calls, 1), 2),
            "server_cpu_us_per_op": round(cpu_store_op, 1),
            "server_usec_per_op": None if usec_store_op is None else round(usec_store_op, 2),
            # what the scripts work on at the end of the runs (deliverable: why per-op cost)
            "shapes": shapes,
            # the client codec's compiled twin in use (cython_ext/redis_codec.pyx)
            "codec_ext": load("redis_codec") is not None,
            "tasks": args.tasks, "accounts": args.accounts,
            "seconds": args.seconds, "reps": args.reps, "loop": loop_name, "target": 25_000}
