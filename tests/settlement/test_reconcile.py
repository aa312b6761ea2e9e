from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from settlement.config import CdrMapping
from settlement.currency import Period
from settlement.disputes import disputes_path
from settlement.reconcile import (
    Cdr,
    CdrFileError,
    digits,
    match,
    read_partner_cdrs,
    reconcile,
    write_partner_cdrs,
)

from .conftest import T0, rec

S = 1_000_000
NOV = Period(2026, 11)


def _c(i: str, start: int, dur: int, amount: int | None = 100, a: str = "331", b: str = "442"):
    return Cdr(id=i, a=a, b=b, start_us=start, duration=dur, amount=amount, currency="EUR")


def test_classification() -> None:
    ours = [_c("o1", T0, 60), _c("o2", T0 + 100 * S, 60), _c("o3", T0 + 200 * S, 60),
            _c("o4", T0 + 300 * S, 60), _c("o5", T0 + 400 * S, 60, amount=100)]
    theirs = [_c("t1", T0, 60),                       # exact
              _c("t2", T0 + 101 * S, 61),             # start +1 s, duration +1 s: within
              _c("t3", T0 + 200 * S, 90),             # duration +30 s: mismatch
              _c("t9", T0 + 900 * S, 60),             # nobody: only theirs
              _c("t5", T0 + 400 * S, 60, amount=150)]  # amount +50 %: mismatch
    pairs = match(ours, theirs, tolerance_seconds=2, tolerance_pct=Decimal(1))
    got = {(p.ours.id if p.ours else None, p.theirs.id if p.theirs else None): p.cls
           for p in pairs}
    assert got == {("o1", "t1"): "exact", ("o2", "t2"): "within_tolerance",
                   ("o3", "t3"): "mismatch", ("o4", None): "only_ours",
                   (None, "t9"): "only_theirs", ("o5", "t5"): "mismatch"}
    assert sum(p.variance for p in pairs) == 5 * 100 - 5 * 100 - 50


def test_percentage_tolerance_on_long_calls_and_closest_start_wins() -> None:
    ours = [_c("o", T0, 1000)]
    theirs = [_c("far", T0 + 2 * S, 1000), _c("near", T0 + 1 * S, 1009)]
    (p, extra) = match(ours, theirs, tolerance_seconds=2, tolerance_pct=Decimal(1))
    assert (p.theirs.id, p.cls) == ("near", "within_tolerance")  # 9 s <= 1 % of 1000 s
    assert extra.cls == "only_theirs"


def test_number_normalisation() -> None:
    assert digits("+33 6 12-34") == digits("0033612 34") == "3361234"


MAP = CdrMapping(a="A", b="B", start="S", duration="D", amount="AMT", currency="CCY", id="ID",
                 start_format="%Y-%m-%d %H:%M:%S")


def test_bad_files_are_reported_with_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "cdr.csv"
    f.write_text("ID,A,B,S,D,AMT\n")
    with pytest.raises(CdrFileError, match=rf"^{f}:1: missing column\(s\) CCY"):
        read_partner_cdrs(f, MAP)
    f.write_text("ID,A,B,S,D,AMT,CCY\n1,33,44,2026-11-10 12:00:00,60,0.1,EUR\n"
                 "2,33,44,yesterday,60,0.1,EUR\n")
    with pytest.raises(CdrFileError, match=rf"^{f}:3: bad S 'yesterday'"):
        read_partner_cdrs(f, MAP)
    f.write_text("ID,A,B,S,D,AMT,CCY\n1,33,44,2026-11-10 12:00:00,sixty,0.1,EUR\n")
    with pytest.raises(CdrFileError, match=rf"^{f}:2: bad D"):
        read_partner_cdrs(f, MAP)


def test_end_to_end_with_disputes_kept_across_runs(cfg, tmp_path: Path) -> None:
    records = [rec(n=i, id=f"r{i}", start=T0 + i * 600 * S, usage=60 + i, a="+3361000000" + str(i),
                   price=f"0.0{i + 1:02d}") for i in range(40)]
    cdrs = tmp_path / "orange.csv"
    mapping = cfg.cdr_mappings["orange"]
    n = write_partner_cdrs(cdrs, records, mapping, partner="orange-fr", seed=3)
    assert n > 30
    out = tmp_path / "out"
    res = reconcile(cfg, records, partner="orange-fr", period=NOV, their_cdrs=cdrs,
                    out_dir=out, data_dir=tmp_path)
    s = res.summary
    assert sum(s["counts"].values()) >= 40
    assert s["counts"]["exact"] >= 30
    assert s["counts"]["only_theirs"] >= 1  # the generator adds calls we never saw
    assert s["disputes_opened"] == sum(s["counts"][c] for c in
                                       ("mismatch", "only_ours", "only_theirs"))
    html = (out / "2026-11" / "orange-fr" / "RECON-2026-11-ORANGE-FR.html").read_text()
    assert "Invoice totals" in html and "only_theirs" in html
    path = disputes_path(tmp_path, "orange-fr", NOV)
    doc = json.loads(path.read_text())
    doc["disputes"][0]["status"] = "accepted"
    path.write_text(json.dumps(doc))
    first_csv = (out / "2026-11" / "orange-fr" / "RECON-2026-11-ORANGE-FR.csv").read_bytes()
    reconcile(cfg, records, partner="orange-fr", period=NOV, their_cdrs=cdrs, out_dir=out,
              data_dir=tmp_path)
    again = json.loads(path.read_text())
    assert again["disputes"][0]["status"] == "accepted"
    assert (out / "2026-11" / "orange-fr" / "RECON-2026-11-ORANGE-FR.csv").read_bytes() == first_csv


def test_invoice_total_comparison(cfg, tmp_path: Path) -> None:
    records = [rec(n=1, id="r1", price="10.00")]
    cdrs = tmp_path / "c.csv"
    write_partner_cdrs(cdrs, records, cfg.cdr_mappings["orange"], partner="orange-fr", seed=1)
    res = reconcile(cfg, records, partner="orange-fr", period=NOV, their_cdrs=cdrs,
                    their_total=Decimal("10.05"))
    ic = res.summary["invoice_compare"]
    assert (ic["ours"], ic["theirs"], ic["difference"], ic["within_tolerance"]) == (
        "10.00", "10.05", "-0.05", True)
    res = reconcile(cfg, records, partner="orange-fr", period=NOV, their_cdrs=cdrs,
                    their_total=Decimal("11"))
    assert res.summary["invoice_compare"]["within_tolerance"] is False
