"""Fuzzing the peer: any bytes, whole or byte-at-a-time, give events — never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diameter.peer import PeerConnection
from diameter.peer_config import Role
from diameter.peer_events import ConnectionTerminated, Event
from tests.diameter.peer_helpers import SERVER, Pair, ccr, half

_P = Pair()
CER = _P.client.data_to_send()
_P.server.receive_data(CER, 0.0)
CEA = _P.server.data_to_send()
CCR = ccr().encode()
SEEDS = [CER, CCR, CER + CCR, CEA, CEA + CCR]


def feed(conn: PeerConnection, data: bytes, chunk: int) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        events += conn.receive_data(data[i : i + chunk], 0.0)
        conn.data_to_send()
    return events


def check(events: list[Event], conn: PeerConnection) -> None:
    assert all(isinstance(e, Event) for e in events)
    assert sum(isinstance(e, ConnectionTerminated) for e in events) <= 1
    if conn.terminated:
        assert conn.receive_data(b"\x01\x00\x00\x14" + b"\x00" * 16, 0.0) == []
    assert conn._frames.buffered < SERVER.max_message_size


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), chunk=st.integers(1, 64))
def test_random_bytes_to_a_fresh_responder(data: bytes, chunk: int) -> None:
    conn = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    check(feed(conn, data, chunk), conn)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10_000),
    chunk=st.sampled_from([1, 7, 4096]),
    side=st.sampled_from(["fresh", "open", "initiator"]),
)
def test_mutated_frames(
    seed: bytes, flips: list[tuple[int, int]], cut: int, chunk: int, side: str
) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        data[pos % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    if side == "open":
        p = Pair()
        p.pump()
        conn = p.server
    elif side == "initiator":  # waiting for its CEA
        conn = Pair().client
    else:
        conn = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    check(feed(conn, bytes(data), chunk), conn)
    conn.handle_timer(1e9)  # every timer at once: still no exception
    conn.connection_lost(1e9)
