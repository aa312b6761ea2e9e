"""The load harness (`icx bench diameter`) against the real server: proper peers, full
sessions and events, one JSON summary; bad input exits 2."""

from __future__ import annotations

import json

from click.testing import CliRunner

from icx.cli import main as cli
from icx.loadgen import LoadConfig, run_load
from tests.e2e.conftest import Server


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


def test_bench_cli_prints_one_json_line(server: Server) -> None:
    res = CliRunner(mix_stderr=False).invoke(cli, [
        "bench", "diameter", "--port", str(server.port), "-c", "1", "-p", "1", "-s", "3",
        "-d", "20", "--mix", "sms", "--subscribers", "41790000001:5", "--quiet"])
    assert res.exit_code == 0, res.output
    # (the in-process server's log lines share stdout here; the harness prints one JSON line)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('{"bench"')]
    assert len(lines) == 1 and json.loads(lines[0])["requests"] == 3
