"""Money integrity over a generated month of mixed traffic, several partners and currencies.

For every partner: the sum of its record amounts (computed here independently, straight from
the journal bytes) equals the invoice's exact totals, every total equals its exact sum plus
the rounding shown, and a prepaid partner's balance movement equals minus its billed usage.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import msgpack
import pytest

from charging.journal import list_segments
from charging.money import parse_amount
from settlement.currency import Period
from settlement.generate import TrafficGenerator, write_journal
from settlement.run import settle
from settlement.source import JournalSource

NOV = Period(2026, 11)
N = 12_000


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("month")
    write_journal(str(root / "journal"), TrafficGenerator(NOV, seed=11).records(N),
                  segment_bytes=1 << 20)
    return root


def _independent_sums(journal: Path) -> tuple[dict, dict]:
    """(partner, direction, currency) -> micro-units, and prepaid account -> movement."""
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    moved: dict[str, int] = defaultdict(int)
    for seg in list_segments(journal):
        data = seg.path.read_bytes()[16:]
        items = list(msgpack.Unpacker(io.BytesIO(data), raw=False))
        for r in items[2::3]:  # len, crc, record
            if r["type"] not in ("rated", "refund", "adjust"):
                continue
            if not r.get("legs") and "partner" not in r:  # Ro path: the deck names the partner
                r = {**r, "partner": "carrier_a", "direction": "sell"}
                assert r["deck"] == "carrier_a_sell"
            for src in r.get("legs") or [r]:
                sums[(src["partner"], src["direction"], src["currency"])] += parse_amount(
                    src["price"])
            for e in r["balance_effects"]:
                if e["account"].startswith("partner:"):
                    moved[e["account"]] += parse_amount(e["amount"])
    return sums, moved


@pytest.mark.parametrize("fast", [False, True])
def test_invoices_equal_the_records_with_the_rounding_shown(cfg, month: Path, tmp_path: Path,
                                                            fast: bool) -> None:
    from settlement import fastagg

    if fast and not fastagg.available():
        import os

        import cython_ext

        if cython_ext.extensions_enabled() and (os.environ.get("CI") == "true" or
                                                os.environ.get("ICX_REQUIRE_EXTENSIONS") == "1"):
            pytest.fail("CI=true with extensions enabled but cython_ext.settle_agg is not built")
        pytest.skip("compiled aggregator not built or disabled (ICX_NO_EXTENSIONS=1)")
    report = settle(cfg, JournalSource(month / "journal", fast=fast), data_dir=tmp_path,
                    period=NOV, out_dir=tmp_path / "out")
    assert report.problems == []
    assert report.records_read == N
    sums, moved = _independent_sums(month / "journal")
    assert {p for p, _, _ in sums} == set(cfg.partners)  # every demo partner has traffic
    currencies = {c for _, _, c in sums}
    assert {"EUR", "USD", "GBP"} <= currencies

    seen = 0
    for pid, inv in report.invoices.items():
        doc = json.loads((tmp_path / "out" / "2026-11" / pid / f"{inv['invoice_no']}.json")
                         .read_text())
        assert doc == inv
        # 1. every record amount is on the invoice, per direction and source currency
        got: dict[tuple[str, str], int] = defaultdict(int)
        for ln in inv["lines"]:
            if ln["kind"] in ("usage", "refund", "adjust"):
                got[(ln["direction"], ln["currency"])] += parse_amount(ln["source_amount"])
        want = {(d, c): v for (p, d, c), v in sums.items() if p == pid}
        assert dict(got) == want, pid
        seen += sum(want.values())
        # 2. totals = exact sums + the rounding shown; net = receivable - payable
        for sec in inv["sections"]:
            rows = [ln for ln in inv["lines"] if ln["line"] in sec["lines"]]
            if sec["section"] == "revenue_share":
                rows = [ln for ln in rows if ln["kind"] in ("share", "guarantee", "cap")]
            assert sum(parse_amount(r["amount"]) for r in rows) == parse_amount(sec["total"])
            assert parse_amount(sec["exact_total"]) + parse_amount(sec["rounding"]) == \
                parse_amount(sec["total"])
            for r in rows:
                assert parse_amount(r["exact"]) + parse_amount(r["rounding"]) == \
                    parse_amount(r["amount"])
        # same-currency sections: the exact total IS the record sum
        for sec in inv["sections"]:
            if sec["section"] in ("sell", "buy") and all(
                    ln["currency"] == inv["currency"] for ln in inv["lines"]
                    if ln["line"] in sec["lines"]):
                assert parse_amount(sec["exact_total"]) == want[(sec["section"], inv["currency"])]
        t = inv["totals"]
        assert parse_amount(t["receivable"]) - parse_amount(t["payable"]) == parse_amount(t["net"])
    assert seen == sum(sums.values())
    # 3. the prepaid partner's balance moved by exactly minus what we billed it
    mvno = report.invoices["mvno-uk"]
    billed = parse_amount(mvno["sections"][0]["exact_total"])
    assert moved["partner:mvno-uk"] == -billed != 0
