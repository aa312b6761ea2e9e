"""Receiving for a PeerConnection: classify each frame and feed the transition table.

Friend module of :mod:`diameter.peer` (reads and sets the connection's private state).
Incoming-connection logic (facts A7: the first message must be a CER), base-request
validation, unknown Hop-by-Hop answers (dropped), 3007 for applications not negotiated,
duplicate detection and the in-flight limit (3004) live here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diameter import peer_actions
from diameter.answers import error_answer, patch_hop_by_hop, result_code_of
from diameter.constants import (
    APP_COMMON,
    APP_RELAY,
    CMD_CAPABILITIES_EXCHANGE,
    CMD_DEVICE_WATCHDOG,
    CMD_DISCONNECT_PEER,
)
from diameter.duplicates import Lookup
from diameter.errors import DiameterError
from diameter.message import Message, decode_message
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import AnswerReceived, RequestReceived
from diameter.peer_states import (
    OPEN_STATES,
    TRANSITIONS,
    Action,
    InvalidTransition,
    PeerInput,
    PeerState,
)
from diameter.validate import check_request
from diameter.watchdog import JITTER, WatchdogState

if TYPE_CHECKING:
    from diameter.peer import PeerConnection

__all__ = ["on_frame", "process_request", "process_answer"]

_BASE = (CMD_CAPABILITIES_EXCHANGE, CMD_DEVICE_WATCHDOG, CMD_DISCONNECT_PEER)
_LIVE = OPEN_STATES | {PeerState.CLOSING}
# The fast lane (an application request on an open connection) is derived from the one
# transition table: the states whose Rcv-Message row only processes and stays put. Today
# R-Open and I-Open (RFC 6733 §5.6); a table edit that changes those rows turns it off.
_FAST = tuple(
    s for s in OPEN_STATES
    if TRANSITIONS.get((s, PeerInput.RCV_MESSAGE)) == ((Action.PROCESS,), s)
)
_FAST_A = _FAST[0] if _FAST else None
_FAST_B = _FAST[-1] if _FAST else None
_WD_OKAY = WatchdogState.OKAY
_FLAG_R = 0x80
_ORIGIN_HOST = 264  # RFC 6733 §6.3
_DESTINATION_HOST = 293  # §6.5
_DESTINATION_REALM = 283  # §6.6
# enum members as module constants: an access through the enum class runs EnumType's
# attribute hook (~850 instructions), a global load does not
_MISS, _PENDING = Lookup.MISS, Lookup.PENDING


def on_frame(conn: PeerConnection, frame: bytes, now: float) -> None:
    try:
        msg = decode_message(frame)
    except DiameterError as err:
        answered = conn._answer_error(err)
        conn._protocol_error(err, answered=answered)
        if err.fatal:
            conn._terminate(f"framing lost: {err}", abort=True)
        return
    # One read of the header: each attribute of the compiled Message is a generic (not
    # specialised) attribute lookup for the interpreter, ~300 instructions apiece.
    hdr = msg.header
    code = hdr[2]
    state = conn.state
    if (
        (state is _FAST_A or state is _FAST_B)
        and hdr[1] & _FLAG_R
        and code not in _BASE
        and hdr[3] != APP_COMMON
    ):
        # Fast lane: what the general path below does for an application request on an
        # open connection, without the table lookup and the event plumbing (the row is
        # (state, Rcv-Message) -> Process, state: see _FAST).
        wd = conn._watchdog
        if wd is not None:
            if wd.state is _WD_OKAY:
                # Watchdog.received() in state OKAY for a non-DWA: SetWatchdog (RFC 3539)
                wd.deadline = now + wd.twinit - JITTER + 2 * JITTER * wd._rng()
            else:
                old = wd.state
                wd.received(now, is_dwa=False)
                conn._watchdog_changed(old)
        if conn.config.validate_requests:
            try:
                check_request(msg, header=hdr)  # RFC 6733 §7: 3001/3007/3008/.../5005
            except DiameterError as err:
                conn._protocol_error(err, answered=conn._answer_error(err))
                return
        process_request(conn, msg, now, hdr)
        return
    is_req = msg.is_request

    if state is PeerState.CLOSED:
        # Incoming-connection logic (A7): the first message must be a CER.
        if conn.role is Role.RESPONDER and code == CMD_CAPABILITIES_EXCHANGE and is_req:
            on_first_cer(conn, msg, now)
        else:
            conn._protocol_error(None, f"first message is command {code}, not a CER")
            conn._terminate("first message is not a CER")
        return

    wd = conn._watchdog
    if wd is not None and state in _LIVE:
        old = wd.state
        wd.received(now, is_dwa=(code == CMD_DEVICE_WATCHDOG and not is_req))
        conn._watchdog_changed(old)

    if state is PeerState.WAIT_I_CEA or state is PeerState.WAIT_RETURNS:
        if code == CMD_CAPABILITIES_EXCHANGE and not is_req and msg.hop_by_hop == conn._cer_hbh:
            conn._fire(PeerInput.I_RCV_CEA, now, msg)
        elif state is PeerState.WAIT_I_CEA:
            conn._fire(PeerInput.I_RCV_NON_CEA, now, msg, reason="non-CEA while waiting for CEA")
        else:
            conn._protocol_error(None, f"command {code} while waiting for the CEA")
            conn._terminate("unexpected message during election")
        return

    if is_req:
        if conn.config.validate_requests or code in _BASE or msg.app_id == APP_COMMON:
            try:
                check_request(msg)  # RFC 6733 §7: 3001/3007/3008/3009/5001/5004/5005/...
            except DiameterError as err:
                conn._protocol_error(err, answered=conn._answer_error(err))
                return
        if code == CMD_DEVICE_WATCHDOG:
            event = PeerInput.RCV_DWR
        elif code == CMD_DISCONNECT_PEER:
            event = PeerInput.RCV_DPR
        elif code == CMD_CAPABILITIES_EXCHANGE:
            # A second CER on an open connection: not a new connection, so not R-Conn-CER.
            again = DiameterError(5012, "CER on an already open connection")
            conn._protocol_error(again, answered=answer_error_for(conn, msg, again))
            return
        else:
            event = PeerInput.RCV_MESSAGE
    else:
        if msg.hop_by_hop not in conn._pending:
            # A2: drop any answer with an unknown Hop-by-Hop.
            conn.answers_dropped += 1
            conn._protocol_error(None, f"answer {code} with unknown Hop-by-Hop dropped")
            return
        if code == CMD_DEVICE_WATCHDOG:
            conn._pending.pop(msg.hop_by_hop, None)
            event = PeerInput.RCV_DWA
        elif code == CMD_DISCONNECT_PEER:
            conn._pending.pop(msg.hop_by_hop, None)
            event = PeerInput.RCV_DPA
        else:
            event = PeerInput.RCV_MESSAGE
    try:
        conn._fire(event, now, msg, reason=event.value)
    except InvalidTransition as exc:
        conn._protocol_error(None, str(exc))
        if is_req:
            answer_error_for(conn, msg, DiameterError(5012, str(exc)))


def answer_error_for(conn: PeerConnection, msg: Message, err: DiameterError) -> bool:
    conn._send(error_answer(msg, conn.me, err.result_code, error_message=err.message or None))
    conn.count_error_answer(msg.code, err.result_code)
    return True


def on_first_cer(conn: PeerConnection, cer: Message, now: float) -> None:
    try:
        check_request(cer)
    except DiameterError as err:
        conn._protocol_error(err, answered=conn._answer_error(err))
        conn._terminate(f"invalid CER: {err}")
        return
    conn._held_cer = cer
    host = cer.get("Origin-Host", "")
    owner = conn.registry.owner(host) if conn.registry is not None else None
    if owner is not None and owner is not conn and not owner.terminated:
        if owner.state is PeerState.CLOSING:
            owner = None  # the old connection is on its way out (DPR/DPA done)
        elif owner.is_open and _restarted(owner, cer):
            # RFC 6733 §8.16: a higher Origin-State-Id means the peer rebooted and lost its
            # state, so the open connection we still hold is a dead half-open one. Replace it
            # rather than R-Reject the peer until our watchdog notices (up to 2 Tw).
            owner._terminate("peer restarted (higher Origin-State-Id on a new connection)")
            owner._poke()
            owner = None
    if owner is None or owner is conn or owner.terminated:
        conn._fire(PeerInput.R_CONN_CER, now, cer, reason="R-Conn-CER")
    else:
        # RFC 6733 §5.6: R-Conn-CER belongs to the peer's state machine, which already
        # lives in another connection (an initiator in Wait-*, or an open one).
        try:
            # allow-list and negotiation apply to this connection
            peer_actions.process_cer(conn, now)
        except peer_actions.Abort:
            return
        try:
            owner._fire(PeerInput.R_CONN_CER, now, cer, other=conn, reason="R-Conn-CER")
        except InvalidTransition as exc:
            conn._terminate(f"R-Conn-CER not allowed now: {exc}")
        owner._poke()


def _restarted(owner: PeerConnection, cer: Message) -> bool:
    old = owner.remote.origin_state_id if owner.remote is not None else 0
    new = cer.get("Origin-State-Id", 0) or 0
    return bool(old and isinstance(new, int) and new > old)


def process_request(conn: PeerConnection, msg: Message, now: float,
                    header: tuple[int, int, int, int, int, int] | None = None) -> None:
    """A request the table says to process: 3007, duplicates, 3004, else RequestReceived.
    *header*: ``msg.header`` when the caller already has it."""
    _, _, _, app, hbh, e2e = msg.header if header is None else header
    if app != APP_COMMON and app not in conn.applications and APP_RELAY not in conn.applications:
        # 3007: the application was not advertised/negotiated with this peer (§7.1.3).
        conn._send(
            error_answer(
                msg,
                conn.me,
                3007,
                error_message=f"application {app} not negotiated with this peer",
            )
        )
        conn.count_error_answer(msg.code, 3007)
        return
    cfg = conn.config
    if cfg.served_realms is not None or cfg.served_hosts is not None:
        refused = not_served(cfg, msg)
        if refused is not None:
            conn._send(error_answer(msg, conn.me, refused[0], error_message=refused[1]))
            conn.count_error_answer(msg.code, refused[0])
            return
    host = msg.get(_ORIGIN_HOST, "")  # by code: no name lookup
    # DuplicateCache.key(), inlined (the per-request path)
    key = (host.lower() if host.__class__ is str else "", e2e)
    dups = conn._dups
    inflight = conn._inflight
    busy = len(inflight) >= conn.config.max_inflight or hbh in inflight
    # claim() = lookup() + begin() on a MISS; a request refused with 3004 is only looked up
    hit = dups.lookup(key, now) if busy else dups.claim(key, now)
    if hit is _PENDING:
        conn.duplicates_dropped += 1  # the original's answer is on its way
        return
    if hit is not _MISS:
        assert isinstance(hit, bytes)
        conn.duplicates_answered += 1
        # answered here, never seen by the application: counted with the layer's own
        # answers, so /metrics counts every request answered under its Result-Code
        conn.count_error_answer(msg.code, result_code_of(hit) or 0)
        conn._out.append(patch_hop_by_hop(hit, hbh))
        return
    if busy:
        conn.too_busy += 1
        conn._send(error_answer(msg, conn.me, 3004, error_message="too many requests in flight"))
        conn.count_error_answer(msg.code, 3004)
        return
    inflight[hbh] = key
    conn._events.append(RequestReceived(msg, now))


def not_served(cfg: PeerConfig, msg: Message) -> tuple[int, str] | None:
    """(Result-Code, text) when *msg* is not for local consumption (RFC 6733 §6.1.4: its
    Destination-Host is not ours, or it has none and its Destination-Realm is not served
    here), else None. This node routes nowhere (§6.1.6), so: a Destination-Host that is not
    ours 3002 DIAMETER_UNABLE_TO_DELIVER, a realm not served 3003 DIAMETER_REALM_NOT_SERVED
    (§7.1.3). Names compare case-insensitively (DiameterIdentity, §4.3.1)."""
    dest_host = msg.get(_DESTINATION_HOST)
    hosts = cfg.served_hosts
    if dest_host is not None and hosts is not None:
        if not isinstance(dest_host, str) or dest_host.lower() not in hosts:
            return 3002, f"no route to Destination-Host {dest_host!r}"
    realm = msg.get(_DESTINATION_REALM)
    realms = cfg.served_realms
    if realm is not None and realms is not None and dest_host is None:
        if not isinstance(realm, str) or realm.lower() not in realms:
            return 3003, f"realm {realm!r} is not served here"
    return None


def process_answer(conn: PeerConnection, msg: Message) -> None:
    req = conn._pending.pop(msg.hop_by_hop, None)
    conn._events.append(AnswerReceived(msg, req))
