"""One reconciliation per data dir at a time (``<data-dir>/settlement/reconcile.lock``).

A reconciliation reads the previous disputes file (to keep the operator's statuses), then
writes the disputes and the RECON CSV/JSON/HTML, each through the same ``<file>.tmp``
(settlement/writers.py ``write_atomic``). Two overlapping runs of one partner's period (two
cron jobs, an operator re-running with a corrected CDR file) took no lock: one's rename could
put the other's half-written temp file in place -- a torn disputes file, which every later run
then failed to read, its statuses lost -- and the other died on its own rename, leaving the
reports of two runs side by side. Now the second run is refused at once (``ReconcileBusy``:
the CLI prints one line and exits 1) and writes nothing. Reconciliation shares no file with
``icx settle`` (state.json, ``out/``): it still runs while a settlement run holds its lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from icx.cli import main
from settlement import recon_source
from settlement.config import SettlementConfig
from settlement.currency import Period
from settlement.generate import TrafficGenerator, write_journal
from settlement.reconcile import reconcile_journal, write_partner_cdrs
from settlement.state import ReconcileBusy, reconcile_lock, run_lock

from .conftest import DEMO

PERIOD = Period.parse("2026-11")


def _journal_and_cdrs(cfg: SettlementConfig, tmp_path: Path) -> tuple[Path, Path]:
    jdir = tmp_path / "journal"
    records = list(TrafficGenerator(PERIOD, seed=3).records(600))
    write_journal(str(jdir), iter(records))
    cdrs = tmp_path / "orange.csv"
    mine = [r for r in records if r.get("partner") == "orange-fr" or r.get("legs")]
    write_partner_cdrs(cdrs, mine, cfg.cdr_mappings["orange"], partner="orange-fr", seed=3)
    return jdir, cdrs


def test_an_overlapping_reconciliation_is_refused(cfg: SettlementConfig, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    jdir, cdrs = _journal_and_cdrs(cfg, tmp_path)
    kw: dict[str, Any] = {"partner": "orange-fr", "period": PERIOD, "their_cdrs": cdrs,
                          "out_dir": tmp_path / "recon", "data_dir": tmp_path}
    inner: dict[str, Any] = {}
    real = recon_source.journal_calls

    def overlapped(*args: Any, **kwargs: Any) -> Any:
        if not inner:  # another reconciliation starts while this one reads the journal
            inner["started"] = True
            try:
                inner["result"] = reconcile_journal(cfg, jdir, **kw)
            except ReconcileBusy as exc:
                inner["busy"] = str(exc)
        return real(*args, **kwargs)

    monkeypatch.setattr(recon_source, "journal_calls", overlapped)
    outer = reconcile_journal(cfg, jdir, **kw)
    assert "result" not in inner, "two reconciliations wrote the same files at once"
    assert "another reconciliation is using this data dir" in inner["busy"]
    assert outer.summary["disputes_opened"] > 0 and len(outer.files) == 3


def test_the_cli_refuses_with_one_line_and_writes_nothing(cfg: SettlementConfig,
                                                          tmp_path: Path) -> None:
    _, cdrs = _journal_and_cdrs(cfg, tmp_path)
    args = ["reconcile", "--partner", "orange-fr", "--period", "2026-11", "--their-cdrs",
            str(cdrs), "--data-dir", str(tmp_path), "--partners", str(DEMO)]
    with reconcile_lock(tmp_path):
        res = CliRunner(mix_stderr=False).invoke(main, args)
        assert res.exit_code == 1 and res.stdout == ""
        (line,) = res.stderr.splitlines()
        assert line.startswith(f"reconcile: {tmp_path}: another reconciliation is using this "
                               "data dir (pid "), line
        written = {p.name for p in (tmp_path / "settlement").rglob("*")}
        assert written == {"reconcile.lock"}  # no report, no disputes
    with run_lock(tmp_path):  # an `icx settle` run holds the data dir: reconcile still runs
        res = CliRunner(mix_stderr=False).invoke(main, args)
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "settlement" / "disputes" / "DSP-2026-11-ORANGE-FR.json").exists()
