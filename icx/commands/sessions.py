"""`icx sessions list|kill|reauth` (via the admin HTTP API)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from charging.currency import is_iso4217
from charging.money import format_amount, format_money
from icx.commands._admin_client import admin_option, call, segment


@click.group("sessions")
def sessions() -> None:
    """Open charging sessions on a running server."""


@sessions.command("list")
@click.option("--account", default=None,
              help="Only this account's sessions (its id or an identity such as an IMSI).")
@click.option("--json", "as_json", is_flag=True)
@admin_option
def list_(account: str | None, as_json: bool, admin: str) -> None:
    """List open sessions (online and offline)."""
    path = "/api/sessions" + (f"?account={segment(account)}" if account else "")
    out = call(admin, "GET", path)
    if as_json:
        click.echo(json.dumps(out))
        return
    table = Table(title=f"{out['count']} open session(s)")
    for col in ("session", "account", "service", "destination", "peer"):
        table.add_column(col)
    for col in ("reserved", "cost"):
        table.add_column(col, justify="right")
    for s in out["sessions"]:
        # an Rf session has no account (postpaid, rated at STOP); a killed one waits for its
        # CCR-T (ASA 2001): `sessions kill` takes neither
        kind = " (Rf)" if s.get("offline") else " (killed)" if s.get("killed") else ""
        table.add_row(s["session_id"], s["account"] or "-", s["service"] + kind,
                      s["destination"] or "-", s["peer"],
                      _money(s["reserved_micros"], s.get("currency")),
                      _money(s["cost_micros"], s.get("currency")))
    Console().print(table)


@sessions.command("kill")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True)
@admin_option
def kill(session_id: str, as_json: bool, admin: str) -> None:
    """Send ASR to the client of SESSION_ID. After ASA 2001 its hold stays until the client's
    CCR-T (at most [ro] kill_grace_seconds); after any other answer, or none, it is released."""
    out = call(admin, "POST", f"/api/sessions/{segment(session_id)}/kill")
    if as_json:
        click.echo(json.dumps(out))
        return
    asa = out["asa_result_code"]
    said = (f"ASA {asa}" if asa is not None else
            "no ASA (the client is not connected or did not answer)")
    if out.get("awaiting_ccr_t"):
        click.echo(f"{session_id}: {said}: the client ends the session; its hold stays until "
                   f"its CCR-T (released after {out['kill_grace_seconds']:g} s without one)")
    else:
        click.echo(f"{session_id}: {said}: its hold is released")


@sessions.command("reauth")
@click.argument("session_id")
@admin_option
def reauth(session_id: str, admin: str) -> None:
    """Send RAR (AUTHORIZE_ONLY) to the client of SESSION_ID."""
    out = call(admin, "POST", f"/api/sessions/{segment(session_id)}/reauth")
    raa = out["raa_result_code"]
    click.echo(f"{session_id}: RAA {raa}" if raa is not None else
               f"{session_id}: no RAA (the client is not connected or did not answer)")


def _money(micros: int | None, currency: str | None) -> str:
    """An amount as the balance commands print it: the currency's minor places at least
    (micro-units kept when a price has more), then the currency code."""
    if micros is None:
        return "-"
    if currency and is_iso4217(currency):
        return f"{format_money(micros, currency)} {currency}"
    return format_amount(micros)


commands = [sessions]
