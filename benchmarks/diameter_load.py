"""How fast the load harness drives a server: icx/loadgen.py vs python-diameter 0.9.0 as a
client, both against the same minimal asyncio responder (benchmarks/_ro_responder.py), in the
same run. It shows the harness is not the bottleneck of benchmarks/ro.py. One JSON line.

``python -m benchmarks.diameter_load [--duration 6] [--processes 1] [--connections 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.ro import free_port, stop, wait_line
from icx.loadgen import LoadConfig, run_load

ROOT = Path(__file__).resolve().parent.parent
PYD = ROOT / ".venv-pydiameter" / "bin" / "python"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--pyd-threads", type=int, default=32)
    args = ap.parse_args()
    port = free_port()
    resp = subprocess.Popen([sys.executable, "-m", "benchmarks._ro_responder", "--port",
                             str(port), "--uvloop"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        wait_line(resp, "READY")
        ours = run_load(LoadConfig(port=port, connections=args.connections,
                                   processes=args.processes, duration=args.duration,
                                   mix=("voice", "data", "sms"), progress=False))
        base: dict[str, object] = {"name": "python-diameter 0.9.0 client", "value": None}
        if PYD.exists():
            out = subprocess.run([str(PYD), str(ROOT / "benchmarks" / "_pyd_client.py"),
                                  str(port), str(args.duration), str(args.pyd_threads)],
                                 capture_output=True, text=True, timeout=args.duration + 60,
                                 cwd="/")
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
            r = json.loads(line)
            if r.get("seconds"):
                base["value"] = round(r["answered"] / r["seconds"], 1)
    finally:
        stop(resp)
    value = ours["value"]
    bval = base["value"]
    print(json.dumps({
        "bench": "diameter_load", "unit": "req/s", "value": value, "baseline": base,
        "ratio": round(value / bval, 2) if isinstance(bval, float) and bval else None,
        "ext": os.environ.get("ICX_NO_EXTENSIONS") != "1",
        "latency_ms": ours["latency_ms"], "processes": ours["processes"],
        "connections": ours["connections"], "errors": ours["errors"]}))


if __name__ == "__main__":
    main()
