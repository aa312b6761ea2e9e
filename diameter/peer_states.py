"""The RFC 6733 §5.6 peer state machine as ONE transition table (responder and initiator).

``TRANSITIONS[(state, input)] == (actions, next_state)``. Anything not in the table is a
protocol error (:class:`InvalidTransition`), exactly like h2's ``_transitions``: the driver
(:class:`diameter.peer.PeerConnection`) never decides a next state itself, it only looks one up
and performs the named actions in order.

The RFC machine is per *peer* and may span two transport connections during an election (the
one we initiated, "I", and the one the peer initiated, "R"). ``PeerConnection`` runs this table
for the connection it owns; the R-side actions that concern the *other* connection during an
election (``R_ACCEPT``/``R_REJECT``/``R_DISC``/``R_SND_CEA`` while we are an initiator) are
carried out through :class:`diameter.peer_registry.PeerRegistry`.
"""

from __future__ import annotations

import enum


class PeerState(enum.Enum):
    """RFC 6733 §5.6 states."""

    CLOSED = "Closed"
    WAIT_CONN_ACK = "Wait-Conn-Ack"
    WAIT_I_CEA = "Wait-I-CEA"
    WAIT_CONN_ACK_ELECT = "Wait-Conn-Ack/Elect"
    WAIT_RETURNS = "Wait-Returns"
    R_OPEN = "R-Open"
    I_OPEN = "I-Open"
    CLOSING = "Closing"


class PeerInput(enum.Enum):
    """RFC 6733 §5.6 events (the table's inputs)."""

    START = "Start"
    R_CONN_CER = "R-Conn-CER"
    I_RCV_CONN_ACK = "I-Rcv-Conn-Ack"
    I_RCV_CONN_NACK = "I-Rcv-Conn-Nack"
    TIMEOUT = "Timeout"
    I_RCV_CEA = "I-Rcv-CEA"
    I_RCV_NON_CEA = "I-Rcv-Non-CEA"
    I_PEER_DISC = "I-Peer-Disc"
    R_PEER_DISC = "R-Peer-Disc"
    WIN_ELECTION = "Win-Election"
    SEND_MESSAGE = "Send-Message"
    RCV_MESSAGE = "Rcv-Message"  # R-Rcv-Message / I-Rcv-Message
    RCV_DWR = "Rcv-DWR"
    RCV_DWA = "Rcv-DWA"
    RCV_DPR = "Rcv-DPR"
    RCV_DPA = "Rcv-DPA"
    STOP = "Stop"


class Action(enum.Enum):
    """RFC 6733 §5.6 actions, performed in order by the driver."""

    I_SND_CONN_REQ = "I-Snd-Conn-Req"
    I_SND_CER = "I-Snd-CER"
    R_ACCEPT = "R-Accept"
    PROCESS_CER = "Process-CER"
    R_SND_CEA = "R-Snd-CEA"
    PROCESS_CEA = "Process-CEA"
    ELECT = "Elect"
    R_REJECT = "R-Reject"
    I_DISC = "I-Disc"
    R_DISC = "R-Disc"
    CLEANUP = "Cleanup"
    ERROR = "Error"
    SND_MESSAGE = "Snd-Message"
    PROCESS = "Process"
    PROCESS_DWR = "Process-DWR"
    SND_DWA = "Snd-DWA"
    PROCESS_DWA = "Process-DWA"
    SND_DPR = "Snd-DPR"
    SND_DPA = "Snd-DPA"
    DISC = "Disc"  # I-Disc or R-Disc of the connection the event arrived on


class InvalidTransition(Exception):
    """Raised for a (state, input) pair the RFC table does not allow."""

    def __init__(self, state: PeerState, event: PeerInput) -> None:
        self.state = state
        self.event = event
        super().__init__(f"{event.value} is not allowed in state {state.value}")


S = PeerState
In = PeerInput
A = Action

# RFC 6733 §5.6, table in the same order as the RFC. The I-/R- variants of Rcv-Message,
# Rcv-DWR, Rcv-DWA, Rcv-DPR, Rcv-DPA and Send-Message collapse onto one input each because a
# PeerConnection owns one transport: which one ("I" or "R") is implied by the open state.
TRANSITIONS: dict[tuple[PeerState, PeerInput], tuple[tuple[Action, ...], PeerState]] = {
    (S.CLOSED, In.START): ((A.I_SND_CONN_REQ,), S.WAIT_CONN_ACK),
    (S.CLOSED, In.R_CONN_CER): ((A.R_ACCEPT, A.PROCESS_CER, A.R_SND_CEA), S.R_OPEN),
    (S.WAIT_CONN_ACK, In.I_RCV_CONN_ACK): ((A.I_SND_CER,), S.WAIT_I_CEA),
    (S.WAIT_CONN_ACK, In.I_RCV_CONN_NACK): ((A.CLEANUP,), S.CLOSED),
    (S.WAIT_CONN_ACK, In.R_CONN_CER): ((A.R_ACCEPT, A.PROCESS_CER), S.WAIT_CONN_ACK_ELECT),
    (S.WAIT_CONN_ACK, In.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.WAIT_I_CEA, In.I_RCV_CEA): ((A.PROCESS_CEA,), S.I_OPEN),
    (S.WAIT_I_CEA, In.R_CONN_CER): ((A.R_ACCEPT, A.PROCESS_CER, A.ELECT), S.WAIT_RETURNS),
    (S.WAIT_I_CEA, In.I_PEER_DISC): ((A.I_DISC,), S.CLOSED),
    (S.WAIT_I_CEA, In.I_RCV_NON_CEA): ((A.ERROR,), S.CLOSED),
    (S.WAIT_I_CEA, In.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.WAIT_CONN_ACK_ELECT, In.I_RCV_CONN_ACK): ((A.I_SND_CER, A.ELECT), S.WAIT_RETURNS),
    (S.WAIT_CONN_ACK_ELECT, In.I_RCV_CONN_NACK): ((A.R_SND_CEA,), S.R_OPEN),
    (S.WAIT_CONN_ACK_ELECT, In.R_PEER_DISC): ((A.R_DISC,), S.WAIT_CONN_ACK),
    (S.WAIT_CONN_ACK_ELECT, In.R_CONN_CER): ((A.R_REJECT,), S.WAIT_CONN_ACK_ELECT),
    (S.WAIT_CONN_ACK_ELECT, In.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.WAIT_RETURNS, In.WIN_ELECTION): ((A.I_DISC, A.R_SND_CEA), S.R_OPEN),
    (S.WAIT_RETURNS, In.I_PEER_DISC): ((A.I_DISC, A.R_SND_CEA), S.R_OPEN),
    # The RFC row lists only R-Disc; the CEA is of course still processed (Process-CEA).
    (S.WAIT_RETURNS, In.I_RCV_CEA): ((A.R_DISC, A.PROCESS_CEA), S.I_OPEN),
    (S.WAIT_RETURNS, In.R_PEER_DISC): ((A.R_DISC,), S.WAIT_I_CEA),
    (S.WAIT_RETURNS, In.R_CONN_CER): ((A.R_REJECT,), S.WAIT_RETURNS),
    (S.WAIT_RETURNS, In.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.R_OPEN, In.SEND_MESSAGE): ((A.SND_MESSAGE,), S.R_OPEN),
    (S.R_OPEN, In.RCV_MESSAGE): ((A.PROCESS,), S.R_OPEN),
    (S.R_OPEN, In.RCV_DWR): ((A.PROCESS_DWR, A.SND_DWA), S.R_OPEN),
    (S.R_OPEN, In.RCV_DWA): ((A.PROCESS_DWA,), S.R_OPEN),
    (S.R_OPEN, In.R_CONN_CER): ((A.R_REJECT,), S.R_OPEN),
    (S.R_OPEN, In.STOP): ((A.SND_DPR,), S.CLOSING),
    (S.R_OPEN, In.RCV_DPR): ((A.SND_DPA,), S.CLOSING),
    (S.R_OPEN, In.R_PEER_DISC): ((A.R_DISC,), S.CLOSED),
    (S.I_OPEN, In.SEND_MESSAGE): ((A.SND_MESSAGE,), S.I_OPEN),
    (S.I_OPEN, In.RCV_MESSAGE): ((A.PROCESS,), S.I_OPEN),
    (S.I_OPEN, In.RCV_DWR): ((A.PROCESS_DWR, A.SND_DWA), S.I_OPEN),
    (S.I_OPEN, In.RCV_DWA): ((A.PROCESS_DWA,), S.I_OPEN),
    (S.I_OPEN, In.R_CONN_CER): ((A.R_REJECT,), S.I_OPEN),
    (S.I_OPEN, In.STOP): ((A.SND_DPR,), S.CLOSING),
    (S.I_OPEN, In.RCV_DPR): ((A.SND_DPA,), S.CLOSING),
    (S.I_OPEN, In.I_PEER_DISC): ((A.I_DISC,), S.CLOSED),
    # Not in the RFC table, deliberately added: after DPR/DPA, answers to requests already in
    # flight still cross (RFC 6733 §5.4 asks the sender of DPR to stop sending *new* requests,
    # not to drop answers), and a DWR may race the DPR. Anything else in Closing is an error.
    (S.CLOSING, In.SEND_MESSAGE): ((A.SND_MESSAGE,), S.CLOSING),
    (S.CLOSING, In.RCV_MESSAGE): ((A.PROCESS,), S.CLOSING),
    (S.CLOSING, In.RCV_DWR): ((A.PROCESS_DWR, A.SND_DWA), S.CLOSING),
    (S.CLOSING, In.RCV_DWA): ((A.PROCESS_DWA,), S.CLOSING),
    # DPRs that cross (both sides shutting down) are each answered, so each side gets a DPA.
    (S.CLOSING, In.RCV_DPR): ((A.SND_DPA,), S.CLOSING),
    (S.CLOSING, In.RCV_DPA): ((A.DISC,), S.CLOSED),  # I-/R-Rcv-DPA: the DPA receiver closes
    (S.CLOSING, In.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.CLOSING, In.I_PEER_DISC): ((A.I_DISC,), S.CLOSED),
    (S.CLOSING, In.R_PEER_DISC): ((A.R_DISC,), S.CLOSED),
}

OPEN_STATES = frozenset({PeerState.R_OPEN, PeerState.I_OPEN})


def transition(state: PeerState, event: PeerInput) -> tuple[tuple[Action, ...], PeerState]:
    """Look up (actions, next state); raise :class:`InvalidTransition` when not in the table."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None
