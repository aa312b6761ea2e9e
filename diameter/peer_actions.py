"""The actions of the RFC 6733 §5.6 peer state machine, performed for a PeerConnection.

:func:`do` is called by ``PeerConnection._fire`` for each action the transition table names,
in order. This module is the connection's friend: it reads and sets its private state. The
capabilities exchange (Process-CER, R-Snd-CEA, Process-CEA) and the election live here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diameter import peer_receive
from diameter.answers import answer_for
from diameter.avp import Avp
from diameter.constants import CMD_DEVICE_WATCHDOG, CMD_DISCONNECT_PEER
from diameter.errors import DiameterError
from diameter.message import Message
from diameter.peer_capabilities import build_cer, cea_avps, negotiate, read_capabilities
from diameter.peer_config import Role
from diameter.peer_events import CapabilitiesExchanged, PeerClosing, StateChanged
from diameter.peer_states import Action, PeerInput, PeerState
from diameter.watchdog import WatchdogAction

if TYPE_CHECKING:
    from diameter.peer import PeerConnection

__all__ = ["Abort", "do", "process_cer", "send_cea", "opened", "process_cea", "wins_election"]


class Abort(Exception):
    """Stops the remaining actions of one transition (the connection was refused)."""


# The actions of RFC 6733 §5.6. "R" actions act on the responder connection: ourselves
# when we are it, else the connection routed to us by the registry (`other`) or held
# from an earlier R-Conn-CER (`_partner`).
def do(
    conn: PeerConnection,
    action: Action,
    now: float,
    msg: Message | None,
    other: PeerConnection | None,
    data: bytes | None,
    reason: str,
) -> None:
    r_conn = conn if conn.role is Role.RESPONDER else (other or conn._partner)
    if action is Action.SND_MESSAGE:
        assert data is not None
        conn._out.append(data)
    elif action is Action.PROCESS:
        assert msg is not None
        if msg.is_request:
            peer_receive.process_request(conn, msg, now)
        else:
            peer_receive.process_answer(conn, msg)
    elif action is Action.PROCESS_DWR or action is Action.PROCESS_DWA:
        pass  # the watchdog already saw the message (see _on_frame)
    elif action is Action.SND_DWA:
        assert msg is not None
        conn._send(answer_for(msg, conn.me, 2001))
    elif action is Action.SND_DPR:
        cause = conn._disconnect_cause
        conn._send_base_request(CMD_DISCONNECT_PEER, [Avp.new("Disconnect-Cause", cause)], now)
        conn._closing_deadline = now + conn.config.dpa_timeout_seconds
        conn._events.append(PeerClosing(cause, by_peer=False))
    elif action is Action.SND_DPA:
        assert msg is not None
        conn._send(answer_for(msg, conn.me, 2001))
        conn._closing_deadline = now + conn.config.dpa_timeout_seconds
        conn._events.append(PeerClosing(msg.get("Disconnect-Cause", 0), by_peer=True))
    elif action is Action.DISC:
        conn._terminate(f"{reason}: disconnect")
    elif action is Action.I_SND_CONN_REQ:
        pass  # the adapter connects; it reports connection_made/connection_failed
    elif action is Action.I_SND_CER:
        conn._cer_hbh = conn._next_hbh()
        cer = build_cer(conn.config, conn._cer_hbh, conn._next_e2e())
        conn._pending[conn._cer_hbh] = cer
        conn._send(cer)
        conn._setup_deadline = now + conn.config.cer_timeout_seconds
    elif action is Action.R_ACCEPT:
        if r_conn is not None and r_conn is not conn:
            conn._partner = r_conn
            r_conn._adopted_by = conn
            r_conn._setup_deadline = None  # our own Wait-* timeout governs it now
    elif action is Action.PROCESS_CER:
        assert r_conn is not None
        if r_conn.remote is None:  # an adopted R connection was processed on arrival
            process_cer(r_conn, now)
    elif action is Action.R_SND_CEA:
        assert r_conn is not None
        if r_conn is conn:
            send_cea(conn, now, took_over_from=None)
        else:
            # The peer's machine moves to the R connection (election won, or our own
            # connect failed while the peer's CER waited).
            conn._partner = None
            send_cea(r_conn, now, took_over_from=conn)
            conn._terminate(f"{reason}: the peer continues on its own connection")
    elif action is Action.PROCESS_CEA:
        assert msg is not None
        process_cea(conn, msg, now)
    elif action is Action.ELECT:
        if wins_election(conn):
            conn._fire(PeerInput.WIN_ELECTION, now)
            raise Abort  # WIN_ELECTION already set the final state
    elif action is Action.R_REJECT:
        # always about the *new* connection that brought the R-Conn-CER
        if other is not None and other is not conn:
            other._terminate("R-Reject: the peer already has a connection (RFC 6733 §5.6)")
    elif action is Action.I_DISC:
        if conn.role is Role.INITIATOR:
            conn._terminate(f"{reason}: I-Disc")
    elif action is Action.R_DISC:
        target = conn if conn.role is Role.RESPONDER else conn._partner
        if target is not None:
            if target is conn._partner:
                conn._partner = None
            target._terminate(f"{reason}: R-Disc")
    elif action is Action.CLEANUP or action is Action.ERROR:
        held = conn._partner
        conn._partner = None
        conn._terminate(reason)
        if held is not None and not held.is_open:
            held._terminate(f"{reason} (election abandoned)")
    else:  # pragma: no cover - every Action is handled above
        raise AssertionError(action)


def process_cer(conn: PeerConnection, now: float) -> None:
    """Process-CER on this (responder) connection: allow-list, negotiation (§5.3)."""
    cer = conn._held_cer
    assert cer is not None
    try:
        remote = read_capabilities(cer)
        allowed = conn.config.allowed_peers
        if allowed and remote.origin_host.lower() not in {p.lower() for p in allowed}:
            raise DiameterError(3010, f"unknown peer {remote.origin_host}")
        conn.applications = negotiate(conn.config, remote)
    except DiameterError as err:
        # §5.3 / A6: the CEA carries the error; 3010 and 5010 are followed by a close.
        extra = [] if err.e_bit else cea_avps(conn.config)
        ans = answer_for(
            cer,
            conn.me,
            err.result_code,
            extra,
            error_message=err.message or None,
            failed=err.failed_avp,
        )
        conn._send(ans)
        conn._protocol_error(err, answered=True)
        conn._terminate(f"CER refused with {err.result_code}: {err.message}")
        raise Abort from None
    conn.remote = remote
    conn.peer_host = remote.origin_host


def send_cea(conn: PeerConnection, now: float, *, took_over_from: PeerConnection | None) -> None:
    cer = conn._held_cer
    assert cer is not None and conn.remote is not None
    conn._send(answer_for(cer, conn.me, 2001, cea_avps(conn.config)))
    conn._held_cer = None
    if took_over_from is not None:
        # Election won: this R connection carries the peer from now on (R-Open).
        old = conn.state
        conn.state = PeerState.R_OPEN
        conn._events.append(StateChanged(old, conn.state))
    opened(conn, now, cer)
    if conn.registry is not None:
        conn.registry.opened(conn)
    if took_over_from is not None:
        conn._poke()


def opened(conn: PeerConnection, now: float, their: Message) -> None:
    conn._setup_deadline = None
    assert conn.remote is not None
    conn._events.append(
        CapabilitiesExchanged(
            conn.remote.origin_host, conn.remote.origin_realm, conn.applications, their
        )
    )
    if conn._watchdog is not None:
        old = conn._watchdog.state
        for act in conn._watchdog.connection_up(now, reopen=conn._reopen):
            if act is WatchdogAction.SEND_DWR:
                conn._send_base_request(CMD_DEVICE_WATCHDOG, [], now)
        conn._watchdog_changed(old)


def process_cea(conn: PeerConnection, cea: Message, now: float) -> None:
    conn._pending.pop(cea.hop_by_hop, None)
    conn._cer_hbh = None
    code = cea.get("Result-Code")
    if code != 2001:
        conn._terminate(f"CER rejected by the peer with Result-Code {code}")
        raise Abort
    try:
        remote = read_capabilities(cea)
        conn.applications = negotiate(conn.config, remote)
    except DiameterError as err:
        conn._protocol_error(err)
        conn._terminate(f"CEA unusable: {err}")
        raise Abort from None
    conn.remote = remote
    conn.peer_host = remote.origin_host
    opened(conn, now, cea)
    if conn.registry is not None:
        conn.registry.opened(conn)


def wins_election(conn: PeerConnection) -> bool:
    """§5.6.4: compare Origin-Hosts as octets ignoring ASCII case; the higher one wins."""
    partner = conn._partner
    theirs = partner.remote.origin_host if partner is not None and partner.remote else ""
    return _ascii_lower(conn.me.origin_host) > _ascii_lower(theirs)


def _ascii_lower(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape").lower()
