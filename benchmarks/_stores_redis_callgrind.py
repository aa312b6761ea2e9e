"""Callgrind driver for the Redis store's server side: instructions per op, by function.

    python -m benchmarks._stores_redis_callgrind [--pairs 2000] [--accounts 50] [--fill 350]
        [--redis-server PATH]

Fills a plain redis-server with ``--accounts`` accounts carrying ``--fill`` reserve+commit pairs
each (the op records a busy account accumulates within the retention), saves it, restarts the
same data under ``valgrind --tool=callgrind``, zeroes the counters, runs exactly ``--pairs``
reserve+commit pairs issued by the real client (64 tasks, the store's auto-batcher: batch
EVALSHAs), dumps, and prints ONE JSON line: instructions per op in total
and inclusive per named function (the script body, the redis.call plumbing, the commands
themselves, the call's RESP parse). Not timed: instructions only. Debian's redis-server is
stripped (Lua's static functions have no names); for a breakdown by function pass
``--redis-server`` a build of the same version with symbols (e.g. ``apt-get source redis`` and
``make USE_SYSTEM_JEMALLOC=yes``). The total includes serverCron's memory stats (~1.5k per op
here, an artifact of valgrind's slowness: cron runs per wall second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from typing import Any

from benchmarks._stores_common import NOW
from benchmarks._stores_redis import _cli, _free_port
from charging.store.base import AccountKind, BalanceKind, BalanceSpec

# function -> group, matched on callgrind_annotate's inclusive listing. Debian's redis-server is
# stripped: its exported functions have names, Lua's static ones (luaV_execute, luaS_newlstr,
# str_format, luaB_tonumber, luaRedisGenericCommand, ...) only addresses; the named ones below
# bound them (lua_pcall: the script body; scriptCall + parseReply: the redis.call plumbing).
_GROUPS = [
    ("read_parse_run_total", r"^readQueryFromClient$"),
    ("resp_parse_of_the_call", r"^processMultibulkBuffer$"),
    ("evalsha_total", r"^evalShaCommand$"),
    ("script_total_luaCallFunction", r"^luaCallFunction$"),
    ("script_body_lua_pcall", r"^lua_pcall$"),
    ("redis_call_scriptCall", r"^scriptCall$"),
    ("redis_call_reply_to_lua_parseReply", r"^parseReply$"),
    ("redis_call_lookupCommand", r"^lookupCommand$"),
    ("cmd_hmget", r"^hmgetCommand$"),
    ("cmd_hset", r"^hsetCommand$"),
    ("cmd_hdel", r"^hdelCommand$"),
    ("cmd_zadd", r"^zaddCommand$"),
    ("cmd_zrem", r"^zremCommand$"),
    ("cmd_sadd", r"^saddCommand$"),
    ("cmd_hscan", r"^hscanCommand$"),
    ("strtod", r"^strtod$"),
    ("sprintf", r"^__sprintf_chk$"),
    ("lua_pushlstring", r"^lua_pushlstring$"),
]


def _fill(port: int, accounts: int, fill: int) -> None:
    async def go() -> None:
        from charging.store.redis_store import RedisStore

        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            await store.flush_all_for_tests()
            for i in range(accounts):
                await store.create_account(f"a{i}", AccountKind.PREPAID_SUBSCRIBER,
                                           [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**15)])

            async def worker(w: int) -> None:
                for i in range(w, accounts * fill, 64):
                    k = f"f-{i}"
                    a = f"a{i % accounts}"
                    await store.reserve("r" + k, a, "EUR", k, 100, ttl=30.0, now=NOW)
                    await store.commit("c" + k, a, "EUR", k, 50, now=NOW)
            await asyncio.gather(*(worker(w) for w in range(64)))
            await store.confirm_journaled([])
        finally:
            await store.close()
    asyncio.run(go())


def _run(port: int, accounts: int, pairs: int, tasks: int) -> None:
    async def go() -> None:
        from charging.store.redis_store import RedisStore

        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            async def worker(w: int) -> None:
                for i in range(w, pairs, tasks):
                    k = f"m-{i}"
                    a = f"a{i % accounts}"
                    r = await store.reserve("r" + k, a, "EUR", k, 100, ttl=30.0, now=NOW)
                    c = await store.commit("c" + k, a, "EUR", k, 50, now=NOW)
                    assert r.ok and c.ok, (r, c)
            await asyncio.gather(*(worker(w) for w in range(tasks)))
        finally:
            await store.close()
    asyncio.run(go())


def _wait(port: int, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited")
        try:
            if _cli(port, "ping").strip() == "PONG":
                if "loading:0" in _cli(port, "info", "persistence"):
                    return
        except subprocess.SubprocessError:
            pass
        time.sleep(0.2)
    raise RuntimeError("redis-server did not start")


def _server(workdir: str, port: int, valgrind: list[str],
            exe: str = "redis-server") -> subprocess.Popen[bytes]:
    return subprocess.Popen([*valgrind, exe, "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir,
                             "--protected-mode", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _annotate(out: str) -> dict[str, int]:
    """Inclusive instructions per function (callgrind_annotate --inclusive=yes)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                          capture_output=True, text=True, check=True).stdout
    incl: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\S*?:)?(\S+?)(?: \[.*\])?\s*$", line)
        if m:
            name = m.group(2)
            incl.setdefault(name, int(m.group(1).replace(",", "")))
    return incl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks._stores_redis_callgrind")
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--fill", type=int, default=350, help="pairs per account before measuring")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--keep", help="copy the callgrind output file here")
    ap.add_argument("--redis-server", default="redis-server",
                    help="the server binary (e.g. a build with symbols, for the breakdown)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        proc = _server(tmp, port, [], args.redis_server)
        try:
            _wait(port, proc, 15)
            _fill(port, args.accounts, args.fill)
            fields = int(_cli(port, "hlen", "{acct:a0}:a"))
            _cli(port, "save")
        finally:
            proc.terminate()
            proc.wait(10)
        out = os.path.join(tmp, "callgrind.out")
        port = _free_port()
        proc = _server(tmp, port, ["valgrind", "--tool=callgrind",
                                   f"--callgrind-out-file={out}"], args.redis_server)
        try:
            _wait(port, proc, 300)
            _run(port, args.accounts, 64, args.tasks)  # warm: script cache, connection
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           capture_output=True)
            _run(port, args.accounts, args.pairs, args.tasks)
            subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], check=True,
                           capture_output=True)
            calls = _cli(port, "info", "commandstats")
        finally:
            proc.terminate()
            proc.wait(120)
        out = out + ".1"  # the --dump taken right after the measured pairs
        if args.keep:
            subprocess.run(["cp", out, args.keep], check=True)
        incl = _annotate(out)
    ops = 2 * args.pairs
    total = max(incl.values())  # the root (below main): everything collected
    evalsha = re.search(r"cmdstat_evalsha:calls=(\d+)", calls)
    groups: dict[str, Any] = {}
    for group, pat in _GROUPS:
        n = sum(v for k, v in incl.items() if re.match(pat, k))
        groups[group] = round(n / ops)
    print(json.dumps({"bench": "stores.redis.callgrind", "unit": "instructions/op",
                      "value": round(total / ops), "ops": ops,
                      "evalsha_calls": int(evalsha.group(1)) if evalsha else None,
                      "account_hash_fields": fields, "inclusive_per_op": groups}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
