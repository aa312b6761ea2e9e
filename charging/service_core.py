"""Shared state and helpers of the charging service (see charging/service.py): its config,
account lookup, pricing with per-grant caches, and releasing a session's holds. The online
(charging/service_online.py) and event/offline (charging/service_events.py) halves build on it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import cython_ext
from charging.journal import records as _records
from charging.money import format_amount
from charging.ports import Accounts, Ledger, RatedLike, Rater
from charging.rating.engine import EXACT_C_USAGE
from charging.requests import (
    SERVICE_UNIT,
    ChargingRequest,
    ChargingResult,
    Outcome,
    ServiceKind,
    ServiceUnits,
    UnitKind,
    UnitsResult,
    Verb,
)
from charging.sessions import EndedSessions, Grant, Session, SessionTable
from charging.store import base as _store_base
from charging.store.base import MAX_AMOUNT, BalanceKind, OpStatus

# The compiled twin of the plain online request on the embedded store's synchronous ledger
# path (cython_ext/charging_slice.pyx); the Python of service.py / service_online.py is its
# spec and the path of everything else (Redis, events, Rf, retransmits, refusals).
_slice: Any = cython_ext.load("charging_slice")
if _slice is not None:
    _slice.init(verbs=(Verb.INITIAL, Verb.UPDATE, Verb.TERMINATE, Verb.EVENT),
                success=Outcome.SUCCESS, ok=OpStatus.OK,
                unknown_reservation=OpStatus.UNKNOWN_RESERVATION, money_unit=UnitKind.MONEY,
                charging_result_cls=ChargingResult, units_result_cls=UnitsResult,
                session_cls=Session, max_amount=MAX_AMOUNT,
                amount_cache=_records._AMOUNT_CACHE, amount_text=_records.amount_text,
                op_types=_records.OP_TYPES, exact_usage=EXACT_C_USAGE,
                grant_cls=Grant, request_cls=ChargingRequest, units_cls=ServiceUnits,
                op_result_cls=_store_base.OpResult, effect_cls=_store_base.Effect,
                hold_cls=_store_base.Hold, service_unit=SERVICE_UNIT)


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
    # Rf ([rf]): the deck accounting sessions are rated with, and how long one stays open
    # without a record before it is closed with the usage seen (None: deck / tcc)
    offline_deck: str | None = None
    offline_timeout: float | None = None
    # [rf] usage_reports: an ACR's Used-Service-Units are the usage since the record before
    # ("incremental") or the call's running total ("cumulative"); charging/service_offline.py
    offline_usage_reports: str = "incremental"
    # How long a closed Rf session's record numbers (and an EVENT record's key) are
    # remembered after its last record, across restarts: a duplicate within it is dropped, a
    # new record of a closed session is a late one ([store] session_retention, the window the
    # embedded store keeps the Ro ops' idempotency keys)
    offline_retention: float = 300.0
    # How long an ended online session's Session-Id is remembered ([store] session_retention:
    # retransmissions come within it): a CCR-I for it within that is a late request of a
    # session that no longer exists, answered 5002 (OnlineCharging._refused_initial) instead
    # of opening it again around a hold already given back. 0: not remembered. At most
    # ended_sessions_max ids (sessions.EndedSessions: ~74 bytes each).
    session_retention: float = 300.0
    ended_sessions_max: int = 1_000_000
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

    @property
    def hold_ttl(self) -> float:
        """How long an online session's hold lives unless renewed: Tcc + 60 s, the ``ttl``
        every reserve of it asks for (service_online.py and its compiled twin)."""
        return self.tcc + 60.0


class ServiceCore:
    """The state every part of :class:`charging.service.ChargingService` shares."""

    def __init__(self, *, rater: Rater, ledger: Ledger, accounts: Accounts,
                 config: ServiceConfig | None = None,
                 rating_service: Any = None) -> None:
        self.rater = rater
        self.ledger = ledger
        self.accounts = accounts
        self.config = config or ServiceConfig()
        self.sessions = SessionTable()
        # SessionTable.get without the method frame (the per-request lookups)
        self._session_of = self.sessions.getter()
        self.offline = SessionTable()
        # online sessions ended recently (a late CCR-I of one is refused: _refused_initial)
        self._ended = EndedSessions(self.config.ended_sessions_max)
        # FIFO-bounded answer cache: a dict plus a deque of its keys in insertion order
        # (evict: del answers[order.popleft()], O(1)). Not an OrderedDict: it rebuilds its
        # node index, one hash lookup per entry, whenever its dict resizes (a few ms of loop
        # stall every ~2 s at 10k CCR/s); a dict's own resize only moves entries. Insert
        # with keep_answer(); the compiled twin (cython_ext/charging_slice.pyx) does the same.
        self._answers: dict[str, ChargingResult] = {}
        self._answer_order: collections.deque[str] = collections.deque()
        # ... and when each of them is forgotten (kept + session_retention, in the same
        # order): an answer is one for retransmissions, which come within that window -- past
        # it the Session-Id may be another session's (reused, RFC 6733 §8.8 notwithstanding),
        # whose request of the same number must not get the first session's answer. Dropped
        # by supervise() and before a hit is trusted (_forget_answers).
        self._answer_until: collections.deque[float] = collections.deque()
        # Per-session tags (Session.tag): a counter from the wall clock in µs at start, so a
        # later process starts past every tag of this one (unless it made more than one
        # session a µs, or the clock went back by more than its uptime).
        self._tags = itertools.count(time.time_ns() // 1000)
        # Session-Id -> (tag, until) of an INITIAL whose decision failed part-way (5012: a
        # journal error, a store reply lost after its op ran): its retry within
        # session_retention takes the same tag, so its ops replay by key (charged and held
        # once) instead of running anew (_initial_failed, _new_tag).
        self._retry_tags: dict[str, tuple[str, float]] = {}
        # Rf sessions closed, in closing order: Session-Id -> compact record (bytes,
        # charging/offline_state.pack_closed), each kept until its forget-at (closed +
        # offline_retention) for the records that arrive after their STOP (duplicates, late
        # records); Rf EVENT keys the same way (key -> forget at). charging/service_offline.py
        self._closed_offline: OrderedDict[str, bytes] = OrderedDict()
        self._offline_events: dict[str, float] = {}
        self._rf_writer: Any = None  # the Rf checkpoint being written (see _rf_cow)
        # Session-Id -> waiters of the request in progress (None: nobody waits). A request
        # of a session absent here runs at once; no lock object, no future on that path.
        self._busy: dict[str, collections.deque[asyncio.Future[None]] | None] = {}
        self._to_rating = rating_service or (lambda s: s.value)
        self._waiting: set[asyncio.Task[None]] = set()  # answer_when_durable's fallback
        # RatingEngine.price(deck, service, destination, at, usage, origin) -> micro-units:
        # the allocation-free path; rate() (with its explanation) only where fields need it.
        self._price = getattr(rater, "price", None)
        self._tariffs: dict[tuple[str, str, str, int | None], dict[str, str]] = {}
        # the deck version that rates a call started at a time (RatingEngine.version_in_force;
        # a rater without it has one version per deck)
        self._version_at = getattr(rater, "version_in_force", None)
        self._texts: dict[int, str] = {}  # amount -> format_amount(amount)
        self._killed: dict[str, Session] = {}  # killed after ASA 2001, awaiting the CCR-T
        self._accounts_seen: dict[str, tuple[str, str, str]] = {}  # see _account
        cfg = self.config
        self._quotas: dict[int, tuple[int, int]] = {  # id(UnitKind) -> (default, max) quota
            id(u): (cfg.default_quota[u], cfg.max_quota[u]) for u in UnitKind
            if u in cfg.default_quota and u in cfg.max_quota}
        self.counters: dict[str, int] = {}
        # The ledger's synchronous ops (charging/ledger/sync_ops.py), when it has them.
        self._sync_ledger = hasattr(ledger, "sync_ready")
        # decide()'s compiled fast path (None: the Python path only); it checks per request
        # that the session's balance is on the synchronous ops (sync_ready).
        self._fast: Any = (_slice.FastPath(self).decide
                           if _slice is not None and self._sync_ledger else None)

    def keep_answer(self, key: str, result: ChargingResult, now: float) -> None:
        """Remember *result* under *key* for retransmits until *now* + ``session_retention``
        (0: no time limit), evicting the oldest past ``answer_cache_size``. A key already
        there keeps its place and its time (FIFO by first insert)."""
        answers = self._answers
        n = len(answers)
        answers[key] = result
        order = self._answer_order
        if len(answers) != n:
            order.append(key)
            retention = self.config.session_retention
            self._answer_until.append(now + retention if retention > 0 else math.inf)
        excess = len(order) - self.config.answer_cache_size
        while excess > 0:  # FIFO eviction, oldest first
            answers.pop(order.popleft(), None)
            self._answer_until.popleft()
            excess -= 1

    def _forget_answers(self, now: float) -> None:
        """Drop the remembered answers whose window ended at *now* (oldest first; kept in
        the order they came, so this stops at the first one still kept)."""
        until = self._answer_until
        if until and until[0] <= now:
            answers, order = self._answers, self._answer_order
            while until and until[0] <= now:
                until.popleft()
                answers.pop(order.popleft(), None)

    def _new_tag(self, sid: str, now: float) -> str:
        """A new online session's Session.tag ("~" + hex of the next counter value; the
        compiled twin makes the same from the same counter), or the tag of the INITIAL of
        *sid* that failed part-way within ``session_retention`` before *now* (a retry)."""
        retry = self._retry_tags
        if retry:
            kept = retry.pop(sid, None)
            if kept is not None and kept[1] > now:
                return kept[0]
        return f"~{next(self._tags):x}"

    def _initial_failed(self, session: Session, now: float) -> None:
        """The INITIAL that made *session* raised part-way (its answer: 5012): keep its tag
        for a retry (_new_tag). Called by both twins' INITIAL paths."""
        retention = self.config.session_retention
        if retention > 0:
            retry = self._retry_tags
            retry[session.id] = (session.tag, now + retention)
            if len(retry) > 65_536:  # (a failing journal or store: each retry pops its own)
                for sid in list(retry)[:8192]:
                    del retry[sid]

    def _forget_retry_tags(self, now: float) -> None:
        retry = self._retry_tags
        if retry:
            for sid in [s for s, (_t, until) in retry.items() if until <= now]:
                del retry[sid]

    def _ended_at(self, session: Session, now: float) -> None:
        """*session* (online) ended at *now*, however: remember its Session-Id for
        ``session_retention`` (the compiled fast path's CCR-T calls this too), and journal
        that it ended (an ``ro_end`` record, enqueued with the request's own records: the
        answer waits for it like for them), so a restart within that window rebuilds the
        record (charging/ended_recovery.py) and still refuses a late CCR-I of it."""
        retention = self.config.session_retention
        if retention > 0:
            self._ended.add(session.id, now + retention)
            # (its idem names the session and its last request)
            sid = session.id
            self.ledger.record_many_now(
                [{"type": "ro_end", "op": "end", "session": sid,
                  "idem": f"ro:{sid}:end:{session.last_number}{session.tag}"}], now=now)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def _account(self, subscriber: str | None) -> tuple[str, str, str] | Outcome:
        """(account, money balance id, currency) for a subscriber, or USER_UNKNOWN.

        Found answers are cached (bounded): the store has no operation that removes an
        account or changes its set of balances (create_account refuses a different
        definition), so the choice cannot go stale. Misses are not cached (an account may be
        provisioned later)."""
        if not subscriber:
            return Outcome.USER_UNKNOWN
        hit = self._accounts_seen.get(subscriber)
        if hit is not None:
            return hit
        found = await self._account_lookup(subscriber)
        if not isinstance(found, Outcome):
            if len(self._accounts_seen) >= 65_536:
                self._accounts_seen.clear()
            self._accounts_seen[subscriber] = found
        return found

    async def _account_lookup(self, subscriber: str) -> tuple[str, str, str] | Outcome:
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

    def reload_rates(self, now: float) -> dict[str, tuple[int | None, int]]:
        """Start pricing with the deck versions imported since the server started (``icx
        rates import`` writes them to the data dir): calls from the next whole second on get
        them, calls in progress keep the tariff they started with (RatingEngine.reload).
        Returns ``{deck: (old version or None, new version)}``; {} when nothing changed or
        the rater cannot reload. Send RAR to the changed decks' sessions afterwards."""
        reload = getattr(self.rater, "reload", None)
        if reload is None:
            return {}
        changed: dict[str, tuple[int | None, int]] = reload(now)
        return changed

    def _tariff(self, session: Session, grant: Grant) -> dict[str, str]:
        """deck_version / prefix / destination name of the grant's tariff, for its rated
        records: one rate() per (deck, service, B-number), shared by every session (the
        same dict object) and deck version in force at its start, remembered on the grant."""
        hit = grant.tariff
        if hit is not None:
            return hit
        version = (None if self._version_at is None  # (the deck _rate prices with)
                   else self._version_at(session.deck or self.config.deck, session.started))
        key = (session.deck, grant.svc, session.destination or "", version)
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

    async def _release_all(self, session: Session, now: float, *, reason: str,
                           key: str | None = None) -> None:
        """Give back every hold of *session* (TERMINATE rest, Tcc expiry, kill, failure)."""
        if session.account is None or session.balance is None:
            return
        for grant in session.grants:
            if grant.held > 0:
                # *key* (a request's) is unique; without one the key names the hold by the
                # reserve op that placed it (Grant.hold_key): a Session-Id seen twice (a
                # client reusing ids) must not have its second hold's release answered from
                # the store's record of the first one (nothing released) -- as it was when
                # keyed by Session-Id, rating group and held_n, which a new session's
                # same-numbered request asking at another MSCC position repeats
                # (the request's and the last one carry the session's tag, as its ops' keys:
                # a reused Session-Id's session does not repeat them)
                hk = grant.hold_key
                rkey = (f"{key}:rel:{grant.key}{session.tag}" if key else f"{hk}:rel" if hk
                        else f"ro:{session.id}:rel:{grant.key}:{grant.held_n}{session.tag}")
                await self._release_grant(session, grant, now, reason=reason, key=rkey)

    async def _release_grant(self, session: Session, grant: Grant, now: float, *, reason: str,
                             key: str) -> None:
        """Give back the grant's current hold (one release record with *reason*)."""
        assert session.account is not None and session.balance is not None
        fields = {"session": session.id, "service": grant.service.value,
                  "account": session.account, "reason": reason}
        await self.ledger.release(key, session.account, session.balance,
                                  grant.hold_id(session.id), now=now, fields=fields,
                                  wait=False)
        grant.held = 0
        grant.held_n = -1
        grant.hold_key = None
        grant.granted = 0
