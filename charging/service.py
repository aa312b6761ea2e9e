"""The charging service: online (Ro-like) sessions and events, offline (Rf-like) records.

No wire protocol here. An agent builds a :class:`~charging.requests.ChargingRequest`, awaits
:meth:`ChargingService.handle`, and maps the :class:`~charging.requests.ChargingResult` to its
wire answer. Server rules follow RFC 4006 §5 / facts sheet B5:

* INITIAL: rate -> reserve via the ledger -> grant (GSU). When the requested quota does not fit,
  grant the most the balance allows with Final-Unit-Indication TERMINATE; when nothing fits,
  CREDIT_LIMIT_REACHED (4012).
* UPDATE: commit the reported usage (USU), reserve the next grant, restart Tcc.
* TERMINATE: commit the usage, release what is left, close the session.
* EVENT: DIRECT_DEBITING / REFUND / CHECK_BALANCE / PRICE_ENQUIRY.
* A retransmitted request (same idempotency key: Session-Id + CC-Request-Number) gets the same
  answer and is not charged again: answers are cached here, and the ledger is idempotent by
  key underneath (so a cache miss after a restart still charges once).

Prices of a session are computed on *cumulative* usage: the cost of a report is
``price(used so far + this report) - price(used so far)``, so increments (60/1, 60/60) and
connection fees apply once per call, exactly as the whole call would be rated at the end.
"""

from __future__ import annotations

import asyncio
import collections
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from charging.journal import Position
from charging.money import format_amount
from charging.ports import Accounts, Ledger, RatedLike, Rater
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
from charging.sessions import Grant, Session, SessionTable
from charging.store.base import MAX_AMOUNT, BalanceKind, OpStatus


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Tunables of the charging service (filled from [ro]/[rf] settings by the wiring)."""

    deck: str = "retail"
    # Quota granted when the RSU is empty (or absent on INITIAL), by unit.
    default_quota: dict[UnitKind, int] = field(default_factory=lambda: {
        UnitKind.TIME: 300, UnitKind.OCTETS: 10_000_000, UnitKind.EVENTS: 1,
        UnitKind.MONEY: 1_000_000})
    # Upper bound on one grant, by unit (a client asking for a day gets this much).
    max_quota: dict[UnitKind, int] = field(default_factory=lambda: {
        UnitKind.TIME: 3600, UnitKind.OCTETS: 1_000_000_000, UnitKind.EVENTS: 100,
        UnitKind.MONEY: 100_000_000})
    validity_time: int = 600  # seconds (Validity-Time AVP)
    tcc: float = 1200.0  # session supervision; RFC 4006 §13: may be 2 x Validity-Time
    quota_holding_time: int | None = None  # seconds (3GPP Quota-Holding-Time); None = omit
    # Fraction of a grant (percent) at which the client re-authorises (Time/Volume/Unit-Quota-
    # Threshold); None = omit.
    quota_threshold_percent: int | None = None
    answer_cache_size: int = 20_000  # retransmit window beyond each session's last answer
    # After an ASR answered 2001 the session waits this long for the client's CCR-T before
    # the service releases its hold itself (protocol-facts D; Tcc still applies if sooner).
    kill_grace: float = 30.0
    max_sessions: int = 1_000_000
    currency: str = "EUR"
    no_tariff_errors: tuple[type[BaseException], ...] = (LookupError,)
    node: str = "icx"


class ChargingService:
    """Online/offline charging. Call :meth:`handle` per request and :meth:`supervise` every
    few seconds (it closes sessions silent for Tcc). ``now`` is epoch seconds, passed in."""

    def __init__(self, *, rater: Rater, ledger: Ledger, accounts: Accounts,
                 config: ServiceConfig | None = None,
                 rating_service: Any = None) -> None:
        self.rater = rater
        self.ledger = ledger
        self.accounts = accounts
        self.config = config or ServiceConfig()
        self.sessions = SessionTable()
        self.offline = SessionTable()
        # FIFO-bounded caches: OrderedDict.popitem(last=False) evicts the oldest in O(1)
        # (copying a full dict's keys per request cost O(cache size) once it was full).
        self._answers: OrderedDict[str, ChargingResult] = OrderedDict()
        self._closed_offline: OrderedDict[str, None] = OrderedDict()  # Rf sessions stopped
        # Session-Id -> waiters of the request in progress (None: nobody waits). A request
        # of a session absent here runs at once; no lock object, no future on that path.
        self._busy: dict[str, collections.deque[asyncio.Future[None]] | None] = {}
        self._to_rating = rating_service or (lambda s: s.value)
        # RatingEngine.price(deck, service, destination, at, usage, origin) -> micro-units:
        # the allocation-free path; rate() (with its explanation) only where fields need it.
        self._price = getattr(rater, "price", None)
        self._tariffs: dict[tuple[str, str, str], dict[str, str]] = {}
        self._texts: dict[int, str] = {}  # amount -> format_amount(amount)
        self._killed: dict[str, Session] = {}  # killed after ASA 2001, awaiting the CCR-T
        self.counters: dict[str, int] = {}

    # ------------------------------------------------------------------ public entry points
    async def handle(self, req: ChargingRequest, *, now: float) -> ChargingResult:
        """Decide one request and return once every record it caused or depended on is
        durable (invariant 3). Never raises for bad input: the outcome says what is wrong;
        raises JournalError when the journal failed (the agent answers 5012)."""
        result = await self.decide(req, now=now)
        await self.wait_durable(self.durable_mark())
        return result

    async def decide(self, req: ChargingRequest, *, now: float) -> ChargingResult:
        """Decide one request and enqueue every journal record it causes, WITHOUT waiting for
        the group commit. The caller MUST read :meth:`durable_mark` right after (before any
        other await) and send the answer only once the journal is durable up to that mark.

        With a store whose ops complete without suspending (the embedded store) this
        coroutine never suspends either, so it can be driven eagerly with
        ``coro.send(None)`` (StopIteration carries the result). Requests of one session are
        decided one at a time in arrival order; only a request arriving while another of its
        session is still in progress (a suspending store: Redis) waits for its turn."""
        key = req.idem_key or f"{req.session_id}:{int(req.verb)}:{req.request_number}"
        cached = self._cached(req, key)
        if cached is not None:
            self._count("retransmit")
            return cached  # the mark covers the original's records (still enqueued before)
        if req.failed_field is not None:
            return ChargingResult(outcome=Outcome.INVALID_VALUE, failed_field=req.failed_field)
        sid = req.session_id
        busy = self._busy
        if sid in busy:
            await self._wait_turn(sid)
            cached = self._cached(req, key)  # a twin may have finished
            if cached is not None:
                self._next_turn(sid)
                return cached
        else:
            busy[sid] = None
        try:
            result = await self._dispatch(req, key, now)
            self._remember(req, key, result)
        finally:
            self._next_turn(sid)
        return result

    def durable_mark(self) -> Position:
        """The journal position the answer of the request just decided must wait for: the
        end of everything enqueued so far (its own records, a retransmit's original, and
        every record whose effect it read)."""
        return self.ledger.position

    async def wait_durable(self, mark: Position) -> None:
        """Return once the journal is durable up to *mark* (JournalError if it failed)."""
        await self.ledger.wait_durable(mark)

    async def _wait_turn(self, sid: str) -> None:
        """Queue behind the request of session *sid* in progress; return holding the turn."""
        waiters = self._busy[sid]
        if waiters is None:
            waiters = self._busy[sid] = collections.deque()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._next_turn(sid)  # we were handed the turn: pass it on
            else:
                waiters.remove(fut)
            raise

    def _next_turn(self, sid: str) -> None:
        """Hand session *sid*'s turn to its next waiting request, or free it."""
        waiters = self._busy.get(sid)
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._busy.pop(sid, None)

    def _cached(self, req: ChargingRequest, key: str) -> ChargingResult | None:
        """The answer already given to this request: the open session's last answer, else
        the bounded global cache (events, closed sessions, older requests)."""
        session = self.sessions.get(req.session_id)
        if (session is not None and session.answer_n == req.request_number
                and session.answer is not None and req.verb is not Verb.EVENT):
            return session.answer
        return self._answers.get(key)

    async def supervise(self, now: float) -> list[str]:
        """Close sessions silent for Tcc: release their reservations and journal a release
        record (RFC 4006 §5.1.2 "Tcc expires -> release reservations -> Idle"). Returns the
        closed Session-Ids. Offline sessions without STOP are closed with a rated record."""
        closed: list[str] = []
        for session in self.sessions.expired(now):
            self._killed.pop(session.id, None)
            await self._release_all(session, now, reason="tcc_expired")
            closed.append(session.id)
            self._count("tcc_expired")
        for sid, session in list(self._killed.items()):
            assert session.killed is not None
            if self.sessions.get(sid) is not session:
                del self._killed[sid]  # ended by its CCR-T (or replaced)
            elif session.killed <= now and sid not in self._busy:
                # killed after ASA 2001 and no CCR-T within kill_grace: release the hold
                del self._killed[sid]
                self.sessions.pop(sid)
                await self._release_all(session, now, reason="killed")
                closed.append(sid)
                self._count("kill_expired")
        for session in self.offline.expired(now):
            await self._offline_close(session, now, end=now, result="tcc_expired",
                                      key=f"rf:{session.id}:tcc")
            closed.append(session.id)
        if closed:
            await self.wait_durable(self.durable_mark())
        return closed

    async def kill(self, session_id: str, *, now: float,
                   asa_result_code: int | None = None) -> bool:
        """Operator kill, after the ASR was sent; False when no such open session.

        Protocol-facts D: after ASA 2001 the client ends its side with a CCR-T (the ASR is not
        one), so with ``asa_result_code == 2001`` the session stays open, marked killed: its
        hold stays, the CCR-T commits the usage as usual, an UPDATE gets its usage committed
        but no new grant, and if no CCR-T comes within ``kill_grace`` seconds (or Tcc, if
        sooner) :meth:`supervise` releases the hold. Any other answer (none, no peer, 5002,
        5012, ...): the client will not report, so the hold is released at once."""
        session = self.sessions.get(session_id)
        if session is None:
            return False
        if asa_result_code == 2001:
            if session.killed is None:
                session.killed = now + self.config.kill_grace
                self._killed[session_id] = session
            self._count("killed")
            return True
        busy = session_id in self._busy
        if busy:
            await self._wait_turn(session_id)  # let a request in progress finish first
        try:
            if self.sessions.get(session_id) is not session:
                return True  # it ended meanwhile (a CCR-T): its hold is already gone
            self.sessions.pop(session_id)
            self._killed.pop(session_id, None)
            await self._release_all(session, now, reason="killed")
        finally:
            if busy:
                self._next_turn(session_id)
        await self.wait_durable(self.durable_mark())
        self._count("killed")
        return True

    def open_sessions(self) -> list[Session]:
        return list(self.sessions) + list(self.offline)

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        if req.offline:
            return await self._offline(req, key, now)
        verb = req.verb
        if verb is Verb.INITIAL:
            return await self._initial(req, key, now)
        if verb is Verb.UPDATE or verb is Verb.TERMINATE:
            session = self.sessions.get(req.session_id)
            if session is None:
                return ChargingResult(outcome=Outcome.UNKNOWN_SESSION,
                                      message="no open session")
            return await self._update(session, req, key, now)
        return await self._event(req, key, now)

    # ------------------------------------------------------------------ helpers
    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _remember(self, req: ChargingRequest, key: str, result: ChargingResult) -> None:
        """Keep the answer for retransmits (RFC 4006 §5.1.2 / facts B5: same Session-Id and
        CC-Request-Number get the same answer). An open session keeps its last answer in
        place; the previous one moves to the bounded global cache."""
        session = self.sessions.get(req.session_id)
        if session is not None and req.verb is not Verb.EVENT and not req.offline:
            if session.answer is not None and session.answer_n != req.request_number:
                # the previous answer moves to the global cache under its own key
                self._answers[self._key_of(req, session.answer_n)] = session.answer
            session.answer_n, session.answer = req.request_number, result
        else:
            self._answers[key] = result
        answers = self._answers
        excess = len(answers) - self.config.answer_cache_size
        while excess > 0:  # FIFO eviction, oldest first
            answers.popitem(last=False)
            excess -= 1

    @staticmethod
    def _key_of(req: ChargingRequest, number: int) -> str:
        """The idempotency key the agent would give request *number* of this session."""
        prefix = req.idem_key.rsplit(":", 1)[0] if req.idem_key else req.session_id
        return f"{prefix}:{number}"

    async def _account(self, subscriber: str | None) -> tuple[str, str, str] | Outcome:
        """(account, money balance id, currency) for a subscriber, or USER_UNKNOWN."""
        if not subscriber:
            return Outcome.USER_UNKNOWN
        account = await self.accounts.resolve(subscriber)
        if account is None:
            return Outcome.USER_UNKNOWN
        view = await self.accounts.get(account)
        if view is None:
            return Outcome.USER_UNKNOWN
        money = [b for b in view.balances if b.kind is BalanceKind.MONEY]
        if not money:
            return Outcome.SERVICE_DENIED
        money.sort(key=lambda b: (b.currency != self.config.currency, b.priority))
        chosen = money[0]
        return account, chosen.id, chosen.currency or self.config.currency

    async def _available(self, account: str, balance: str) -> int:
        view = await self.accounts.get(account)
        if view is None:
            return 0
        for b in view.balances:
            if b.id == balance:
                return max(0, b.available)
        return 0

    def _rate(self, session: Session | ChargingRequest, service: ServiceKind, usage: int,
              at: float) -> RatedLike | None:
        """Price *usage* units of *service* for the session's destination; None = no tariff."""
        deck = getattr(session, "deck", None) or self.config.deck
        try:
            return self.rater.rate(deck=deck, service=self._to_rating(service),
                                   destination=session.destination or "",
                                   origin=session.origin, at=at, usage=usage)
        except self.config.no_tariff_errors:
            return None

    def _cost(self, session: Session, grant: Grant, usage: int) -> int | None:
        """Price of the session's first *usage* units of the grant's service, rated at the
        session start (as the whole call will be rated at the end); None = no tariff or a
        price no store can hold. The last answer is kept on the grant: the commit of a
        granted quota re-prices exactly the units its reservation priced."""
        if usage == grant.priced_u:
            return grant.priced_c
        if usage <= 0:
            return 0
        if usage > MAX_AMOUNT:
            return None  # an Unsigned64 report no store can hold: cannot be rated (5031)
        rsvc = grant.rsvc
        if rsvc is None:
            rsvc = grant.rsvc = self._to_rating(grant.service)
        if self._price is None:
            rated = self._rate(session, grant.service, usage, session.started)
            if rated is None:
                return None
            price = rated.price
        else:
            try:
                price = int(self._price(session.deck, rsvc, session.destination or "",
                                        session.started, usage, session.origin or ""))
            except self.config.no_tariff_errors:
                return None
        if price > MAX_AMOUNT:
            return None
        grant.priced_u = usage
        grant.priced_c = price
        return price

    def _money_text(self, amount: int) -> str:
        """format_amount, memoised: sessions repeat a few prices (a bounded dict)."""
        text = self._texts.get(amount)
        if text is None:
            text = format_amount(amount)
            if len(self._texts) >= 4096:
                self._texts.clear()
            self._texts[amount] = text
        return text

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

    def _tariff(self, session: Session, grant: Grant) -> dict[str, str]:
        """deck_version / prefix / destination name of the grant's tariff, for its rated
        records: one rate() per (deck, service, B-number), shared by every session (the
        same dict object), remembered on the grant."""
        hit = grant.tariff
        if hit is not None:
            return hit
        key = (session.deck, grant.svc, session.destination or "")
        hit = self._tariffs.get(key)
        if hit is None:
            rated = self._rate(session, grant.service, 1, session.started)
            if rated is None:
                return {}
            hit = {"deck_version": str(rated.deck_version), "prefix": rated.prefix,
                   "destination": rated.destination}
            if len(self._tariffs) > 4096:
                self._tariffs.clear()
            self._tariffs[key] = hit
        grant.tariff = hit
        return hit

    # ------------------------------------------------------------------ INITIAL
    async def _initial(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        existing = self.sessions.get(req.session_id)
        if existing is not None:
            # A new INITIAL for an open session id: treat it as an update of that session.
            return await self._update(existing, req, key, now)
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
            context=req.context,
        )
        result = await self._grant_all(session, req, key, now)
        if result.outcome is Outcome.SUCCESS:
            self.sessions.add(session)
        else:
            await self._release_all(session, now, reason=result.outcome.value, key=key)
        return result

    # ------------------------------------------------------------------ UPDATE / TERMINATE
    def _end(self, session: Session) -> None:
        """Forget a session that ends by a request (TERMINATE, failed UPDATE)."""
        self.sessions.pop(session.id)
        if session.killed is not None:
            self._killed.pop(session.id, None)

    async def _update(self, session: Session, req: ChargingRequest, key: str,
                      now: float) -> ChargingResult:
        session.last_number = max(session.last_number, req.request_number)
        terminate = req.verb is Verb.TERMINATE
        if terminate:
            result = await self._grant_all(session, req, key, now, terminate=True)
            self._end(session)
            await self._release_all(session, now, reason="terminated", key=key)
            return result
        result = await self._grant_all(session, req, key, now)
        if result.outcome is Outcome.SUCCESS:
            self.sessions.touch(session, now + self.config.tcc)
        else:
            # RFC 4006 §7: UPDATE failed -> debit used units -> Idle.
            self._end(session)
            await self._release_all(session, now, reason=result.outcome.value, key=key)
        return result

    async def _grant_all(self, session: Session, req: ChargingRequest, key: str, now: float,
                         *, terminate: bool = False) -> ChargingResult:
        """Commit every reported usage and (unless terminating) reserve the next grants."""
        slices = req.units or (ServiceUnits(requested=0 if req.verb is Verb.INITIAL else None),)
        at = req.at or now
        if len(slices) == 1:  # the common case: one MSCC (or command-level units)
            r = await self._one_slice(session, req, slices[0], f"{key}:0", at, now, terminate)
            results: tuple[UnitsResult, ...] = (r,)
            outcome = r.outcome
            final = r.final_unit
        else:
            parts = []
            for i, su in enumerate(slices):
                parts.append(await self._one_slice(session, req, su, f"{key}:{i}", at, now,
                                                   terminate))
            results = tuple(parts)
            outcome = _combined(req, [r.outcome for r in results], terminate)
            final = any(r.final_unit for r in results)
        if outcome is not _SUCCESS and terminate and outcome is Outcome.CREDIT_LIMIT_REACHED:
            outcome = _SUCCESS  # a final report always succeeds once committed
        return ChargingResult(
            outcome=outcome, units=results, currency=session.currency,
            cost=session.cost_total,
            validity_time=None if terminate else self.config.validity_time,
            final_unit=final,
            failed_field=None if outcome is _SUCCESS else "Multiple-Services-Credit-Control",
        )

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
        # 1. Commit the reported usage (cumulative pricing, see module docstring); the commit
        #    and the next reservation enqueue their records back to back (one group commit).
        used_cost = 0
        if su.used_present or su.used:
            used = su.used if su.used > 0 else 0
            before = grant.cost_total
            total = before + used if money else self._cost(session, grant,
                                                           grant.used_total + used)
            if total is None:
                return UnitsResult(outcome=Outcome.RATING_FAILED, rating_group=su.rating_group,
                                   service_id=su.service_id, unit=unit)
            used_cost = total - before if total > before else 0
            fields = dict(self._rated_fields(session, grant))
            fields["request"] = str(req.request_number)
            fields["usage"] = used
            fields["price"] = self._money_text(used_cost)
            fields["end"] = int(at * 1_000_000)
            if used and not money:
                fields.update(self._tariff(session, grant))
            op = await self._commit(session, grant, grant.held_n, used_cost, key, now, fields)
            grant.used_total += used
            grant.held = 0
            grant.held_n = -1
            grant.granted = 0
            # book what was really debited (the credit limit may cut it)
            used_cost = op.granted if op.status is _OK else 0
            grant.cost_total = before + used_cost
            self._count("commit")
        requested = su.requested
        # (killed after ASA 2001: commit what is reported, grant nothing new)
        if terminate or session.killed is not None or (
                requested is None and req.verb is not Verb.INITIAL):
            if terminate:
                return UnitsResult(outcome=_SUCCESS, used_cost=used_cost,
                                   rating_group=su.rating_group, service_id=su.service_id,
                                   unit=unit)
            # No RSU: debit the USU, grant nothing new (RFC 4006 §5.1.2); after FUI the client
            # reports with no rating AVPs and gets Validity-Time only (facts B5).
            return UnitsResult(outcome=_SUCCESS, used_cost=used_cost,
                               validity_time=self.config.validity_time if grant.final else None,
                               rating_group=su.rating_group, service_id=su.service_id,
                               unit=unit)
        # 2. Reserve the next grant.
        want = requested or self.config.default_quota[unit]
        cap = self.config.max_quota[unit]
        return await self._reserve(session, req, grant, want if want < cap else cap, key, now,
                                   used_cost, su)

    async def _commit(self, session: Session, grant: Grant, held_n: int, amount: int,
                      key: str, now: float, fields: dict[str, Any]) -> Any:
        """Debit *amount* against the grant's current hold (the rest is released), or a plain
        partial debit when nothing is held (after FUI, or an unknown/expired hold)."""
        assert session.account is not None and session.balance is not None
        if held_n >= 0:
            op = await self.ledger.commit(f"{key}:c", session.account, session.balance,
                                          grant.hold_id(session.id, held_n), amount, now=now,
                                          release_rest=True, fields=fields, wait=False)
            if op.status is not OpStatus.UNKNOWN_RESERVATION:
                return op
        return await self.ledger.debit(f"{key}:d", session.account, session.balance, amount,
                                       now=now, partial=True, fields=fields, wait=False)

    async def _reserve(self, session: Session, req: ChargingRequest, grant: Grant, want: int,
                       key: str, now: float, used_cost: int, su: ServiceUnits) -> UnitsResult:
        """Reserve the next grant of *want* units: the price of the session's usage so far
        plus *want*, minus the price of the usage so far (both rated at the session start)."""
        assert session.account is not None and session.balance is not None
        u = grant.used_total
        money = grant.unit is UnitKind.MONEY
        if money:
            cost_u: int | None = grant.cost_total
            cost_w: int | None = grant.cost_total + want
        else:
            cost_u = self._cost(session, grant, u)
            cost_w = None if cost_u is None else self._cost(session, grant, u + want)
        if cost_u is None or cost_w is None:
            return self._units(Outcome.RATING_FAILED, grant, su, used_cost)
        amount = cost_w - cost_u if cost_w > cost_u else 0
        ttl = self.config.tcc + 60.0
        final = False
        # A hold moves no money: keep its record small (the journal is write-bandwidth bound).
        fields: dict[str, Any] = {"session": session.id, "request": str(req.request_number),
                                  "service": grant.svc, "price": self._money_text(amount)}
        reservation = grant.hold_id(session.id, req.request_number)
        op = await self.ledger.reserve(f"{key}:r", session.account, session.balance,
                                       reservation, amount, ttl=ttl, now=now,
                                       fields=fields, wait=False)
        status = op.status
        if status is OpStatus.INSUFFICIENT:
            # Grant the most the balance allows, on increment boundaries (FUI TERMINATE).
            available = await self._available(session.account, session.balance)
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
            fields["price"] = self._money_text(amount)
            op = await self.ledger.reserve(f"{key}:rf", session.account, session.balance,
                                           reservation, amount, ttl=ttl, now=now,
                                           fields=fields, wait=False)
            if not op.ok:
                grant.final = True
                return self._units(Outcome.CREDIT_LIMIT_REACHED, grant, su, used_cost)
            want = fit
            final = True
        elif status is OpStatus.UNKNOWN_ACCOUNT:
            return self._units(Outcome.USER_UNKNOWN, grant, su, used_cost)
        elif status is not _OK:
            return self._units(Outcome.CREDIT_LIMIT_REACHED, grant, su, used_cost)
        grant.granted = want
        grant.held = amount
        grant.held_n = req.request_number
        grant.final = final
        self._count("reserve")
        pct = self.config.quota_threshold_percent
        return UnitsResult(
            outcome=_SUCCESS, granted=want, final_unit=final, used_cost=used_cost,
            validity_time=self.config.validity_time,
            quota_holding_time=self.config.quota_holding_time,
            quota_threshold=None if pct is None else want * pct // 100,
            rating_group=su.rating_group, service_id=su.service_id, unit=grant.unit)

    @staticmethod
    def _units(outcome: Outcome, grant: Grant, su: ServiceUnits, used_cost: int) -> UnitsResult:
        return UnitsResult(outcome=outcome, used_cost=used_cost, rating_group=su.rating_group,
                           service_id=su.service_id, unit=grant.unit)

    async def _release_all(self, session: Session, now: float, *, reason: str,
                           key: str | None = None) -> None:
        """Give back every hold of *session* (TERMINATE rest, Tcc expiry, kill, failure)."""
        if session.account is None or session.balance is None:
            return
        for grant in session.grants:
            if grant.held <= 0:
                continue
            fields = {"session": session.id, "service": grant.service.value,
                      "account": session.account, "result": reason}
            await self.ledger.release(f"{key or 'ro:' + session.id}:rel:{grant.key}",
                                      session.account, session.balance,
                                      grant.hold_id(session.id), now=now, fields=fields,
                                      wait=False)
            grant.held = 0
            grant.held_n = -1
            grant.granted = 0

    # ------------------------------------------------------------------ EVENT
    async def _event(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        action = req.action if req.action is not None else EventAction.DIRECT_DEBITING
        at = req.at or now
        su = req.units[0] if req.units else ServiceUnits()
        service = su.service or req.service
        unit = SERVICE_UNIT[service]
        units = su.requested or su.used or (1 if unit is UnitKind.EVENTS else
                                            self.config.default_quota[unit])
        deck = self.config.deck
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
        if action is EventAction.PRICE_ENQUIRY:
            # B5: Cost-Information only; no balance check, no reservation.
            return ChargingResult(outcome=Outcome.SUCCESS, cost=price, currency=rated.currency)
        found = await self._account(req.subscriber)
        if isinstance(found, Outcome):
            return ChargingResult(outcome=found, failed_field="Subscription-Id")
        account, balance, currency = found
        if rated.currency and rated.currency != currency:
            # The price is in the deck's currency: never debit it from a balance in another
            # one (money is exact and carries its currency; no FX is applied here).
            return ChargingResult(outcome=Outcome.RATING_FAILED, failed_field="destination",
                                  message=f"deck currency {rated.currency} != balance "
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

    # ------------------------------------------------------------------ offline (Rf)
    async def _offline(self, req: ChargingRequest, key: str, now: float) -> ChargingResult:
        """ACR START/INTERIM/STOP/EVENT: accumulate usage, write ONE rated record at STOP.

        Postpaid / interconnect: no balance check and no balance effect; settlement reads the
        rated record from the journal. Duplicates (Session-Id + Accounting-Record-Number) are
        answered success and dropped."""
        at = req.at or now
        used = sum(max(0, s.used) for s in req.units)
        if req.verb is Verb.EVENT:
            session = self._offline_session(req, at, now)
            usage = used or (1 if SERVICE_UNIT[req.service] is UnitKind.EVENTS else 0)
            await self._offline_rate(session, usage, now, end=at, key=key, result="ok")
            return ChargingResult(outcome=Outcome.SUCCESS)
        if req.session_id in self._closed_offline:
            return ChargingResult(outcome=Outcome.SUCCESS, message="duplicate")
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
        grant = session.grant(-1)
        if grant is None:
            grant = Grant(-1, session.service, SERVICE_UNIT[session.service])
            session.grants.append(grant)
        if used:
            grant.used_total += used
        elif req.verb is not Verb.INITIAL and SERVICE_UNIT[session.service] is UnitKind.TIME:
            # No USU: the usage is the time since START (Event-Timestamp based).
            grant.used_total = max(grant.used_total, int(at - session.started))
        session.last_number = max(session.last_number, req.request_number)
        if req.verb is Verb.TERMINATE:
            self.offline.pop(session.id)
            await self._offline_close(session, now, end=at, result="ok", key=key)
        else:
            self.offline.touch(session, now + self.config.tcc)
        return ChargingResult(outcome=Outcome.SUCCESS)

    def _offline_session(self, req: ChargingRequest, at: float, now: float) -> Session:
        return Session(
            session_id=req.session_id, account=None, balance=None,
            currency=self.config.currency, service=req.service, subscriber=req.subscriber,
            destination=req.destination, origin=req.origin or req.subscriber,
            peer_host=req.peer_host, peer_realm=req.peer_realm, deck=self.config.deck,
            started=at, expires=now + self.config.tcc, offline=True, context=req.context)

    async def _offline_close(self, session: Session, now: float, *, end: float, result: str,
                             key: str) -> None:
        self._closed_offline[session.id] = None
        if len(self._closed_offline) > self.config.answer_cache_size:
            self._closed_offline.popitem(last=False)
        grant = session.grant(-1)
        usage = grant.used_total if grant else 0
        await self._offline_rate(session, usage, now, end=end, key=key, result=result)

    async def _offline_rate(self, session: Session, usage: int, now: float, *, end: float,
                            key: str, result: str) -> None:
        service = session.service
        rated = self._rate(session, service, usage, end) if usage > 0 else None
        if session.account is None and session.subscriber:
            session.account = await self.accounts.resolve(session.subscriber)
        fields: dict[str, Any] = {
            "type": "rated", "idem": key, "session": session.id,
            "request": str(session.last_number), "service": service.value,
            "usage": usage, "unit": SERVICE_UNIT[service].value,
            "a": session.origin, "b": session.destination, "account": session.account,
            "deck": session.deck, "start": int(session.started * 1_000_000),
            "end": int(end * 1_000_000), "result": result,
            "balance_effects": [], "holds": [],
        }
        if rated is not None:
            fields.update(price=format_amount(rated.price), currency=rated.currency,
                          deck_version=str(rated.deck_version), prefix=rated.prefix,
                          destination=rated.destination)
        elif usage > 0:
            fields["result"] = "unrated"
        else:
            fields.update(price=format_amount(0), currency=session.currency)
        await self.ledger.record(fields, now=now, wait=False)
        self._count("offline_record")


_SUCCESS = Outcome.SUCCESS
_OK = OpStatus.OK


def _combined(req: ChargingRequest, outcomes: list[Outcome], terminate: bool) -> Outcome:
    """The command-level outcome of several slices (per-MSCC codes carry the details)."""
    if all(o is _SUCCESS for o in outcomes):
        return _SUCCESS
    if req.multiple_services and any(o is _SUCCESS for o in outcomes):
        return _SUCCESS  # per-MSCC codes carry the failures
    if req.multiple_services and not terminate and req.verb is Verb.UPDATE:
        return _SUCCESS if len(outcomes) > 1 else outcomes[0]
    return next(o for o in outcomes if o is not _SUCCESS)
