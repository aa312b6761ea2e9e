"""Operator actions on accounts (the business side of the admin API and CLI).

Amounts cross this boundary as decimal strings only (charging/money.py); the HTTP layer
(mediation/admin_http.py) and the CLI (icx balance ...) never do arithmetic on money.
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Iterable
from typing import Any

from charging.money import MoneyError, format_amount, format_money, parse_plain_amount
from charging.ports import Accounts, Ledger
from charging.sessions import Session
from charging.store.base import MAX_AMOUNT, AccountView, BalanceKind, BalanceView


class OperatorError(ValueError):
    """Bad operator input (unknown account, bad amount); ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _fmt(b: BalanceView, micros: int) -> str:
    # Money in major units as a decimal string with the currency's own minor places (exact
    # beyond them: format_money), as `icx sessions list` shows it; unit buckets as whole units.
    return format_money(micros, b.currency) if b.kind is BalanceKind.MONEY else str(micros)


def account_json(view: AccountView) -> dict[str, Any]:
    """The JSON form `icx balance show --json` prints (decimal strings for amounts)."""
    return {
        "account": view.account,
        "kind": view.kind.value,
        "identities": list(view.identities),
        "balances": [
            {"id": b.id, "kind": b.kind.value, "currency": b.currency,
             "amount": _fmt(b, b.amount), "reserved": _fmt(b, b.reserved),
             "available": _fmt(b, b.available), "credit_limit": _fmt(b, b.credit_limit)}
            for b in view.balances
        ],
    }


def reauth_targets(sessions: Iterable[Session], *, account: str | None = None,
                   decks: Container[str] | None = None) -> list[str]:
    """The Session-Ids a server-initiated RAR goes to (a top-up: *account*'s sessions; a
    tariff change: those on one of *decks*; neither: every one): open online sessions, except
    those the operator killed (ASR answered 2001, the session waits for its CCR-T, facts D).
    A RAR asks the client to re-authorise (RFC 4006 §5.5); a killed session is being torn
    down, and re-authorising it would only draw a CCR-U for a grant it will not get."""
    return [s.id for s in sessions
            if s.killed is None and (account is None or s.account == account)
            and (decks is None or s.deck in decks)]


async def find_account(accounts: Accounts, ident: str) -> AccountView:
    """An account by id, or by an identity that resolves to one; OperatorError 404 if none."""
    view = await accounts.get(ident)
    if view is None:
        resolved = await accounts.resolve(ident)
        view = await accounts.get(resolved) if resolved else None
    if view is None:
        raise OperatorError(f"unknown account {ident!r}", 404)
    return view


async def topup(accounts: Accounts, ledger: Ledger, ident: str, amount: str, *, now: float,
                balance: str | None = None, key: str | None = None) -> dict[str, Any]:
    """Credit ``amount`` (plain decimal string such as ``"10.50"``, major units, no more
    decimals than the balance's currency has: 2 for EUR, 0 for JPY) to the account's money
    balance.

    Idempotent by ``key`` (default: a fresh ``admin:<uuid>``): a retry credits once; the key
    of a different earlier top-up is OperatorError 409. Returns the new account JSON."""
    view = await find_account(accounts, ident)
    target = None
    for b in view.balances:
        if (balance and b.id == balance) or (not balance and b.kind is BalanceKind.MONEY):
            target = b
            break
    if target is None:
        raise OperatorError(f"no balance {balance or 'money'!r} on {view.account}", 404)
    # plain decimal text ("1e3" is a typo, not a request to credit 1000) in the currency's
    # minor unit: "10.001" EUR is a typo too -- no payment credits a tenth of a cent
    currency = target.currency if target.kind is BalanceKind.MONEY else None
    try:
        micros = parse_plain_amount(amount, currency)
    except MoneyError as exc:
        raise OperatorError(f"amount: {exc}") from exc
    if micros <= 0:
        raise OperatorError("amount must be positive")
    if micros > MAX_AMOUNT:  # the stores' range: beyond it they raise (an HTTP 500)
        raise OperatorError(f"amount too large: at most {format_amount(MAX_AMOUNT)}")
    op_key = key or f"admin:{uuid.uuid4()}"
    fields = {"type": "topup", "account": view.account, "currency": target.currency,
              "price": format_amount(micros), "result": "ok"}
    result = await ledger.topup(op_key, view.account, target.id, micros, now=now, fields=fields)
    if not result.ok:
        raise OperatorError(f"top-up failed: {result.status.value}", 409)
    if result.replayed and [(e.account, e.balance, e.amount) for e in result.effects] != [
            (view.account, target.id, micros)]:
        # the key names an earlier, different top-up: answering 200 would say this one was
        # credited when nothing was
        done = ", ".join(f"{format_amount(e.amount)} to {e.account}/{e.balance}"
                         for e in result.effects)
        raise OperatorError(f"key {op_key!r} was already used for another top-up ({done}); "
                            "nothing credited", 409)
    after = await find_account(accounts, view.account)
    out = account_json(after)
    out["key"] = op_key
    return out
