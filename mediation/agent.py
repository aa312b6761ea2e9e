"""The Ro/Rf agent: the request handler the Diameter server calls for every application request.

Two hooks, same answers:

- ``agent.respond(request, peer)`` (the server's *responder*, what icx/wiring.py installs):
  synchronous. It translates, runs ``service.decide`` eagerly (``coro.send(None)``: with the
  embedded store the decision is ready without suspending, so no Task and no future), builds
  the answer at once and hands it to ``peer.reply`` from the journal's durability callback
  (``journal.call_when_durable(service.durable_mark(), cb)``, invariant 3: journal before
  answer). A decision that does suspend (Redis) continues in a Task. Without ``decide``/a
  durability hook (older engines) it falls back to ``service.handle`` the same way.
- ``await agent.handle(request, peer) -> answer``: the same through ``service.handle`` (tests,
  tools).

It translates (mediation/ro.py, mediation/rf.py), lets the charging service decide,
translates back, and records metrics. It also remembers which peer carries which session, so the operator API can
send server-initiated RAR (re-auth after a top-up) and ASR (kill) to the right client (facts D).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import structlog

from charging.requests import ChargingRequest, ChargingResult, Outcome, Verb
from charging.service import ChargingService
from cython_ext import load
from diameter.eager import resume as _resume
from diameter.message import Message
from mediation import avp_codes as C
from mediation import rf, ro
from mediation.metrics import BUCKETS, Metrics
from mediation.ro import OUTCOME_RESULT_CODE as OUTCOME_RC
from mediation.ro_wire import CcaWriter
from mediation.service_map import ServiceMap

log = structlog.get_logger("icx.ro")

CMD_NAMES = {272: "CCR", 271: "ACR", 258: "RAR", 274: "ASR", 275: "STR"}

# A sender of server-initiated requests: (peer, avps, command code, app id) -> answer.
Sender = Callable[[Any, int, int, list[Any]], Awaitable[Message | None]]
# journal.call_when_durable(position, callback(exc | None)): the answer waits for it.
WhenDurable = Callable[[Any, Callable[[BaseException | None], None]], None]

_perf_ns = time.perf_counter_ns
_partial = functools.partial
# Outcome -> Result-Code by member identity: an Enum member hashes through a Python-level
# __hash__ (hash of its name) on every dict lookup; id() does not.
_RC_BY_ID = {id(o): rc for o, rc in OUTCOME_RC.items()}
_UNABLE = ChargingResult(outcome=Outcome.UNABLE_TO_COMPLY)
_OUT_OF_SPACE = ChargingResult(outcome=Outcome.OUT_OF_SPACE)


def _select_lane() -> Any:
    """The one selection point of cython_ext/ro_lane.pyx (None: ``respond_py`` only)."""
    ext = load("ro_lane")
    if ext is None or getattr(ext, "ABI", None) != 1:
        return None
    return ext


_LANE = _select_lane()


class ChargingAgent:
    """Answers CCR (Ro, app 4) and ACR (Rf, app 3). Construct once per server."""

    def __init__(self, service: ChargingService, smap: ServiceMap, *, origin_host: str,
                 origin_realm: str, metrics: Metrics | None = None, rf_enabled: bool = True,
                 clock: Callable[[], float] = time.time,
                 when_durable: WhenDurable | None = None, eager: bool = True) -> None:
        """*when_durable*: the journal's ``call_when_durable`` (with a service that has
        ``decide``/``durable_mark``, :meth:`respond` answers from it); None: ``respond``
        answers after ``service.handle``, which waits for durability itself.

        *eager*: start each decision with ``coro.send(None)`` outside any Task. Only for a
        service whose first step never needs ``asyncio.current_task()`` (the embedded store:
        it never suspends); a store that awaits I/O under ``asyncio.timeout`` (redis-py's
        pool) must run in a Task from the start: pass False."""
        self.service = service
        self.smap = smap
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.metrics = metrics or Metrics()
        self.rf_enabled = rf_enabled
        self.clock = clock
        self.peers: dict[str, Any] = {}  # Origin-Host -> peer handle (for RAR/ASR)
        self.sender: Sender | None = None
        # Diameter identity -> its open connection now, or None (the server's peer table):
        # a client that reconnected is reached on its new connection (see _peer_for)
        self.find_peer: Callable[[str], Any] | None = None
        self._ids = itertools.count(int(time.time()) << 20)
        decide = getattr(service, "decide", None)
        # the mark is read once per answer: a C-level getter when the service offers one
        reader = getattr(service, "durable_mark_reader", None)
        mark = reader() if reader is not None else getattr(service, "durable_mark", None)
        self._split = (decide, mark, when_durable) if (
            decide is not None and mark is not None and when_durable is not None) else None
        self._tasks: set[asyncio.Task[None]] = set()
        self.eager = eager
        self._cca = CcaWriter(origin_host, origin_realm)
        self._cca_encode = self._cca.encode
        self._ccr_twin = ro._TWIN.ccr_to_request if ro._TWIN is not None else None
        # respond: the compiled twin of respond_py when it and the compiled translator are
        # built (it hands everything it declines to respond_py)
        self.respond: Callable[[Message, Any], None] = self.respond_py
        # the compiled answer of a CCR decided in a Task (_finish), or None: _decided
        self._lane_decided: Callable[..., None] | None = None
        if _LANE is not None and self._ccr_twin is not None:
            lane = _LANE.Responder(
                self, spec=self.respond_py, twin=self._ccr_twin, encode=self._cca_encode,
                rc_by_id=_RC_BY_ID, resume=_resume, buckets=BUCKETS)
            self.respond = lane
            self._lane_decided = lane.decided

    # ---------------------------------------------------------------- the responder
    def respond_py(self, request: Message, peer: Any) -> None:
        """The Diameter server's responder (``respond``; this is its spec, the compiled twin
        cython_ext/ro_lane.pyx runs when built): answer *request* through ``peer.reply``
        exactly once (now, or when the journal is durable). Never raises for bad input."""
        t0 = _perf_ns()
        code = request.code
        if code == 272:
            try:
                req = None
                twin = self._ccr_twin
                if twin is not None:
                    req = twin(request, self.smap)
                if req is None:
                    req = ro.ccr_to_request(request, self.smap)
            except ro.BadRequest as err:
                log.info("ccr_rejected", result_code=err.result_code, reason=err.message)
                self._reply(peer, request, ro.error_cca(
                    request, err, origin_host=self.origin_host,
                    origin_realm=self.origin_realm), t0)
                return
            host = req.peer_host
            if peer is not None and host and self.peers.get(host) is not peer:
                self.peers[host] = peer
        elif code == 271 and self.rf_enabled:
            try:
                req = rf.acr_to_request(request, self.smap)
            except ro.BadRequest as err:
                self._reply(peer, request, rf.error_aca(
                    request, err, origin_host=self.origin_host,
                    origin_realm=self.origin_realm), t0)
                return
        else:
            protocol_rc = 3007 if code == 271 else 3001
            self._reply(peer, request, ro.answer(
                request, [ro.avp(C.ORIGIN_HOST, self.origin_host),
                          ro.avp(C.ORIGIN_REALM, self.origin_realm),
                          ro.avp(C.RESULT_CODE, protocol_rc)], error=True), t0)
            return
        split = self._split
        coro: Coroutine[Any, Any, ChargingResult]
        if split is not None:
            coro = split[0](req, now=self.clock())
        else:
            coro = self.service.handle(req, now=self.clock())
        if not self.eager:
            self._spawn(self._finish(peer, request, req, coro, t0))
            return
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            result = stop.value
            if split is None:
                self._decided(peer, request, req, result, t0)
                return
            # _decided() inlined (the per-request path): the mark right after decide, the
            # answer now, sent from the durability callback (invariant 3)
            pos = split[1]()
            data = self._cca_encode(request, req, result) if code == 272 else None
            answer = data if data is not None else self._answer_for(request, req, result)
            split[2](pos, _partial(self._durable, peer, request, req, answer, t0,
                                   result.outcome, code))
        except Exception:
            self._decided(peer, request, req, self._failed(req), t0, mark=False)
        else:  # the decision suspended (a session's turn): it continues in a Task
            self._spawn(self._finish(peer, request, req, _resume(coro, yielded), t0))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, peer: Any, request: Message, req: ChargingRequest,
                      rest: Awaitable[ChargingResult], t0: int) -> None:
        try:
            result = await rest
        except Exception:
            self._decided(peer, request, req, self._failed(req), t0, mark=False)
            return
        # no await between decide and the mark: the mark is ours
        lane = self._lane_decided
        if lane is not None and request.code == 272 and self._split is not None:
            lane(peer, request, req, result, t0)  # (its compiled twin: ro_lane.Responder)
            return
        self._decided(peer, request, req, result, t0)

    def _failed(self, req: ChargingRequest) -> ChargingResult:
        log.exception("accounting_failed" if req.offline else "charging_failed",
                      session=req.session_id)
        return _OUT_OF_SPACE if req.offline else _UNABLE

    def _answer_for(self, request: Message, req: ChargingRequest,
                    result: ChargingResult) -> Message | bytes:
        if request.code == 272:
            data = self._cca.encode(request, req, result)  # pre-encoded pieces
            if data is not None:
                return data
            return ro.result_to_cca(request, req, result, origin_host=self.origin_host,
                                    origin_realm=self.origin_realm)
        return rf.result_to_aca(request, result, origin_host=self.origin_host,
                                origin_realm=self.origin_realm)

    def _decided(self, peer: Any, request: Message, req: ChargingRequest,
                 result: ChargingResult, t0: int, mark: bool = True) -> None:
        split = self._split
        if split is None or not mark:
            self._reply(peer, request, self._answer_for(request, req, result), t0,
                        result.outcome, req)
            return
        pos = split[1]()  # read right after decide (before any other await): the contract
        answer = self._answer_for(request, req, result)
        split[2](pos, functools.partial(self._durable, peer, request, req, answer, t0,
                                        result.outcome, request.code))

    def _durable(self, peer: Any, request: Message, req: ChargingRequest,
                 answer: Message | bytes, t0: int, outcome: Outcome, code: int,
                 exc: BaseException | None) -> None:
        if exc is not None:  # the group commit failed: nothing promised, answer 5012/4002
            log.error("journal_failed", session=req.session_id, error=repr(exc))
            result = _OUT_OF_SPACE if req.offline else _UNABLE
            answer, outcome = self._answer_for(request, req, result), result.outcome
        if answer.__class__ is not bytes:  # a Message: it may not encode (_reply sees to it)
            self._reply(peer, request, answer, t0, outcome, req)
            return
        # _reply() inlined (the per-request path); *code* is request.code (read once)
        self.metrics.observe(CMD_NAMES.get(code) or str(code), _RC_BY_ID[id(outcome)],
                             (_perf_ns() - t0) * 1e-9)
        peer.reply(request, answer, t0)

    def _reply(self, peer: Any, request: Message, answer: Message | bytes, t0: int,
               outcome: Outcome | None = None, req: ChargingRequest | None = None) -> None:
        code = request.code
        if peer.reply(request, answer, t0) is False:
            # the Diameter layer could not encode it and answered 5012 instead
            rc: int = 5012
            if req is not None:
                self._unanswered(req)
        elif outcome is not None:
            rc = _RC_BY_ID[id(outcome)]  # Ro and Rf share the one table
        else:
            found = cast(Message, answer).find(C.RESULT_CODE)
            rc = int(found.value) if found is not None else 0
        self.metrics.observe(CMD_NAMES.get(code) or str(code), rc, (_perf_ns() - t0) * 1e-9)

    def _unanswered(self, req: ChargingRequest) -> None:
        """The answer decided for *req* could not be encoded; the client got 5012
        DIAMETER_UNABLE_TO_COMPLY instead (PeerProtocol.reply). For a session request that
        is a failed request of the session (RFC 4006 §7 server state machine, facts B5:
        "UPDATE failed -> debit used units -> Idle"; "if it detects a failure in a session,
        it ends the session and returns the reserved units"): the session is ended and the
        grant the client never heard of is released (release records, reason
        ``answer_unencodable``), instead of holding credit until Tcc. Usage the request
        reported stays committed: it was consumed, and it is in the journal. An EVENT's
        debit and an ACR's record stay as journaled (nothing is held)."""
        if req.offline or req.verb is Verb.EVENT:
            return
        self._spawn(self._end_unanswered(req.session_id))

    async def _end_unanswered(self, session_id: str) -> None:
        try:
            await self.service.end(session_id, now=self.clock(), reason="answer_unencodable")
        except Exception:  # the hold then goes at Tcc, as before
            log.exception("session_end_failed", session=session_id)

    async def handle(self, request: Message, peer: Any = None) -> Message:
        """Answer one request. Never raises for bad input (invariant 5)."""
        t0 = time.perf_counter()
        code = request.code
        if code == 272:
            answer = await self._ccr(request, peer)
        elif code == 271 and self.rf_enabled:
            answer = await self._acr(request)
        else:
            # 3xxx protocol error: generic grammar with the E bit (RFC 6733 §7.1.3). An ACR
            # with [rf] disabled names a known command of an application we do not serve:
            # 3007 APPLICATION_UNSUPPORTED, not 3001 COMMAND_UNSUPPORTED.
            protocol_rc = 3007 if code == 271 else 3001
            answer = ro.answer(request, [ro.avp(C.ORIGIN_HOST, self.origin_host),
                                         ro.avp(C.ORIGIN_REALM, self.origin_realm),
                                         ro.avp(C.RESULT_CODE, protocol_rc)], error=True)
        rc = answer.find(C.RESULT_CODE)
        self.metrics.observe(CMD_NAMES.get(code, str(code)),
                             int(rc.value) if rc is not None else 0,
                             time.perf_counter() - t0)
        return answer

    async def _ccr(self, msg: Message, peer: Any) -> Message:
        try:
            req = ro.ccr_to_request(msg, self.smap)
        except ro.BadRequest as err:
            log.info("ccr_rejected", result_code=err.result_code, reason=err.message)
            return ro.error_cca(msg, err, origin_host=self.origin_host,
                                origin_realm=self.origin_realm)
        if peer is not None and req.peer_host:
            self.peers[req.peer_host] = peer
        try:
            result = await self.service.handle(req, now=self.clock())
        except Exception:  # the engine failed: answer 5012, keep serving (invariant 5)
            log.exception("charging_failed", session=req.session_id)
            result = _UNABLE
        return ro.result_to_cca(msg, req, result, origin_host=self.origin_host,
                                origin_realm=self.origin_realm)

    async def _acr(self, msg: Message) -> Message:
        try:
            req = rf.acr_to_request(msg, self.smap)
        except ro.BadRequest as err:
            return rf.error_aca(msg, err, origin_host=self.origin_host,
                                origin_realm=self.origin_realm)
        try:
            result = await self.service.handle(req, now=self.clock())
        except Exception:
            log.exception("accounting_failed", session=req.session_id)
            result = _OUT_OF_SPACE
        return rf.result_to_aca(msg, result, origin_host=self.origin_host,
                                origin_realm=self.origin_realm)

    # ---------------------------------------------------------------- server-initiated
    async def reauth(self, session_id: str) -> int | None:
        """Send a RAR (AUTHORIZE_ONLY) for an open session; return the RAA Result-Code, or
        None when the session or its peer is unknown / no sender is wired. A RAA 5002
        UNKNOWN_SESSION_ID says the client has no such session any more (facts D): the
        session is ended here too and its holds released (RFC 4006 §5.1.2), instead of
        holding credit until Tcc."""
        rc = await self._server_request(session_id, 258)
        if rc == 5002:
            await self.service.end(session_id, now=self.clock(), reason="unknown_session")
        return rc

    async def abort(self, session_id: str) -> int | None:
        """Send an ASR for an open session; return the ASA Result-Code (facts D)."""
        return await self._server_request(session_id, 274)

    def _peer_for(self, host: str) -> Any:
        """The connection that carries *host*'s sessions: the one its last CCR came on, or --
        when that one has closed -- the open connection of the same Diameter peer (the client
        itself, or the agent relaying for it) if it has reconnected since."""
        peer = self.peers.get(host)
        if peer is None or getattr(peer, "is_open", True) or self.find_peer is None:
            return peer
        via = getattr(peer, "peer_host", None)
        now = self.find_peer(via) if via else None
        if now is None:
            return peer  # (the sender finds it closed: no answer)
        self.peers[host] = now
        return now

    async def _server_request(self, session_id: str, code: int) -> int | None:
        session = self.service.sessions.get(session_id)
        if session is None or self.sender is None:
            return None
        peer = self._peer_for(session.peer_host)
        if peer is None:
            return None
        dest_realm = session.peer_realm or self.origin_realm
        if code == 258:
            avps = ro.build_rar(session_id=session_id, origin_host=self.origin_host,
                                origin_realm=self.origin_realm, dest_host=session.peer_host,
                                dest_realm=dest_realm)
        else:
            avps = ro.build_asr(session_id=session_id, origin_host=self.origin_host,
                                origin_realm=self.origin_realm, dest_host=session.peer_host,
                                dest_realm=dest_realm)
        answer = await self.sender(peer, code, 4, avps)
        if answer is None:
            return None
        rc = answer.find(C.RESULT_CODE)
        return int(rc.value) if rc is not None else None
