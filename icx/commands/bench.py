"""`icx bench diameter`: the Diameter load harness (icx/loadgen.py).

Prints a live progress line on stderr and ONE JSON line on stdout: requests, errors by
Result-Code, achieved rate, latency p50/p90/p99/p999 (ms).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from icx.loadgen import KINDS, LoadConfig, run_load


@click.group("bench")
def bench() -> None:
    """Load generators."""


@bench.command("diameter")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3868, show_default=True, type=int)
@click.option("--connections", "-c", default=4, show_default=True, type=int,
              help="Client peers (each does CER/CEA and answers DWR).")
@click.option("--sessions", "-s", default=0, show_default=True, type=int,
              help="Sessions to run in total (0: until --duration).")
@click.option("--updates", "-u", default=2, show_default=True, type=int,
              help="CCR-U per voice/data session (I, U x k, T).")
@click.option("--rate", "-r", default=0.0, show_default=True, type=float,
              help="Target requests/s over all processes (0: as fast as answered).")
@click.option("--duration", "-d", default=10.0, show_default=True, type=float,
              help="Seconds of load.")
@click.option("--mix", default="voice,data,sms", show_default=True,
              help="Comma list of voice, data, sms (repeat a kind to weight it).")
@click.option("--processes", "-p", default=0, type=int,
              help="Worker processes (0: min(connections, CPUs - 1, 8)).")
@click.option("--window", default=64, show_default=True, type=int,
              help="Closed loop (--rate 0): requests in flight per connection.")
@click.option("--subscribers", default="41790000001:999", show_default=True,
              help="FIRST:COUNT of subscriber MSISDNs to charge.")
@click.option("--realm", default="icx.local", show_default=True, help="Destination-Realm.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--ceiling", is_flag=True,
              help="First run the same load against a minimal Python CCA responder "
                   "(benchmarks/_ro_responder.py, started here): the harness's ceiling, "
                   "reported as 'ceiling' next to the result.")
def diameter(host: str, port: int, connections: int, sessions: int, updates: int, rate: float,
             duration: float, mix: str, processes: int, window: int, subscribers: str,
             realm: str, quiet: bool, ceiling: bool) -> None:
    """Drive a Diameter Ro server (this one, or any OCS at --host/--port)."""
    kinds = tuple(k.strip() for k in mix.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        click.echo(f"--mix:1: unknown kind {bad[0] if bad else mix!r}; use {','.join(KINDS)}",
                   err=True)
        sys.exit(2)
    try:
        first, count = (int(x) for x in subscribers.split(":"))
    except ValueError:
        click.echo(f"--subscribers:1: expected FIRST:COUNT, got {subscribers!r}", err=True)
        sys.exit(2)
    limits = (("--connections", connections, connections >= 1, "at least 1"),
              ("--sessions", sessions, sessions >= 0, "0 (until --duration) or more"),
              ("--updates", updates, updates >= 0, "0 or more"),
              ("--rate", rate, 0 <= rate < math.inf, "0 (as fast as answered) or more"),
              ("--duration", duration, 0 < duration < math.inf, "more than 0 s"),
              ("--processes", processes, processes >= 0, "0 (automatic) or more"),
              ("--window", window, window >= 1, "at least 1"),
              ("--port", port, 0 < port < 65536, "1-65535"),
              ("--subscribers", subscribers, first >= 0 and count >= 1,
               "FIRST 0 or more, COUNT at least 1"),
              # a paced run due to send nothing ran for --duration and exited 0 at 0 req/s
              ("--rate", rate, not 0 < rate * duration < 1,
               f"0 or at least one request in --duration {duration:g} s"))
    for name, value, ok, rule in limits:  # (NaN fails every comparison: refused too)
        if not ok:
            click.echo(f"{name}:1: {value!r} is out of range: {rule}", err=True)
            sys.exit(2)
    procs = processes or max(1, min(connections, (os.cpu_count() or 2) - 1, 8))
    cfg = LoadConfig(host=host, port=port, connections=connections, sessions=sessions,
                     updates=updates, rate=rate, duration=duration, mix=kinds, processes=procs,
                     window=window, first_subscriber=first, subscribers=count, dest_realm=realm,
                     progress=not quiet)
    if ceiling and not (_ROOT / "benchmarks" / "_ro_responder.py").exists():
        click.echo("--ceiling:1: needs benchmarks/_ro_responder.py (run from the repository)",
                   err=True)
        sys.exit(2)
    try:
        top = _ceiling(cfg) if ceiling else None
        out = run_load(cfg)
    except (OSError, ConnectionError, RuntimeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if top is not None:
        out["ceiling"] = {"name": "minimal Python CCA responder", "value": top["value"],
                          "latency_ms": top["latency_ms"],
                          "client_cpu_us": top.get("client_cpu_us")}
        out["ceiling_ratio"] = round(out["value"] / top["value"], 3) if top["value"] else None
    click.echo(json.dumps(out))
    if out["worker_errors"]:  # a worker that could not run, or lost its server mid-run
        click.echo(f"error: {out['worker_errors'][0]}", err=True)
        sys.exit(1)
    if out["sent"] and not out["result_codes"].get("2001"):
        codes = ", ".join(f"{c} x{n}" for c, n in out["result_codes"].items()) or "none"
        click.echo(f"error: no request succeeded ({out['sent']} sent; answers: {codes}; "
                   f"timeouts: {out['timeouts']})", err=True)
        sys.exit(1)


_ROOT = Path(__file__).resolve().parents[2]  # the repository checkout (benchmarks/ beside icx/)


def _ceiling(cfg: LoadConfig) -> dict[str, Any]:
    """The same load against the minimal responder on a free local port (its own process)."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._ro_responder", "--port", "0",
                             "--uvloop"], stdout=subprocess.PIPE, text=True, cwd=_ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError("the minimal responder did not start")
        return run_load(dataclasses.replace(cfg, host="127.0.0.1", port=int(line[1])))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


commands = [bench]
