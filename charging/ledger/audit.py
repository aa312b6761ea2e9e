"""Balances as the journal tells them: opening balance (``account`` records) + Σ effects.

Used by the crash test, the ledger tests and operators to check invariant 3: for every
balance, the store's amount must equal :func:`journal_balances`' figure.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from charging.journal import JournalReader
from charging.money import parse_amount


def journal_balances(directory: str | Path) -> dict[tuple[str, str], int]:
    """``{(account, balance): amount}`` in store units (micro-units for money)."""
    kinds: dict[tuple[str, str], bool] = {}
    out: dict[tuple[str, str], int] = {}

    def units(value: Any, money: bool) -> int:
        return parse_amount(value) if money else int(value)

    for chunk in JournalReader(directory).chunks():
        for rec in chunk.records:
            if rec.get("type") == "account":
                for b in rec.get("balances", []):
                    k = (rec["account"], b["id"])
                    money = b["kind"] == "money"
                    if k not in kinds:  # a repeated identical account record changes nothing
                        kinds[k] = money
                        out[k] = units(b["amount"], money)
                continue
            for e in rec.get("balance_effects") or ():
                k = (e["account"], e["balance"])
                out[k] = out.get(k, 0) + units(e["amount"], kinds.get(k, True))
    return out


def idem_counts(directory: str | Path) -> Counter[str]:
    """How many records carry each idem key (every money op must appear exactly once)."""
    c: Counter[str] = Counter()
    for chunk in JournalReader(directory).chunks():
        c.update(rec.get("idem") for rec in chunk.records)
    return c
