"""One settlement run per data dir at a time.

A run loads ``state.json`` (checkpoint, sums, closed periods), reads the journal and saves the
state whole. A run that overlapped another (two cron jobs, an operator's ``--close`` during the
nightly draft) saved over it: here the inner run closes the period and issues the final
invoice, then the outer run, which loaded the state before, saves it back unclosed -- the
final invoice is out, and the state no longer knows it (the next run renders it again from
live sums). Now the second run is refused at once (``SettlementBusy``: the CLI prints one line
and exits 1) and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from icx.cli import main
from settlement.aggregate import Aggregator
from settlement.currency import Period
from settlement.generate import TrafficGenerator, write_journal
from settlement.run import settle
from settlement.source import JournalSource
from settlement.state import SettlementBusy, SettlementState, run_lock

from .conftest import DEMO

PERIOD = Period.parse("2026-11")


def _journal(tmp_path: Path) -> Path:
    jdir = tmp_path / "journal"
    write_journal(str(jdir), TrafficGenerator(PERIOD, seed=3).records(500))
    return jdir


def test_an_overlapping_run_is_refused_and_a_close_is_never_lost(cfg, tmp_path: Path) -> None:
    jdir = _journal(tmp_path)
    inner: dict[str, Any] = {}

    class Overlapped(JournalSource):
        def read(self, checkpoint: Any, agg: Aggregator, progress: Any) -> Any:
            try:  # another run starts while this one is reading
                inner["report"] = settle(cfg, JournalSource(jdir), data_dir=tmp_path,
                                         period=PERIOD, out_dir=tmp_path / "out", close=True)
            except SettlementBusy as exc:
                inner["busy"] = str(exc)
            return super().read(checkpoint, agg, progress)

    outer = settle(cfg, Overlapped(jdir), data_dir=tmp_path, period=PERIOD)
    state = SettlementState.load(tmp_path)
    if "report" in inner:  # it ran: what it closed (its invoices say final) must stay closed
        assert inner["report"].status == "final"
        assert state.is_closed(str(PERIOD), "orange-fr"), "final invoice issued, close lost"
    assert "busy" in inner and "another settlement run" in inner["busy"]
    assert outer.records_read == 500 and not state.closed


def test_the_cli_refuses_with_one_line_while_a_run_holds_the_data_dir(tmp_path: Path) -> None:
    _journal(tmp_path)
    args = ["settle", "--period", "2026-11", "--data-dir", str(tmp_path), "--partners",
            str(DEMO)]
    with run_lock(tmp_path):
        res = CliRunner(mix_stderr=False).invoke(main, args)
        assert res.exit_code == 1 and res.stdout == ""
        (line,) = res.stderr.splitlines()
        assert line.startswith("settle: ") and "another settlement run" in line
        assert not SettlementState.path(tmp_path).exists()  # nothing read, nothing saved
    res = CliRunner(mix_stderr=False).invoke(main, args)
    assert res.exit_code == 0, res.stderr


def test_the_lock_is_released_when_a_run_fails(cfg, tmp_path: Path) -> None:
    class Broken(JournalSource):
        def read(self, checkpoint: Any, agg: Aggregator, progress: Any) -> Any:
            raise OSError("disk gone")

    with pytest.raises(OSError):
        settle(cfg, Broken(tmp_path), data_dir=tmp_path, period=PERIOD)
    with run_lock(tmp_path):
        pass
