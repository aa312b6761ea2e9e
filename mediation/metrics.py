"""Request metrics and their Prometheus text exposition (format 0.0.4), no dependency.

The agent calls :meth:`Metrics.observe` once per answered request (command, Result-Code,
seconds); gauges are callbacks evaluated at scrape time (active sessions, held reservations,
journal lag), so the hot path only bumps a dict entry and one histogram bucket.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

# Latency buckets in seconds: fine below 5 ms, where the p99 target sits.
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05,
                              0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counters by (command, result code) and one latency histogram per command."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = {}
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.collectors: list[Callable[[], list[str]]] = []
        self._counters: set[str] = set()  # names in ``gauges`` registered by counter()
        # requests answered before they reached the agent (the Diameter layer's own error
        # answers): () -> {(command, Result-Code): count}, added to the request counts
        self.answered_elsewhere: Callable[[], dict[tuple[str, int], int]] | None = None

    def observe(self, command: str, result_code: int, seconds: float) -> None:
        key = (command, result_code)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self._hist.get(command)
        if hist is None:
            hist = self._hist[command] = [0] * (len(BUCKETS) + 1)
            self._sum[command] = 0.0
        hist[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum[command] += seconds

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """Register a gauge evaluated at scrape time."""
        self.gauges[name] = (help_text, fn)

    def counter(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """Register a counter (a count since start, *name* ending ``_total``) evaluated at
        scrape time; exposed like a gauge but typed ``counter`` so rate() and lints know."""
        self.gauge(name, help_text, fn)
        self._counters.add(name)

    def collector(self, fn: Callable[[], list[str]]) -> None:
        """Register a callback that returns whole exposition lines (HELP, TYPE and samples:
        histograms, labelled counters), evaluated at scrape time after the gauges."""
        self.collectors.append(fn)

    def render(self) -> str:
        """The Prometheus text exposition of everything."""
        out: list[str] = [
            "# HELP icx_diameter_requests_total Diameter requests answered, by command and "
            "Result-Code.",
            "# TYPE icx_diameter_requests_total counter",
        ]
        requests = self.requests
        if self.answered_elsewhere is not None:
            requests = dict(requests)
            try:
                for key, n in self.answered_elsewhere().items():
                    requests[key] = requests.get(key, 0) + n
            except Exception:  # a broken source must not break the scrape
                pass
        for (cmd, code), n in sorted(requests.items()):
            out.append(f'icx_diameter_requests_total{{command="{cmd}",result_code="{code}"}} {n}')
        out.append("# HELP icx_diameter_request_seconds Time from request decoded to answer "
                   "ready, for the requests charging answered (not the protocol errors and "
                   "duplicates the Diameter layer answers itself: see requests_total).")
        out.append("# TYPE icx_diameter_request_seconds histogram")
        for cmd, hist in sorted(self._hist.items()):
            acc = 0
            for bound, n in zip(BUCKETS, hist, strict=False):
                acc += n
                out.append(f'icx_diameter_request_seconds_bucket{{command="{cmd}",le="{bound}"}} '
                           f"{acc}")
            acc += hist[-1]
            out.append(f'icx_diameter_request_seconds_bucket{{command="{cmd}",le="+Inf"}} {acc}')
            out.append(f'icx_diameter_request_seconds_sum{{command="{cmd}"}} '
                       f"{self._sum[cmd]:.6f}")
            out.append(f'icx_diameter_request_seconds_count{{command="{cmd}"}} {acc}')
        for name, (help_text, fn) in sorted(self.gauges.items()):
            try:
                value = fn()
            except Exception:  # a broken gauge must not break the scrape
                continue
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {'counter' if name in self._counters else 'gauge'}")
            out.append(f"{name} {value}")
        for collect in self.collectors:
            try:
                lines = collect()
            except Exception:  # a broken collector must not break the scrape
                continue
            out.extend(lines)
        return "\n".join(out) + "\n"
