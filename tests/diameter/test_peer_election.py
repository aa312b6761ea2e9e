"""RFC 6733 §5.6.4 election: both sides dial each other; exactly one connection survives."""

from __future__ import annotations

from dataclasses import replace

from diameter.peer import PeerConnection
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import CapabilitiesExchanged, Event
from diameter.peer_registry import PeerRegistry
from diameter.peer_states import PeerState
from tests.diameter.peer_helpers import SERVER, half, of

A = replace(SERVER, origin_host="a.example", origin_realm="example")
B = replace(SERVER, origin_host="B.example", origin_realm="example")  # case must not matter


class Node:
    def __init__(self, cfg: PeerConfig) -> None:
        self.cfg = cfg
        self.registry = PeerRegistry()
        self.events: list[Event] = []

    def dial(self, host: str, now: float) -> PeerConnection:
        conn = PeerConnection(
            self.cfg,
            Role.INITIATOR,
            now,
            rng=half,
            registry=self.registry,
            connected=False,
            peer_host=host,
        )
        assert self.registry.owner(host) is conn  # registered by the constructor
        return conn

    def accept(self, now: float) -> PeerConnection:
        return PeerConnection(self.cfg, Role.RESPONDER, now, rng=half, registry=self.registry)


def pump(links: list[tuple[PeerConnection, PeerConnection]], sink: list[Event]) -> None:
    for _ in range(20):
        moved = False
        for x, y in links:
            for src, dst in ((x, y), (y, x)):
                data = src.data_to_send()
                if data and not dst.terminated and not src.terminated:
                    sink.extend(dst.receive_data(data, 0.0))
                    moved = True
        if not moved:
            return


def run_election(first_cer_to: str) -> tuple[list[PeerConnection], list[Event]]:
    a, b = Node(A), Node(B)
    a_i = a.dial("b.example", 0.0)  # link 1: a_i -> b_r
    b_i = b.dial("a.example", 0.0)  # link 2: b_i -> a_r
    b_r = b.accept(0.0)
    a_r = a.accept(0.0)
    a_i.connection_made(0.0)
    b_i.connection_made(0.0)
    sink: list[Event] = []
    cer_a, cer_b = a_i.data_to_send(), b_i.data_to_send()
    # the two CERs cross; the order they are processed in must not change the outcome
    if first_cer_to == "b":
        sink += b_r.receive_data(cer_a, 0.0)
        sink += a_r.receive_data(cer_b, 0.0)
    else:
        sink += a_r.receive_data(cer_b, 0.0)
        sink += b_r.receive_data(cer_a, 0.0)
    conns = [a_i, b_r, b_i, a_r]
    pump([(a_i, b_r), (b_i, a_r)], sink)
    for c in conns:  # a closed transport is seen by the other end
        if c.terminated:
            for x, y in ((a_i, b_r), (b_i, a_r)):
                other = y if c is x else x if c is y else None
                if other is not None and not other.terminated:
                    sink += other.connection_lost(0.0)
    return conns, sink


def test_higher_origin_host_wins_and_closes_the_connection_it_initiated() -> None:
    for order in ("a", "b"):
        (a_i, b_r, b_i, a_r), sink = run_election(order)
        # "b.example" > "a.example": B wins and closes b_i (the one it initiated); the
        # surviving connection is a_i <-> b_r.
        assert a_i.state is PeerState.I_OPEN, order
        assert b_r.state is PeerState.R_OPEN, order
        assert b_i.terminated and a_r.terminated, order
        # both survivors completed the capabilities exchange (CEA processed, timers cleared)
        for conn in (a_i, b_r):
            assert conn.remote is not None and conn.applications == frozenset({3, 4}), order
            assert conn._setup_deadline is None, order
        assert len(of(sink, CapabilitiesExchanged)) >= 1


def test_second_connection_from_an_open_peer_is_rejected() -> None:
    registry = PeerRegistry()
    client_cfg = replace(SERVER, origin_host="pgw.client.example", acct_application_ids=())
    s1 = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half, registry=registry)
    c1 = PeerConnection(client_cfg, Role.INITIATOR, 0.0, rng=half)
    s1.receive_data(c1.data_to_send(), 0.0)
    c1.receive_data(s1.data_to_send(), 0.0)
    assert s1.is_open and c1.is_open
    s2 = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half, registry=registry)
    c2 = PeerConnection(client_cfg, Role.INITIATOR, 0.0, rng=half)
    s2.receive_data(c2.data_to_send(), 0.0)
    assert s2.terminated and "R-Reject" in s2.termination_reason
    assert s1.is_open
    # once the first one is gone the peer may connect again
    s1.connection_lost(0.0)
    s3 = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half, registry=registry)
    c3 = PeerConnection(client_cfg, Role.INITIATOR, 0.0, rng=half)
    s3.receive_data(c3.data_to_send(), 0.0)
    assert s3.is_open


def test_restarted_peer_replaces_its_dead_connection() -> None:
    registry = PeerRegistry()
    before = replace(SERVER, origin_host="pgw.client.example", origin_state_id=100)
    s1 = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half, registry=registry)
    c1 = PeerConnection(before, Role.INITIATOR, 0.0, rng=half)
    s1.receive_data(c1.data_to_send(), 0.0)
    assert s1.is_open
    # the client rebooted (Origin-State-Id went up); its old TCP connection looks alive to us
    after = replace(before, origin_state_id=101)
    s2 = PeerConnection(SERVER, Role.RESPONDER, 1.0, rng=half, registry=registry)
    c2 = PeerConnection(after, Role.INITIATOR, 1.0, rng=half)
    s2.receive_data(c2.data_to_send(), 1.0)
    assert s2.is_open and s1.terminated and "restarted" in s1.termination_reason
    assert registry.owner("pgw.client.example") is s2


def test_new_connection_after_dpr_is_accepted_while_old_one_closes() -> None:
    registry = PeerRegistry()
    client_cfg = replace(SERVER, origin_host="pgw.client.example", acct_application_ids=())
    s1 = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half, registry=registry)
    c1 = PeerConnection(client_cfg, Role.INITIATOR, 0.0, rng=half)
    s1.receive_data(c1.data_to_send(), 0.0)
    c1.receive_data(s1.data_to_send(), 0.0)
    c1.close(0.0)
    s1.receive_data(c1.data_to_send(), 0.0)  # DPR: s1 answers and waits in Closing
    assert s1.state is PeerState.CLOSING
    s2 = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half, registry=registry)
    c2 = PeerConnection(client_cfg, Role.INITIATOR, 0.0, rng=half)
    s2.receive_data(c2.data_to_send(), 0.0)
    assert s2.is_open
