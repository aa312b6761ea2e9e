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
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charging.currency import is_iso4217
from charging.money import MoneyError, parse_plain_amount
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, BalanceStore
from charging.store.common import check_spec


class AccountsFileError(ValueError):
    """A problem in an accounts file; ``str()`` is ``file:key: message``."""


@dataclass(frozen=True, slots=True)
class AccountSpec:
    account: str
    kind: AccountKind
    balances: tuple[BalanceSpec, ...]
    identities: tuple[str, ...]
    where: str = ""  # "file:account[0]": where the file defines it (for error messages)


# The keys each table may have: anything else is a typo ("ammount" would have provisioned
# 0.00, "[[acount]]" no account at all) and refused.
_TOP_KEYS = frozenset({"range", "account"})
_COMMON_KEYS = frozenset({"kind", "currency", "amount", "credit_limit"})
_RANGE_KEYS = _COMMON_KEYS | {"first", "last"}
_ACCOUNT_KEYS = _COMMON_KEYS | {"id", "identities"}
# One [[range]] provisions at most this many accounts (a typo in first/last must not make
# the server build billions of accounts before it refuses).
MAX_RANGE = 10_000_000


def _money(entry: dict[str, Any], key: str, where: str, currency: str) -> int:
    """Micro-units of ``entry[key]`` (a plain decimal string or an integer; default 0), with
    no more decimals than *currency* has.

    A TOML float (``amount = 10.5``) is refused: money never passes through float."""
    value = entry.get(key, "0")
    if isinstance(value, float) or isinstance(value, bool):
        raise AccountsFileError(f"{where}.{key}: write money as a decimal string "
                                f"(\"{value}\"), not a TOML {type(value).__name__}")
    if not isinstance(value, str | int):
        raise AccountsFileError(f"{where}.{key}: expected a decimal string like \"10.00\"")
    try:
        return parse_plain_amount(str(value), currency)
    except MoneyError as exc:
        raise AccountsFileError(f"{where}.{key}: {exc}") from exc


def _text(entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if value is None:
        raise AccountsFileError(f"{where}.{key}: required key is missing")
    if not isinstance(value, str):
        raise AccountsFileError(f"{where}.{key}: expected a string, got a TOML "
                                f"{type(value).__name__}")
    return value


def _tables(data: dict[str, Any], name: str, p: Path) -> list[dict[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise AccountsFileError(f"{p}:{name}: expected an array of tables ([[{name}]])")
    return value


def _check_keys(entry: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise AccountsFileError(f"{where}.{unknown[0]}: unknown key (allowed: "
                                f"{', '.join(sorted(allowed))})")


def _spec(entry: dict[str, Any], where: str, account: str,
          identities: list[str]) -> AccountSpec:
    kind_text = _text(entry, "kind", where, "prepaid_subscriber")
    try:
        kind = AccountKind(kind_text)
    except ValueError as exc:
        raise AccountsFileError(f"{where}.kind: unknown account kind {kind_text!r}") from exc
    currency = _text(entry, "currency", where, "EUR")
    if not is_iso4217(currency):
        raise AccountsFileError(f"{where}.currency: {currency!r} is not an ISO 4217 code "
                                "like EUR")
    amount = _money(entry, "amount", where, currency)
    limit = _money(entry, "credit_limit", where, currency)
    balance = BalanceSpec(id=currency, kind=BalanceKind.MONEY, currency=currency, amount=amount,
                          credit_limit=limit)
    if limit < 0:
        raise AccountsFileError(f"{where}.credit_limit: must not be negative")
    if amount + limit < 0:  # invariant 4: a balance never passes its credit limit
        raise AccountsFileError(f"{where}.amount: {entry.get('amount')} is below -credit_limit "
                                f"({entry.get('credit_limit', '0')})")
    try:  # what the stores would refuse at create time (an out-of-range amount...)
        check_spec(balance)
    except ValueError as exc:
        raise AccountsFileError(f"{where}.amount: {exc}") from exc
    return AccountSpec(account, kind, (balance,), tuple(identities), where)


def load_accounts(path: str | Path) -> list[AccountSpec]:
    """Parse an accounts file; raise :class:`AccountsFileError` naming file and key (unknown
    keys, wrong types, bad amounts, an account id or identity defined twice)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AccountsFileError(f"{p}:-: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise AccountsFileError(f"{p}:{line.group(1) if line else '-'}: invalid TOML: {exc}") \
            from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AccountsFileError(f"{p}:-: {exc}") from exc
    for key in sorted(set(data) - _TOP_KEYS):
        raise AccountsFileError(f"{p}:{key}: unknown key (an accounts file has [[range]] and "
                                "[[account]] tables)")
    out: list[AccountSpec] = []
    for i, entry in enumerate(_tables(data, "range", p)):
        where = f"{p}:range[{i}]"
        _check_keys(entry, _RANGE_KEYS, where)
        first, last = _text(entry, "first", where), _text(entry, "last", where)
        if not (first.isdigit() and last.isdigit() and len(first) == len(last)
                and int(first) <= int(last)):
            raise AccountsFileError(f"{where}.first: need digit strings first <= last, "
                                    "same length")
        if int(last) - int(first) >= MAX_RANGE:
            raise AccountsFileError(f"{where}.last: a range holds at most {MAX_RANGE} numbers")
        width = len(first)
        for n in range(int(first), int(last) + 1):
            number = str(n).zfill(width)
            out.append(_spec(entry, where, number, [number]))
    for i, entry in enumerate(_tables(data, "account", p)):
        where = f"{p}:account[{i}]"
        _check_keys(entry, _ACCOUNT_KEYS, where)
        account = _text(entry, "id", where)
        if not account or "|" in account:
            raise AccountsFileError(f"{where}.id: must be non-empty without '|': {account!r}")
        identities = entry.get("identities", [account])
        if not isinstance(identities, list) or not all(isinstance(x, str) and x
                                                       for x in identities):
            raise AccountsFileError(f"{where}.identities: expected an array of non-empty "
                                    "strings")
        out.append(_spec(entry, where, account, identities))
    check_unique(out)
    return out


def load_accounts_files(paths: list[Path]) -> list[AccountSpec]:
    """Every account of *paths*, checked as one set (an id or identity in two files is as
    wrong as twice in one); raise :class:`AccountsFileError` on the first problem."""
    out: list[AccountSpec] = []
    for path in paths:
        out.extend(load_accounts(path))
    check_unique(out)
    return out


def check_unique(specs: list[AccountSpec]) -> None:
    """Raise :class:`AccountsFileError` when two specs share an account id or an identity:
    provisioning both would keep whichever the store saw first, or refuse to start after
    creating the others."""
    ids: dict[str, AccountSpec] = {}
    idents: dict[str, str] = {}
    for s in specs:
        first = ids.setdefault(s.account, s)
        if first is not s:
            raise AccountsFileError(f"{s.where}: account {s.account!r} is defined twice "
                                    f"(first at {first.where})")
        for ident in s.identities:
            owner = idents.setdefault(ident, s.account)
            if owner != s.account:
                raise AccountsFileError(f"{s.where}.identities: identity {ident!r} already "
                                        f"belongs to account {owner!r}")


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
