"""benchmarks.ro's paced figure from several windows: the median window by p99 is quoted, every
window's p99 and rate are shown, the lowest rate is the achieved one (never the best), and
errors add up."""

from __future__ import annotations

from benchmarks.ro import paced_summary


def window(p99: float, rate: float, errors: dict[str, int] | None = None) -> dict[str, object]:
    return {"value": rate, "latency_ms": {"p50": p99 / 4, "p99": p99},
            "server_cpu_us": p99 * 10, "errors": errors or {}, "timeouts": 1}


def test_the_median_window_is_quoted_and_nothing_is_hidden() -> None:
    got = paced_summary([window(9.5, 9_990.0, {"3004": 2}), window(2.1, 10_000.0),
                         window(4.4, 9_700.0, {"3004": 1, "5012": 1})])
    assert got["latency_ms"] == {"p50": 1.1, "p99": 4.4}
    assert got["server_cpu_us"] == 44.0
    assert got["p99_windows"] == [9.5, 2.1, 4.4]
    assert got["achieved_windows"] == [9_990.0, 10_000.0, 9_700.0]
    assert got["value"] == 9_700.0
    assert got["errors"] == {"3004": 3, "5012": 1} and got["timeouts"] == 3


def test_an_even_count_quotes_the_worse_middle_window() -> None:
    got = paced_summary([window(1.0, 1.0), window(3.0, 1.0), window(2.0, 1.0),
                         window(8.0, 1.0)])
    assert got["latency_ms"]["p99"] == 3.0  # (the upper middle of 1, 2, 3, 8)
    assert paced_summary([window(5.0, 7.0)])["latency_ms"]["p99"] == 5.0
