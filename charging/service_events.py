"""One-off events (RFC 4006 §5.2: DIRECT_DEBITING / REFUND / CHECK_BALANCE / PRICE_ENQUIRY).
Part of :class:`charging.service.ChargingService`; ledger ops are enqueued with ``wait=False``
(the caller of ``decide`` waits for the durable mark). Offline (Rf) accounting sessions are in
charging/service_offline.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from charging.money import format_amount
from charging.ports import RatedLike
from charging.requests import (
    SERVICE_UNIT,
    ChargingRequest,
    ChargingResult,
    EventAction,
    Outcome,
    ServiceKind,
    ServiceUnits,
    UnitKind,
    UnitsResult,
)
from charging.service_core import ServiceCore
from charging.sessions import Session
from charging.store.base import MAX_AMOUNT, OpStatus


class EventCharging(ServiceCore):
    """EVENT requests."""

    def _fields(self, session: Session, req: ChargingRequest, service: ServiceKind,
                *, usage: int | None = None, price: int | None = None,
                rated: RatedLike | None = None, result: str = "ok") -> dict[str, Any]:
        """Journal fields per docs/journal-schema.md (the ledger adds effects and holds)."""
        f: dict[str, Any] = {
            "session": session.id, "request": str(req.request_number),
            "service": service.value, "unit": SERVICE_UNIT[service].value,
            "a": session.origin or session.subscriber, "b": session.destination,
            "account": session.account, "deck": session.deck, "currency": session.currency,
            "result": result,
        }
        if usage is not None:
            f["usage"] = usage
        if price is not None:
            f["price"] = format_amount(price)
        if rated is not None:
            f["deck_version"] = str(rated.deck_version)
            f["prefix"] = rated.prefix
            f["destination"] = rated.destination
        return f

    # ------------------------------------------------------------------ EVENT

    async def _event(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        if len(req.units) > 1:
            return await self._event_slices(req, key, now)
        action = req.action if req.action is not None else EventAction.DIRECT_DEBITING
        at = req.at or now
        su = req.units[0] if req.units else ServiceUnits()
        service = su.service or req.service
        deck = self.config.deck
        rated: RatedLike | None = None
        if su.money:
            # RSU/USU in CC-Money (RFC 4006 §8.18, §6.3 direct debiting): the client asks for
            # an amount of money, not service units. It is debited as it is, in the account
            # currency, without rating (as a session's money slice): never priced as that
            # many events / seconds / octets.
            unit = UnitKind.MONEY
            units = su.requested or su.used
            if units > MAX_AMOUNT:
                return ChargingResult(outcome=Outcome.RATING_FAILED,
                                      failed_field="Multiple-Services-Credit-Control")
            price = units
            deck_currency: str | None = None
        else:
            unit = SERVICE_UNIT[service]
            units = su.requested or su.used or (1 if unit is UnitKind.EVENTS else
                                                self.config.default_quota[unit])
            if units > MAX_AMOUNT:  # an Unsigned64 count no store can hold
                return ChargingResult(outcome=Outcome.RATING_FAILED,
                                      failed_field="Multiple-Services-Credit-Control")
            try:
                rated = self.rater.rate(deck=deck, service=self._to_rating(service),
                                        destination=req.destination or "", origin=req.origin,
                                        at=at, usage=units)
            except self.config.no_tariff_errors:
                return ChargingResult(outcome=Outcome.RATING_FAILED, failed_field="destination")
            if rated.price > MAX_AMOUNT:
                return ChargingResult(outcome=Outcome.RATING_FAILED,
                                      failed_field="Multiple-Services-Credit-Control")
            price = rated.price
            deck_currency = rated.currency
        if action is EventAction.PRICE_ENQUIRY:
            # B5: Cost-Information only; no balance check, no reservation.
            return ChargingResult(outcome=Outcome.SUCCESS, cost=price,
                                  currency=self.config.currency if su.money else deck_currency)
        found = await self._account(req.subscriber)
        if isinstance(found, Outcome):
            return ChargingResult(outcome=found, failed_field="Subscription-Id")
        account, balance, currency = found
        if deck_currency and deck_currency != currency:
            # The price is in the deck's currency: never debit it from a balance in another
            # one (money is exact and carries its currency; no FX is applied here).
            return ChargingResult(outcome=Outcome.RATING_FAILED, failed_field="destination",
                                  message=f"deck currency {deck_currency} != balance "
                                          f"currency {currency}")
        if action is EventAction.CHECK_BALANCE:
            available = await self._available(account, balance)
            return ChargingResult(outcome=Outcome.SUCCESS, enough_credit=available >= price,
                                  currency=currency, cost=price)
        session = Session(
            session_id=req.session_id, account=account, balance=balance, currency=currency,
            service=service, subscriber=req.subscriber, destination=req.destination,
            origin=req.origin, peer_host=req.peer_host, peer_realm=req.peer_realm, deck=deck,
            started=at, expires=now)
        fields = self._fields(session, req, service, usage=units, price=price, rated=rated)
        fields["unit"] = unit.value  # (money: "money", as a session's money commits)
        fields["start"] = fields["end"] = int(at * 1_000_000)
        if action is EventAction.REFUND:
            fields["usage"] = -units
            op = await self.ledger.refund(key, account, balance, price, now=now, fields=fields,
                                          wait=False)
        else:
            op = await self.ledger.debit(key, account, balance, price, now=now, fields=fields,
                                         wait=False)
        if op.status is OpStatus.INSUFFICIENT:
            return ChargingResult(outcome=Outcome.CREDIT_LIMIT_REACHED, currency=currency,
                                  cost=price)
        if not op.ok:
            return ChargingResult(outcome=Outcome.USER_UNKNOWN
                                  if op.status is OpStatus.UNKNOWN_ACCOUNT
                                  else Outcome.UNABLE_TO_COMPLY)
        self._count("event")
        return ChargingResult(
            outcome=Outcome.SUCCESS, currency=currency, cost=price, granted_event_units=units,
            units=(UnitsResult(rating_group=su.rating_group, service_id=su.service_id,
                               unit=unit, granted=units, used_cost=price),))

    async def _event_slices(self, req: ChargingRequest, key: str,
                            now: float) -> ChargingResult:
        """An EVENT with several MSCCs (facts B4/B5): each slice is rated and debited
        (refunded, priced, checked) on its own, under its own key (``<key>:<slice>:d``), and
        answered in its own MSCC with its own Result-Code; the command-level code is success
        when a slice succeeded (the per-MSCC codes carry the failures), else the first
        slice's. Cost-Information is the sum of the slices that succeeded; so is the amount
        a CHECK_BALANCE's Check-Balance-Result compares with the balance."""
        parts = [await self._event(dataclasses.replace(req, units=(su,)), f"{key}:{i}:d", now)
                 for i, su in enumerate(req.units)]
        units: list[UnitsResult] = []
        for su, part in zip(req.units, parts, strict=True):
            if part.units:
                units.extend(part.units)
            else:
                units.append(UnitsResult(
                    rating_group=su.rating_group, service_id=su.service_id,
                    outcome=part.outcome, unit=UnitKind.MONEY if su.money
                    else SERVICE_UNIT[su.service or req.service]))
        ok = [part for part in parts if part.outcome is Outcome.SUCCESS]
        if not ok:
            first = parts[0]
            return ChargingResult(outcome=first.outcome, units=tuple(units),
                                  currency=first.currency, failed_field=first.failed_field,
                                  message=first.message)
        cost = sum(part.cost or 0 for part in ok)
        enough: bool | None = None
        if req.action is EventAction.CHECK_BALANCE:
            # the balance must cover every slice together, not each one alone; a slice that
            # could not be priced (its own MSCC says why, e.g. 5031) is left out: the answer
            # is still 2001, so it must carry Check-Balance-Result (RFC 4006 §8.6, facts B5:
            # "CHECK_BALANCE: return Check-Balance-Result") for the slices that were priced --
            # it was left out, and the client had no answer about the balance at all
            found = await self._account(req.subscriber)
            enough = (not isinstance(found, Outcome)
                      and await self._available(found[0], found[1]) >= cost)
        return ChargingResult(outcome=Outcome.SUCCESS, units=tuple(units),
                              currency=next((p.currency for p in ok if p.currency), None),
                              cost=cost, enough_credit=enough)
