"""Provisioning accounts from a TOML file (the demo subscribers `make run` serves).

Format (config/accounts.toml)::

    [[range]]                       # one account per number first..last (inclusive)
    first = "41790000001"
    last = "41790000999"
    kind = "prepaid_subscriber"     # charging.store.base.AccountKind value
    currency = "EUR"
    amount = "50.00"                # decimal string, major units
    credit_limit = "0"              # optional

    [[account]]
    id = "41790000000"
    identities = ["41790000000"]    # optional; default [id]
    kind = "prepaid_subscriber"
    currency = "EUR"
    amount = "0.00"

The caller applies the specs with :func:`provision` (idempotent: existing accounts are kept,
so restarting the server never resets a balance).
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charging.currency import is_iso4217
from charging.money import MoneyError, parse_amount
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, BalanceStore


class AccountsFileError(ValueError):
    """A problem in an accounts file; ``str()`` is ``file:key: message``."""


@dataclass(frozen=True, slots=True)
class AccountSpec:
    account: str
    kind: AccountKind
    balances: tuple[BalanceSpec, ...]
    identities: tuple[str, ...]


def _money(entry: dict[str, Any], key: str, where: str) -> int:
    """Micro-units of ``entry[key]`` (a decimal string or an integer; default 0).

    A TOML float (``amount = 10.5``) is refused: money never passes through float."""
    value = entry.get(key, "0")
    if isinstance(value, float) or isinstance(value, bool):
        raise AccountsFileError(f"{where}.{key}: write money as a decimal string "
                                f"(\"{value}\"), not a TOML {type(value).__name__}")
    try:
        return parse_amount(str(value))
    except MoneyError as exc:
        raise AccountsFileError(f"{where}.{key}: {exc}") from exc


def _spec(entry: dict[str, Any], where: str, account: str,
          identities: list[str]) -> AccountSpec:
    try:
        kind = AccountKind(entry.get("kind", "prepaid_subscriber"))
    except ValueError as exc:
        raise AccountsFileError(f"{where}.kind: unknown account kind {entry.get('kind')!r}") \
            from exc
    currency = str(entry.get("currency", "EUR"))
    if not is_iso4217(currency):
        raise AccountsFileError(f"{where}.currency: {currency!r} is not an ISO 4217 code "
                                "like EUR")
    amount = _money(entry, "amount", where)
    limit = _money(entry, "credit_limit", where)
    balance = BalanceSpec(id=currency, kind=BalanceKind.MONEY, currency=currency, amount=amount,
                          credit_limit=limit)
    return AccountSpec(account, kind, (balance,), tuple(identities))


def load_accounts(path: str | Path) -> list[AccountSpec]:
    """Parse an accounts file; raise :class:`AccountsFileError` naming file and key."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AccountsFileError(f"{p}:-: {exc}") from exc
    out: list[AccountSpec] = []
    for i, entry in enumerate(data.get("range", [])):
        where = f"{p}:range[{i}]"
        first, last = str(entry.get("first", "")), str(entry.get("last", ""))
        if not (first.isdigit() and last.isdigit() and len(first) == len(last)
                and int(first) <= int(last)):
            raise AccountsFileError(f"{where}.first: need digit strings first <= last, "
                                    "same length")
        width = len(first)
        for n in range(int(first), int(last) + 1):
            number = str(n).zfill(width)
            out.append(_spec(entry, where, number, [number]))
    for i, entry in enumerate(data.get("account", [])):
        where = f"{p}:account[{i}]"
        account = str(entry.get("id", ""))
        if not account:
            raise AccountsFileError(f"{where}.id: required")
        identities = [str(x) for x in entry.get("identities", [account])]
        out.append(_spec(entry, where, account, identities))
    return out


async def provision(ledger: Any, store: BalanceStore, specs: list[AccountSpec], *,
                    now: float, batch: int = 256) -> int:
    """Create every account that does not exist yet through ``ledger.create_account`` (so the
    journal holds its opening balance); return how many were created. Batches run
    concurrently so their journal records share group commits."""
    todo = [s for s in specs if await store.get(s.account) is None]
    for i in range(0, len(todo), batch):
        await asyncio.gather(*(
            ledger.create_account(s.account, s.kind, list(s.balances), list(s.identities),
                                  now=now)
            for s in todo[i:i + batch]))
    return len(todo)
