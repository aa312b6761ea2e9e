"""Bad CLI arguments: one clear line and exit 2 (usage), never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from icx.cli import main


@pytest.mark.parametrize("verb", [["ccr"], ["bench", "diameter"]])
@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_a_port_out_of_range_is_a_usage_error(verb: list[str], port: str) -> None:
    """`icx ccr --port 99999` ended in OverflowError from connect() (a traceback)."""
    res = CliRunner().invoke(main, [*verb, "--port", port])
    assert res.exit_code == 2, (res.output, res.exception)
    assert ("Invalid value for '--port'" in res.output  # ccr: click's usage error
            or res.output.startswith("--port:1: "))  # bench: one line naming the option


@pytest.mark.parametrize("args", [["--window", "0"], ["--processes", "-1"], ["--sessions", "-3"]])
def test_bench_counts_out_of_range_are_usage_errors(args: list[str]) -> None:
    """They ran a load (--window 0: nothing sent for --duration) and reported 0 req/s."""
    res = CliRunner().invoke(main, ["bench", "diameter", "--port", "1", "--quiet", *args])
    assert res.exit_code == 2 and res.output.startswith(f"{args[0]}:1: "), res.output


@pytest.mark.parametrize(("args", "line"), [
    (["--seconds", "4294967296"],
     "--seconds:1: 4294967296 is out of range: at most 4294967295 (CC-Time, Unsigned32)\n"),
    (["--service", "data", "--octets", str(2**64)],
     f"--octets:1: {2**64} is out of range: at most {2**64 - 1} (CC-Total-Octets, Unsigned64)\n"),
])
def test_ccr_usage_past_its_avp_is_a_usage_error(args: list[str], line: str) -> None:
    """`icx ccr --seconds 99999999999` died in the encoder: struct.error traceback, exit 1."""
    res = CliRunner(mix_stderr=False).invoke(main, ["ccr", "--port", "1", *args])
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", line)


@pytest.mark.parametrize(("args", "line"), [
    (["--subscribers", "-5:3"],
     "--subscribers:1: '-5:3' is out of range: FIRST 0 or more, COUNT at least 1\n"),
    (["--rate", "0.05", "-d", "2"],
     "--rate:1: 0.05 is out of range: 0 or at least one request in --duration 2 s\n"),
])
def test_bench_says_what_is_out_of_range(args: list[str], line: str) -> None:
    """--subscribers -5:3 was refused for "COUNT at least 1" (COUNT was 3); --rate 0.05 for
    2 s ran, sent nothing and exited 0 with 0 req/s."""
    res = CliRunner(mix_stderr=False).invoke(main, ["bench", "diameter", "--port", "1",
                                                    "--quiet", *args])
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", line)
