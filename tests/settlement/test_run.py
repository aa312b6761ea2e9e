"""Settlement runs over the real journal: determinism, checkpoints, close and late records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from charging.journal import SyncJournal
from settlement.currency import Period
from settlement.generate import TrafficGenerator, write_journal
from settlement.run import ListSource, settle
from settlement.source import JournalSource

from .conftest import T0, rec

NOV, DEC = Period(2026, 11), Period(2026, 12)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_journal_gives_byte_identical_files(cfg, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    write_journal(str(journal), TrafficGenerator(NOV, seed=7).records(3000))
    digests = []
    for run in ("a", "b"):
        report = settle(cfg, JournalSource(journal), data_dir=tmp_path / run, period=NOV,
                        out_dir=tmp_path / run / "out", issue_date="2026-12-01")
        assert report.problems == []
        assert report.records_read == 3000
        digests.append(_digest(tmp_path / run / "out"))
    assert digests[0] == digests[1]
    assert len(digests[0]) == 6 * 3 + 4 * 2 + 2  # invoices, netting statements, summary
    html = (tmp_path / "a" / "out" / "2026-11" / "orange-fr" / "INV-2026-11-ORANGE-FR.html")
    text = html.read_text()
    assert "DRAFT" in text and "Rounding policy" in text and "Orange France" in text


def test_checkpoint_resumes_and_second_run_reads_nothing_new(cfg, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    write_journal(str(journal), TrafficGenerator(NOV, seed=3).records(500))
    first = settle(cfg, JournalSource(journal), data_dir=tmp_path, period=NOV)
    write_journal(str(journal), TrafficGenerator(NOV, seed=4, node="g2").records(200))
    second = settle(cfg, JournalSource(journal), data_dir=tmp_path, period=NOV)
    third = settle(cfg, JournalSource(journal), data_dir=tmp_path, period=NOV)
    assert (first.records_read, second.records_read, third.records_read) == (500, 200, 0)
    # the incremental state equals one run over everything
    fresh = settle(cfg, JournalSource(journal), data_dir=tmp_path / "fresh", period=NOV)
    assert fresh.invoices == third.invoices


def test_closed_period_never_changes_late_records_go_to_next_period(cfg, tmp_path: Path) -> None:
    records = [rec(n=1, price="1.00"), rec(n=2, price="2.00")]
    src = ListSource(records)
    out = tmp_path / "out"
    closed = settle(cfg, src, data_dir=tmp_path, period=NOV, partner="orange-fr", close=True,
                    out_dir=out)
    assert not closed.problems
    inv_file = out / "2026-11" / "orange-fr" / "INV-2026-11-ORANGE-FR.json"
    before = inv_file.read_bytes()
    assert json.loads(before)["status"] == "final"
    # 3.00 of usage + 100.00 shortfall of the 50,000-minute commitment (ORA-COMMIT-2026)
    assert json.loads(before)["sections"][0]["total"] == "3.00"
    assert json.loads(before)["totals"]["receivable"] == "103.00"
    # a record of November arrives after the close
    src.records.append(rec(n=3, price="0.50"))
    again = settle(cfg, src, data_dir=tmp_path, period=NOV, partner="orange-fr", out_dir=out)
    assert inv_file.read_bytes() == before  # re-rendered from the frozen document
    assert again.invoices["orange-fr"]["totals"]["receivable"] == "103.00"
    dec = settle(cfg, src, data_dir=tmp_path, period=DEC, partner="orange-fr", out_dir=out,
                 close=True)
    assert not dec.problems
    adj = [ln for ln in dec.invoices["orange-fr"]["lines"] if ln["section"] == "adjustment_sell"]
    assert len(adj) == 1
    assert (adj[0]["ref"], adj[0]["ref_period"], adj[0]["amount"]) == (
        "INV-2026-11-ORANGE-FR", "2026-11", "0.50")
    # once invoiced in December, the late record is not adjusted again in January
    jan = settle(cfg, src, data_dir=tmp_path, period=Period(2027, 1), partner="orange-fr")
    assert not [ln for ln in jan.invoices["orange-fr"]["lines"] if ln["ref"]]


def test_inconsistency_fails_the_run_and_blocks_close(cfg, tmp_path: Path) -> None:
    src = ListSource([rec(partner="stranger")])
    report = settle(cfg, src, data_dir=tmp_path, period=NOV, close=True)
    assert any("unknown partner 'stranger'" in p for p in report.problems)
    assert '"closed": {}' in (tmp_path / "settlement" / "state.json").read_text()


def test_journal_written_by_the_journal_writer_is_read(cfg, tmp_path: Path) -> None:
    j = SyncJournal(tmp_path / "journal", fsync=False)
    j.append_many([rec(n=i, start=T0 + i) for i in range(10)])
    j.close()
    report = settle(cfg, JournalSource(tmp_path / "journal"), data_dir=tmp_path, period=NOV,
                    partner="orange-fr")
    assert report.invoices["orange-fr"]["sections"][0]["exact_total"] == "0.098"
