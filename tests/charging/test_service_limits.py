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


class _TariffGoesAway:
    """The real engine, except that prices fail (NoTariff) once max_units has run: the deck
    lost the tariff between the two lookups of one partial grant (a reload in between)."""

    def __init__(self, engine: object) -> None:
        self._engine = engine
        self.gone = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def max_units(self, **kw: object) -> int:
        self.gone = True
        return self._engine.max_units(**kw)  # type: ignore[attr-defined, no-any-return]

    def price(self, *a: object) -> int:
        if self.gone:
            from charging.rating.model import NoTariff
            raise NoTariff("tariff removed")
        return self._engine.price(*a)  # type: ignore[attr-defined, no-any-return]


def test_a_partial_grant_whose_price_vanished_is_rating_failed_not_free(
        stack: Runner) -> None:  # noqa: F811
    from tests.charging.test_service import voice

    async def body(app: ChargingApp) -> None:
        svc = app.service
        rater = _TariffGoesAway(svc.rater)
        svc.rater, svc._price = rater, rater.price  # type: ignore[assignment]
        # 0.30 EUR cannot hold 300 s at 0.12/min: the fit path prices 150 s -- and fails.
        r = await svc.handle(voice(Verb.INITIAL, 0, sub="41790000100", requested=300), now=T0)
        assert r.outcome is Outcome.RATING_FAILED
        assert r.units[0].granted is None
        assert await money(app, "41790000100") == (300_000, 0)  # nothing held, nothing free

    stack(body)
