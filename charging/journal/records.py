"""Building journal records (docs/journal-schema.md, version 1) from store results.

The ledger calls :func:`op_record`; tools and tests may call it too. Amounts leave here as
signed decimal strings: money balances in major units (micro-units / 1e6, e.g. ``"-0.12"``),
unit buckets in whole units (``"-60"``). ``charging.store.common.decode_record`` is the
inverse used by recovery.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from charging.money import format_amount

SCHEMA_VERSION = 1

# op -> record type (schema `type`), when the caller's fields do not name one
OP_TYPES = {
    "reserve": "hold",
    "commit": "rated",
    "debit": "rated",
    "release": "release",
    "expire": "release",
    "refund": "refund",
    "topup": "topup",
    "account": "account",
    "record": "rated",
}

# (account, balance) -> (is_money, currency)
MetaFn = Callable[[str, str], tuple[bool, str | None]]


class RecordIds:
    """Unique record ids ``<node>-<boot µs, base36>-<counter>``: unique across restarts."""

    def __init__(self, node: str = "icx") -> None:
        boot = time.time_ns() // 1000 ^ (os.getpid() << 40)
        self._prefix = f"{node}-{_b36(boot)}-"
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(reversed(out)) or "0"


_AMOUNT_CACHE: dict[int, str] = {}
_AMOUNT_CACHE_MAX = 8192


def amount_text(amount: int, is_money: bool) -> str:
    """Store units -> the journal's signed decimal string."""
    if not is_money:
        return str(amount)
    # Prices and grants repeat (the same tariff, the same 60 s quota), so the text of recent
    # money amounts is cached: format_amount is the slowest step of a record.
    text = _AMOUNT_CACHE.get(amount)
    if text is None:
        if len(_AMOUNT_CACHE) >= _AMOUNT_CACHE_MAX:
            _AMOUNT_CACHE.clear()
        text = _AMOUNT_CACHE[amount] = format_amount(amount)
    return text


# OpStatus member -> its value (Enum.value is a descriptor lookup: slow on the hot path)
_STATUS_TEXT: dict[Any, str] = {}


def op_record(
    *,
    op: str,
    result: Any,  # charging.store.base.OpResult
    record_id: str,
    ts_us: int,
    meta: MetaFn,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The journal record of one store operation.

    ``fields`` are the caller's rating fields (session, service, usage, price, a, b, partner,
    direction, deck_version, ...) copied as given; ``v``, ``id``, ``ts``, ``idem``, ``op``,
    ``result``, ``granted``, ``balance_effects`` and ``holds`` are set here and win over them.
    Called once per money op on the server's hot path: keep it lean (the key order and types
    are those of docs/journal-schema.md; tests/charging/journal/test_records.py pins them).
    """
    return op_record_into(dict(fields) if fields else {}, op, result, record_id, ts_us, meta)


def op_record_into(rec: dict[str, Any], op: str, result: Any, record_id: str, ts_us: int,
                   meta: MetaFn) -> dict[str, Any]:
    """:func:`op_record` into the caller's own fresh dict *rec* (its rating fields, which
    this fills and returns: the caller must not reuse it). Saves the copy of the fields on the
    ledger's per-op path; same keys, same order, same values as :func:`op_record`."""
    if "type" not in rec:
        rec["type"] = OP_TYPES.get(op, "rated")
    effects = []
    for e in result.effects:
        is_money, currency = meta(e.account, e.balance)
        effects.append({"account": e.account, "balance": e.balance, "currency": currency,
                        "amount": amount_text(e.amount, is_money)})
    holds = []
    for h in result.holds:
        exp = h.expires_at
        holds.append({"account": h.account, "balance": h.balance, "reservation": h.reservation,
                      "amount": amount_text(h.amount, meta(h.account, h.balance)[0]),
                      # round() of a float is already an int (of an int: the int)
                      "expires": None if exp is None else round(exp * 1_000_000)})
    status = result.status
    status_text = _STATUS_TEXT.get(status)
    if status_text is None:
        status_text = _STATUS_TEXT[status] = status.value
    rec["v"] = SCHEMA_VERSION
    rec["id"] = record_id
    rec["ts"] = ts_us
    rec["idem"] = result.key
    rec["op"] = op
    rec["result"] = status_text
    rec["granted"] = result.granted
    rec["balance_effects"] = effects
    rec["holds"] = holds
    return rec


def account_record(
    *, account: str, kind: str, balances: list[dict[str, Any]], identities: list[str],
    record_id: str, ts_us: int, idem: str,
) -> dict[str, Any]:
    """The ``account`` record: the account's definition with its **opening** balances.

    ``balances`` items: ``{"id", "kind", "currency", "amount" (decimal string), "credit_limit"
    (decimal string), "priority", "expires" (µs or None), "low_threshold" (decimal string or
    None)}``. Opening balance + Σ balance_effects = balance (the invariant tests check).
    """
    return {"v": SCHEMA_VERSION, "type": "account", "id": record_id, "ts": ts_us, "idem": idem,
            "op": "account", "account": account, "kind": kind, "balances": balances,
            "identities": identities, "result": "ok", "balance_effects": [], "holds": []}
