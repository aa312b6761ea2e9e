"""The user's path: generate traffic, `icx settle`, `icx reconcile` (click CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from icx.cli import main

from .conftest import DEMO


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_generate_settle_close_reconcile(tmp_path: Path) -> None:
    d = str(tmp_path)
    cdrs = str(tmp_path / "orange.csv")
    r = _run("settle", "generate", "--period", "2026-11", "--records", "3000", "--data-dir", d,
             "--their-cdrs", cdrs, "--partners", str(DEMO))
    assert r.exit_code == 0, r.output
    r = _run("settle", "--period", "2026-11", "--data-dir", d, "--partners", str(DEMO), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    sep = CliRunner(mix_stderr=False).invoke(
        main, ["settle", "--period", "2026-11", "--data-dir", d, "--partners", str(DEMO),
               "--json"], catch_exceptions=False)
    assert sep.exit_code == 0 and sep.stdout.startswith("{")  # nothing before the JSON line
    assert doc["records_read"] == 3000 and doc["status"] == "draft" and doc["problems"] == []
    assert {row["partner"] for row in doc["partners"]} == {"orange-fr", "att-us", "globalhub",
                                                           "gamesco", "mvno-uk", "carrier_a"}
    r = _run("settle", "--period", "2026-11", "--data-dir", d, "--partners", str(DEMO),
             "--close", "--partner", "orange-fr")
    assert r.exit_code == 0, r.output
    inv = json.loads((tmp_path / "settlement" / "out" / "2026-11" / "orange-fr" /
                      "INV-2026-11-ORANGE-FR.json").read_text())
    assert inv["status"] == "final"
    r = _run("reconcile", "--partner", "orange-fr", "--period", "2026-11", "--their-cdrs", cdrs,
             "--data-dir", d, "--partners", str(DEMO), "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["counts"]["exact"] > 0 and s["disputes_opened"] > 0


def test_bad_input_exits_2(tmp_path: Path) -> None:
    d = str(tmp_path)
    r = _run("settle", "--period", "2026-13", "--data-dir", d, "--partners", str(DEMO))
    assert r.exit_code == 2 and "--period" in r.output
    r = _run("settle", "--period", "2026-11", "--data-dir", d, "--partners", str(DEMO))
    assert r.exit_code == 2 and "no journal directory" in r.output
    r = _run("settle", "--period", "2026-11", "--partner", "zz", "--data-dir", d,
             "--partners", str(DEMO))
    assert r.exit_code == 2 and "partners.zz: unknown partner" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n")
    (tmp_path / "journal").mkdir()
    r = _run("reconcile", "--partner", "orange-fr", "--period", "2026-11", "--their-cdrs",
             str(bad), "--data-dir", d, "--partners", str(DEMO))
    assert r.exit_code == 2 and f"{bad}:1: missing column" in r.output


def test_inconsistency_exits_1(tmp_path: Path) -> None:
    from charging.journal import SyncJournal

    from .conftest import rec

    j = SyncJournal(tmp_path / "journal", fsync=False)
    j.append(rec(partner="stranger"))
    j.close()
    r = _run("settle", "--period", "2026-11", "--data-dir", str(tmp_path), "--partners", str(DEMO))
    assert r.exit_code == 1
    assert "unknown partner 'stranger'" in r.output


def test_reconcile_bad_options_exit_2(tmp_path: Path) -> None:
    d = str(tmp_path)
    cdrs = tmp_path / "theirs.csv"
    cdrs.write_text("cdr_id,calling_number,called_number,start_time,duration_s,charge,currency\n")
    base = ("reconcile", "--partner", "orange-fr", "--period", "2026-11", "--their-cdrs",
            str(cdrs), "--data-dir", d, "--partners", str(DEMO))
    r = _run(*base)
    assert r.exit_code == 2 and "no journal directory" in r.output
    assert not (tmp_path / "settlement").exists()
    (tmp_path / "journal").mkdir()
    for opt, value, text in (("--their-total", "NaN", "--their-total: not a finite"),
                             ("--their-total", "1.1234567", "--their-total: more than 6"),
                             ("--tolerance-pct", "-5", "--tolerance-pct: must be"),
                             ("--tolerance-pct", "Infinity", "--tolerance-pct: must be")):
        r = _run(*base, opt, value)
        assert r.exit_code == 2 and text in r.output, (opt, value, r.output)
    r = _run(*base, "--their-total", "0.00", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["invoice_compare"]["theirs"] == "0.00"


def test_inconsistency_is_reported_again_and_never_closes(tmp_path: Path) -> None:
    """A record that cannot be settled is not forgotten by the next run (the checkpoint is not
    committed), and --close with an inconsistency writes drafts, never "final"."""
    from charging.journal import SyncJournal

    from .conftest import rec

    j = SyncJournal(tmp_path / "journal", fsync=False)
    j.append(rec(partner="stranger", n=1))
    j.append(rec(n=2))
    j.close()
    args = ("settle", "--period", "2026-11", "--data-dir", str(tmp_path), "--partners",
            str(DEMO), "--partner", "orange-fr", "--close", "--json")
    for _ in range(2):
        r = _run(*args)
        assert r.exit_code == 1
        assert "unknown partner 'stranger'" in r.output
        doc = json.loads(next(ln for ln in r.output.splitlines() if ln.startswith("{")))
        assert doc["records_read"] == 2 and doc["status"] == "draft"
        assert [row["status"] for row in doc["partners"]] == ["draft"]
        inv = json.loads((tmp_path / "settlement" / "out" / "2026-11" / "orange-fr" /
                          "INV-2026-11-ORANGE-FR.json").read_text())
        assert inv["status"] == "draft"


def test_generate_their_cdrs_without_the_demo_partner_exits_2(tmp_path: Path) -> None:
    partners = tmp_path / "p.toml"
    partners.write_text(DEMO.read_text().replace("orange-fr", "orange-xx"))
    r = _run("settle", "generate", "--period", "2026-11", "--records", "10", "--data-dir",
             str(tmp_path), "--partners", str(partners), "--their-cdrs",
             str(tmp_path / "o.csv"))
    assert r.exit_code == 2
    assert f"{partners}:partners.orange-fr:" in r.output
    assert not (tmp_path / "journal").exists()
