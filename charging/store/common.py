"""Helpers both stores share: argument checks, expiry keys, journal-record decoding.

Nothing here touches state; the embedded store (memory.py) and the Redis store
(redis_store.py) call these so that the two answer identically (the contract suite checks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from charging.money import parse_amount
from charging.store.base import MAX_AMOUNT, BalanceKind, BalanceSpec, Effect, Hold, to_us

DEFAULT_RETENTION = 48 * 3600.0
"""Idempotency-key retention (seconds). A key older than this may be forgotten, after which a
replay of it would act again. Diameter clients retry for minutes (RFC 4006 Tx, RFC 6733 §5.5.4
failover); 48 h comfortably covers an operator replaying a day of CDR files."""

DEFAULT_SESSION_RETENTION = 300.0
"""How long the embedded store remembers the keys of the protocol front ends' ops (seconds):
reserve, commit, release, debit and refund, ~1.5 per CCR. Their peers retry within seconds to a
minute or two (RFC 4006 Tx, RFC 6733 5.5.4 failover after the watchdog), so 300 s covers them
with room to spare while keeping the cache to ~0.5 GB at 1,000 CCR/s (memory.py)."""


def check_amount(amount: int, name: str = "amount") -> None:
    """Raise ValueError unless *amount* is an int in [0, MAX_AMOUNT]."""
    if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:  # bool is not an amount
        raise ValueError(f"{name} must be an int in [0, {MAX_AMOUNT}], got {amount!r}")


def check_account_id(account: str) -> None:
    """Raise ValueError for an account id the Redis key layout cannot carry ('|' separates the
    parts of a slot-index member, see redis_keys)."""
    if not account or "|" in account:
        raise ValueError(f"account id must be non-empty without '|': {account!r}")


def check_spec(spec: BalanceSpec) -> None:
    """Raise ValueError for a balance that either store could not keep exactly."""
    if not spec.id or "|" in spec.id:
        raise ValueError(f"balance id must be non-empty without '|': {spec.id!r}")
    if type(spec.amount) is not int or abs(spec.amount) > MAX_AMOUNT:
        raise ValueError(f"balance {spec.id}: amount out of range")
    check_amount(spec.credit_limit, "credit_limit")
    if spec.amount + spec.credit_limit > MAX_AMOUNT or spec.amount + spec.credit_limit < 0:
        raise ValueError(f"balance {spec.id}: amount + credit_limit must be in [0, MAX_AMOUNT]")
    if spec.kind is BalanceKind.MONEY and not spec.currency:
        raise ValueError(f"balance {spec.id}: a money balance needs a currency")
    if spec.low_threshold is not None and abs(spec.low_threshold) > MAX_AMOUNT:
        raise ValueError(f"balance {spec.id}: low_threshold out of range")


def expire_key(balance: str, reservation: str, exp_us: int) -> str:
    """The idempotency key of the TTL release of one reservation instance (deterministic, so a
    sweep repeated after a crash finds the first result)."""
    return f"expire:{balance}:{reservation}:{exp_us}"


def spec_tuple(spec: BalanceSpec) -> tuple[Any, ...]:
    """A comparable, serialisable form of a BalanceSpec (create_account idempotency)."""
    return (spec.id, spec.kind.value, spec.currency, spec.amount, spec.credit_limit,
            spec.priority, None if spec.expires_at is None else to_us(spec.expires_at),
            spec.low_threshold)


@dataclass(frozen=True, slots=True)
class RecordOps:
    """What a journal record asks a store to re-apply, grouped per account."""

    key: str
    result: str
    effects: dict[str, list[Effect]]
    holds: dict[str, list[Hold]]


def _units(value: Any, kind: BalanceKind | None) -> int:
    """A journal amount -> store units. ints are store units already; decimal strings are major
    units for money (-> micro-units) and whole units for buckets (docs/journal-schema.md)."""
    if isinstance(value, bool) or isinstance(value, float):
        # a float is not an exact decimal (journal-schema: ints or decimal strings only)
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, int):
        return value
    if kind is BalanceKind.MONEY or kind is None:
        return parse_amount(value)
    units = Decimal(str(value))
    if units != units.to_integral_value():
        raise ValueError(f"not a whole number of units: {value!r}")
    return int(units)


def decode_record(
    record: Mapping[str, Any], kind_of: Any = None
) -> RecordOps:
    """Decode a journal record's ``idem``, ``balance_effects`` and ``holds``.

    *kind_of(account, balance) -> BalanceKind | None* tells how to read decimal strings.
    Hold ``expires`` is epoch microseconds or None (reservation gone).
    """
    key = record.get("idem")
    if not isinstance(key, str) or not key:
        raise ValueError("journal record without an idem key")
    effects: dict[str, list[Effect]] = {}
    holds: dict[str, list[Hold]] = {}
    for e in _as_list(record.get("balance_effects")):
        acct, bal = str(e["account"]), str(e["balance"])
        kind = kind_of(acct, bal) if kind_of else None
        effects.setdefault(acct, []).append(Effect(acct, bal, _units(e["amount"], kind)))
    for h in _as_list(record.get("holds")):
        acct, bal = str(h["account"]), str(h["balance"])
        kind = kind_of(acct, bal) if kind_of else None
        exp = h.get("expires")
        holds.setdefault(acct, []).append(
            Hold(acct, bal, str(h["reservation"]), _units(h["amount"], kind),
                 None if exp is None else int(exp) / 1_000_000)
        )
    return RecordOps(key, str(record.get("result", "ok")), effects, holds)


def _as_list(value: Any) -> Iterable[Mapping[str, Any]]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value
