"""Prometheus text exposition (format 0.0.4) helpers shared by the /metrics collectors."""

from __future__ import annotations

from collections.abc import Sequence

from charging.journal.sync_stats import SYNC_BUCKETS, SyncStats

__all__ = ["histogram_lines", "journal_sync_lines"]


def histogram_lines(name: str, help_text: str, bounds: Sequence[float], counts: Sequence[int],
                    total: float) -> list[str]:
    """HELP/TYPE, cumulative ``_bucket`` lines, ``_sum`` and ``_count`` of a histogram.

    *counts* holds one count per bound (observations <= it and above the previous bound) plus
    a last one for those above every bound."""
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    acc = 0
    for bound, n in zip(bounds, counts, strict=False):
        acc += n
        out.append(f'{name}_bucket{{le="{bound}"}} {acc}')
    acc += counts[-1]
    out += [f'{name}_bucket{{le="+Inf"}} {acc}', f"{name}_sum {total:.6f}",
            f"{name}_count {acc}"]
    return out


def journal_sync_lines(stats: SyncStats) -> list[str]:
    """``icx_journal_sync_seconds`` (histogram) and ``icx_journal_sync_seconds_max`` (gauge)."""
    return histogram_lines(
        "icx_journal_sync_seconds", "Journal group commits by their write+fdatasync time "
        "(every answer waits for its group's).", SYNC_BUCKETS, stats.counts, stats.total) + [
        "# HELP icx_journal_sync_seconds_max The longest journal group commit since start.",
        "# TYPE icx_journal_sync_seconds_max gauge",
        f"icx_journal_sync_seconds_max {stats.max:.6f}"]
