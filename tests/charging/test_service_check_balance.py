"""CHECK_BALANCE with several MSCCs (RFC 4006 §5.2.2/§8.6, facts B5): the balance must cover
the priced slices together, and the answer says so in Check-Balance-Result even when one slice
could not be priced (its MSCC carries 5031) -- the answer was 2001 without any
Check-Balance-Result then. Nothing is reserved or debited either way."""

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
from tests.charging.test_service import T0, Runner, money, stack  # noqa: F401 (fixture)


def check(sid: str, sub: str, *slices: ServiceUnits) -> ChargingRequest:
    return ChargingRequest(verb=Verb.EVENT, session_id=sid, request_number=0,
                           service=ServiceKind.SMS, subscriber=sub,
                           destination="15551234567", action=EventAction.CHECK_BALANCE,
                           units=slices, multiple_services=True, idem_key=f"ro:{sid}:0")


# SMS to anywhere: 0.05 each (retail deck); MMS has no catch-all, so an MMS to +1 has no tariff
SMS = ServiceUnits(rating_group=1, requested=4, service=ServiceKind.SMS)     # 0.20
MMS = ServiceUnits(rating_group=2, requested=1, service=ServiceKind.MMS)     # no tariff


def test_check_balance_answers_for_the_priced_slices(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        # 41790000100 holds 0.30: four SMS (0.20) fit, six (0.30) fit, seven (0.35) do not
        r = await svc.handle(check("c1", "41790000100", SMS, MMS), now=T0)
        assert r.outcome is Outcome.SUCCESS
        assert [u.outcome for u in r.units] == [Outcome.SUCCESS, Outcome.RATING_FAILED]
        assert r.cost == 200_000 and r.enough_credit is True
        seven = ServiceUnits(rating_group=1, requested=7, service=ServiceKind.SMS)
        r = await svc.handle(check("c2", "41790000100", seven, MMS), now=T0)
        assert r.outcome is Outcome.SUCCESS and r.cost == 350_000
        assert r.enough_credit is False
        # together: 4 + 3 SMS = 0.35 > 0.30, though each alone fits
        three = ServiceUnits(rating_group=3, requested=3, service=ServiceKind.SMS)
        r = await svc.handle(check("c3", "41790000100", SMS, three), now=T0)
        assert r.cost == 350_000 and r.enough_credit is False
        assert await money(app, "41790000100") == (300_000, 0)  # nothing moved
        # every slice unpriced: the first slice's refusal, no Check-Balance-Result
        r = await svc.handle(check("c4", "41790000100", MMS), now=T0)
        assert r.outcome is Outcome.RATING_FAILED and r.enough_credit is None

    stack(body)
