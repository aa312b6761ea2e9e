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

from diameter.answers import (
    LocalIdentity,
    answer_for,
    answer_from_error,
    error_answer,
    patch_hop_by_hop,
)
from diameter.avp import Avp
from diameter.constants import (
    APP_COMMON,
    APP_RELAY,
    CMD_CAPABILITIES_EXCHANGE,
    CMD_DEVICE_WATCHDOG,
    CMD_DISCONNECT_PEER,
)
from diameter.duplicates import DupKey, DuplicateCache, Lookup
from diameter.errors import DiameterError
from diameter.framing import FrameBuffer
from diameter.message import Message, decode_message
from diameter.peer_capabilities import (
    RemoteCapabilities,
    build_cer,
    cea_avps,
    negotiate,
    read_capabilities,
)
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import (
    AnswerReceived,
    CapabilitiesExchanged,
    ConnectionTerminated,
    Event,
    PeerClosing,
    ProtocolErrorEvent,
    RequestReceived,
    StateChanged,
    WatchdogStateChanged,
)
from diameter.peer_states import (
    OPEN_STATES,
    TRANSITIONS,
    Action,
    InvalidTransition,
    PeerInput,
    PeerState,
    transition,
)
from diameter.validate import check_request
from diameter.watchdog import Watchdog, WatchdogAction

if TYPE_CHECKING:
    from diameter.peer_registry import PeerRegistry

__all__ = ["PeerConnection", "DISCONNECT_REBOOTING", "DISCONNECT_BUSY", "DISCONNECT_DO_NOT_WANT"]

# Disconnect-Cause (273), RFC 6733 §5.4.3
DISCONNECT_REBOOTING = 0
DISCONNECT_BUSY = 1
DISCONNECT_DO_NOT_WANT = 2

_BASE = (CMD_CAPABILITIES_EXCHANGE, CMD_DEVICE_WATCHDOG, CMD_DISCONNECT_PEER)
_LIVE = OPEN_STATES | {PeerState.CLOSING}
_TABLE_KEYS = frozenset(TRANSITIONS)


class _Abort(Exception):
    """Stops the remaining actions of one transition (the connection was refused)."""


class PeerConnection:
    """The RFC 6733 peer state machine for one transport connection (sans-IO)."""

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
                # header was readable, then close at once (RST).
                self._protocol_error(err, answered=self._answer_error(err))
                self._terminate(f"framing lost: {err}", abort=True)
                frames = []
            for frame in frames:
                if self.terminated:
                    break
                self._on_frame(frame, now)
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
            else:
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
            if wd.state.value == "down":
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
        key = self._inflight.pop(answer.hop_by_hop)
        data = answer.encode()
        if key is not None:
            self._dups.complete(key, data)
        if self.terminated or (self.state, PeerInput.SEND_MESSAGE) not in _TABLE_KEYS:
            return False
        self._fire(PeerInput.SEND_MESSAGE, now, data=data)
        return True

    def abandon_request(self, hop_by_hop: int) -> None:
        """Forget a request that will never be answered (handler gave up)."""
        key = self._inflight.pop(hop_by_hop, None)
        if key is not None:
            self._dups.abandon(key)

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
        if self._watchdog is not None and self._watchdog.state.value != "initial":
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
        return True

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
                self._do(action, now, msg, other, data, reason or event.value)
        except _Abort:
            if not self.terminated:
                self.state = old
            return
        if self.terminated:
            return
        if old is not self.state:
            self._events.append(StateChanged(old, self.state))

    # The actions of RFC 6733 §5.6. "R" actions act on the responder connection: ourselves
    # when we are it, else the connection routed to us by the registry (`other`) or held
    # from an earlier R-Conn-CER (`_partner`).
    def _do(
        self,
        action: Action,
        now: float,
        msg: Message | None,
        other: PeerConnection | None,
        data: bytes | None,
        reason: str,
    ) -> None:
        r_conn = self if self.role is Role.RESPONDER else (other or self._partner)
        if action is Action.SND_MESSAGE:
            assert data is not None
            self._out.append(data)
        elif action is Action.PROCESS:
            assert msg is not None
            if msg.is_request:
                self._process_request(msg, now)
            else:
                self._process_answer(msg)
        elif action is Action.PROCESS_DWR or action is Action.PROCESS_DWA:
            pass  # the watchdog already saw the message (see _on_frame)
        elif action is Action.SND_DWA:
            assert msg is not None
            self._send(answer_for(msg, self.me, 2001))
        elif action is Action.SND_DPR:
            cause = self._disconnect_cause
            self._send_base_request(CMD_DISCONNECT_PEER, [Avp.new("Disconnect-Cause", cause)], now)
            self._closing_deadline = now + self.config.dpa_timeout_seconds
            self._events.append(PeerClosing(cause, by_peer=False))
        elif action is Action.SND_DPA:
            assert msg is not None
            self._send(answer_for(msg, self.me, 2001))
            self._closing_deadline = now + self.config.dpa_timeout_seconds
            self._events.append(PeerClosing(msg.get("Disconnect-Cause", 0), by_peer=True))
        elif action is Action.DISC:
            self._terminate(f"{reason}: disconnect")
        elif action is Action.I_SND_CONN_REQ:
            pass  # the adapter connects; it reports connection_made/connection_failed
        elif action is Action.I_SND_CER:
            self._cer_hbh = self._next_hbh()
            cer = build_cer(self.config, self._cer_hbh, self._next_e2e())
            self._pending[self._cer_hbh] = cer
            self._send(cer)
            self._setup_deadline = now + self.config.cer_timeout_seconds
        elif action is Action.R_ACCEPT:
            if r_conn is not None and r_conn is not self:
                self._partner = r_conn
                r_conn._adopted_by = self
                r_conn._setup_deadline = None  # our own Wait-* timeout governs it now
        elif action is Action.PROCESS_CER:
            assert r_conn is not None
            if r_conn.remote is None:  # an adopted R connection was processed on arrival
                r_conn._process_cer(now)
        elif action is Action.R_SND_CEA:
            assert r_conn is not None
            if r_conn is self:
                self._send_cea(now, took_over_from=None)
            else:
                # The peer's machine moves to the R connection (election won, or our own
                # connect failed while the peer's CER waited).
                self._partner = None
                r_conn._send_cea(now, took_over_from=self)
                self._terminate(f"{reason}: the peer continues on its own connection")
        elif action is Action.PROCESS_CEA:
            assert msg is not None
            self._process_cea(msg, now)
        elif action is Action.ELECT:
            if self._wins_election():
                self._fire(PeerInput.WIN_ELECTION, now)
                raise _Abort  # WIN_ELECTION already set the final state
        elif action is Action.R_REJECT:
            # always about the *new* connection that brought the R-Conn-CER
            if other is not None and other is not self:
                other._terminate("R-Reject: the peer already has a connection (RFC 6733 §5.6)")
        elif action is Action.I_DISC:
            if self.role is Role.INITIATOR:
                self._terminate(f"{reason}: I-Disc")
        elif action is Action.R_DISC:
            target = self if self.role is Role.RESPONDER else self._partner
            if target is not None:
                if target is self._partner:
                    self._partner = None
                target._terminate(f"{reason}: R-Disc")
        elif action is Action.CLEANUP or action is Action.ERROR:
            held = self._partner
            self._partner = None
            self._terminate(reason)
            if held is not None and not held.is_open:
                held._terminate(f"{reason} (election abandoned)")
        else:  # pragma: no cover - every Action is handled above
            raise AssertionError(action)

    # ---------------------------------------------------------- capabilities exchange
    def _process_cer(self, now: float) -> None:
        """Process-CER on this (responder) connection: allow-list, negotiation (§5.3)."""
        cer = self._held_cer
        assert cer is not None
        try:
            remote = read_capabilities(cer)
            allowed = self.config.allowed_peers
            if allowed and remote.origin_host.lower() not in {p.lower() for p in allowed}:
                raise DiameterError(3010, f"unknown peer {remote.origin_host}")
            self.applications = negotiate(self.config, remote)
        except DiameterError as err:
            # §5.3 / A6: the CEA carries the error; 3010 and 5010 are followed by a close.
            extra = [] if err.e_bit else cea_avps(self.config)
            ans = answer_for(
                cer,
                self.me,
                err.result_code,
                extra,
                error_message=err.message or None,
                failed=err.failed_avp,
            )
            self._send(ans)
            self._protocol_error(err, answered=True)
            self._terminate(f"CER refused with {err.result_code}: {err.message}")
            raise _Abort from None
        self.remote = remote
        self.peer_host = remote.origin_host

    def _send_cea(self, now: float, *, took_over_from: PeerConnection | None) -> None:
        cer = self._held_cer
        assert cer is not None and self.remote is not None
        self._send(answer_for(cer, self.me, 2001, cea_avps(self.config)))
        self._held_cer = None
        if took_over_from is not None:
            # Election won: this R connection carries the peer from now on (R-Open).
            old = self.state
            self.state = PeerState.R_OPEN
            self._events.append(StateChanged(old, self.state))
        self._opened(now, cer)
        if self.registry is not None:
            self.registry.opened(self)
        if took_over_from is not None:
            self._poke()

    def _opened(self, now: float, their: Message) -> None:
        self._setup_deadline = None
        assert self.remote is not None
        self._events.append(
            CapabilitiesExchanged(
                self.remote.origin_host, self.remote.origin_realm, self.applications, their
            )
        )
        if self._watchdog is not None:
            old = self._watchdog.state
            for act in self._watchdog.connection_up(now, reopen=self._reopen):
                if act is WatchdogAction.SEND_DWR:
                    self._send_base_request(CMD_DEVICE_WATCHDOG, [], now)
            self._watchdog_changed(old)

    def _process_cea(self, cea: Message, now: float) -> None:
        self._pending.pop(cea.hop_by_hop, None)
        self._cer_hbh = None
        code = cea.get("Result-Code")
        if code != 2001:
            self._terminate(f"CER rejected by the peer with Result-Code {code}")
            raise _Abort
        try:
            remote = read_capabilities(cea)
            self.applications = negotiate(self.config, remote)
        except DiameterError as err:
            self._protocol_error(err)
            self._terminate(f"CEA unusable: {err}")
            raise _Abort from None
        self.remote = remote
        self.peer_host = remote.origin_host
        self._opened(now, cea)
        if self.registry is not None:
            self.registry.opened(self)

    def _wins_election(self) -> bool:
        """§5.6.4: compare Origin-Hosts as octets ignoring ASCII case; the higher one wins."""
        partner = self._partner
        theirs = partner.remote.origin_host if partner is not None and partner.remote else ""
        return _ascii_lower(self.me.origin_host) > _ascii_lower(theirs)

    # ---------------------------------------------------------- receiving
    def _on_frame(self, frame: bytes, now: float) -> None:
        try:
            msg = decode_message(frame)
        except DiameterError as err:
            answered = self._answer_error(err)
            self._protocol_error(err, answered=answered)
            if err.fatal:
                self._terminate(f"framing lost: {err}", abort=True)
            return
        code = msg.code
        is_req = msg.is_request
        state = self.state

        if state is PeerState.CLOSED:
            # Incoming-connection logic (A7): the first message must be a CER.
            if self.role is Role.RESPONDER and code == CMD_CAPABILITIES_EXCHANGE and is_req:
                self._on_first_cer(msg, now)
            else:
                self._protocol_error(None, f"first message is command {code}, not a CER")
                self._terminate("first message is not a CER")
            return

        wd = self._watchdog
        if wd is not None and state in _LIVE:
            old = wd.state
            wd.received(now, is_dwa=(code == CMD_DEVICE_WATCHDOG and not is_req))
            self._watchdog_changed(old)

        if state is PeerState.WAIT_I_CEA or state is PeerState.WAIT_RETURNS:
            if code == CMD_CAPABILITIES_EXCHANGE and not is_req and msg.hop_by_hop == self._cer_hbh:
                self._fire(PeerInput.I_RCV_CEA, now, msg)
            elif state is PeerState.WAIT_I_CEA:
                self._fire(
                    PeerInput.I_RCV_NON_CEA, now, msg, reason="non-CEA while waiting for CEA"
                )
            else:
                self._protocol_error(None, f"command {code} while waiting for the CEA")
                self._terminate("unexpected message during election")
            return

        if is_req:
            if self.config.validate_requests or code in _BASE or msg.app_id == APP_COMMON:
                try:
                    check_request(msg)  # RFC 6733 §7: 3001/3007/3008/3009/5001/5004/5005/...
                except DiameterError as err:
                    self._protocol_error(err, answered=self._answer_error(err))
                    return
            if code == CMD_DEVICE_WATCHDOG:
                event = PeerInput.RCV_DWR
            elif code == CMD_DISCONNECT_PEER:
                event = PeerInput.RCV_DPR
            elif code == CMD_CAPABILITIES_EXCHANGE:
                # A second CER on an open connection: not a new connection, so not R-Conn-CER.
                again = DiameterError(5012, "CER on an already open connection")
                self._protocol_error(again, answered=self._answer_error_for(msg, again))
                return
            else:
                event = PeerInput.RCV_MESSAGE
        else:
            if msg.hop_by_hop not in self._pending:
                # A2: drop any answer with an unknown Hop-by-Hop.
                self.answers_dropped += 1
                self._protocol_error(None, f"answer {code} with unknown Hop-by-Hop dropped")
                return
            if code == CMD_DEVICE_WATCHDOG:
                self._pending.pop(msg.hop_by_hop, None)
                event = PeerInput.RCV_DWA
            elif code == CMD_DISCONNECT_PEER:
                self._pending.pop(msg.hop_by_hop, None)
                event = PeerInput.RCV_DPA
            else:
                event = PeerInput.RCV_MESSAGE
        try:
            self._fire(event, now, msg, reason=event.value)
        except InvalidTransition as exc:
            self._protocol_error(None, str(exc))
            if is_req:
                self._answer_error_for(msg, DiameterError(5012, str(exc)))

    def _answer_error_for(self, msg: Message, err: DiameterError) -> bool:
        self._send(error_answer(msg, self.me, err.result_code, error_message=err.message or None))
        return True

    def _on_first_cer(self, cer: Message, now: float) -> None:
        try:
            check_request(cer)
        except DiameterError as err:
            self._protocol_error(err, answered=self._answer_error(err))
            self._terminate(f"invalid CER: {err}")
            return
        self._held_cer = cer
        host = cer.get("Origin-Host", "")
        owner = self.registry.owner(host) if self.registry is not None else None
        if owner is None or owner is self or owner.terminated:
            self._fire(PeerInput.R_CONN_CER, now, cer, reason="R-Conn-CER")
        else:
            # RFC 6733 §5.6: R-Conn-CER belongs to the peer's state machine, which already
            # lives in another connection (an initiator in Wait-*, or an open one).
            try:
                self._process_cer(now)  # allow-list and negotiation apply to this connection
            except _Abort:
                return
            try:
                owner._fire(PeerInput.R_CONN_CER, now, cer, other=self, reason="R-Conn-CER")
            except InvalidTransition as exc:
                self._terminate(f"R-Conn-CER not allowed now: {exc}")
            owner._poke()

    def _process_request(self, msg: Message, now: float) -> None:
        app = msg.app_id
        if (
            app != APP_COMMON
            and app not in self.applications
            and APP_RELAY not in self.applications
        ):
            # 3007: the application was not advertised/negotiated with this peer (§7.1.3).
            self._send(
                error_answer(
                    msg,
                    self.me,
                    3007,
                    error_message=f"application {app} not negotiated with this peer",
                )
            )
            return
        host = msg.get("Origin-Host", "")
        key = DuplicateCache.key(host if isinstance(host, str) else "", msg.end_to_end)
        hit = self._dups.lookup(key, now)
        if hit is Lookup.PENDING:
            self.duplicates_dropped += 1  # the original's answer is on its way
            return
        if hit is not Lookup.MISS:
            assert isinstance(hit, bytes)
            self.duplicates_answered += 1
            self._out.append(patch_hop_by_hop(hit, msg.hop_by_hop))
            return
        if len(self._inflight) >= self.config.max_inflight or msg.hop_by_hop in self._inflight:
            self.too_busy += 1
            self._send(
                error_answer(msg, self.me, 3004, error_message="too many requests in flight")
            )
            return
        self._dups.begin(key, now)
        self._inflight[msg.hop_by_hop] = key
        self._events.append(RequestReceived(msg, now))

    def _process_answer(self, msg: Message) -> None:
        req = self._pending.pop(msg.hop_by_hop, None)
        self._events.append(AnswerReceived(msg, req))


def _ascii_lower(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape").lower()
