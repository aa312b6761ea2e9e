"""Online charging sessions (RFC 4006 §5, facts B5): INITIAL / UPDATE / TERMINATE, each slice
(MSCC) committing its reported usage and reserving the next grant through the ledger.

Part of :class:`charging.service.ChargingService` (see its module docstring for the rules).
Every ledger op runs with ``wait=False``: records are enqueued, the caller of ``decide`` waits
once for the durable mark (invariant 3). With the embedded store nothing here suspends.
"""

from __future__ import annotations

from typing import Any

from charging.requests import (
    SERVICE_UNIT,
    ChargingRequest,
    ChargingResult,
    Outcome,
    ServiceUnits,
    UnitKind,
    UnitsResult,
    Verb,
    charging_result,
    units_result,
)
from charging.service_core import ServiceCore
from charging.sessions import Grant, Session
from charging.store.base import OpResult, OpStatus


class OnlineCharging(ServiceCore):
    """INITIAL / UPDATE / TERMINATE of online sessions."""

    # ------------------------------------------------------------------ INITIAL

    def _refused_initial(self, req: ChargingRequest, now: float) -> ChargingResult | None:
        """The answer to an INITIAL its Session-Id's state refuses, or None (it may open a
        session). A refusal changes nothing -- no store op, no record, the open session, its
        holds and its Tcc as they were -- and the caller must not remember it as the answer
        to its number (ChargingService.decide: an UPDATE of the same number may follow, and
        facts A9 keys duplicates by Session-Id + CC-Request-Number only).

        The id's session is open: RFC 4006 §7's server table has no INITIAL event in Open
        (facts B5; one transition table, anything else an error). An INITIAL is a session's
        request 0 (RFC 4006 §8.2; facts B5 "CC-Request-Number: 0 for INITIAL"), so one
        numbered otherwise carries an invalid value: 5004 DIAMETER_INVALID_AVP_VALUE with
        Failed-AVP CC-Request-Number (RFC 6733 §7.1.5, facts A6). Numbered 0 it is a late
        duplicate of the INITIAL that opened the session (its answer gone from the cache):
        it must not change state (facts A9: a duplicate) and its first answer is no
        longer kept, so it gets 5012 DIAMETER_UNABLE_TO_COMPLY.

        The id's session ended within ``session_retention`` (a CCR-I retransmitted after the
        end, once its answer left the answer cache; or a client reusing the id at once): a
        request of a session that no longer exists, 5002 DIAMETER_UNKNOWN_SESSION_ID (RFC
        6733 §7.1.5, facts A6: "a CCR-U/T after the session was cleared"), as its CCR-U/T
        get. Opening it again would put a session around a hold already given back (its
        reserve replays by key) -- or charge a retransmission as a new call."""
        sid = req.session_id
        if self._session_of(sid) is not None:
            if req.request_number != 0:
                return ChargingResult(outcome=Outcome.INVALID_VALUE,
                                      failed_field="CC-Request-Number",
                                      message="INITIAL for an open session: must be number 0")
            return ChargingResult(outcome=Outcome.UNABLE_TO_COMPLY,
                                  message="late duplicate INITIAL of an open session")
        if self._ended.ended(sid, now):
            return ChargingResult(outcome=Outcome.UNKNOWN_SESSION,
                                  message="session ended")
        return None

    async def _initial(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        """Open a session. The caller (ChargingService.decide) has refused already what
        :meth:`_refused_initial` refuses, with nothing awaited in between."""
        if len(self.sessions) >= self.config.max_sessions:
            return ChargingResult(outcome=Outcome.UNABLE_TO_COMPLY, message="session limit")
        found = await self._account(req.subscriber)
        if isinstance(found, Outcome):
            return ChargingResult(outcome=found, failed_field="Subscription-Id")
        account, balance, currency = found
        deck_of = getattr(self.rater, "deck", None)  # RatingEngine.deck(name).meta.currency
        if deck_of is not None:
            try:
                deck_currency = deck_of(self.config.deck).meta.currency
            except self.config.no_tariff_errors:
                deck_currency = None  # no deck: the first price says RATING_FAILED
            if deck_currency and deck_currency != currency:
                # prices are in the deck's currency: never hold/debit them from another one
                return ChargingResult(outcome=Outcome.RATING_FAILED,
                                      failed_field="Subscription-Id",
                                      message=f"deck currency {deck_currency} != balance "
                                              f"currency {currency}")
        session = Session(
            session_id=req.session_id, account=account, balance=balance, currency=currency,
            service=req.service, subscriber=req.subscriber, destination=req.destination,
            origin=req.origin, peer_host=req.peer_host, peer_realm=req.peer_realm,
            deck=self.config.deck, started=req.at or now, expires=now + self.config.tcc,
            context=req.context, tag=self._new_tag(req.session_id, now),
        )
        try:
            result = await self._grant_all(session, req, key, now)
            return await self._initial_end(session, result, key, now)
        except BaseException:
            self._initial_failed(session, now)  # (its retry takes the same tag)
            raise

    async def _initial_end(self, session: Session, result: ChargingResult, key: str,
                           now: float) -> ChargingResult:
        """Open the session after a successful INITIAL, else give back what it holds."""
        if result.outcome is Outcome.SUCCESS:
            self.sessions.add(session)
        else:
            await self._release_all(session, now, reason=result.outcome.value, key=key)
        return result

    # ------------------------------------------------------------------ UPDATE / TERMINATE

    def _end(self, session: Session, now: float) -> None:
        """Forget a session that ends by a request (TERMINATE, failed UPDATE) at *now*."""
        self.sessions.pop(session.id)
        self._ended_at(session, now)
        if session.killed is not None:
            self._killed.pop(session.id, None)
        if session.answer is not None:
            # its last answer stays findable for retransmits (facts B5), like older ones
            self.keep_answer(session.answer_key, session.answer, now)

    async def _update(self, session: Session, req: ChargingRequest, key: str,
                      now: float) -> ChargingResult:
        session.last_number = max(session.last_number, req.request_number)
        terminate = req.verb is Verb.TERMINATE
        result = await self._grant_all(session, req, key, now, terminate=terminate)
        reason = self._update_end(session, result, terminate, now)
        if reason is not None:
            await self._release_all(session, now, reason=reason, key=key)
        return result

    def _update_end(self, session: Session, result: ChargingResult, terminate: bool,
                    now: float) -> str | None:
        """The session after an UPDATE/TERMINATE: restart Tcc, or end it. Returns the reason
        to release what it still holds (the caller must await :meth:`_release_all`), or None."""
        if terminate:
            self._end(session, now)
            for grant in session.grants:
                if grant.held > 0:  # (a commit releases its hold's rest: usually none left)
                    return "terminated"
            return None
        if result.outcome is Outcome.SUCCESS:
            self.sessions.touch(session, now + self.config.tcc)
            return None
        # RFC 4006 §7: UPDATE failed -> debit used units -> Idle.
        self._end(session, now)
        return result.outcome.value

    async def _grant_all(self, session: Session, req: ChargingRequest, key: str, now: float,
                         *, terminate: bool = False) -> ChargingResult:
        """Commit every reported usage and (unless terminating) reserve the next grants."""
        slices = req.units
        if not slices:
            if req.multiple_services:
                # MSI=1 and no MSCC: quota is asked per MSCC, by its RSU (RFC 4006 §5.2,
                # §8.16), so nothing is asked, reported or granted: success, no MSCC (an
                # INITIAL opens the session; its first MSCC comes with a later UPDATE).
                return self._answer(session, (), _SUCCESS, False, terminate)
            # command-level interrogation without RSU/USU: an INITIAL gets the default quota
            slices = (ServiceUnits(requested=0 if req.verb is Verb.INITIAL else None),)
        at = req.at or now
        # slice keys carry the session's tag (Session.tag: a reused Session-Id's new session
        # has keys of its own)
        tag = session.tag
        if len(slices) == 1:  # the common case: one MSCC (or command-level units)
            r = await self._one_slice(session, req, slices[0], f"{key}:0{tag}", at, now,
                                      terminate)
            return self._slice_answer(session, req, r, terminate)
        parts = []
        for i, su in enumerate(slices):
            parts.append(await self._one_slice(session, req, su, f"{key}:{i}{tag}", at, now,
                                               terminate))
        results = tuple(parts)
        outcome = _combined(req, [r.outcome for r in results])
        if outcome is not _SUCCESS and not terminate:
            outcome = _kept_open(session, req, outcome)
        final = any(r.final_unit for r in results)
        return self._answer(session, results, outcome, final, terminate)

    def _slice_answer(self, session: Session, req: ChargingRequest, r: UnitsResult,
                      terminate: bool) -> ChargingResult:
        """The answer of a request with one slice whose result is *r*."""
        outcome = r.outcome
        if outcome is not _SUCCESS and req.multiple_services and not terminate:
            outcome = _kept_open(session, req, outcome)
        return self._answer(session, (r,), outcome, r.final_unit, terminate)

    def _answer(self, session: Session, results: tuple[UnitsResult, ...], outcome: Outcome,
                final: bool, terminate: bool) -> ChargingResult:
        if outcome is not _SUCCESS and terminate and outcome is Outcome.CREDIT_LIMIT_REACHED:
            outcome = _SUCCESS  # a final report always succeeds once committed
        grants = session.grants
        return charging_result(
            outcome, results, session.currency,
            grants[0].cost_total if len(grants) == 1 else session.cost_total,
            None if terminate else self.config.validity_time, final,
            None if outcome is _SUCCESS else "Multiple-Services-Credit-Control")

    def _grant_of(self, session: Session, su: ServiceUnits) -> Grant:
        """The slice's grant, created on its first request (its service and unit are fixed
        then: later slices of the same rating group / service id are charged alike)."""
        gkey = su.service_id if su.service_id is not None else (
            su.rating_group if su.rating_group is not None else -1)
        for g in session.grants:
            if g.key == gkey:
                return g
        service = su.service or session.service
        grant = Grant(gkey, service, UnitKind.MONEY if su.money else SERVICE_UNIT[service])
        grant.rsvc = self._to_rating(service)
        session.grants.append(grant)
        return grant

    def _rated_fields(self, session: Session, grant: Grant) -> dict[str, Any]:
        """The constant journal fields of the grant's rated records (built once)."""
        f = grant.fields
        if f is None:
            f = grant.fields = {
                "session": session.id, "service": grant.svc, "unit": grant.unit.value,
                "a": session.origin or session.subscriber, "b": session.destination,
                "account": session.account, "deck": session.deck, "currency": session.currency,
                "result": "ok", "start": int(session.started * 1_000_000)}
        return f

    async def _one_slice(self, session: Session, req: ChargingRequest, su: ServiceUnits,
                         key: str, at: float, now: float, terminate: bool) -> UnitsResult:
        grant = self._grant_of(session, su)
        unit = grant.unit
        money = unit is UnitKind.MONEY
        account, balance = session.account, session.balance
        assert account is not None and balance is not None
        ledger = self.ledger
        # The embedded store: the ledger's synchronous ops (no coroutine per op), and the
        # commit + next reserve of an UPDATE as one ledger call with one journal append.
        sync = self._sync_ledger and ledger.sync_ready(account, balance)
        requested = su.requested
        # (killed after ASA 2001: commit what is reported, grant nothing new)
        grant_next = not (terminate or session.killed is not None or (
            requested is None and req.verb is not Verb.INITIAL))
        want = 0
        if grant_next:
            default, cap = self._quotas[id(unit)]  # (by id: an Enum hashes in Python code)
            want = requested or default
            if want > cap:
                want = cap
        pre: tuple[int, int, dict[str, Any], OpResult] | None = None
        # 1. Commit the reported usage (cumulative pricing, see module docstring); the commit
        #    and the next reservation enqueue their records back to back (one group commit).
        if su.used_present or su.used:
            undo = grant.undo
            if undo is not None and undo[0] == key:
                # A retry of a request whose commit went through before it failed (5012):
                # back to the grant as it was, so the commit below replays by its key (the
                # hold id and the usage total are those of the first attempt): charged once.
                (_k, grant.held_n, grant.used_total, grant.cost_total, grant.held,
                 grant.granted, grant.hold_key) = undo
            else:
                grant.undo = (key, grant.held_n, grant.used_total, grant.cost_total,
                              grant.held, grant.granted, grant.hold_key)
            used = su.used if su.used > 0 else 0
            before = grant.cost_total
            total = before + used if money else self._cost(session, grant,
                                                           grant.used_total + used)
            if total is None:
                return UnitsResult(outcome=Outcome.RATING_FAILED, rating_group=su.rating_group,
                                   service_id=su.service_id, unit=unit)
            used_cost = total - before if total > before else 0
            if used and not money:
                fields = {**self._rated_fields(session, grant),
                          "request": str(req.request_number), "usage": used,
                          "price": self._money_text(used_cost), "end": int(at * 1_000_000),
                          **self._tariff(session, grant)}
            else:
                fields = {**self._rated_fields(session, grant),
                          "request": str(req.request_number), "usage": used,
                          "price": self._money_text(used_cost), "end": int(at * 1_000_000)}
            # Debit against the grant's current hold (the rest is released), or a plain
            # partial debit when nothing is held (after FUI, or an unknown/expired hold).
            held_n = grant.held_n
            op = None
            if held_n >= 0:
                creservation = grant.hold_id(session.id, held_n)
                # With the next grant to reserve, the commit and the reserve run as ONE ledger
                # call (the synchronous ledger's, or a store that pairs them: Redis).
                paired = grant_next and (sync or (self._sync_ledger and ledger.pairs_ops))
                nxt = (self._next_cost(session, grant, grant.used_total + used, want)
                       if paired else None)
                if nxt is not None:
                    cost_u, amount = nxt
                    rfields = self._hold_fields(session, req, grant, amount)
                    pair = (f"{key}:c", account, balance, creservation, used_cost, fields,
                            f"{key}:r", grant.hold_id(session.id, req.request_number), amount)
                    ttl = self.config.hold_ttl
                    if sync:
                        op, rres = ledger.commit_reserve_now(*pair, ttl=ttl, now=now,
                                                             rfields=rfields)
                    else:
                        op, rres = await ledger.commit_reserve(*pair, ttl=ttl, now=now,
                                                               rfields=rfields)
                    if rres is not None:
                        pre = (cost_u, amount, rfields, rres)
                elif sync:  # nothing to reserve next (or no price for it): commit alone
                    op = ledger.commit_now(f"{key}:c", account, balance, creservation,
                                           used_cost, now=now, fields=fields)
                else:
                    op = await ledger.commit(f"{key}:c", account, balance, creservation,
                                             used_cost, now=now, release_rest=True,
                                             fields=fields, wait=False)
            return await self._settle(session, req, su, grant, key, now, terminate, grant_next,
                                      want, sync, (op, pre, before, used, used_cost, fields))
        if grant_next and grant.held > 0:
            # A new grant asked for with no usage reported (a CCR-U after RAR before any of
            # the quota was used, facts D): it replaces the grant held --
            # the client's quota is the last one granted (RFC 4006 §5.1.2) --, so that hold
            # goes back first; kept, it stayed reserved, unused, until its TTL.
            await self._release_grant(session, grant, now, reason="replaced",
                                      key=f"{key}:rel")
        return await self._settle(session, req, su, grant, key, now, terminate, grant_next,
                                  want, sync, None)

    async def _settle(self, session: Session, req: ChargingRequest, su: ServiceUnits,
                      grant: Grant, key: str, now: float, terminate: bool, grant_next: bool,
                      want: int, sync: bool,
                      committed: tuple[OpResult | None, Any, int, int, int, dict[str, Any]]
                      | None) -> UnitsResult:
        """The rest of a slice after its commit's store call (:meth:`_one_slice`; also the
        compiled fast path's continuation, cython_ext/charging_slice.pyx): book the commit
        (a plain partial debit when it found no hold), then reserve the next grant.
        ``committed``: (commit result or None when none ran, the reserve that ran with it or
        None, cost_total before, units used, their cost, the record fields); None: no usage
        was reported."""
        used_cost = 0
        pre: tuple[int, int, dict[str, Any], OpResult] | None = None
        if committed is not None:
            op, pre, before, used, used_cost, fields = committed
            account, balance = session.account, session.balance
            assert account is not None and balance is not None
            if op is None or op.status is OpStatus.UNKNOWN_RESERVATION:
                op = await self.ledger.debit(f"{key}:d", account, balance, used_cost, now=now,
                                             partial=True, fields=fields, wait=False)
            grant.used_total += used
            grant.held = 0
            grant.held_n = -1
            grant.hold_key = None
            grant.granted = 0
            # book what was really debited (the credit limit may cut it)
            used_cost = op.granted if op.status is _OK else 0
            grant.cost_total = before + used_cost
            counters = self.counters
            counters["commit"] = counters.get("commit", 0) + 1
        unit = grant.unit
        if not grant_next:
            if terminate:
                return units_result(su.rating_group, su.service_id, _SUCCESS, unit, None, None,
                                    False, used_cost, None, None)
            # No RSU: debit the USU, grant nothing new (RFC 4006 §5.1.2); after FUI the client
            # reports with no rating AVPs and gets Validity-Time only (facts B5).
            return UnitsResult(outcome=_SUCCESS, used_cost=used_cost,
                               validity_time=self.config.validity_time if grant.final else None,
                               rating_group=su.rating_group, service_id=su.service_id,
                               unit=unit)
        # 2. Reserve the next grant (done above with the commit when `pre` is set).
        return await self._reserve(session, req, grant, want, key, now, used_cost, su, sync,
                                   pre)

    def _next_cost(self, session: Session, grant: Grant, u: int,
                   want: int) -> tuple[int, int] | None:
        """(price of the first *u* units, price of the next *want* units) -- both rated at
        the session start -- or None when either has no price. Money grants: (cost so far,
        want)."""
        if grant.unit is UnitKind.MONEY:
            return grant.cost_total, want
        cost_u = self._cost(session, grant, u)
        if cost_u is None:
            return None
        cost_w = self._cost(session, grant, u + want)
        if cost_w is None:
            return None
        return cost_u, cost_w - cost_u if cost_w > cost_u else 0

    def _hold_fields(self, session: Session, req: ChargingRequest, grant: Grant,
                     amount: int) -> dict[str, Any]:
        # A hold moves no money: keep its record small (the journal is write-bandwidth bound).
        return {"session": session.id, "request": str(req.request_number),
                "service": grant.svc, "price": self._money_text(amount)}

    async def _reserve(self, session: Session, req: ChargingRequest, grant: Grant, want: int,
                       key: str, now: float, used_cost: int, su: ServiceUnits,
                       sync: bool = False,
                       pre: tuple[int, int, dict[str, Any], OpResult] | None = None,
                       ) -> UnitsResult:
        """Reserve the next grant of *want* units: the price of the session's usage so far
        plus *want*, minus the price of the usage so far (both rated at the session start).
        ``pre``: (cost so far, amount, record fields, result) of that reserve when it already
        ran (with the commit); ``sync``: the ledger's synchronous ops may be used."""
        account, balance = session.account, session.balance
        assert account is not None and balance is not None
        u = grant.used_total
        money = grant.unit is UnitKind.MONEY
        ttl = self.config.hold_ttl
        if pre is None:
            nxt = self._next_cost(session, grant, u, want)
            if nxt is None:
                return self._units(Outcome.RATING_FAILED, grant, su, used_cost)
            cost_u, amount = nxt
            fields = self._hold_fields(session, req, grant, amount)
            reservation = grant.hold_id(session.id, req.request_number)
            if sync:
                op = self.ledger.reserve_now(f"{key}:r", account, balance, reservation,
                                             amount, ttl=ttl, now=now, fields=fields)
            else:
                op = await self.ledger.reserve(f"{key}:r", account, balance, reservation,
                                               amount, ttl=ttl, now=now, fields=fields,
                                               wait=False)
        else:
            cost_u, amount, fields, op = pre
        final = False
        status = op.status
        if status is OpStatus.INSUFFICIENT:
            # Grant the most the balance allows, on increment boundaries (FUI TERMINATE).
            available = await self._available(account, balance)
            if money:
                fit = min(want, available)
            else:
                try:
                    total_units = self.rater.max_units(
                        deck=session.deck, service=grant.rsvc,
                        destination=session.destination or "", origin=session.origin,
                        at=session.started, budget=available + cost_u)
                except self.config.no_tariff_errors:
                    return self._units(Outcome.RATING_FAILED, grant, su, used_cost)
                fit = min(want, total_units - u)
            if fit <= 0:
                grant.final = True
                return self._units(Outcome.CREDIT_LIMIT_REACHED, grant, su, used_cost)
            if money:
                amount = fit
            else:
                cost_f = self._cost(session, grant, u + fit)
                if cost_f is None:
                    # The tariff is gone (or the price no longer fits): never a free grant.
                    return self._units(Outcome.RATING_FAILED, grant, su, used_cost)
                amount = cost_f - cost_u if cost_f > cost_u else 0
            fields = dict(fields)  # (the refused reserve wrote no record from it)
            fields["price"] = self._money_text(amount)
            op = await self.ledger.reserve(f"{key}:rf", account, balance,
                                           grant.hold_id(session.id, req.request_number),
                                           amount, ttl=ttl, now=now, fields=fields,
                                           wait=False)
            if not op.ok:
                grant.final = True
                return self._units(Outcome.CREDIT_LIMIT_REACHED, grant, su, used_cost)
            want = fit
            final = True
        elif status is OpStatus.UNKNOWN_ACCOUNT:
            return self._units(Outcome.USER_UNKNOWN, grant, su, used_cost)
        elif status is not _OK:
            return self._units(Outcome.CREDIT_LIMIT_REACHED, grant, su, used_cost)
        elif self._last_grant(session, grant, u + want, op.available_after):
            final = True  # the grant fit, but nothing is left for another one (FUI)
        grant.granted = want
        grant.held = amount
        grant.held_n = req.request_number
        grant.hold_key = op.key  # (the reserve that placed it: _release_all keys by it)
        grant.final = final
        counters = self.counters
        counters["reserve"] = counters.get("reserve", 0) + 1
        pct = self.config.quota_threshold_percent
        cfg = self.config
        return units_result(su.rating_group, su.service_id, _SUCCESS, grant.unit, want,
                            cfg.validity_time, final, used_cost, cfg.quota_holding_time,
                            None if pct is None else want * pct // 100)

    def _last_grant(self, session: Session, grant: Grant, units: int,
                    available: int | None) -> bool:
        """Whether a grant that fitted is still the last the balance allows (RFC 4006
        §5.6.1, facts B5: it then carries Final-Unit-Indication TERMINATE): *available*, what
        the balance has left once the grant is held, cannot pay for one unit past the
        session's first *units* (a money grant: nothing is left). The grant's one-price cache
        is left as it was (its commit re-prices the units its reservation priced)."""
        if available is None:
            return False
        if grant.unit is UnitKind.MONEY:
            return available <= 0
        pu, pc = grant.priced_u, grant.priced_c
        held = self._cost(session, grant, units)
        more = self._cost(session, grant, units + 1)
        grant.priced_u, grant.priced_c = pu, pc
        if held is None or more is None:
            return False
        return more - held > available

    @staticmethod
    def _units(outcome: Outcome, grant: Grant, su: ServiceUnits, used_cost: int) -> UnitsResult:
        return UnitsResult(outcome=outcome, used_cost=used_cost, rating_group=su.rating_group,
                           service_id=su.service_id, unit=grant.unit)

_SUCCESS = Outcome.SUCCESS
_OK = OpStatus.OK


def _kept_open(session: Session, req: ChargingRequest, outcome: Outcome) -> Outcome:
    """The command-level outcome of an UPDATE whose every MSCC failed with *outcome*: success
    while another rating group of the session (one this request does not name) still holds
    quota, else *outcome*.

    Each MSCC carries its own Result-Code (RFC 4006 §5.1.2: quotas have independent result
    codes), so a failure of the services asked about here blocks those services only. Failing
    the command would end the session (§7: UPDATE failed -> Idle) and release the quota the
    client was granted for the other rating groups and may be using: their next report would
    get 5002 and that usage would never be charged. With nothing else held, the request was
    simply not successfully processed and the session ends (facts B5)."""
    if req.verb is not Verb.UPDATE or not req.multiple_services:
        return outcome
    asked = {su.service_id if su.service_id is not None else (
        su.rating_group if su.rating_group is not None else -1) for su in req.units}
    for grant in session.grants:
        if grant.held > 0 and grant.key not in asked:
            return _SUCCESS
    return outcome


def _combined(req: ChargingRequest, outcomes: list[Outcome]) -> Outcome:
    """The command-level outcome of several slices: success when one of them succeeded (the
    per-MSCC codes carry the failures: RFC 4006 §5.1.2, quotas have independent result
    codes), else the first failure -- the request was not successfully processed, as a
    single slice that fails: an INITIAL opens no session, an UPDATE ends it (§7 server
    table, facts B5; unless another rating group still holds quota: :func:`_kept_open`),
    and the command-level code takes precedence over the MSCC ones (§5.1.2)."""
    if all(o is _SUCCESS for o in outcomes):
        return _SUCCESS
    if req.multiple_services and any(o is _SUCCESS for o in outcomes):
        return _SUCCESS
    return next(o for o in outcomes if o is not _SUCCESS)
