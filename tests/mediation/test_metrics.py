"""Prometheus text exposition of the agent metrics."""

from __future__ import annotations

from mediation.metrics import Metrics


def test_counters_histogram_and_gauges_render() -> None:
    m = Metrics()
    m.observe("CCR", 2001, 0.0004)
    m.observe("CCR", 2001, 0.004)
    m.observe("CCR", 4012, 3.0)
    m.gauge("icx_active_sessions", "Open sessions.", lambda: 7)
    m.gauge("icx_broken", "Raises.", lambda: 1 / 0)
    text = m.render()
    assert 'icx_diameter_requests_total{command="CCR",result_code="2001"} 2' in text
    assert 'icx_diameter_requests_total{command="CCR",result_code="4012"} 1' in text
    assert 'icx_diameter_request_seconds_bucket{command="CCR",le="0.0005"} 1' in text
    assert 'icx_diameter_request_seconds_bucket{command="CCR",le="0.005"} 2' in text
    assert 'icx_diameter_request_seconds_bucket{command="CCR",le="+Inf"} 3' in text
    assert 'icx_diameter_request_seconds_count{command="CCR"} 3' in text
    assert "icx_active_sessions 7" in text and "icx_broken" not in text
    assert text.endswith("\n")


def test_a_count_since_start_is_typed_counter() -> None:
    m = Metrics()
    m.counter("icx_snapshots_total", "Snapshots written.", lambda: 3)
    m.gauge("icx_active_sessions", "Open sessions.", lambda: 7)
    text = m.render()
    assert "# TYPE icx_snapshots_total counter\nicx_snapshots_total 3\n" in text
    assert "# TYPE icx_active_sessions gauge\n" in text
