"""Exactly-once below the answer cache: a retransmit the service no longer remembers (cache
evicted, or a restart) is replayed by the ledger's idempotency key, never charged twice."""

from __future__ import annotations

from charging.requests import (
    ChargingRequest,
    EventAction,
    Outcome,
    ServiceKind,
    ServiceUnits,
    Verb,
)
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack  # noqa: F401  (fixture)


def test_event_retransmit_after_the_answer_cache_forgot_it_is_not_charged_twice(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        req = ChargingRequest(verb=Verb.EVENT, session_id="d", request_number=0,
                              service=ServiceKind.SMS, subscriber="41790000002",
                              destination="447700900123", action=EventAction.DIRECT_DEBITING,
                              units=(ServiceUnits(requested=2),), idem_key="ro:d:0")
        first = await svc.handle(req, now=T0)
        assert first.ok and first.cost == 100_000
        svc._answers.clear()  # what an evicted entry or a restarted process looks like
        svc._answer_order.clear()
        again = await svc.handle(req, now=T0 + 1)
        assert again is not first  # really decided again, not served from the cache
        assert again.ok and again.cost == first.cost
        assert await money(app, "41790000002") == (49_900_000, 0)

    stack(body)


def test_an_event_priced_in_another_currency_is_not_debited(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        await app.ledger.create_account(
            "usd1", AccountKind.PREPAID_SUBSCRIBER,
            [BalanceSpec("USD", BalanceKind.MONEY, "USD", amount=5_000_000)], ["41790000777"],
            now=T0)
        req = ChargingRequest(verb=Verb.EVENT, session_id="u", request_number=0,
                              service=ServiceKind.SMS, subscriber="41790000777",
                              destination="447700900123", action=EventAction.DIRECT_DEBITING,
                              units=(ServiceUnits(requested=1),), idem_key="ro:u:0")
        r = await svc.handle(req, now=T0)
        assert r.outcome is Outcome.RATING_FAILED and "EUR" in r.message
        assert await money(app, "usd1") == (5_000_000, 0)

    stack(body)


def test_a_session_priced_in_another_currency_holds_nothing(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        await app.ledger.create_account(
            "usd2", AccountKind.PREPAID_SUBSCRIBER,
            [BalanceSpec("USD", BalanceKind.MONEY, "USD", amount=5_000_000)], ["41790000778"],
            now=T0)
        units = ServiceUnits(rating_group=1, requested=60)
        req = ChargingRequest(verb=Verb.INITIAL, session_id="v", request_number=0,
                              service=ServiceKind.VOICE, subscriber="41790000778",
                              destination="41791234567", units=(units,), multiple_services=True,
                              idem_key="ro:v:0")
        r = await app.service.handle(req, now=T0)
        assert r.outcome is Outcome.RATING_FAILED and r.failed_field == "Subscription-Id"
        assert len(app.service.sessions) == 0
        assert await money(app, "usd2") == (5_000_000, 0)

    stack(body)
