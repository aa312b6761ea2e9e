"""The load harness's send loop and its worker processes: a paced loop sleeps until its next
send is due."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

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
