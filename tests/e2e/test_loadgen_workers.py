"""The load harness's send loop and its worker processes: a paced loop sleeps until its next
send is due, and a worker that dies without reporting is noticed at once."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import signal
import threading
import time
import urllib.request

import pytest
from click.testing import CliRunner

from icx.cli import main as cli
from icx.loadgen import LoadConfig, run_load
from tests.e2e.conftest import Server


def _worker_pid(index: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in mp.active_children():
            if p.name == f"icx-bench-worker-{index}" and p.pid:
                return p.pid
        time.sleep(0.01)
    raise AssertionError(f"no worker {index}")


def _switches(pid: int) -> int:
    """Voluntary context switches of *pid* so far: one per sleep of its event loop."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_a_paced_loop_sleeps_until_the_next_send_is_due(server: Server) -> None:
    """At 20 requests/s the send loop woke every 1 ms (~1,000 wake-ups a second, most of the
    harness's CPU at low rates); now about once per send, and the pacing is as exact."""
    seen: dict[str, int] = {}

    def sample() -> None:
        pid = _worker_pid(0)
        time.sleep(0.5)
        first = _switches(pid)
        time.sleep(1.0)
        seen["per_s"] = _switches(pid) - first

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = run_load(LoadConfig(port=server.port, connections=1, processes=1, rate=20,
                              duration=2.5, mix=("sms",), subscribers=20, progress=False))
    sampler.join()
    assert out["worker_errors"] == [] and out["timeouts"] == 0
    # one wake-up per send (20/s), the progress reports (2/s), a timer firing early
    assert seen["per_s"] < 80, seen
    assert out["wakeups_per_s"] < 40, out
    assert 48 <= out["sent"] <= 50 and out["requests"] == out["sent"], out  # 20/s for 2.5 s


def test_a_high_rate_still_goes_out_in_1_ms_bursts(server: Server) -> None:
    """benchmarks/ro.py paces 10,000/s: the loop still wakes at most every 1 ms and sends
    what is due (2 per turn at 2,000/s), never a spin and never a coarser step."""
    out = run_load(LoadConfig(port=server.port, connections=2, processes=1, rate=2000,
                              duration=1.5, mix=("sms",), subscribers=20, progress=False))
    assert out["worker_errors"] == []
    assert 2950 <= out["sent"] <= 3000, out
    assert out["wakeups_per_s"] <= 1010, out


def _stall_then_kill(server: Server, stall: float, kill_after: float) -> threading.Thread:
    """Block the server's loop for *stall* s (requests pile up in flight), and SIGKILL
    worker 0 *kill_after* s into it."""
    def run() -> None:
        pid = _worker_pid(0)
        time.sleep(1.0)
        server.loop.call_soon_threadsafe(time.sleep, stall)
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)

    t = threading.Thread(target=run)
    t.start()
    return t


DIED = re.compile(r"worker 0 \(pid \d+\) died without reporting: killed by signal 9 \(SIGKILL\):"
                  r" (\d+) sent, (\d+) answered \(their latencies and codes are gone\), (\d+)"
                  r" in flight counted as lost")


def test_a_worker_killed_mid_run_is_noticed_at_once(server: Server) -> None:
    """SIGKILL to a worker: the parent waited out --duration + --timeout + 30 s (70 s here)
    and said 'worker did not report'. Now its exit is seen at once, the line says which
    worker died and how, what it had in flight counts as lost, and the other worker stops
    and reports."""
    killer = _stall_then_kill(server, stall=1.0, kill_after=0.5)
    t0 = time.monotonic()
    out = run_load(LoadConfig(port=server.port, connections=2, processes=2, rate=100,
                              duration=30, mix=("sms",), subscribers=20, progress=False))
    took = time.monotonic() - t0
    killer.join()
    assert took < 10, took
    assert len(out["worker_errors"]) == 1, out["worker_errors"]
    m = DIED.fullmatch(out["worker_errors"][0])
    assert m, out["worker_errors"]
    sent, answered, inflight = (int(g) for g in m.groups())
    assert inflight > 0 and sent == answered + inflight  # killed in the stall
    assert out["unreported"] == answered and out["lost"] >= inflight
    assert out["sent"] == out["requests"] + out["lost"] + out["timeouts"] + out["unreported"]
    assert out["requests"] > 0  # worker 1's answers, reported when it was stopped


def test_bench_cli_exits_1_with_one_line_naming_the_dead_worker(server: Server) -> None:
    killer = _stall_then_kill(server, stall=0.5, kill_after=0.2)
    t0 = time.monotonic()
    res = CliRunner(mix_stderr=False).invoke(cli, [
        "bench", "diameter", "--port", str(server.port), "-c", "1", "-p", "1", "-d", "30",
        "--rate", "100", "--mix", "sms", "--subscribers", "41790000001:20", "--quiet"])
    took = time.monotonic() - t0
    killer.join()
    assert res.exit_code == 1 and took < 10, (took, res.stderr)
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("error: worker 0 (pid ")
    assert DIED.fullmatch(res.stderr[len("error: "):].rstrip("\n")), res.stderr
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith('{"bench"')][0])
    assert out["requests"] == 0 and out["sent"] == out["lost"] + out["unreported"] > 0


def test_the_rate_is_shared_in_whole_requests_and_the_json_says_how(server: Server) -> None:
    """--rate 21 over 2 processes: 11 + 10 requests/s (was 10.5 + 10.5, each process then
    sending whole requests only); the JSON's target is what the workers were given."""
    out = run_load(LoadConfig(port=server.port, connections=3, processes=2, rate=21,
                              duration=1.0, mix=("sms",), subscribers=20, progress=False))
    assert out["worker_errors"] == [] and out["processes"] == 2
    assert out["target_rate"] == 21 and out["target_rate_per_process"] == [11, 10]
    assert out["connections_per_process"] == [2, 1]


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_a_paced_run_sends_rate_times_duration_whatever_the_processes(
        server: Server, processes: int) -> None:
    """21/s for 2 s is 42 requests on 1, 2 or 3 processes. Each worker sent its first request
    only 1/r s in and none at the end, so a run sent R*d - 1 per process (41, 40, 39), and
    with a share like 10.5 it lost its fraction too."""
    out = run_load(LoadConfig(port=server.port, connections=3, processes=processes, rate=21,
                              duration=2.0, mix=("sms",), subscribers=20, progress=False))
    assert out["worker_errors"] == [] and out["processes"] == processes
    assert out["sent"] == out["requests"] == 42, out


def _open_sessions(server: Server) -> int:
    with urllib.request.urlopen(server.admin_url + "/api/sessions", timeout=20) as resp:
        return int(json.loads(resp.read())["count"])


DIED_OPEN = re.compile(r"worker 0 \(pid \d+\) died without reporting: killed by signal 9 "
                       r"\(SIGKILL\): \d+ sent, \d+ answered \(their latencies and codes are "
                       r"gone\), \d+ in flight counted as lost; (\d+) sessions left open on "
                       r"the server \(it holds them and their reservations until its Tcc\)")


def test_the_sessions_a_dead_worker_left_open_are_reported(server: Server) -> None:
    """A worker killed with voice sessions open (CCR-Is queued behind a stalled server): it
    cannot send their CCR-Ts, so the server holds them until Tcc. The run says how many
    (per worker in its line, in all as ``sessions_left_open``) -- exactly what the server
    then holds, the other worker having ended its own."""
    killer = _stall_then_kill(server, stall=1.0, kill_after=0.5)
    out = run_load(LoadConfig(port=server.port, connections=2, processes=2, rate=20,
                              updates=100, duration=30, mix=("voice",), subscribers=20,
                              progress=False))
    killer.join()
    (line,) = out["worker_errors"]
    m = DIED_OPEN.fullmatch(line)
    assert m, line
    left = int(m.group(1))
    assert left >= 2 and out["sessions_left_open"] == left, out  # several CCR-Is queued
    deadline = time.monotonic() + 10
    while _open_sessions(server) != left and time.monotonic() < deadline:
        time.sleep(0.1)  # the server reads the dead connection's queued CCR-Is after the stall
    assert _open_sessions(server) == left
