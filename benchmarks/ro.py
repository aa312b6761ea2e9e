"""Sustained CCR/s of `icx serve` vs a minimal asyncio responder, p99 at a paced rate, the
Redis-store figure, and the RSS of N open sessions. One JSON line on stdout.

Phases (each with the load harness of icx/loadgen.py in its own worker process(es)):

1. baseline: benchmarks/_ro_responder.py (answers CCAs, nothing else), closed loop;
2. `icx serve` (embedded store, journal fsync on = full durability), closed loop, session mix
   I/U/U/T (voice + data): the sustained CCR/s;
3. `icx serve` paced at ``--paced-rate`` (default 10,000/s), ``--paced-windows`` (default 3)
   windows of ``--duration`` back to back: the p99 of each (``p99_windows``), their median
   (``p99_median``) and the median window's percentiles (``latency_ms``; one window's p99 on
   this shared VM swings with whatever else the host's disk does), the achieved rate (a server
   that cannot reach it is reported as such, never hidden: ``achieved`` is the lowest window's),
   and the share of requests the server itself finished within 5/25/100 ms over all windows
   (its /metrics histogram);
4. Redis store (when redis-server is on PATH): benchmarks/_ro_server.py on a fresh
   redis-server, closed loop;
5. RSS of ``--rss-sessions`` open sessions (benchmarks/_ro_sessions_rss.py, a child process).

``python -m benchmarks.ro [--duration 6] [--paced-rate 10000] [--paced-windows 3]
[--rss-sessions 100000]
[--no-redis] [--connections 8] [--processes 1]``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from icx.loadgen import LoadConfig, run_load

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_line(proc: subprocess.Popen[str], marker: str, timeout: float = 120.0) -> str:
    deadline = time.time() + timeout
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited ({proc.returncode}) before {marker!r}")
            continue
        if marker in line:
            return line
    raise TimeoutError(marker)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def make_config(tmp: Path, port: int, admin_port: int) -> Path:
    """The demo config with big balances (the load must not run dry) and our ports."""
    cfg = tmp / "config"
    cfg.mkdir()
    shutil.copytree(ROOT / "config" / "decks", cfg / "decks")
    text = (ROOT / "config" / "icx.toml").read_text()
    text = text.replace("listen_port = 3868", f"listen_port = {port}", 1)
    text = text.replace("listen_port = 8080", f"listen_port = {admin_port}", 1)
    text = text.replace('log_level = "info"', 'log_level = "warning"', 1)
    (cfg / "icx.toml").write_text(text)
    (cfg / "accounts.toml").write_text('[[range]]\nfirst = "41790000001"\nlast = "41790000999"\n'
                                       'amount = "1000000.00"\n')
    return cfg / "icx.toml"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def load(port: int, args: argparse.Namespace, *, rate: float = 0.0,
         duration: float | None = None, server_pid: int | None = None) -> dict[str, Any]:
    """Run one load phase. With *server_pid*, also report the server's CPU µs per answered
    request (``server_cpu_us``): steadier than the wall rate on a shared, loaded box."""
    c0 = cpu_seconds(server_pid) if server_pid else 0.0
    out = run_load(LoadConfig(
        port=port, connections=args.connections, processes=args.processes, updates=2,
        rate=rate, duration=duration or args.duration, mix=("voice", "data"),
        window=args.window, progress=not args.quiet))
    if server_pid and out.get("requests"):
        used = cpu_seconds(server_pid) - c0
        out["server_cpu_us"] = round(used / out["requests"] * 1e6, 1) if used > 0 else None
    return out


_HIST = 'icx_diameter_request_seconds_bucket{command="CCR",le="'


def server_hist(admin_port: int) -> dict[str, float]:
    """The server's cumulative CCR histogram (le -> count) plus ``sum`` and ``count``."""
    url = f"http://127.0.0.1:{admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (127.0.0.1 only)
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(_HIST):
            le = line[len(_HIST):].split('"', 1)[0]
            out[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('icx_diameter_request_seconds_sum{command="CCR"}'):
            out["sum"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('icx_diameter_request_seconds_count{command="CCR"}'):
            out["count"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(('icx_journal_sync_seconds_bucket{le="0.005"} ',
                              "icx_journal_sync_seconds_count ",
                              "icx_journal_sync_seconds_sum ",
                              "icx_journal_sync_seconds_max ")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        elif line.startswith(("icx_snapshots_total ", "icx_snapshot_fork_seconds_max ",
                              "icx_event_loop_lag_seconds_max ", "icx_gc_pause_seconds_max ",
                              'icx_event_loop_lag_seconds_bucket{le="0.005"} ',
                              'icx_event_loop_lag_seconds_count ',
                              "icx_gc_pause_seconds_total{")):
            name, value = line.rsplit(" ", 1)
            if name.startswith("icx_gc_pause_seconds_total{"):
                name = "icx_gc_pause_seconds_total"  # summed over the generations
                out[name] = out.get(name, 0.0) + float(value)
            else:
                out[name] = float(value)
    return out


def server_share(h0: dict[str, float], h1: dict[str, float]) -> dict[str, Any]:
    """Between two :func:`server_hist` readings: the share of CCRs the server itself (from
    the request's hand-over to the responder to its durability callback) finished within 5,
    25, 100 ms and 1 s, and its mean in ms. Client latency minus this is time before the
    server looked at the request (socket buffers, a loop turn still busy). Also how many
    snapshots the server cut in between and its longest fork stall so far (a young server
    cuts them by record count, and each one's fork stops the loop), its loop's lag and GC
    pauses, and the journal's group commits (``journal_sync``: how long the disk took)."""
    n = h1.get("count", 0.0) - h0.get("count", 0.0)
    if not n:
        return {}
    out: dict[str, Any] = {f"le_{le}s": round((h1[le] - h0.get(le, 0.0)) / n, 3)
                           for le in ("0.005", "0.025", "0.1", "1.0") if le in h1}
    out["mean_ms"] = round((h1.get("sum", 0.0) - h0.get("sum", 0.0)) / n * 1e3, 1)
    if "icx_snapshots_total" in h1:
        out["snapshots"] = int(h1["icx_snapshots_total"] - h0.get("icx_snapshots_total", 0.0))
    if "icx_snapshot_fork_seconds_max" in h1:
        out["fork_max_ms_since_start"] = round(h1["icx_snapshot_fork_seconds_max"] * 1e3, 1)
    # the loop's stalls (icx/loop_health.py): the share of its 25 ms ticks that ran over
    # 5 ms late in the window, the longest lag and GC pause so far, GC time in the window
    ticks = h1.get("icx_event_loop_lag_seconds_count", 0.0) - h0.get(
        "icx_event_loop_lag_seconds_count", 0.0)
    le5 = 'icx_event_loop_lag_seconds_bucket{le="0.005"}'
    if ticks > 0 and le5 in h1:
        out["loop_ticks_late_over_5ms"] = round(1 - (h1[le5] - h0.get(le5, 0.0)) / ticks, 3)
    if "icx_event_loop_lag_seconds_max" in h1:
        out["loop_lag_max_ms_since_start"] = round(h1["icx_event_loop_lag_seconds_max"] * 1e3,
                                                   1)
    # the disk under every answer (charging/journal/sync_stats.py): the window's group commits,
    # the share within 5 ms, their mean, and the longest so far
    groups = h1.get("icx_journal_sync_seconds_count", 0.0) - h0.get(
        "icx_journal_sync_seconds_count", 0.0)
    s5 = 'icx_journal_sync_seconds_bucket{le="0.005"}'
    if groups > 0 and s5 in h1:
        out["journal_sync"] = {
            "groups": int(groups),
            "le_0.005s": round((h1[s5] - h0.get(s5, 0.0)) / groups, 4),
            "mean_ms": round((h1.get("icx_journal_sync_seconds_sum", 0.0)
                              - h0.get("icx_journal_sync_seconds_sum", 0.0)) / groups * 1e3, 3),
            "max_ms_since_start": round(h1.get("icx_journal_sync_seconds_max", 0.0) * 1e3, 1)}
    if "icx_gc_pause_seconds_total" in h1:
        out["gc_ms"] = round((h1["icx_gc_pause_seconds_total"]
                              - h0.get("icx_gc_pause_seconds_total", 0.0)) * 1e3, 1)
        out["gc_max_ms_since_start"] = round(h1.get("icx_gc_pause_seconds_max", 0.0) * 1e3, 1)
    return out


def paced_summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from several paced windows: the median window by p99 (its percentiles and
    server CPU), every window's p99 and achieved rate, the lowest achieved rate as ``value``,
    errors and timeouts summed."""
    ranked = sorted(windows, key=lambda w: w["latency_ms"].get("p99") or float("inf"))
    mid = ranked[len(ranked) // 2]  # an even count: the worse of the two middle windows
    errors: dict[str, int] = {}
    for w in windows:
        for code, n in w["errors"].items():
            errors[code] = errors.get(code, 0) + n
    return {"value": min(w["value"] for w in windows), "latency_ms": mid["latency_ms"],
            "server_cpu_us": mid.get("server_cpu_us"),
            "p99_windows": [w["latency_ms"].get("p99") for w in windows],
            "achieved_windows": [w["value"] for w in windows],
            "errors": errors, "timeouts": sum(w["timeouts"] for w in windows)}


def ext_active() -> bool:
    if os.environ.get("ICX_NO_EXTENSIONS") == "1":
        return False
    try:
        from charging.rating import extension_active

        return bool(extension_active())
    except Exception:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--paced-rate", type=float, default=10_000.0)
    ap.add_argument("--paced-windows", type=int, default=3,
                    help="paced windows of --duration each; the p99 quoted is their median")
    ap.add_argument("--rss-sessions", type=int, default=100_000,
                    help="open this many sessions for the RSS figure (default: the target "
                         "itself, ~5 s here; rss_mb_at_100k_estimate scales a smaller run)")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--no-fsync-figure", action="store_true",
                    help="skip the extra run with journal fsync off (CPU ceiling, not durable)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="icx-bench-ro-"))
    out: dict[str, Any] = {"bench": "ro", "unit": "CCR/s", "ext": ext_active()}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[str]] = []
    try:
        # 1. baseline
        bport = free_port()
        resp = subprocess.Popen([PY, "-m", "benchmarks._ro_responder", "--port", str(bport),
                                 "--uvloop"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                env=env)
        procs.append(resp)
        wait_line(resp, "READY")
        base = load(bport, args, server_pid=resp.pid)
        stop(resp)
        # 2 + 3. icx serve, embedded store, fsync on
        port, aport = free_port(), free_port()
        cfg = make_config(tmp, port, aport)
        serve = subprocess.Popen([str(Path(PY).parent / "icx"), "serve", "-c", str(cfg),
                                  "--data-dir", str(tmp / "data")], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 env=env)
        procs.append(serve)
        wait_line(serve, "icx: serving")
        peak = load(port, args, server_pid=serve.pid)
        h0 = server_hist(aport)
        windows = [load(port, args, rate=args.paced_rate, server_pid=serve.pid)
                   for _ in range(max(1, args.paced_windows))]
        paced_share = server_share(h0, server_hist(aport))
        paced = paced_summary(windows)
        stop(serve)
        if not args.no_fsync_figure:
            # Same server with fsync off: what the CPU allows when the disk is not the limit.
            nport = free_port()
            text = cfg.read_text().replace(f"listen_port = {port}", f"listen_port = {nport}", 1)
            text = text.replace(f"listen_port = {aport}", f"listen_port = {free_port()}", 1)
            ncfg = cfg.with_name("icx-nofsync.toml")
            ncfg.write_text(text.replace("fsync = true", "fsync = false", 1))
            nserve = subprocess.Popen([str(Path(PY).parent / "icx"), "serve", "-c", str(ncfg),
                                       "--data-dir", str(tmp / "data-nofsync")], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, env=env)
            procs.append(nserve)
            wait_line(nserve, "icx: serving")
            nofsync = load(nport, args, server_pid=nserve.pid)
            stop(nserve)
            out["no_fsync"] = {"value": nofsync["value"], "latency_ms": nofsync["latency_ms"],
                               "server_cpu_us": nofsync.get("server_cpu_us"),
                               "errors": nofsync["errors"], "durable": False}
        out.update(value=peak["value"],
                   baseline={"name": "minimal asyncio CCA responder (Python)",
                             "value": base["value"]},
                   ratio=round(peak["value"] / base["value"], 3) if base["value"] else None,
                   latency_ms_peak=peak["latency_ms"], errors_peak=peak["errors"],
                   timeouts_peak=peak["timeouts"],
                   paced={"target": args.paced_rate, "achieved": paced["value"],
                          "latency_ms": paced["latency_ms"],
                          "p99_median": paced["latency_ms"].get("p99"),
                          "p99_windows": paced["p99_windows"],
                          "achieved_windows": paced["achieved_windows"],
                          "errors": paced["errors"], "timeouts": paced["timeouts"]},
                   baseline_latency_ms=base["latency_ms"],
                   server_cpu_us=peak.get("server_cpu_us"),
                   baseline_cpu_us=base.get("server_cpu_us"),
                   # the load harness's own CPU per request (its worker processes)
                   client_cpu_us=peak.get("client_cpu_us"),
                   baseline_client_cpu_us=base.get("client_cpu_us"),
                   load_average=round(os.getloadavg()[0], 2))
        out["paced"]["server_cpu_us"] = paced.get("server_cpu_us")
        out["paced"]["server_share"] = paced_share
        # 4. Redis store
        redis = shutil.which("redis-server")
        if redis and not args.no_redis:
            rport = free_port()
            rs = subprocess.Popen([redis, "--port", str(rport), "--save", "", "--appendonly",
                                   "no", "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, text=True)
            procs.append(rs)
            time.sleep(0.5)
            port2 = free_port()
            srv = subprocess.Popen([PY, "-m", "benchmarks._ro_server", "-c", str(cfg),
                                    "--data-dir", str(tmp / "data-redis"), "--port", str(port2),
                                    "--store-url", f"redis://127.0.0.1:{rport}/0"], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   env=env)
            procs.append(srv)
            wait_line(srv, "READY")
            red = load(port2, args, server_pid=srv.pid)
            stop(srv)
            stop(rs)
            out["redis"] = {"value": red["value"], "latency_ms": red["latency_ms"],
                            "server_cpu_us": red.get("server_cpu_us"),
                            "errors": red["errors"], "timeouts": red["timeouts"]}
        # 5. RSS of open sessions
        if args.rss_sessions:
            rss = subprocess.run([PY, "-m", "benchmarks._ro_sessions_rss", "--sessions",
                                  str(args.rss_sessions)], cwd=ROOT, capture_output=True,
                                 text=True, env=env, timeout=900)
            line = rss.stdout.strip().splitlines()[-1] if rss.stdout.strip() else "{}"
            rss_out = json.loads(line)
            if rss_out.get("bytes_per_session"):
                rss_out["rss_mb_at_100k_estimate"] = round(
                    rss_out["rss_before_mb"] + rss_out["bytes_per_session"] * 100_000 / 2**20, 1)
            out["open_sessions_rss"] = rss_out
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
