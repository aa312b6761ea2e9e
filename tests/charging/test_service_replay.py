"""Exactly-once below the answer cache: a retransmit the service no longer remembers (cache
evicted, or a restart) is replayed by the ledger's idempotency key, never charged twice."""

from __future__ import annotations

from charging.requests import ChargingRequest, EventAction, ServiceKind, ServiceUnits, Verb
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
        again = await svc.handle(req, now=T0 + 1)
        assert again is not first  # really decided again, not served from the cache
        assert again.ok and again.cost == first.cost
        assert await money(app, "41790000002") == (49_900_000, 0)

    stack(body)
