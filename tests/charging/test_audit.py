"""charging/ledger/audit.py: the crash audit compares acknowledged AMOUNTS and currencies with
the journal, not merely how many effects each op has."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from charging.journal import Journal, JournalReader
from charging.ledger import Ledger
from charging.ledger.audit import AckedOp, acked_from_results, audit_acked
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpResult
from charging.store.memory import MemoryStore

T0 = 1_800_000_000.0
SPECS = [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount=10_000_000),
         BalanceSpec("voice", BalanceKind.SECONDS, None, amount=600)]


async def _run(d: Path) -> list[OpResult]:
    journal = await Journal.open(d)
    ledger = Ledger(MemoryStore(), journal)
    await ledger.recover(now=T0)
    await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, SPECS, now=T0)
    await ledger.create_account("a2", AccountKind.PREPAID_SUBSCRIBER, SPECS, now=T0)
    out = [
        await ledger.reserve("k1", "a1", "EUR", "s1", 3_000_000, ttl=30, now=T0),
        await ledger.commit("k2", "a1", "EUR", "s1", 1_250_000, now=T0 + 1),
        await ledger.debit("k3", "a2", "voice", 60, now=T0 + 2),
        await ledger.topup("k4", "a2", "EUR", 500_000, now=T0 + 3),
        await ledger.debit("k5", "a1", "EUR", 99_000_000, now=T0 + 4),  # refused: no record
    ]
    await ledger.close()
    await journal.close()
    return out


async def _copy(src: Path, dst: Path, tamper: dict[str, Any]) -> None:
    """Rewrite the journal record by record, applying *tamper* (idem -> edit function)."""
    journal = await Journal.open(dst)
    for _, rec in JournalReader(src).iter_from():
        rec = copy.deepcopy(rec)
        if rec.get("idem") in tamper:
            tamper[rec["idem"]](rec)
        await journal.append(rec)
    await journal.close()


@pytest.fixture
def journaled(tmp_path: Path) -> tuple[Path, dict[str, AckedOp]]:
    results = asyncio.run(_run(tmp_path / "j"))
    return tmp_path / "j", acked_from_results(results)


def test_untouched_journal_passes(journaled: tuple[Path, dict[str, AckedOp]]) -> None:
    jdir, acked = journaled
    assert audit_acked(jdir, acked) == []


def _set(what: str, field: str, value: Any) -> Any:
    def edit(rec: dict[str, Any]) -> None:
        rec[what][0][field] = value
    return edit


@pytest.mark.parametrize(("key", "edit", "expect"), [
    # same number of effects, wrong amount: the count-only audit passed this
    ("k2", _set("balance_effects", "amount", "-1.35"), "k2: journal balance_effects"),
    ("k4", _set("balance_effects", "amount", "0.5000001"), None),  # unparseable: raises
    ("k3", _set("balance_effects", "amount", "-61"), "k3: journal balance_effects"),
    ("k2", _set("balance_effects", "currency", "USD"), "in 'USD', the balance is in 'EUR'"),
    ("k3", _set("balance_effects", "currency", "EUR"), "in 'EUR', the balance is in None"),
    ("k2", _set("balance_effects", "account", "a2"), "k2: journal balance_effects"),
    ("k1", _set("holds", "amount", "2.00"), "k1: journal holds"),
    ("k1", _set("holds", "reservation", "s9"), "k1: journal holds"),
    ("k4", _set("balance_effects", "balance", "GBP"), "a balance no account record opened"),
])
def test_tampered_amount_or_currency_is_reported(
        tmp_path: Path, journaled: tuple[Path, dict[str, AckedOp]], key: str, edit: Any,
        expect: str | None) -> None:
    jdir, acked = journaled
    bad = tmp_path / "tampered"
    asyncio.run(_copy(jdir, bad, {key: edit}))
    if expect is None:
        with pytest.raises(ValueError):  # MoneyError: more than 6 decimals
            audit_acked(bad, acked)
        return
    problems = audit_acked(bad, acked)
    assert any(expect in p for p in problems), problems
    assert all(p.startswith(f"{key}:") for p in problems), problems


def test_missing_and_phantom_records(
        tmp_path: Path, journaled: tuple[Path, dict[str, AckedOp]]) -> None:
    jdir, acked = journaled
    dropped = tmp_path / "dropped"
    asyncio.run(_copy(jdir, dropped, {"k4": lambda rec: rec.update(idem="other")}))
    assert audit_acked(dropped, acked) == ["k4: acknowledged but missing from the journal"]
    # an op acknowledged as refused (nothing moved) but journaled as moving money
    assert not acked["k5"].effects
    phantom = tmp_path / "phantom"
    asyncio.run(_copy(jdir, phantom, {"k3": lambda rec: rec.update(idem="k5")}))
    problems = audit_acked(phantom, acked)
    assert "k3: acknowledged but missing from the journal" in problems
    assert any(p.startswith("k5: journal balance_effects") for p in problems), problems
