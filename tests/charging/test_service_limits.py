"""Absurd but well-formed usage (Unsigned64 counts beyond what a store holds) is answered
RATING_FAILED, in both modes, instead of raising (the compiled index overflowed its C long)."""

from __future__ import annotations

from charging.requests import (
    ChargingRequest,
    EventAction,
    Outcome,
    ServiceKind,
    ServiceUnits,
    Verb,
)
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack  # noqa: F401  (fixture)

HUGE = 2**64 - 1


def data(verb: Verb, n: int, **units: int | bool) -> ChargingRequest:
    return ChargingRequest(verb=verb, session_id="big", request_number=n,
                           service=ServiceKind.DATA, subscriber="41790000004",
                           destination="internet",
                           units=(ServiceUnits(rating_group=1, **units),),  # type: ignore[arg-type]
                           multiple_services=True, idem_key=f"ro:big:{n}")


def test_a_usage_report_beyond_any_balance_is_rating_failed(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        assert (await svc.handle(data(Verb.INITIAL, 0, requested=1000), now=T0)).ok
        r = await svc.handle(data(Verb.UPDATE, 1, used=HUGE, used_present=True,
                                  requested=1000), now=T0 + 1)
        assert r.units[0].outcome is Outcome.RATING_FAILED
        assert await money(app, "41790000004") == (50_000_000, 0)

    stack(body)


def test_an_event_count_beyond_any_balance_is_rating_failed(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        req = ChargingRequest(verb=Verb.EVENT, session_id="e", request_number=0,
                              service=ServiceKind.SMS, subscriber="41790000004",
                              destination="447700900123", action=EventAction.DIRECT_DEBITING,
                              units=(ServiceUnits(requested=HUGE),), idem_key="ro:e:0")
        r = await app.service.handle(req, now=T0)
        assert r.outcome is Outcome.RATING_FAILED
        assert await money(app, "41790000004") == (50_000_000, 0)

    stack(body)
