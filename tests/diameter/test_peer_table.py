"""The RFC 6733 §5.6 transition table: complete for the RFC's rows, strict for everything else."""

from __future__ import annotations

import pytest

from diameter.peer_states import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    PeerInput,
    PeerState,
    transition,
)


def test_every_state_has_rows() -> None:
    states = {s for s, _ in TRANSITIONS}
    assert states == set(PeerState)


def test_responder_happy_path() -> None:
    actions, nxt = transition(PeerState.CLOSED, PeerInput.R_CONN_CER)
    assert actions == (Action.R_ACCEPT, Action.PROCESS_CER, Action.R_SND_CEA)
    assert nxt is PeerState.R_OPEN
    assert transition(PeerState.R_OPEN, PeerInput.RCV_DWR) == (
        (Action.PROCESS_DWR, Action.SND_DWA),
        PeerState.R_OPEN,
    )
    assert transition(PeerState.R_OPEN, PeerInput.RCV_DPR)[1] is PeerState.CLOSING


def test_initiator_happy_path() -> None:
    state = PeerState.CLOSED
    for event in (PeerInput.START, PeerInput.I_RCV_CONN_ACK, PeerInput.I_RCV_CEA):
        _, state = transition(state, event)
    assert state is PeerState.I_OPEN


def test_election_rows() -> None:
    assert transition(PeerState.WAIT_I_CEA, PeerInput.R_CONN_CER) == (
        (Action.R_ACCEPT, Action.PROCESS_CER, Action.ELECT),
        PeerState.WAIT_RETURNS,
    )
    assert transition(PeerState.WAIT_RETURNS, PeerInput.WIN_ELECTION) == (
        (Action.I_DISC, Action.R_SND_CEA),
        PeerState.R_OPEN,
    )
    assert transition(PeerState.WAIT_RETURNS, PeerInput.I_RCV_CEA) == (
        (Action.R_DISC, Action.PROCESS_CEA),
        PeerState.I_OPEN,
    )


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (PeerState.CLOSED, PeerInput.RCV_MESSAGE),
        (PeerState.CLOSED, PeerInput.RCV_DWR),
        (PeerState.R_OPEN, PeerInput.I_RCV_CEA),
        (PeerState.WAIT_I_CEA, PeerInput.RCV_DWR),
        (PeerState.CLOSING, PeerInput.STOP),
    ],
)
def test_anything_not_in_the_table_is_an_error(state: PeerState, event: PeerInput) -> None:
    with pytest.raises(InvalidTransition) as info:
        transition(state, event)
    assert info.value.state is state and info.value.event is event
