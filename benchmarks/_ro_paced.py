"""Where the paced-phase latency of `icx serve` sits: inside the server or in front of it.

benchmarks.ro's paced phase reports the client's p99 only. This probe runs the same load
(icx/loadgen.py, open loop at each of ``--rates``) against a fresh `icx serve` (embedded
store, journal fsync on unless ``--no-fsync``) and reads the server's own CCR histogram
(``/metrics``: from the request's hand-over to the responder to its durability callback,
i.e. decide + journal group + the loop turns in between) before and after each phase. The
difference between the client's latency and the server's is time spent before the server
looked at the request (socket buffers, the loop turn still busy with earlier reads).
Also: 3004 answers (the per-peer in-flight limit, ``max_inflight_per_peer``), the server's
CPU per answered request, the load average. Baseline: the minimal responder
(benchmarks/_ro_responder.py) paced at the first rate, same run.

``python -m benchmarks._ro_paced [--rates 10000,5000] [--duration 5] [--no-fsync]``;
one JSON line on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.ro import (
    PY,
    ROOT,
    ext_active,
    free_port,
    load,
    make_config,
    server_hist,
    server_share,
    stop,
    wait_line,
)


def phase(port: int, admin_port: int, pid: int, rate: float,
          args: argparse.Namespace) -> dict[str, Any]:
    h0 = server_hist(admin_port)
    res = load(port, args, rate=rate, server_pid=pid)
    h1 = server_hist(admin_port)
    share = server_share(h0, h1)
    mean = share.pop("mean_ms", None)
    return {"rate": rate, "achieved": res["value"], "client_latency_ms": res["latency_ms"],
            "server_mean_ms": mean,
            "server_share": share, "errors": res["errors"], "timeouts": res["timeouts"],
            "server_cpu_us": res.get("server_cpu_us"), "client_cpu_us": res.get("client_cpu_us"),
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="10000,5000")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--no-fsync", action="store_true", help="journal fsync off (not durable)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    tmp = Path(tempfile.mkdtemp(prefix="icx-bench-ro-paced-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[str]] = []
    out: dict[str, Any] = {"bench": "ro_paced", "unit": "ms p99 (client)", "ext": ext_active(),
                           "fsync": not args.no_fsync}
    try:
        bport = free_port()
        resp = subprocess.Popen([PY, "-m", "benchmarks._ro_responder", "--port", str(bport),
                                 "--uvloop"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                env=env)
        procs.append(resp)
        wait_line(resp, "READY")
        base = load(bport, args, rate=rates[0], server_pid=resp.pid)
        stop(resp)
        port, aport = free_port(), free_port()
        cfg = make_config(tmp, port, aport)
        if args.no_fsync:
            cfg.write_text(cfg.read_text().replace("fsync = true", "fsync = false", 1))
        serve = subprocess.Popen([str(Path(PY).parent / "icx"), "serve", "-c", str(cfg),
                                  "--data-dir", str(tmp / "data")], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 env=env)
        procs.append(serve)
        wait_line(serve, "icx: serving")
        phases = []
        for rate in rates:
            phases.append(phase(port, aport, serve.pid, rate, args))
            print(json.dumps(phases[-1]), file=sys.stderr)
        stop(serve)
        p99 = phases[0]["client_latency_ms"].get("p99")
        bp99 = base["latency_ms"].get("p99")
        out.update(value=p99, baseline={"name": f"minimal responder paced at {rates[0]:.0f}/s",
                                        "value": bp99,
                                        "achieved": base["value"],
                                        "server_cpu_us": base.get("server_cpu_us")},
                   ratio=round(p99 / bp99, 2) if p99 and bp99 else None, phases=phases,
                   load_average=round(os.getloadavg()[0], 2))
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
