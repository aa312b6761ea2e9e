"""The charging service: online (Ro-like) sessions and events, offline (Rf-like) records.

No wire protocol here. An agent builds a :class:`~charging.requests.ChargingRequest`, awaits
:meth:`ChargingService.handle` -- or, on the hot path, runs :meth:`ChargingService.decide`
(with the embedded store it never suspends: ``coro.send(None)`` finishes it), reads
:meth:`ChargingService.durable_mark` at once and sends the answer only once the journal is
durable up to that mark (invariant 3) -- and maps the
:class:`~charging.requests.ChargingResult` to its wire answer. Server rules follow RFC 4006 §5 /
facts sheet B5:

* INITIAL: rate -> reserve via the ledger -> grant (GSU). When the requested quota does not fit,
  grant the most the balance allows with Final-Unit-Indication TERMINATE; when nothing fits,
  CREDIT_LIMIT_REACHED (4012).
* INITIAL for a Session-Id whose session is open (RFC 4006 §7: no INITIAL in Open), or whose
  session ended within ``session_retention`` (a late one: 5002): refused, nothing changes
  (OnlineCharging._refused_initial).
* UPDATE: commit the reported usage (USU), reserve the next grant, restart Tcc.
* TERMINATE: commit the usage, release what is left, close the session.
* EVENT: DIRECT_DEBITING / REFUND / CHECK_BALANCE / PRICE_ENQUIRY.
* A retransmitted request (same idempotency key: Session-Id + CC-Request-Number) gets the same
  answer and is not charged again: answers are cached here, and the ledger is idempotent by
  key underneath (so a cache miss after a restart still charges once).

Prices of a session are computed on *cumulative* usage: the cost of a report is
``price(used so far + this report) - price(used so far)``, so increments (60/1, 60/60) and
connection fees apply once per call, exactly as the whole call would be rated at the end --
at the session's start time (``Session.started``), so a band change mid-call is priced as the
CDR will be, and the price of the units a reservation covered is reused by their commit.

Operator kill (protocol-facts D): after an ASR answered 2001 the session stays open, marked
killed, until the client's CCR-T (which commits the usage) or ``kill_grace``; any other ASA
answer (or none) releases the hold at once. Layout: service_core.py (config, shared helpers),
service_online.py (INITIAL/UPDATE/TERMINATE), service_events.py (EVENT), service_offline.py (Rf), this module
(entry points, per-session ordering, answer cache, supervision). With the extensions built,
:meth:`ChargingService.decide` first offers the request to the compiled twin of the plain
online request (cython_ext/charging_slice.pyx, ``ServiceCore._fast``): it decides it, or
changes nothing and lets this Python (its executable spec) decide, or hands the rest of a
rare outcome to :meth:`ChargingService._fast_rest`.
"""


from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import cython_ext
from charging.ended_recovery import EndedRecovery, recover_ended
from charging.journal import Position
from charging.requests import (
    ChargingRequest,
    ChargingResult,
    Outcome,
    ServiceUnits,
    UnitsResult,
    Verb,
)
from charging.service_core import ServiceConfig, ServiceCore
from charging.service_events import EventCharging
from charging.service_offline import OfflineCharging
from charging.service_online import OnlineCharging
from charging.sessions import Grant, Session

__all__ = ["ChargingService", "ServiceConfig"]


def _keep_tracked(result: ChargingResult) -> None:
    """Without the extensions a remembered answer stays tracked by the collector."""


# Remembered answers leave the cyclic collector's sight (cython_ext/gc_untrack.pxi: they hold
# no cycles, and ~20,000 of them kept tracked made young collections take 20-65 ms).
_gcutil = cython_ext.load("gcutil")
_untrack = (_gcutil.ResultUntracker(ChargingResult, UnitsResult) if _gcutil is not None
            else _keep_tracked)


class ChargingService(OnlineCharging, EventCharging, OfflineCharging, ServiceCore):
    """Online/offline charging. Call :meth:`handle` (or :meth:`decide` + :meth:`durable_mark`)
    per request and :meth:`supervise` every few seconds (it closes sessions silent for Tcc).
    ``now`` is epoch seconds, passed in. Construct with the keywords of
    :class:`charging.service_core.ServiceCore`."""

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
        fast = self._fast
        if fast is not None:
            done = fast(self, req, now)  # the compiled twin (see ServiceCore._fast)
            if done is not None:
                if done.__class__ is ChargingResult:
                    return done  # type: ignore[no-any-return]
                return await done  # type: ignore[no-any-return]  # (its rare rest)
        key = req.idem_key or f"{req.session_id}:{int(req.verb)}:{req.request_number}"
        sid = req.session_id
        # _cached() inlined (the per-request path): the open session's last answer, else the
        # bounded global cache
        session = self._session_of(sid)
        if (session is not None and session.answer_n == req.request_number
                and session.answer is not None and req.verb is not _EVENT):
            cached = session.answer
        else:
            cached = self._answers.get(key)
            if cached is not None and self._answer_until and self._answer_until[0] <= now:
                # a remembered answer's window is over: it may be this one's, of a session
                # that ended and whose Session-Id a new session reuses (_forget_answers)
                self._forget_answers(now)
                cached = self._answers.get(key)
        if cached is not None:
            self._count("retransmit")
            return cached  # the mark covers the original's records (still enqueued before)
        if req.failed_field is not None:
            return ChargingResult(outcome=Outcome.INVALID_VALUE, failed_field=req.failed_field)
        busy = self._busy
        if sid in busy:
            await self._wait_turn(sid)
            cached = self._cached(req, key, now)  # a twin may have finished
            if cached is not None:
                self._count("retransmit")  # (one that waited for its original's turn)
                self._next_turn(sid)
                return cached
        else:
            busy[sid] = None
        try:
            if req.verb is _INITIAL and not req.offline:
                refused = self._refused_initial(req, now)
                if refused is not None:
                    # refused for its Session-Id's state: nothing changed and nothing is
                    # remembered (its answer is not its number's: an UPDATE of it may follow)
                    self._count("initial_refused")
                    _untrack(refused)  # (as every answer: it holds no cycle)
                    return refused
            result = await self._dispatch(req, key, now)
            self._remember(req, key, result, now)
        finally:
            self._next_turn(sid)
        return result

    def decide_now(self, req: ChargingRequest, now: float) -> ChargingResult | None:
        """:meth:`decide` without a coroutine, when the compiled fast path decides *req*.

        Returns the result (the records it caused are enqueued, exactly as after
        ``await decide``: the caller MUST then read :meth:`durable_mark` or call
        :meth:`answer_when_durable` before any other decision, and send the answer only once
        durable), or None: nothing was decided and nothing changed -- the caller runs
        ``decide(req, now=now)`` (the coroutine) as before. Always None without the compiled
        extensions (ICX_NO_EXTENSIONS=1) or without the synchronous ledger (Redis).
        Raises what :meth:`decide` raises (JournalError: answer 5012)."""
        fast = self._fast
        if fast is None:
            return None
        done = fast(self, req, now)  # the compiled twin (see ServiceCore._fast)
        if done is None or done.__class__ is ChargingResult:
            return done  # type: ignore[no-any-return]
        # The rare rest of an outcome that is not the plain one (_fast_rest): its awaits are
        # the synchronous ledger's (the fast path runs only on it), so it finishes in one send.
        try:
            done.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        # Cannot happen with the synchronous ledger; if it did, stop the rest (its finally
        # frees the session's turn) and fail like decide raising: the agent answers 5012 and
        # a retry with the same number replays by idempotency key.
        done.close()
        raise RuntimeError("decide_now: the fast path's rest suspended")

    def answer_when_durable(self, callback: Any) -> None:
        """After :meth:`decide_now` / ``decide``: call ``callback(None)`` on the loop once
        every record the request caused or depended on is durable, or ``callback(exc)`` (a
        JournalError) if the group commit failed -- ``journal.call_when_durable(
        durable_mark(), callback)`` in one call (invariant 3). Call it right after the
        decision, before any other decision; callbacks run in registration order."""
        ledger = self.ledger
        when = getattr(getattr(ledger, "journal", None), "call_when_durable", None)
        if when is not None:
            when(ledger.position, callback)
            return
        # a ledger without the journal's callback entry (a test double): a task waits
        mark = ledger.position
        task = asyncio.get_running_loop().create_task(self._durable_then(mark, callback))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _durable_then(self, mark: Position, callback: Any) -> None:
        try:
            await self.wait_durable(mark)
        except Exception as exc:  # JournalError: the caller answers 5012
            callback(exc)
            return
        callback(None)

    async def _fast_rest(self, req: ChargingRequest, key: str, now: float, session: Session,
                         su: ServiceUnits, grant: Grant, terminate: bool, grant_next: bool,
                         want: int, committed: Any, pre: Any,
                         initial: bool, sync: bool = True) -> ChargingResult:
        """The rest of a request the compiled fast path began (cython_ext/charging_slice.pyx)
        once its store op(s) ran with an outcome that is not the plain one: the Python path's
        own steps from that point (:meth:`_settle` or :meth:`_reserve`, then the session's
        end and the answer cache). It marked the session busy; the turn is passed on here.
        ``sync``: the ledger's synchronous ops may be used (False: a store that suspends)."""
        skey = f"{key}:0{session.tag}"
        try:
            if initial:
                r = await self._reserve(session, req, grant, want, skey, now, 0, su, sync, pre)
                result = self._slice_answer(session, req, r, terminate)
                result = await self._initial_end(session, result, key, now)
            else:
                r = await self._settle(session, req, su, grant, skey, now, terminate,
                                       grant_next, want, sync, committed)
                result = self._slice_answer(session, req, r, terminate)
                reason = self._update_end(session, result, terminate, now)
                if reason is not None:
                    await self._release_all(session, now, reason=reason, key=key)
            self._remember(req, key, result, now)
        except BaseException:
            if initial:
                self._initial_failed(session, now)  # (its retry takes the same tag)
            raise
        finally:
            self._next_turn(req.session_id)
        return result

    def durable_mark(self) -> Position:
        """The journal position the answer of the request just decided must wait for: the
        end of everything enqueued so far (its own records, a retransmit's original, and
        every record whose effect it read)."""
        return self.ledger.position

    def durable_mark_reader(self) -> Callable[[], Position]:
        """A callable equal to :meth:`durable_mark` for a caller that reads the mark once per
        request (the agent): the ledger's position getter bound in C when this class's own
        durable_mark is in use (no Python frames per call), else the bound method."""
        mark = self.durable_mark
        if getattr(mark, "__func__", None) is not ChargingService.durable_mark:
            return mark  # replaced (a subclass's or an instance's own): keep it
        reader = getattr(self.ledger, "position_reader", None)
        return reader() if reader is not None else mark  # type: ignore[no-any-return]

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

    def _cached(self, req: ChargingRequest, key: str, now: float) -> ChargingResult | None:
        """The answer already given to this request: the open session's last answer, else
        the bounded global cache (events, closed sessions, older requests) while its window
        lasts at *now*."""
        session = self.sessions.get(req.session_id)
        if (session is not None and session.answer_n == req.request_number
                and session.answer is not None and req.verb is not Verb.EVENT):
            return session.answer
        self._forget_answers(now)
        return self._answers.get(key)

    async def supervise(self, now: float) -> list[str]:
        """Close sessions silent for Tcc: release their reservations and journal a release
        record (RFC 4006 §5.1.2 "Tcc expires -> release reservations -> Idle"). Returns the
        closed Session-Ids. Offline sessions without STOP are closed with a rated record."""
        closed: list[str] = []
        busy = self._busy
        for session in self.sessions.expired(now):
            if session.id in busy:
                # a request of it is in progress (the store suspended): it restarts Tcc or
                # ends the session itself; closing it here would release the hold under it
                self.sessions.add(session)
                continue
            self._closed_here(session, now)
            await self._release_all(session, now, reason="tcc_expired")
            closed.append(session.id)
            self._count("tcc_expired")
        for sid, session in list(self._killed.items()):
            assert session.killed is not None
            if self.sessions.get(sid) is not session:
                del self._killed[sid]  # ended by its CCR-T (or replaced)
            elif session.killed <= now and sid not in self._busy:
                # killed after ASA 2001 and no CCR-T within kill_grace: release the hold
                self.sessions.pop(sid)
                self._closed_here(session, now)
                await self._release_all(session, now, reason="killed")
                closed.append(sid)
                self._count("kill_expired")
        for session in self.offline.expired(now):
            if session.id in busy:  # an ACR of it in progress (Redis): it decides first
                self.offline.add(session)
                continue
            busy[session.id] = None  # (over Redis its account lookup suspends)
            try:
                await self._offline_expire(session, now)
            finally:
                self._next_turn(session.id)
            closed.append(session.id)
        self._offline_forget(now)
        self._ended.forget(now)
        self._forget_answers(now)
        self._forget_retry_tags(now)
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
        await self.end(session_id, now=now, reason="killed")
        self._count("killed")
        return True

    async def end(self, session_id: str, *, now: float, reason: str) -> bool:
        """End an open online session the client no longer has (an ASA other than 2001, a
        RAA 5002 UNKNOWN_SESSION_ID: facts D): forget it, release its holds (one release
        record each, with *reason*) and return once that is durable. A request of the session
        in progress finishes first. False when no such open session."""
        session = self.sessions.get(session_id)
        if session is None:
            return False
        busy = session_id in self._busy
        if busy:
            await self._wait_turn(session_id)  # let a request in progress finish first
        try:
            if self.sessions.get(session_id) is not session:
                return True  # it ended meanwhile (a CCR-T): its hold is already gone
            self.sessions.pop(session_id)
            self._closed_here(session, now)
            await self._release_all(session, now, reason=reason)
        finally:
            if busy:
                self._next_turn(session_id)
        await self.wait_durable(self.durable_mark())
        return True

    def _closed_here(self, session: Session, now: float) -> None:
        """*session*, just taken out of the table, was ended by the server (Tcc, operator
        kill, RAA 5002) at *now* rather than by a request: its last answer stays findable, as
        after a CCR-T, so a retransmission of that request gets it again and changes nothing
        (facts A9) -- not a CCR-I reopening the session around a hold already given back;
        once that answer left the cache, the ended session's record answers a late CCR-I."""
        self._killed.pop(session.id, None)
        self._ended_at(session, now)
        if session.answer is not None:
            self.keep_answer(session.answer_key, session.answer, now)

    def open_sessions(self) -> list[Session]:
        return list(self.sessions) + list(self.offline)

    def recover_ended(self, journal_dir: Path, *, now: float) -> EndedRecovery:
        """Rebuild the ended online sessions' record after a restart: the sessions that ended
        within ``session_retention`` before *now*, from the journal's ``ro_end`` records
        (charging/ended_recovery.py), so a late CCR-I of one is still refused (5002); and the
        tags of the sessions still open at the stop, so a CCR-I of one retransmitted now
        replays its reserve instead of holding the money twice. Call once, before serving."""
        return recover_ended(self._ended, journal_dir, now=now,
                             retention=self.config.session_retention,
                             open_tags=self._retry_tags, hold_ttl=self.config.hold_ttl)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: ChargingRequest, key: str,
                  now: float) -> Coroutine[Any, Any, ChargingResult]:
        """The coroutine that decides *req* (a plain method: one frame less per request)."""
        if req.offline:
            return self._offline(req, key, now)
        verb = req.verb
        if verb is _INITIAL:
            return self._initial(req, key, now)
        if verb is _UPDATE or verb is _TERMINATE:
            session = self._session_of(req.session_id)
            if session is None:
                return _ready(ChargingResult(outcome=Outcome.UNKNOWN_SESSION,
                                             message="no open session"))
            return self._update(session, req, key, now)
        return self._event(req, key, now)

    def _remember(self, req: ChargingRequest, key: str, result: ChargingResult,
                  now: float) -> None:
        """Keep the answer for retransmits (RFC 4006 §5.1.2 / facts B5: same Session-Id and
        CC-Request-Number get the same answer). An open session keeps its last answer in
        place; the previous one moves to the bounded global cache (from *now*, for
        ``session_retention``: keep_answer)."""
        _untrack(result)
        session = self._session_of(req.session_id)
        if session is not None and req.verb is not _EVENT and not req.offline:
            if session.answer is not None and session.answer_n != req.request_number:
                # the previous answer moves to the global cache under its own key
                self.keep_answer(session.answer_key, session.answer, now)
            session.answer_n, session.answer = req.request_number, result
            session.answer_key = key
        else:
            self.keep_answer(key, result, now)


async def _ready(result: ChargingResult) -> ChargingResult:
    return result


_INITIAL, _UPDATE, _TERMINATE, _EVENT = Verb.INITIAL, Verb.UPDATE, Verb.TERMINATE, Verb.EVENT
