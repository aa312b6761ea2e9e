"""`icx balance show ID [--json]` and `icx balance topup ID AMOUNT` (via the admin HTTP API)."""

from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation

import click
from rich.console import Console
from rich.table import Table

from icx.commands._admin_client import admin_option, call, segment


@click.group("balance")
def balance() -> None:
    """Show and top up account balances on a running server."""


def _print(view: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"account": view["account"], "balances": view["balances"]}))
        return
    table = Table(title=f"account {view['account']} ({view.get('kind', '')})")
    for col in ("balance", "kind", "currency", "amount", "reserved", "available"):
        table.add_column(col, justify="right" if col in ("amount", "reserved", "available")
                         else "left")
    for b in view["balances"]:
        table.add_row(b["id"], b["kind"], b["currency"] or "-", b["amount"], b["reserved"],
                      b["available"])
    Console().print(table)


@balance.command("show")
@click.argument("account")
@click.option("--json", "as_json", is_flag=True, help="Machine output (decimal strings).")
@admin_option
def show(account: str, as_json: bool, admin: str) -> None:
    """Print the balances of ACCOUNT (an account id or an identity such as an MSISDN)."""
    _print(call(admin, "GET", f"/api/accounts/{segment(account)}"), as_json)


# ignore_unknown_options: "-5" is an AMOUNT to refuse as such, not an unknown option
@balance.command("topup", context_settings={"ignore_unknown_options": True})
@click.argument("account")
@click.argument("amount")
@click.option("--key", default=None, help="Idempotency key (a retried top-up with the same "
              "key credits once).")
@click.option("--no-reauth", is_flag=True, help="Do not send RAR to the account's sessions.")
@click.option("--json", "as_json", is_flag=True)
@admin_option
def topup(account: str, amount: str, key: str | None, no_reauth: bool, as_json: bool,
          admin: str) -> None:
    """Credit AMOUNT (a decimal like 10.00, in the balance's currency) to ACCOUNT; the
    server then sends RAR to the account's open sessions so they re-authorise."""
    try:
        if Decimal(amount) <= 0:
            raise InvalidOperation
    except InvalidOperation:
        click.echo(f"amount:1: not a positive decimal amount: {amount!r}", err=True)
        sys.exit(2)
    body: dict = {"amount": amount, "reauth": not no_reauth}
    if key:
        body["key"] = key
    out = call(admin, "POST", f"/api/accounts/{segment(account)}/topup", body)
    if as_json:
        click.echo(json.dumps(out))
    else:
        _print(out, False)
        if out.get("reauth"):
            click.echo(f"RAR sent to {len(out['reauth'])} session(s): {out['reauth']}")


commands = [balance]
