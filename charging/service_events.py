"""One-off events (RFC 4006 §5.2: DIRECT_DEBITING / REFUND / CHECK_BALANCE / PRICE_ENQUIRY)
and offline (Rf) accounting sessions, rated once at STOP. Part of
:class:`charging.service.ChargingService`; ledger ops and records are enqueued with
``wait=False`` (the caller of ``decide`` waits for the durable mark).
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
    Verb,
)
from charging.service_core import ServiceCore
from charging.sessions import Grant, Session
from charging.store.base import MAX_AMOUNT, OpStatus


class EventsAndOffline(ServiceCore):
    """EVENT requests and Rf sessions."""

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
        slice's. Cost-Information is the sum of the slices that succeeded."""
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
        if req.action is EventAction.CHECK_BALANCE and len(ok) == len(parts):
            # the balance must cover every slice together, not each one alone
            found = await self._account(req.subscriber)
            enough = (not isinstance(found, Outcome)
                      and await self._available(found[0], found[1]) >= cost)
        return ChargingResult(outcome=Outcome.SUCCESS, units=tuple(units),
                              currency=next((p.currency for p in ok if p.currency), None),
                              cost=cost, enough_credit=enough)

    # ------------------------------------------------------------------ offline (Rf)

    async def _offline(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        """ACR START/INTERIM/STOP/EVENT: accumulate usage, write ONE rated record at STOP
        (one per service when its units name several, e.g. a rating group of time-metered
        data beside the octets).

        Postpaid / interconnect: no balance check and no balance effect; settlement reads the
        rated record from the journal. Duplicates (Session-Id + Accounting-Record-Number) are
        answered success and dropped; a new record of a session already closed is not lost
        (:meth:`_offline_late`)."""
        at = req.at or now
        used = _offline_used(req)
        if req.verb is Verb.EVENT:
            session = self._offline_session(req, at, now)
            used = {s: n for s, n in used.items() if n} or {
                req.service: 1 if SERVICE_UNIT[req.service] is UnitKind.EVENTS else 0}
            for i, (service, usage) in enumerate(used.items()):
                await self._offline_rate(session, service, usage, now, end=at,
                                         key=_offline_key(key, i, service), result="ok")
            return ChargingResult(outcome=Outcome.SUCCESS)
        closed = self._closed_offline.get(req.session_id)
        if closed is not None:
            return await self._offline_late(closed, req, key, at, used, now)
        found = self.offline.get(req.session_id)
        if found is None:
            session = self._offline_session(req, at, now)
            self.offline.add(session)
        else:
            session = found
        assert session.seen is not None
        if req.request_number in session.seen:
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
        session.seen.add(req.request_number)
        before = [(g, g.used_total) for g in self._offline_grants(session, used)]
        last_before = session.last_number
        for grant, _ in before:
            grant.used_total = self._offline_total(session, grant, req, at, used)
        session.last_number = max(session.last_number, req.request_number)
        if req.verb is Verb.TERMINATE:
            self.offline.pop(session.id)
            try:
                await self._offline_close(session, now, end=at, result="ok", key=key)
            except BaseException:
                # Nothing was recorded (answered 4002): undo, so that the CTF's retry of this
                # ACR writes the record instead of being dropped as a duplicate.
                self._closed_offline.pop(session.id, None)
                session.seen.discard(req.request_number)
                for grant, total in before:
                    grant.used_total = total
                session.last_number = last_before
                self.offline.add(session)
                raise
        else:
            self.offline.touch(session, now + self._offline_timeout())
        return ChargingResult(outcome=Outcome.SUCCESS)

    async def _offline_late(self, session: Session, req: ChargingRequest, key: str, at: float,
                            used: dict[ServiceKind, int], now: float) -> ChargingResult:
        """An ACR of a session already closed (by its STOP, or for silence). A record number
        seen before is a duplicate: answered, not recorded again (RFC 6733 §9.4). A new one --
        an INTERIM delayed past its STOP by a failover, a STOP after the session timed out --
        is not lost: the usage it adds is written as a ``late`` rated record priced at what
        it adds to the price of the whole call (so the call's records add up to that price,
        increments and fees counted once)."""
        seen = session.seen
        assert seen is not None
        if req.request_number in seen:
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
        seen.add(req.request_number)
        for i, grant in enumerate(self._offline_grants(session, used)):
            before = grant.used_total
            after = self._offline_total(session, grant, req, at, used)
            if after <= before:
                continue
            try:
                await self._offline_rate(session, grant.service, after - before, now, end=at,
                                         key=_offline_key(key, i, grant.service),
                                         result="late", base=before,
                                         request=req.request_number)
            except BaseException:
                seen.discard(req.request_number)  # not recorded: the CTF's retry must be
                raise
            grant.used_total = after
        return ChargingResult(outcome=Outcome.SUCCESS)

    @staticmethod
    def _offline_grants(session: Session, used: dict[ServiceKind, int]) -> list[Grant]:
        """The session's usage counter of each service *used* names, and of its own service
        (created when missing); the session's own first."""
        grants = []
        for service in (session.service, *used):
            grant = next((g for g in session.grants if g.service is service), None)
            if grant is None:
                grant = Grant(-1 - len(session.grants), service, SERVICE_UNIT[service])
                session.grants.append(grant)
            if grant not in grants:
                grants.append(grant)
        return grants

    @staticmethod
    def _offline_total(session: Session, grant: Grant, req: ChargingRequest, at: float,
                       used: dict[ServiceKind, int]) -> int:
        """A service's usage in the session after *req*: its Used-Service-Units add up (each
        record reports its own part); without any, the session's own service, when timed,
        lasts until the record's Event-Timestamp."""
        n = used.get(grant.service, 0)
        if n:
            return grant.used_total + n
        if (grant.service is session.service and req.verb is not Verb.INITIAL
                and grant.unit is UnitKind.TIME and not any(used.values())):
            return max(grant.used_total, int(at - session.started))
        return grant.used_total

    def _offline_session(self, req: ChargingRequest, at: float, now: float) -> Session:
        return Session(
            session_id=req.session_id, account=None, balance=None,
            currency=self.config.currency, service=req.service, subscriber=req.subscriber,
            destination=req.destination, origin=req.origin or req.subscriber,
            peer_host=req.peer_host, peer_realm=req.peer_realm,
            deck=self.config.offline_deck or self.config.deck, started=at,
            expires=now + self._offline_timeout(), offline=True, context=req.context)

    def _offline_timeout(self) -> float:
        timeout = self.config.offline_timeout
        return self.config.tcc if timeout is None else timeout

    async def _offline_close(self, session: Session, now: float, *, end: float, result: str,
                             key: str) -> None:
        """Journal the call: one rated record per service it used (one of the session's own
        service when it used nothing)."""
        # kept (FIFO-bounded) after it closed: its record numbers tell a duplicate from a late
        # record, its usage prices a late one
        self._closed_offline[session.id] = session
        if len(self._closed_offline) > self.config.answer_cache_size:
            self._closed_offline.popitem(last=False)
        grants = [g for g in session.grants if g.used_total] or session.grants[:1] or [
            Grant(-1, session.service, SERVICE_UNIT[session.service])]
        for i, grant in enumerate(grants):
            await self._offline_rate(session, grant.service, grant.used_total, now, end=end,
                                     key=_offline_key(key, i, grant.service), result=result)

    async def _offline_rate(self, session: Session, service: ServiceKind, usage: int,
                            now: float, *, end: float, key: str, result: str, base: int = 0,
                            request: int | None = None) -> None:
        """Journal one rated record of *usage* units. *base*: units of the call already
        recorded; the price is then what *usage* adds to theirs. A call is rated at its start,
        as an online one (the tariff and band in force then: a tariff reloaded while it is
        open does not re-price it, ``band_mode = "start"`` takes the start band)."""
        at = session.started
        rated = self._rate(session, service, base + usage, at) if usage > 0 else None
        before = self._rate(session, service, base, at) if rated is not None and base else None
        if session.account is None and session.subscriber:
            session.account = await self.accounts.resolve(session.subscriber)
        fields: dict[str, Any] = {
            "type": "rated", "idem": key, "session": session.id,
            "request": str(session.last_number if request is None else request),
            "service": service.value,
            "usage": usage, "unit": SERVICE_UNIT[service].value,
            "a": session.origin, "b": session.destination, "account": session.account,
            "deck": session.deck, "start": int(session.started * 1_000_000),
            "end": int(end * 1_000_000), "result": result,
            "balance_effects": [], "holds": [],
        }
        if rated is not None and (before is not None or not base):
            price = rated.price - (before.price if before is not None else 0)
            fields.update(price=format_amount(price), currency=rated.currency,
                          deck_version=str(rated.deck_version), prefix=rated.prefix,
                          destination=rated.destination)
        elif usage > 0:
            fields["result"] = "unrated"
        else:
            fields.update(price=format_amount(0), currency=session.currency)
        await self.ledger.record(fields, now=now, wait=False)
        self._count("offline_record")


def _offline_used(req: ChargingRequest) -> dict[ServiceKind, int]:
    """Units used by service (an ACR's units may name several: rating groups)."""
    out: dict[ServiceKind, int] = {}
    for su in req.units:
        service = su.service or req.service
        out[service] = out.get(service, 0) + max(0, su.used)
    return out


def _offline_key(key: str, i: int, service: ServiceKind) -> str:
    """The idem key of a session's i-th service record: the request's own for the first."""
    return key if i == 0 else f"{key}:{service.value}"
