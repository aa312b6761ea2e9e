"""The load harness (`icx bench diameter`) against the real server: proper peers, full
sessions and events, one JSON summary; bad input exits 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from icx.cli import main as cli
from icx.diameter_client import A, CcrTemplate, mscc, utf8_avp, voice_info
from icx.loadgen import LoadConfig, run_load
from tests.e2e.conftest import ROOT, Server


def test_sessions_and_events_are_all_answered(server: Server) -> None:
    out = run_load(LoadConfig(port=server.port, connections=2, processes=1, sessions=12,
                              updates=2, duration=30, mix=("voice", "data", "sms"),
                              first_subscriber=41790000001, subscribers=20, progress=False))
    # 4 voice + 4 data sessions x (I, U, U, T) + 4 SMS events
    assert out["sessions"] == 12 and out["requests"] == 4 * 4 + 4 * 4 + 4
    assert out["result_codes"] == {"2001": out["requests"]} and out["timeouts"] == 0
    assert set(out["latency_ms"]) == {"p50", "p90", "p99", "p999"}
    assert out["value"] > 0


def test_bench_cli_rejects_bad_input() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["bench", "diameter", "--mix", "voice,fax"])
    assert res.exit_code == 2 and "--mix" in res.output
    res = runner.invoke(cli, ["bench", "diameter", "--subscribers", "x"])
    assert res.exit_code == 2


@pytest.mark.parametrize("args", [
    ["--sessions", "-3"], ["--processes", "-1"], ["--window", "0"], ["--rate", "nan"],
    ["--rate", "inf"], ["--duration", "inf"], ["--port", "70000"], ["--port", "0"],
    ["--subscribers", "41790000001:0"], ["-c", "0"], ["--updates", "-1"], ["--rate", "-5"],
    ["--rate", "0.5"],  # one request every 2 s for 1 s: ran, sent nothing, exited 0
])
def test_bench_cli_refuses_out_of_range_values(args: list[str]) -> None:
    """Out-of-range numbers are bad input (exit 2, the option named on one stderr line) before
    any connection is made: --sessions -3 ran nothing and exited 0, --subscribers F:0 or
    --rate nan failed in the worker (exit 1, a Python error text), --duration inf waited
    for nothing and said 'worker did not report'."""
    res = CliRunner(mix_stderr=False).invoke(
        cli, ["bench", "diameter", "--port", "1", "-d", "1", "--quiet", *args])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert res.stdout == "" and len(res.stderr.splitlines()) == 1
    assert res.stderr.startswith(args[0].replace("-c", "--connections") + ":1: ")


def test_bench_cli_prints_one_json_line(server: Server) -> None:
    res = CliRunner(mix_stderr=False).invoke(cli, [
        "bench", "diameter", "--port", str(server.port), "-c", "1", "-p", "1", "-s", "3",
        "-d", "20", "--mix", "sms", "--subscribers", "41790000001:5", "--quiet"])
    assert res.exit_code == 0, res.output
    # (the in-process server's log lines share stdout here; the harness prints one JSON line)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('{"bench"')]
    assert len(lines) == 1 and json.loads(lines[0])["requests"] == 3


@settings(max_examples=200, deadline=None)
@given(sid=st.text(max_size=60), rtype=st.sampled_from([1, 2, 3, 4]),
       number=st.integers(0, 2**32 - 1))
def test_prebuilt_request_bytes_match_the_codec(sid: str, rtype: int, number: int) -> None:
    """The harness's pre-encoded pieces are exactly what the codec writes."""
    tpl = CcrTemplate(origin_host="h.icx.test", origin_realm="icx.test", dest_realm="icx.local",
                      context="32260@3gpp.org", subscriber="41790000001",
                      extra=[voice_info("41790000001", "41791234567")])
    tail = [mscc(100, rsu=("CC-Time", 60))]
    assert utf8_avp(263, sid) == A("Session-Id", sid).encode()
    expected = b"".join([A("Session-Id", sid).encode(), tpl.prefix_tail,
                         A("CC-Request-Type", rtype).encode(),
                         A("CC-Request-Number", number).encode(), tpl.suffix,
                         *(a.encode() for a in tail)])
    assert tpl.body(sid, rtype, number, tail) == expected
    assert tpl.body_bytes(utf8_avp(263, sid), rtype, number,
                          b"".join(a.encode() for a in tail)) == expected


def test_summary_reports_harness_cpu(server: Server) -> None:
    out = run_load(LoadConfig(port=server.port, connections=1, processes=1, sessions=4,
                              updates=1, duration=30, mix=("voice",), subscribers=20,
                              progress=False))
    assert out["requests"] == 12 and out["client_cpu_us"] is not None
    assert out["client_cpu_us"] > 0


def test_bench_cli_ceiling_runs_the_minimal_responder_first(server: Server) -> None:
    res = CliRunner(mix_stderr=False).invoke(cli, [
        "bench", "diameter", "--port", str(server.port), "-c", "1", "-p", "1", "-s", "3",
        "-d", "20", "--mix", "sms", "--subscribers", "41790000001:5", "--quiet", "--ceiling"])
    assert res.exit_code == 0, res.output
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith('{"bench"')][-1])
    assert out["requests"] == 3 and out["ceiling"]["value"] > 0
    assert out["ceiling"]["name"] == "minimal Python CCA responder"
    assert out["ceiling_ratio"] is not None


def test_mix_proportions_hold_for_any_number_of_kinds(server: Server) -> None:
    """--mix voice,sms is half voice sessions (I, U, T) and half SMS events; a kind repeated
    weighs more. (The kind was picked by a counter the Session-Id shared: with an even number
    of kinds every session was the first kind.)"""
    out = run_load(LoadConfig(port=server.port, connections=1, processes=1, sessions=10,
                              updates=1, duration=30, mix=("voice", "sms"), subscribers=20,
                              progress=False))
    assert out["sessions"] == 10 and out["requests"] == 5 * 3 + 5
    out = run_load(LoadConfig(port=server.port, connections=1, processes=1, sessions=8,
                              updates=1, duration=30, mix=("voice", "voice", "data", "sms"),
                              subscribers=20, progress=False))
    assert out["sessions"] == 8 and out["requests"] == 4 * 3 + 2 * 3 + 2


def test_sessions_limit_holds_with_more_processes_than_sessions(server: Server) -> None:
    """--sessions 1 over 2 processes runs one session, not one plus a worker given a share of
    0 (= run until --duration)."""
    out = run_load(LoadConfig(port=server.port, connections=2, processes=2, sessions=1,
                              updates=1, duration=5, mix=("voice",), subscribers=20,
                              progress=False))
    assert out["sessions"] == 1 and out["requests"] == 3 and out["worker_errors"] == []


def _responder() -> tuple[subprocess.Popen[str], int]:
    """The minimal CCA responder (benchmarks/_ro_responder.py) in its own process."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._ro_responder", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    ready, port = proc.stdout.readline().split()
    assert ready == "READY"
    return proc, int(port)


def test_server_killed_mid_run_ends_the_run_with_an_error() -> None:
    """A server that dies mid-run: the harness stops at once, counts the requests it lost and
    exits 1 with one line saying so (it went on writing into the dead connections until
    --duration, waited --timeout more and exited 0 with everything as 'timeouts')."""
    proc, port = _responder()
    try:
        threading.Timer(1.0, proc.kill).start()
        t0 = time.monotonic()
        res = CliRunner(mix_stderr=False).invoke(cli, [
            "bench", "diameter", "--port", str(port), "-c", "2", "-p", "1", "-d", "30",
            "--rate", "500", "--quiet"])
        took = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error: 127.0.0.1:") and "closed connection" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    out = json.loads(res.stdout)
    assert 0 < out["requests"] and out["sent"] == out["requests"] + out["lost"] + out["timeouts"]
    assert took < 10, took


def test_server_shutdown_mid_run_is_reported(server: Server) -> None:
    """The server's own shutdown (DPR to every peer, RFC 6733 §5.4) mid-run: DPA, then the
    run ends with the error named."""
    threading.Timer(1.0, lambda: server.call(server.running.diameter.close())).start()
    out = run_load(LoadConfig(port=server.port, connections=2, processes=1, rate=200,
                              duration=30, subscribers=20, progress=False))
    assert out["requests"] > 0 and out["duration_s"] < 10
    assert len(out["worker_errors"]) == 1 and out["worker_errors"][0].endswith("(DPR)")
    assert out["sent"] == out["requests"] + out["lost"] + out["timeouts"]


def test_connect_failures_say_where_and_why() -> None:
    """Nothing listening, or a listener that never sends the CEA: one line naming the target
    and the step ('error: TimeoutError: ' said neither)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        out = run_load(LoadConfig(port=port, connections=1, processes=1, duration=1,
                                  timeout=1, progress=False))
        assert out["worker_errors"] == [f"cannot connect to 127.0.0.1:{port}: no CEA within 1 s"]
    res = CliRunner(mix_stderr=False).invoke(cli, [
        "bench", "diameter", "--port", str(port), "-c", "1", "-d", "1", "--quiet"])
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: cannot connect to 127.0.0.1:{port}: ")
    assert len(res.stderr.splitlines()) == 1


def test_a_run_where_nothing_succeeds_exits_1(server: Server) -> None:
    """Every answer an error (here 5030: subscribers the server does not know): the JSON line
    is still printed, and one stderr line and exit 1 say the run failed (it exited 0)."""
    res = CliRunner(mix_stderr=False).invoke(cli, [
        "bench", "diameter", "--port", str(server.port), "-c", "1", "-p", "1", "-s", "4",
        "-d", "20", "--subscribers", "42000000000:5", "--quiet"])
    assert res.exit_code == 1
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith('{"bench"')][0])
    assert out["errors"] == {"5030": 4} and out["requests"] == 4
    assert res.stderr == "error: no request succeeded (4 sent; answers: 5030 x4; timeouts: 0)\n"


def test_rate_of_a_sessions_run_is_over_the_time_it_took(server: Server) -> None:
    """--sessions S done before --duration: the duration (and so the achieved rate) runs to
    the last answer, not to the harness's next poll (a closed loop polls every 50 ms, so one
    SMS answered in ~1 ms reported a duration of 51 ms and a twentieth of its rate)."""
    out = run_load(LoadConfig(port=server.port, connections=1, processes=1, sessions=1,
                              duration=30, mix=("sms",), subscribers=20, progress=False))
    assert out["requests"] == 1
    # one request sent at the start: its latency is the run's duration
    assert abs(out["duration_s"] * 1000 - out["latency_ms"]["p50"]) < 2, out


def _admin(server: Server, path: str, method: str = "GET") -> Any:
    req = urllib.request.Request(server.admin_url + path, method=method)
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read())


def test_asr_during_a_run_ends_that_session_with_its_ccr_t(server: Server) -> None:
    """An operator kill mid-run: the harness answers the ASR 2001 and that session's next
    request is its CCR-T (protocol-facts D, RFC 4006 §5.5); it went on sending CCR-Us,
    reporting usage the server no longer granted, until its last update."""
    seen: dict[str, Any] = {}

    def kill() -> None:
        sid = _admin(server, "/api/sessions")["sessions"][0]["session_id"]
        seen["kill"] = _admin(server, f"/api/sessions/{urllib.parse.quote(sid, safe='')}/kill",
                              "POST")
        time.sleep(1.5)  # six requests at 4/s: the first is the killed session's CCR-T
        seen["left"] = [s for s in _admin(server, "/api/sessions")["sessions"]
                        if s["session_id"] == sid]

    timer = threading.Timer(1.5, kill)
    timer.start()
    out = run_load(LoadConfig(port=server.port, connections=1, processes=1, rate=4, updates=100,
                              duration=4, mix=("voice",), subscribers=20, progress=False))
    timer.join()
    assert seen["kill"]["asa_result_code"] == 2001
    assert seen["left"] == []  # the CCR-T came: the session is closed, its usage committed
    assert out["worker_errors"] == [] and set(out["result_codes"]) == {"2001"}


def test_sessions_open_at_the_end_of_a_run_are_terminated(server: Server) -> None:
    """A --duration run stops with sessions half done: each ends with its CCR-T, so the run
    leaves no session (and no reservation) open on the server -- they were left to Tcc."""
    out = run_load(LoadConfig(port=server.port, connections=2, processes=1, duration=1,
                              updates=50, mix=("voice", "data"), subscribers=20,
                              progress=False))
    assert out["worker_errors"] == [] and out["timeouts"] == 0 and out["sessions"] > 0
    assert _admin(server, "/api/sessions")["count"] == 0
    # (a subscriber whose balance a fast run used up gets 4012, which ends that session too)
    assert set(out["result_codes"]) <= {"2001", "4012"} and out["result_codes"]["2001"]
