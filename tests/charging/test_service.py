"""The charging service over the real stack: rating engine + embedded store + journal + ledger.

No Diameter here (tests/e2e drives the wire). Prices come from config/decks/retail.csv:
voice 41 0.12/min 60/1, 44 0.20/min 1/1, else 0.50/min 60/60; SMS 0.05; data 0.01/MB.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from charging.journal import JournalReader
from charging.money import parse_amount
from charging.requests import (
    ChargingRequest,
    EventAction,
    Outcome,
    ServiceKind,
    ServiceUnits,
    Verb,
)
from icx.charging_app import ChargingApp, build_charging
from icx.settings import AccountsSection, Settings, load_settings

Runner = Callable[[Callable[["ChargingApp"], Awaitable[None]]], None]
ROOT = Path(__file__).resolve().parents[2]
T0 = 1_790_000_000.0

ACCOUNTS = """
[[range]]
first = "41790000001"
last = "41790000005"
amount = "50.00"
[[account]]
id = "41790000000"
amount = "0.00"
[[account]]
id = "41790000100"
amount = "0.30"
"""


def demo_settings(tmp_path: Path, accounts_toml: str = ACCOUNTS) -> Settings:
    """The shipped config with *accounts_toml* (written to *tmp_path*) as its accounts."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(accounts_toml)
    settings = load_settings(ROOT / "config" / "icx.toml")
    return dataclasses.replace(settings, accounts=AccountsSection(files=(str(accounts),)))


@pytest.fixture
def stack(tmp_path: Path) -> Callable[[Callable[[ChargingApp], Awaitable[None]]], None]:
    """Run an async test body against a fresh stack in its own event loop."""
    settings = demo_settings(tmp_path)

    def run(body: Callable[[ChargingApp], Awaitable[None]]) -> None:
        async def main() -> None:
            app = await build_charging(settings, tmp_path / "data", admin=False)
            try:
                await body(app)
            finally:
                await app.close()

        asyncio.run(main())

    return run


def voice(verb: Verb, n: int, *, sid: str = "s1", sub: str = "41790000001",
          dest: str = "41791234567", requested: int | None = None, used: int | None = None,
          rg: int = 1) -> ChargingRequest:
    units = ServiceUnits(rating_group=rg, requested=requested, used=used or 0,
                         used_present=used is not None)
    return ChargingRequest(verb=verb, session_id=sid, request_number=n,
                           service=ServiceKind.VOICE, subscriber=sub, destination=dest,
                           units=(units,), multiple_services=True,
                           idem_key=f"ro:{sid}:{n}", peer_host="pgw.test")


async def money(app: ChargingApp, account: str) -> tuple[int, int]:
    view = await app.store.get(account)
    b = view.balances[0]
    return b.amount, b.reserved


def test_voice_session_charges_the_whole_call_exactly(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service
        r = await svc.handle(voice(Verb.INITIAL, 0, requested=120), now=T0)
        assert r.outcome is Outcome.SUCCESS and r.units[0].granted == 120
        assert await money(stack, "41790000001") == (50_000_000, 240_000)  # 2 min at 0.12
        r = await svc.handle(voice(Verb.UPDATE, 1, used=90, requested=120), now=T0 + 90)
        assert r.ok and r.units[0].used_cost == 180_000  # 90 s, 60/1 -> 0.18
        r = await svc.handle(voice(Verb.TERMINATE, 2, used=31), now=T0 + 121)
        assert r.ok and r.cost == 242_000  # 121 s at 0.12/min, 60/1
        assert await money(stack, "41790000001") == (50_000_000 - 242_000, 0)
        assert len(svc.sessions) == 0
        await stack.journal.flush()
        recs = [rec for _, rec in JournalReader(stack.journal._writer.directory).iter_from(None)]
        rated = [r for r in recs if r.get("type") == "rated" and r.get("session") == "s1"]
        assert sum(int(r["usage"]) for r in rated) == 121
        effects = [e for r in recs for e in r["balance_effects"] if e["account"] == "41790000001"]
        assert sum(parse_amount(e["amount"]) for e in effects) == -242_000
        assert {r["service"] for r in rated} == {"voice"} and rated[0]["b"] == "41791234567"

    stack(body)


def test_retransmit_gets_same_answer_and_no_second_charge(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service
        await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)
        first = await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 60)
        again = await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 61)
        assert again is first
        await svc.handle(voice(Verb.TERMINATE, 2, used=0), now=T0 + 62)
        assert await money(stack, "41790000001") == (50_000_000 - 120_000, 0)

    stack(body)


def test_empty_unknown_and_unknown_session(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service
        r = await svc.handle(voice(Verb.INITIAL, 0, sid="e", sub="41790000000", requested=60), now=T0)
        assert r.outcome is Outcome.CREDIT_LIMIT_REACHED and len(svc.sessions) == 0
        r = await svc.handle(voice(Verb.INITIAL, 0, sid="u", sub="999", requested=60), now=T0)
        assert r.outcome is Outcome.USER_UNKNOWN
        r = await svc.handle(voice(Verb.UPDATE, 1, sid="nope", used=1), now=T0)
        assert r.outcome is Outcome.UNKNOWN_SESSION

    stack(body)


def test_last_grant_the_balance_allows_carries_final_unit(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service
        r = await svc.handle(voice(Verb.INITIAL, 0, sid="f", sub="41790000100", requested=300),
                             now=T0)
        u = r.units[0]
        assert r.ok and u.final_unit and u.granted == 150  # 0.30 EUR at 0.12/min, 60/1
        r = await svc.handle(voice(Verb.UPDATE, 1, sid="f", sub="41790000100", used=150,
                                   requested=60), now=T0 + 150)
        assert r.units[0].outcome is Outcome.CREDIT_LIMIT_REACHED
        assert await money(stack, "41790000100") == (0, 0)

    stack(body)


def test_tcc_expiry_releases_the_reservation(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service
        await svc.handle(voice(Verb.INITIAL, 0, sid="t", requested=600), now=T0)
        assert (await money(stack, "41790000001"))[1] == 1_200_000
        assert await svc.supervise(T0 + 10) == []
        assert await svc.supervise(T0 + svc.config.tcc + 1) == ["t"]
        assert await money(stack, "41790000001") == (50_000_000, 0)

    stack(body)


def test_events_debit_refund_check_and_price(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service

        def sms(n: int, action: EventAction, sid: str) -> ChargingRequest:
            return ChargingRequest(verb=Verb.EVENT, session_id=sid, request_number=0,
                                   service=ServiceKind.SMS, subscriber="41790000002",
                                   destination="447700900123", action=action,
                                   units=(ServiceUnits(requested=n),), idem_key=f"ro:{sid}:0")

        r = await svc.handle(sms(2, EventAction.DIRECT_DEBITING, "d"), now=T0)
        assert r.ok and r.cost == 100_000 and r.granted_event_units == 2
        assert await money(stack, "41790000002") == (49_900_000, 0)
        assert (await svc.handle(sms(2, EventAction.DIRECT_DEBITING, "d"), now=T0)).cost == 100_000
        assert await money(stack, "41790000002") == (49_900_000, 0)  # duplicate: no second debit
        r = await svc.handle(sms(1, EventAction.REFUND, "r"), now=T0)
        assert r.ok and await money(stack, "41790000002") == (49_950_000, 0)
        r = await svc.handle(sms(1, EventAction.CHECK_BALANCE, "c"), now=T0)
        assert r.ok and r.enough_credit is True
        r = await svc.handle(sms(3, EventAction.PRICE_ENQUIRY, "p"), now=T0)
        assert r.ok and r.cost == 150_000
        assert await money(stack, "41790000002") == (49_950_000, 0)

    stack(body)


def test_offline_records_assemble_at_stop_and_drop_duplicates(stack: Runner) -> None:
    async def body(stack: ChargingApp) -> None:
        svc = stack.service

        def acr(verb: Verb, n: int, at: float) -> ChargingRequest:
            return ChargingRequest(verb=verb, session_id="rf1", request_number=n,
                                   service=ServiceKind.VOICE, subscriber="41790000003",
                                   destination="447700900123", idem_key=f"rf:rf1:{n}",
                                   offline=True, at=at)

        for verb, n, at in [(Verb.INITIAL, 0, T0), (Verb.UPDATE, 1, T0 + 30),
                            (Verb.UPDATE, 1, T0 + 30), (Verb.TERMINATE, 2, T0 + 95)]:
            assert (await svc.handle(acr(verb, n, at), now=at)).ok
        assert (await svc.handle(acr(Verb.TERMINATE, 2, T0 + 95), now=T0 + 96)).ok
        await stack.journal.flush()
        mine = [r for _, r in JournalReader(stack.journal._writer.directory).iter_from(None)
                if r.get("session") == "rf1"]
        # one acct record per ACR that counted (the duplicates add none), then the call's
        # one rated record at STOP
        assert [(r["type"], r["request"]) for r in mine] == [
            ("acct", "0"), ("acct", "1"), ("acct", "2"), ("rated", "2")]
        recs = [r for r in mine if r["type"] == "rated"]
        rec = recs[0]
        assert rec["usage"] == 95 and rec["price"] == "0.316667" and rec["balance_effects"] == []
        assert await money(stack, "41790000003") == (50_000_000, 0)  # postpaid: no balance check

    stack(body)
