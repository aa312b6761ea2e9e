"""Sans-IO Diameter peer connection (RFC 6733 §5), in the style of h2/h11/aioquic.

One :class:`PeerConnection` per transport connection. It never touches a socket or a clock:

- feed received bytes with :meth:`receive_data` (``now`` is an argument) and act on the
  returned events (:mod:`diameter.peer_events`);
- after every call, write :meth:`data_to_send` to the transport; on
  :class:`~diameter.peer_events.ConnectionTerminated`, flush and close it;
- arm one timer at :meth:`get_timer` and call :meth:`handle_timer` when it fires;
- answer every :class:`~diameter.peer_events.RequestReceived` exactly once with
  :meth:`send_answer` (build it with :mod:`diameter.answers`);
- tell it :meth:`connection_lost` when the transport goes away, :meth:`close` to shut down
  gracefully (DPR/DPA).

CER/CEA, DWR/DWA and DPR/DPA are answered inside; every state change goes through the one
transition table in :mod:`diameter.peer_states`. Protocol errors are answered as RFC 6733 §7
says (:mod:`diameter.answers`); duplicates (Origin-Host + End-to-End-Id) get the stored
answer (:mod:`diameter.duplicates`); requests beyond ``max_inflight`` get 3004.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from diameter import peer_actions, peer_receive
from diameter.answers import (
    LocalIdentity,
    answer_from_error,
    error_answer,
)
from diameter.avp import Avp
from diameter.constants import (
    APP_COMMON,
    CMD_DEVICE_WATCHDOG,
)
from diameter.duplicates import DupKey, DuplicateCache
from diameter.errors import DiameterError
from diameter.framing import FrameBuffer
from diameter.message import Message
from diameter.peer_capabilities import (
    RemoteCapabilities,
)
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import (
    ConnectionTerminated,
    Event,
    ProtocolErrorEvent,
    StateChanged,
    WatchdogStateChanged,
)
from diameter.peer_states import (
    OPEN_STATES,
    TRANSITIONS,
    InvalidTransition,
    PeerInput,
    PeerState,
    transition,
)
from diameter.watchdog import Watchdog, WatchdogAction, WatchdogState

if TYPE_CHECKING:
    from diameter.peer_registry import PeerRegistry

__all__ = ["PeerConnection", "DISCONNECT_REBOOTING", "DISCONNECT_BUSY", "DISCONNECT_DO_NOT_WANT"]

# Disconnect-Cause (273), RFC 6733 §5.4.3
DISCONNECT_REBOOTING = 0
DISCONNECT_BUSY = 1
DISCONNECT_DO_NOT_WANT = 2

_LIVE = OPEN_STATES | {PeerState.CLOSING}
_R_OPEN, _I_OPEN = PeerState.R_OPEN, PeerState.I_OPEN
_TABLE_KEYS = frozenset(TRANSITIONS)


class PeerConnection:
    """The RFC 6733 peer state machine for one transport connection (sans-IO)."""
    # Slots: the compiled lane (cython_ext/ro_lane.pyx) reads the per-request fields at their
    # offsets (slot_layout.pxi); a field not listed here cannot be set.
    __slots__ = (
        "_adopted_by", "_cer_hbh", "_closing_deadline", "_disconnect_cause", "_dups", "_e2e",
        "_events", "_frames", "_hbh", "_held_cer", "_inflight", "_out", "_partner", "_pending",
        "_reopen", "_rng", "_setup_deadline", "_watchdog", "answers_dropped", "answers_unencodable",
        "applications",
        "config", "duplicates_answered", "duplicates_dropped", "error_answers", "me",
        "peer_host", "registry", "remote", "role", "state", "terminated", "termination_reason",
        "too_busy", "wakeup",
    )


    def __init__(
        self,
        config: PeerConfig,
        role: Role,
        now: float,
        *,
        duplicates: DuplicateCache | None = None,
        registry: PeerRegistry | None = None,
        rng: Callable[[], float] | None = None,
        reopen: bool = False,
        connected: bool = True,
        peer_host: str | None = None,
    ) -> None:
        """*role* INITIATOR: we opened the transport (we send the CER); RESPONDER: the peer did.

        An initiator built with ``connected=False`` waits in Wait-Conn-Ack for
        :meth:`connection_made`. *duplicates* may be shared by all connections of a server;
        *registry* (optional) routes a second connection of the same peer into this one's
        state machine (RFC 6733 §5.6.4 election). *reopen*: this connection replaces one whose
        watchdog failed, so three DWR/DWA exchanges are needed before it is trusted (RFC 3539).
        """
        self.config = config
        self.role = role
        self.state = PeerState.CLOSED
        self.me = LocalIdentity(config.origin_host, config.origin_realm, config.origin_state_id)
        self.registry = registry
        self.remote: RemoteCapabilities | None = None
        self.peer_host: str | None = peer_host  # known in advance for an initiator
        self.applications: frozenset[int] = frozenset()
        self.terminated = False
        self.termination_reason = ""
        self.wakeup: Callable[[], None] | None = None  # adapter hook, see _poke()
        # counters (read by metrics)
        self.duplicates_answered = 0
        self.duplicates_dropped = 0
        self.too_busy = 0
        self.answers_dropped = 0
        self.answers_unencodable = 0  # answers replaced by 5012: see answer_unencodable()
        # requests this layer answered itself with an error (validation, 3004, 3007, ...):
        # (command code, Result-Code) -> count; the application never sees them
        self.error_answers: dict[tuple[int, int], int] = {}

        rnd = rng or random.random
        self._rng = rnd
        self._frames = FrameBuffer(config.max_message_size)
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._dups = (
            duplicates
            if duplicates is not None
            else DuplicateCache(config.duplicate_cache_seconds, config.duplicate_cache_entries)
        )
        self._watchdog = (
            Watchdog(config.watchdog_seconds, rnd) if config.watchdog_seconds is not None else None
        )
        self._reopen = reopen
        self._hbh = int(rnd() * 0xFFFFFFFF) & 0xFFFFFFFF
        # RFC 6733 §3: high 12 bits from the clock, low 20 bits random, then incremented.
        self._e2e = ((int(now) & 0xFFF) << 20) | (int(rnd() * 0xFFFFF) & 0xFFFFF)
        self._inflight: dict[int, DupKey | None] = {}  # requests from the peer, by Hop-by-Hop
        self._pending: dict[int, Message] = {}  # our requests awaiting an answer, by Hop-by-Hop
        self._setup_deadline: float | None = None
        self._closing_deadline: float | None = None
        self._cer_hbh: int | None = None
        self._partner: PeerConnection | None = None  # the R connection during an election
        self._adopted_by: PeerConnection | None = None  # the initiator holding our CER
        self._disconnect_cause = DISCONNECT_REBOOTING
        self._held_cer: Message | None = None  # our CER received on an R connection, pending

        if role is Role.RESPONDER:
            self._setup_deadline = now + config.cer_timeout_seconds
        else:
            if registry is not None and peer_host:
                registry.add_initiator(peer_host, self)  # a CER from that peer now elects
            self._fire(PeerInput.START, now)
            self._setup_deadline = now + config.cer_timeout_seconds
            if connected:
                self.connection_made(now)

    # ------------------------------------------------------------------ public API
    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES and not self.terminated

    @property
    def inflight(self) -> int:
        """Requests received from the peer and not answered yet."""
        return len(self._inflight)

    @property
    def watchdog_state(self) -> str | None:
        return self._watchdog.state.value if self._watchdog is not None else None

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes from the transport; return the events they caused."""
        if not self.terminated:
            try:
                frames = self._frames.feed(data)
            except DiameterError as err:
                # Framing is lost (§7, A6): nothing after this can be trusted. Answer if the
                # header was readable, then close (the caller flushes, then closes).
                self._protocol_error(err, answered=self._answer_error(err))
                self._terminate(f"framing lost: {err}", abort=True)
                frames = []
            for frame in frames:
                if self.terminated:
                    break
                peer_receive.on_frame(self, frame, now)
        return self._take_events()

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport now (empties the buffer)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next (absolute time), or None."""
        if self.terminated:
            return None
        t = self._setup_deadline
        c = self._closing_deadline
        if c is not None and (t is None or c < t):
            t = c
        wd = self._watchdog
        if wd is not None and wd.deadline is not None and self.state in _LIVE:
            if t is None or wd.deadline < t:
                t = wd.deadline
        return t

    def handle_timer(self, now: float) -> list[Event]:
        """Run every timer that is due at *now*."""
        if self.terminated:
            return self._take_events()
        if self._setup_deadline is not None and now >= self._setup_deadline:
            self._setup_deadline = None
            if self.state is PeerState.CLOSED:
                self._terminate("no CER within the CER timeout")  # facts A7
            elif (self.state, PeerInput.TIMEOUT) in _TABLE_KEYS:
                self._fire(PeerInput.TIMEOUT, now, reason="capabilities exchange timed out")
        if (
            not self.terminated
            and self._closing_deadline is not None
            and now >= self._closing_deadline
        ):
            self._closing_deadline = None
            if self.state is PeerState.CLOSING:
                self._fire(PeerInput.TIMEOUT, now, reason="no disconnect after DPR/DPA")
        wd = self._watchdog
        if (
            not self.terminated
            and wd is not None
            and wd.deadline is not None
            and now >= wd.deadline
            and self.state in _LIVE
        ):
            old = wd.state
            for act in wd.expire(now):
                if act is WatchdogAction.SEND_DWR:
                    self._send_base_request(CMD_DEVICE_WATCHDOG, [], now)
            self._watchdog_changed(old)
            if wd.state is WatchdogState.DOWN:
                self._terminate("watchdog: no answer to DWR within 2 Tw (RFC 3539)")
        return self._take_events()

    def connection_made(self, now: float) -> list[Event]:
        """Initiator only: the transport is connected (I-Rcv-Conn-Ack): the CER goes out."""
        self._fire(PeerInput.I_RCV_CONN_ACK, now)
        return self._take_events()

    def connection_failed(self, now: float) -> list[Event]:
        """Initiator only: connecting failed (I-Rcv-Conn-Nack)."""
        self._fire(PeerInput.I_RCV_CONN_NACK, now, reason="connect failed")
        return self._take_events()

    def connection_lost(self, now: float) -> list[Event]:
        """The transport closed under us (I-/R-Peer-Disc)."""
        if not self.terminated:
            event = PeerInput.I_PEER_DISC if self.role is Role.INITIATOR else PeerInput.R_PEER_DISC
            if (self.state, event) in _TABLE_KEYS:
                self._fire(event, now, reason="connection lost")
            owner = self._adopted_by
            if owner is not None and owner._partner is self and not owner.terminated:
                # Our CER was held by the peer's initiator machine (election): R-Peer-Disc.
                try:
                    owner._fire(PeerInput.R_PEER_DISC, now, reason="R-Peer-Disc")
                except InvalidTransition:
                    owner._partner = None
                owner._poke()
            self._terminate("connection lost")
        return self._take_events()

    def close(self, now: float, cause: int = DISCONNECT_REBOOTING) -> list[Event]:
        """Shut down gracefully: DPR when open (Stop), else just close."""
        if not self.terminated:
            if self.is_open:
                self._disconnect_cause = cause
                self._fire(PeerInput.STOP, now)
            elif self.state is not PeerState.CLOSING:
                self._terminate("closed locally")
        return self._take_events()

    def send_request(self, request: Message, now: float) -> int:
        """Send an application request; returns its Hop-by-Hop. The answer comes back as
        :class:`AnswerReceived`. Raises InvalidTransition unless the connection is open."""
        transition(self.state, PeerInput.SEND_MESSAGE)  # validate before changing anything
        request.hop_by_hop = self._next_hbh()
        if not request.end_to_end:
            request.end_to_end = self._next_e2e()
        self._pending[request.hop_by_hop] = request
        self._fire(PeerInput.SEND_MESSAGE, now, data=request.encode())
        return request.hop_by_hop

    def send_answer(self, answer: Message, now: float) -> bool:
        """Send the answer to a :class:`RequestReceived` (matched by Hop-by-Hop).

        The encoded answer is stored in the duplicate cache even when the connection has gone
        meanwhile, so a retransmission over another connection gets the same answer. Returns
        False when the bytes could not be sent (connection terminated). Raises KeyError if the
        Hop-by-Hop is not a request awaiting an answer.
        """
        return self.send_answer_bytes(answer.hop_by_hop, answer.encode(), now)

    def send_answer_bytes(self, hop_by_hop: int, data: bytes, now: float) -> bool:
        """:meth:`send_answer` for an answer already encoded (its header must carry the
        request's Hop-by-Hop and End-to-End identifiers)."""
        key = self._inflight.pop(hop_by_hop)
        if key is not None:
            # DuplicateCache.complete() inlined (the per-answer path; same package)
            entries = self._dups._entries
            hit = entries.get(key)
            if hit is not None:
                entries[key] = (hit[0], data)
        state = self.state
        if self.terminated:
            return False
        if state is _R_OPEN or state is _I_OPEN:  # the table's only action: Snd-Message
            self._out.append(data)
            return True
        if (state, PeerInput.SEND_MESSAGE) not in _TABLE_KEYS:
            return False
        self._fire(PeerInput.SEND_MESSAGE, now, data=data)
        return True

    def answer_unencodable(self, request: Message, now: float) -> bytes | None:
        """Answer *request* with DIAMETER_UNABLE_TO_COMPLY because the answer the application
        built for it could not be encoded (a value out of range for its AVP type): call it
        instead of :meth:`send_answer` when ``answer.encode()`` raised. Without it nothing
        would go out, the client would time out (a CCR's grant held until Tcc) and, the
        request staying in flight, its retransmissions would be dropped as pending duplicates.

        The answer is the smallest the command's grammar allows (RFC 6733 §7.1.5, facts A6:
        5012 with the E bit clear): Session-Id, Origin-Host/Realm, Result-Code, the answer's
        other {required} AVPs echoed from the request (a CCA's Auth-Application-Id,
        CC-Request-Type and -Number, so the client can match it), Proxy-Info. It goes into
        the duplicate cache like any answer. Returns its bytes, or None when even that could
        not be encoded (then the request is forgotten: a retransmission is processed afresh)."""
        self.answers_unencodable += 1
        ans = error_answer(request, self.me, 5012, e_bit=False,
                           error_message="the answer could not be encoded")
        try:
            data = ans.encode()
        except Exception:  # noqa: BLE001 -- the request's own echoed AVPs: nothing to send
            self.abandon_request(request.hop_by_hop)
            return None
        self.send_answer_bytes(request.hop_by_hop, data, now)
        return data

    def abandon_request(self, hop_by_hop: int) -> None:
        """Forget a received request that will never be answered (its handler was cancelled),
        so a retransmission is processed instead of being dropped as a pending duplicate."""
        key = self._inflight.pop(hop_by_hop, None)
        if key is not None:
            self._dups.abandon(key)

    def cancel_request(self, hop_by_hop: int) -> None:
        """Stop waiting for the answer to one of our requests (Tx expired); a late answer is
        then dropped like any answer with an unknown Hop-by-Hop."""
        self._pending.pop(hop_by_hop, None)

    # ------------------------------------------------------------------ internals
    def _take_events(self) -> list[Event]:
        ev = self._events
        self._events = []
        return ev

    def _poke(self) -> None:
        """Another connection changed this one (election): let the adapter drain us."""
        if self.wakeup is not None:
            self.wakeup()

    def _next_hbh(self) -> int:
        self._hbh = (self._hbh + 1) & 0xFFFFFFFF
        return self._hbh

    def _next_e2e(self) -> int:
        self._e2e = (self._e2e + 1) & 0xFFFFFFFF
        return self._e2e

    def _terminate(self, reason: str, *, abort: bool = False) -> None:
        if self.terminated:
            return
        self.terminated = True
        self.termination_reason = reason
        old = self.state
        self.state = PeerState.CLOSED
        self._setup_deadline = self._closing_deadline = None
        if self._watchdog is not None and self._watchdog.state is not WatchdogState.INITIAL:
            wold = self._watchdog.state
            self._watchdog.connection_down()
            self._watchdog_changed(wold)
        if old is not PeerState.CLOSED:
            self._events.append(StateChanged(old, PeerState.CLOSED))
        self._events.append(ConnectionTerminated(reason, abort))
        if self.registry is not None:
            self.registry.forget(self)
        self._poke()

    def _watchdog_changed(self, old: object) -> None:
        wd = self._watchdog
        if wd is not None and wd.state is not old:
            self._events.append(WatchdogStateChanged(old, wd.state))  # type: ignore[arg-type]

    def _protocol_error(
        self, err: DiameterError | None, desc: str = "", answered: bool = False
    ) -> None:
        self._events.append(ProtocolErrorEvent(err, desc or (str(err) if err else ""), answered))

    def _answer_error(self, err: DiameterError) -> bool:
        ans = answer_from_error(err, self.me)
        if ans is None:
            return False
        self._out.append(ans.encode())
        self.count_error_answer(ans.code, err.result_code)
        return True

    def count_error_answer(self, code: int, result_code: int) -> None:
        """Count an answer this layer sent itself for a request of command *code* (an error
        answer, or a duplicate's stored answer: the application never saw the request)."""
        key = (code, result_code)
        self.error_answers[key] = self.error_answers.get(key, 0) + 1

    def _send(self, msg: Message) -> None:
        self._out.append(msg.encode())

    def _send_base_request(self, code: int, extra: list[Avp], now: float) -> int:
        hbh = self._next_hbh()
        req = Message.request(
            code,
            APP_COMMON,
            [
                Avp.new("Origin-Host", self.me.origin_host),
                Avp.new("Origin-Realm", self.me.origin_realm),
            ]
            + extra,
            hop_by_hop=hbh,
            end_to_end=self._next_e2e(),
        )
        if code == CMD_DEVICE_WATCHDOG and self.me.origin_state_id:
            req.avps.append(Avp.new("Origin-State-Id", self.me.origin_state_id))  # §5.5.1
        self._pending[hbh] = req
        self._send(req)
        return hbh

    def _fire(
        self,
        event: PeerInput,
        now: float,
        msg: Message | None = None,
        *,
        other: PeerConnection | None = None,
        data: bytes | None = None,
        reason: str = "",
    ) -> None:
        """Feed *event* to the table and perform its actions in order. Raises
        InvalidTransition (nothing changed) when the table has no row for it."""
        actions, nxt = transition(self.state, event)
        old = self.state
        self.state = nxt
        try:
            for action in actions:
                peer_actions.do(self, action, now, msg, other, data, reason or event.value)
        except peer_actions.Abort:
            if not self.terminated:
                self.state = old
            return
        if self.terminated:
            return
        if old is not self.state:
            self._events.append(StateChanged(old, self.state))
