"""The group-commit time histogram (charging/journal/sync_stats.py) and the journal feeding it:
one observation per group commit, from either writer (the native threads and the Python
writer thread), in the Prometheus text /metrics serves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from charging.journal import Journal
from charging.journal.sync_stats import SYNC_BUCKETS, SyncStats
from icx.prom_text import journal_sync_lines


def test_buckets_are_cumulative_and_le_inclusive() -> None:
    s = SyncStats()
    for seconds in (0.0002, 0.0005, 0.003, 0.005, 0.0051, 2.0, -1.0):
        s.observe(seconds)
    lines = journal_sync_lines(s)
    bucket = {line.split('le="')[1].split('"')[0]: int(line.rsplit(" ", 1)[1])
              for line in lines if line.startswith("icx_journal_sync_seconds_bucket")}
    # 0.0005 is in le="0.0005" (le: less than or equal); -1 counts as 0
    assert bucket["0.0005"] == 3 and bucket["0.0025"] == 3
    assert bucket["0.005"] == 5 and bucket["0.01"] == 6 and bucket["1.0"] == 6
    assert bucket["+Inf"] == 7 == s.count
    assert list(bucket) == [str(b) for b in SYNC_BUCKETS] + ["+Inf"]
    assert "icx_journal_sync_seconds_count 7" in lines
    assert "icx_journal_sync_seconds_max 2.000000" in lines
    assert "icx_journal_sync_seconds_sum 2.013800" in lines  # 0.0002+0.0005+...+2.0+0
    assert lines[1] == "# TYPE icx_journal_sync_seconds histogram"


@pytest.mark.parametrize("threads", [0, 2])
def test_every_group_commit_is_observed(tmp_path: Path, threads: int) -> None:
    """0: the Python writer thread; 2: the native writer (when built; else Python again)."""
    async def main() -> tuple[int, int, float, float]:
        j = await Journal.open(tmp_path, writer_threads=threads)
        try:
            for i in range(40):
                j.append_nowait({"v": 1, "type": "rated", "id": f"s-{i}", "idem": f"k:{i}"})
                if i % 4 == 3:
                    await j.flush()
            await j.flush()
        finally:
            await j.close()
        s = j.sync_stats
        return j.groups, s.count, s.total, s.max

    groups, count, total, longest = asyncio.run(main())
    assert groups >= 10 and count == groups  # each flush ended at least one group
    assert 0.0 < total and 0.0 < longest <= total  # a real pwrite + fdatasync takes time
