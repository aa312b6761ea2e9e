"""Money-integrity checks run on every invoice before it is written (and by the tests).

1. Every micro-unit of the partner's records of the period (plus late deltas) appears in the
   invoice lines' source amounts, per source currency: nothing dropped, nothing doubled.
2. For each section: total == sum of its rounded lines, and exact_total + rounding == total.
3. Receivable - payable == net.
4. (:func:`check_prepaid`) For a prepaid partner, its balance movement in the period equals
   minus what we billed it (same currency), exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from charging.money import parse_amount
from settlement.aggregate import KEY_FIELDS, Buckets

_CCY = KEY_FIELDS.index("currency")
_SYNTHETIC = {"share", "guarantee", "cap", "shortfall"}


def check_invoice(inv: dict[str, Any], buckets: Buckets,
                  late: Iterable[tuple[str, str, tuple[Any, ...], list[int]]] = ()) -> list[str]:
    """Problems found in *inv* against the buckets it was built from (empty when sound)."""
    problems: list[str] = []
    no = inv["invoice_no"]
    want: dict[str, int] = {}
    for k, v in buckets.items():
        want[k[_CCY]] = want.get(k[_CCY], 0) + v[2]
    for _, _, k, v in late:
        want[k[_CCY]] = want.get(k[_CCY], 0) + v[2]
    got: dict[str, int] = {}
    for line in inv["lines"]:
        if line["kind"] in _SYNTHETIC:
            continue
        got[line["currency"]] = got.get(line["currency"], 0) + parse_amount(line["source_amount"])
    for ccy in sorted(set(want) | set(got)):
        if want.get(ccy, 0) != got.get(ccy, 0):
            problems.append(f"{no}: records sum {want.get(ccy, 0)} != lines {got.get(ccy, 0)} "
                            f"micro-{ccy}")
    by_no = {line["line"]: line for line in inv["lines"]}
    for sec in inv["sections"]:
        rows = [by_no[n] for n in sec["lines"]]
        if sec["section"] == "revenue_share":
            rows = [r for r in rows if r["kind"] in _SYNTHETIC]
        total = sum(parse_amount(r["amount"]) for r in rows)
        exact = sum(parse_amount(r["exact"]) for r in rows)
        if total != parse_amount(sec["total"]):
            problems.append(f"{no}: section {sec['section']} total is not the sum of its lines")
        if exact + parse_amount(sec["rounding"]) != parse_amount(sec["total"]):
            problems.append(f"{no}: section {sec['section']} exact + rounding != total")
    t = inv["totals"]
    if parse_amount(t["receivable"]) - parse_amount(t["payable"]) != parse_amount(t["net"]):
        problems.append(f"{no}: receivable - payable != net")
    return problems


def check_prepaid(inv: dict[str, Any], movements: dict[tuple[str, str, str], int]) -> list[str]:
    """A prepaid partner's balance moved by exactly minus its billed usage in the period, in
    EVERY currency (its records in another currency than the invoice's, and the balance they
    debited, are checked in that currency: never skipped, never added across currencies)."""
    account = inv["partner"].get("prepaid_account")
    if not account:
        return []
    billed: dict[str, int] = {}
    for line in inv["lines"]:
        if line["section"] == "sell" and line["kind"] not in _SYNTHETIC:
            billed[line["currency"]] = (billed.get(line["currency"], 0)
                                        + parse_amount(line["source_amount"]))
    moved = {ccy: v for (acct, ccy, period), v in movements.items()
             if acct == account and period == inv["period"]}
    out = []
    for ccy in sorted(set(billed) | set(moved) | {inv["currency"]}):
        if moved.get(ccy, 0) != -billed.get(ccy, 0):
            out.append(f"{inv['invoice_no']}: prepaid account {account} moved "
                       f"{moved.get(ccy, 0)} micro-{ccy}, billed usage {billed.get(ccy, 0)} "
                       f"micro-{ccy}")
    return out
