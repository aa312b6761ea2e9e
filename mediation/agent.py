"""The Ro/Rf agent: the request handler the Diameter server calls for every application request.

``await agent.handle(request, peer) -> answer`` (the hook of icx/wiring.py). It translates
(mediation/ro.py, mediation/rf.py), lets the charging service decide, translates back, and
records metrics. It also remembers which peer carries which session, so the operator API can
send server-initiated RAR (re-auth after a top-up) and ASR (kill) to the right client (facts D).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from charging.requests import Outcome
from charging.service import ChargingService
from diameter.message import Message
from mediation import avp_codes as C
from mediation import rf, ro
from mediation.metrics import Metrics
from mediation.service_map import ServiceMap

log = structlog.get_logger("icx.ro")

CMD_NAMES = {272: "CCR", 271: "ACR", 258: "RAR", 274: "ASR", 275: "STR"}

# A sender of server-initiated requests: (peer, avps, command code, app id) -> answer.
Sender = Callable[[Any, int, int, list[Any]], Awaitable[Message | None]]


class ChargingAgent:
    """Answers CCR (Ro, app 4) and ACR (Rf, app 3). Construct once per server."""

    def __init__(self, service: ChargingService, smap: ServiceMap, *, origin_host: str,
                 origin_realm: str, metrics: Metrics | None = None, rf_enabled: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.smap = smap
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.metrics = metrics or Metrics()
        self.rf_enabled = rf_enabled
        self.clock = clock
        self.peers: dict[str, Any] = {}  # Origin-Host -> peer handle (for RAR/ASR)
        self.sender: Sender | None = None
        self._ids = itertools.count(int(time.time()) << 20)

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
            from charging.requests import ChargingResult
            result = ChargingResult(outcome=Outcome.UNABLE_TO_COMPLY)
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
            from charging.requests import ChargingResult
            result = ChargingResult(outcome=Outcome.OUT_OF_SPACE)
        return rf.result_to_aca(msg, result, origin_host=self.origin_host,
                                origin_realm=self.origin_realm)

    # ---------------------------------------------------------------- server-initiated
    async def reauth(self, session_id: str) -> int | None:
        """Send a RAR (AUTHORIZE_ONLY) for an open session; return the RAA Result-Code, or
        None when the session or its peer is unknown / no sender is wired."""
        return await self._server_request(session_id, 258)

    async def abort(self, session_id: str) -> int | None:
        """Send an ASR for an open session; return the ASA Result-Code (facts D)."""
        return await self._server_request(session_id, 274)

    async def _server_request(self, session_id: str, code: int) -> int | None:
        session = self.service.sessions.get(session_id)
        if session is None or self.sender is None:
            return None
        peer = self.peers.get(session.peer_host)
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
