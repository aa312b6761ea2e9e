"""Balances as the journal tells them: opening balance (``account`` records) + Σ effects.

Used by the crash test, the ledger tests and operators to check invariant 3: for every
balance, the store's amount must equal :func:`journal_balances`' figure, and (with
:func:`audit_acked`) every acknowledged op is journaled once with exactly the amounts, on
exactly the balances, in exactly the currency it acknowledged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charging.journal import JournalReader
from charging.money import parse_amount


def _units(value: Any, money: bool) -> int:
    """A journal amount -> store units (micro-units for money, whole units for buckets)."""
    return parse_amount(value) if money else int(value)


def journal_balances(directory: str | Path) -> dict[tuple[str, str], int]:
    """``{(account, balance): amount}`` in store units (micro-units for money)."""
    kinds: dict[tuple[str, str], bool] = {}
    out: dict[tuple[str, str], int] = {}

    for chunk in JournalReader(directory).chunks():
        for rec in chunk.records:
            if rec.get("type") == "account":
                for b in rec.get("balances", []):
                    k = (rec["account"], b["id"])
                    money = b["kind"] == "money"
                    if k not in kinds:  # a repeated identical account record changes nothing
                        kinds[k] = money
                        out[k] = _units(b["amount"], money)
                continue
            for e in rec.get("balance_effects") or ():
                k = (e["account"], e["balance"])
                out[k] = out.get(k, 0) + _units(e["amount"], kinds.get(k, True))
    return out


def idem_counts(directory: str | Path) -> Counter[str]:
    """How many records carry each idem key (every money op must appear exactly once)."""
    c: Counter[str] = Counter()
    for chunk in JournalReader(directory).chunks():
        c.update(rec.get("idem") for rec in chunk.records)
    return c


@dataclass(frozen=True, slots=True)
class AckedOp:
    """What the caller was told about one op, in store units (as OpResult carries them).

    ``effects``: ``(account, balance, amount)``; ``holds``: ``(account, balance, reservation,
    amount)`` (the OpResult's Effect / Hold fields in that order)."""

    effects: Sequence[tuple[str, str, int]] = ()
    holds: Sequence[tuple[str, str, str, int]] = field(default=())


def audit_acked(directory: str | Path, acked: Mapping[str, AckedOp]) -> list[str]:
    """Check acknowledged ops (idem key -> :class:`AckedOp`) against the journal; return the
    problems found (empty = consistent).

    For every acknowledged op that moved anything: exactly one record carries its key; its
    ``balance_effects`` add up, per (account, balance), to the acknowledged amounts and its
    ``holds`` per (account, balance, reservation) likewise (the order within a record is
    not significant); every effect and hold names a balance some ``account`` record opened,
    and an effect's ``currency`` is that balance's currency (None for unit buckets). Amounts
    are compared exactly in store units: a tampered amount or currency is reported, not only
    a missing or extra entry. An acknowledged op that moved nothing must have no record that
    moves anything.
    """
    balances: dict[tuple[str, str], tuple[bool, str | None]] = {}
    records: dict[str, list[Mapping[str, Any]]] = {}
    for chunk in JournalReader(directory).chunks():
        for rec in chunk.records:
            if rec.get("type") == "account":
                for b in rec.get("balances", []):
                    balances.setdefault((str(rec["account"]), str(b["id"])),
                                        (b["kind"] == "money", b.get("currency")))
                continue
            key = rec.get("idem")
            if key in acked:
                records.setdefault(key, []).append(rec)
    problems: list[str] = []
    for key, ack in acked.items():
        recs = records.get(key, [])
        if len(recs) > 1:
            problems.append(f"{key}: journaled {len(recs)} times")
        if not recs:
            if ack.effects or ack.holds:
                problems.append(f"{key}: acknowledged but missing from the journal")
            continue
        problems.extend(_compare(key, recs[0], ack, balances))
    return problems


def _compare(key: str, rec: Mapping[str, Any], ack: AckedOp,
             balances: Mapping[tuple[str, str], tuple[bool, str | None]]) -> list[str]:
    problems: list[str] = []

    def balance_of(account: Any, balance: Any, what: str) -> tuple[tuple[str, str], bool]:
        k = (str(account), str(balance))
        meta = balances.get(k)
        if meta is None:
            problems.append(f"{key}: {what} on {k[0]}/{k[1]}, a balance no account record opened")
            return k, True
        return k, meta[0]

    got_e: Counter[tuple[str, ...]] = Counter()
    for e in _items(rec.get("balance_effects")):
        k, money = balance_of(e["account"], e["balance"], "effect")
        want_cur = balances.get(k, (True, e.get("currency")))[1]
        if e.get("currency") != want_cur:
            problems.append(f"{key}: effect on {k[0]}/{k[1]} in {e.get('currency')!r}, "
                            f"the balance is in {want_cur!r}")
        got_e[k] += _units(e["amount"], money)
    got_h: Counter[tuple[str, ...]] = Counter()
    for h in _items(rec.get("holds")):
        k, money = balance_of(h["account"], h["balance"], "hold")
        got_h[(*k, str(h["reservation"]))] += _units(h["amount"], money)
    want_e: Counter[tuple[str, ...]] = Counter()
    for account, balance, amount in ack.effects:
        want_e[(account, balance)] += amount
    want_h: Counter[tuple[str, ...]] = Counter()
    for account, balance, reservation, amount in ack.holds:
        want_h[(account, balance, reservation)] += amount
    for what, got, want in (("balance_effects", got_e, want_e), ("holds", got_h, want_h)):
        # compare entry counts too: a hold of 0 (refresh) is an entry with no amount
        n_got = len(_items(rec.get(what)))
        n_want = len(ack.effects if what == "balance_effects" else ack.holds)
        if _nonzero(got) != _nonzero(want) or n_got != n_want:
            problems.append(f"{key}: journal {what} {_show(got)} ({n_got} entries) != "
                            f"acknowledged {_show(want)} ({n_want} entries)")
    return problems


def _items(value: Any) -> list[Mapping[str, Any]]:
    return list(value) if isinstance(value, list | tuple) else []


def _nonzero(c: Counter[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
    return {k: v for k, v in c.items() if v}


def _show(c: Counter[tuple[str, ...]]) -> str:
    return "{" + ", ".join(f"{'/'.join(k)}: {v}" for k, v in sorted(_nonzero(c).items())) + "}"


def acked_from_results(results: Iterable[Any]) -> dict[str, AckedOp]:
    """``{key: AckedOp}`` from OpResults (or anything with ``key``/``effects``/``holds``)."""
    return {r.key: AckedOp(tuple((e.account, e.balance, e.amount) for e in r.effects),
                           tuple((h.account, h.balance, h.reservation, h.amount)
                                 for h in r.holds))
            for r in results}
