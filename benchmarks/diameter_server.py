"""Diameter server benchmark: CCR/CCA round trips per second over TCP on 127.0.0.1.

The same client (our asyncio peer, a window of pipelined CCR-Updates on one connection)
drives two servers, each in its own process, each answering every CCR with a minimal CCA
(Result-Code 2001, no charging): ours (``diameter.adapter.DiameterServer`` + PeerConnection,
uvloop, full request validation, duplicate cache) and python-diameter 0.9.0's ``Node`` with a
``SimpleThreadingApplication`` (in .venv-pydiameter: it imports as ``diameter``). This measures
the stack — framing, peer state machine, validation, answer building — not the charging engine.
Prints ONE JSON line; value = our median answers/s (wall, same client for both); the server
processes' CPU µs per answer (from /proc) are reported too: on a shared machine they are the
steadier comparison.

    .venv/bin/python -m benchmarks.diameter_server [--seconds 3] [--reps 3] [--window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from diameter import codec_info
from diameter.adapter import DiameterServer, PeerProtocol, connect
from diameter.answers import answer_for
from diameter.avp import Avp
from diameter.message import Message, decode_message
from diameter.peer_config import PeerConfig

ROOT = Path(__file__).resolve().parent.parent
PYDIAMETER = ROOT / ".venv-pydiameter" / "bin" / "python"
SERVER_CFG = PeerConfig(origin_host="ocs.icx.local", origin_realm="icx.local", max_inflight=4096)
CLIENT_CFG = replace(
    SERVER_CFG,
    origin_host="client.bench.local",
    origin_realm="bench.local",
    acct_application_ids=(),
    product_name="bench",
)


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ccr_template() -> bytes:
    from benchmarks.codec import build_ccr_u  # the same CCR-U as the codec benchmark

    return build_ccr_u()


# ----------------------------------------------------------------------------- our server
async def _handle(request: Message, peer: PeerProtocol) -> Message:
    assert peer.conn is not None
    return answer_for(
        request,
        peer.conn.me,
        2001,
        [
            Avp.new("Auth-Application-Id", 4),
            Avp.new("CC-Request-Type", request["CC-Request-Type"]),
            Avp.new("CC-Request-Number", request["CC-Request-Number"]),
        ],
    )


async def _serve_ours(port: int) -> None:
    _quiet()
    server = DiameterServer(SERVER_CFG, _handle, host="127.0.0.1", port=port)
    await server.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


def _run_ours_server(port: int) -> None:
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_ours(port))


# ----------------------------------------------------------------------- python-diameter
PYDIAMETER_SERVER = r"""
import sys, time, logging
logging.basicConfig(level=logging.ERROR)
from diameter.message import constants
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication
port = int(sys.argv[1])
node = Node("ocs.icx.local", "icx.local", ip_addresses=["127.0.0.1"], tcp_port=port,
            vendor_ids=[10415])
peer = node.add_peer("aaa://client.bench.local", "bench.local")
def handle(app, msg):
    a = app.generate_answer(msg, result_code=2001)
    a.cc_request_type = msg.cc_request_type
    a.cc_request_number = msg.cc_request_number
    return a
app = SimpleThreadingApplication(constants.APP_DIAMETER_CREDIT_CONTROL_APPLICATION,
                                 is_auth_application=True, request_handler=handle)
node.add_application(app, [peer], realms=["icx.local"])  # routes by Destination-Realm
node.start()
print("READY", flush=True)
while True:
    time.sleep(3600)
"""


# ----------------------------------------------------------------------------- client
async def _drive(port: int, seconds: float, reps: int, window: int) -> list[float]:
    _quiet()
    template = ccr_template()
    proto = await connect(CLIENT_CFG, "127.0.0.1", port, timeout=10)
    rates: list[float] = []
    answered = 0
    try:
        ans = await proto.request(_fresh(template))  # warm-up and sanity check
        assert ans.get("Result-Code") == 2001, ans
        for _ in range(reps):
            done = 0
            deadline = time.perf_counter() + seconds

            async def worker(deadline: float = deadline) -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    a = await proto.request(_fresh(template), timeout=30)
                    if a.get("Result-Code") == 2001:
                        done += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(window)))
            rates.append(done / (time.perf_counter() - t0))
            answered += done
    finally:
        proto.abort()
    _LAST["answered"] = answered
    return rates


_LAST: dict[str, int] = {}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fresh(template: bytes) -> Message:
    msg = decode_message(template)
    msg.end_to_end = 0  # a new End-to-End per request: not a duplicate
    return msg


def _measure(
    cmd: list[str], seconds: float, reps: int, window: int
) -> tuple[list[float], float] | None:
    """(answers/s per repetition, server CPU µs per answer)."""
    port = _free_port()
    proc = subprocess.Popen(
        [*cmd, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=str(ROOT) if cmd[0] == sys.executable else "/",
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            return None
        time.sleep(0.3)  # python-diameter binds its listener in its connection thread
        cpu0 = _cpu_seconds(proc.pid)
        mine0 = time.process_time()
        rates = asyncio.run(_drive(port, seconds, reps, window))
        cpu = _cpu_seconds(proc.pid) - cpu0
        n = max(1, _LAST.get("answered", 0))
        _LAST.setdefault("client_cpu_ns", 0)
        _LAST["client_cpu_ns"] = int((time.process_time() - mine0) * 1e9 / n)
        return rates, cpu * 1e6 / n
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of one repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--window", type=int, default=64, help="requests in flight")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        _run_ours_server(args.serve)
        return 0
    ours = _measure(
        [sys.executable, "-m", "benchmarks.diameter_server", "--serve"],
        args.seconds,
        args.reps,
        args.window,
    )
    client_cpu_ours = _LAST.get("client_cpu_ns", 0) / 1000
    theirs = (
        _measure([str(PYDIAMETER), "-c", PYDIAMETER_SERVER], args.seconds, args.reps, args.window)
        if PYDIAMETER.exists()
        else None
    )
    value = statistics.median(ours[0]) if ours else None
    base = statistics.median(theirs[0]) if theirs else None
    cpu = ours[1] if ours else None
    client_cpu = client_cpu_ours if ours else None
    base_cpu = theirs[1] if theirs else None
    print(
        json.dumps(
            {
                "bench": "diameter_server",
                "unit": "answers/s",
                "value": round(value, 1) if value else None,
                "baseline": {
                    "name": "python-diameter 0.9.0 Node + SimpleThreadingApplication",
                    "value": round(base, 1) if base else None,
                },
                "ratio": round(value / base, 1) if value and base else None,
                "ext": codec_info()["ext"],
                "window": args.window,
                "reps": args.reps,
                "seconds": args.seconds,
                "server_cpu_us_per_answer": round(cpu, 1) if cpu else None,
                "baseline_server_cpu_us_per_answer": round(base_cpu, 1) if base_cpu else None,
                "cpu_ratio": round(base_cpu / cpu, 1) if cpu and base_cpu else None,
                "client_cpu_us_per_answer": round(client_cpu, 1) if client_cpu else None,
                "runs": [round(x, 1) for x in ours[0]] if ours else [],
                "baseline_runs": [round(x, 1) for x in theirs[0]] if theirs else [],
                "load1": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
