"""Pair tests: two sans-IO PeerConnections wired together on a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from diameter.answers import answer_for
from diameter.avp import Avp
from diameter.message import Message, decode_message
from diameter.peer import PeerConnection
from diameter.peer_config import Role
from diameter.peer_events import (
    AnswerReceived,
    CapabilitiesExchanged,
    ConnectionTerminated,
    PeerClosing,
    ProtocolErrorEvent,
    RequestReceived,
    WatchdogStateChanged,
)
from diameter.peer_states import InvalidTransition, PeerState
from diameter.watchdog import WatchdogState
from tests.diameter.peer_helpers import CLIENT, SERVER, Pair, ccr, half, of


def answers_from(raw: bytes) -> list[Message]:
    out = []
    while raw:
        n = int.from_bytes(raw[1:4], "big")
        out.append(decode_message(raw[:n]))
        raw = raw[n:]
    return out


# ---------------------------------------------------------------- capabilities exchange
def test_cer_cea_success() -> None:
    p = Pair()
    p.pump()
    assert p.client.state is PeerState.I_OPEN
    assert p.server.state is PeerState.R_OPEN
    (c,) = of(p.take("client"), CapabilitiesExchanged)
    (s,) = of(p.take("server"), CapabilitiesExchanged)
    assert c.peer_host == "ocs.icx.local" and c.applications == frozenset({4})
    assert s.peer_host == "pgw.client.example" and s.applications == frozenset({4})
    # our CEA lists all our applications and identity (A5)
    cea = c.cer
    assert cea.get("Result-Code") == 2001
    assert [a.value for a in cea.find_all("Auth-Application-Id")] == [4]
    assert [a.value for a in cea.find_all("Acct-Application-Id")] == [3]
    assert [a.value for a in cea.find_all("Supported-Vendor-Id")] == [10415]
    assert cea.get("Product-Name") == "icx" and cea.find("Host-IP-Address") is not None


def test_no_common_application_5010_and_close() -> None:
    gx_only = replace(CLIENT, auth_application_ids=(16777238,), acct_application_ids=())
    p = Pair(client_cfg=gx_only)
    cer = p.client.data_to_send()
    p.server_events += p.server.receive_data(cer, p.now)
    (cea,) = answers_from(p.server.data_to_send())
    assert cea.get("Result-Code") == 5010 and not cea.is_error
    assert of(p.take("server"), ConnectionTerminated)
    assert p.server.terminated
    p.client_events += p.client.receive_data(cea.encode(), p.now)
    assert p.client.terminated and "5010" in p.client.termination_reason


def test_unknown_peer_3010_e_bit_and_close() -> None:
    p = Pair(server_cfg=replace(SERVER, allowed_peers=("trusted.example",)))
    p.server.receive_data(p.client.data_to_send(), p.now)
    (cea,) = answers_from(p.server.data_to_send())
    assert cea.get("Result-Code") == 3010 and cea.is_error
    assert p.server.terminated


def test_allow_list_ignores_ascii_case() -> None:
    p = Pair(server_cfg=replace(SERVER, allowed_peers=("PGW.Client.EXAMPLE",)))
    p.pump()
    assert p.server.is_open


def test_relay_client_gets_all_our_applications() -> None:
    relay = replace(CLIENT, auth_application_ids=(0xFFFFFFFF,))
    p = Pair(client_cfg=relay)
    p.pump()
    (s,) = of(p.take("server"), CapabilitiesExchanged)
    assert s.applications == frozenset({3, 4})


def test_vendor_specific_application_id_negotiates_ignoring_vendor() -> None:
    vsai = replace(
        CLIENT, auth_application_ids=(), vendor_specific_application_ids=((10415, None, 3),)
    )
    p = Pair(client_cfg=vsai)
    p.pump()
    (s,) = of(p.take("server"), CapabilitiesExchanged)
    assert s.applications == frozenset({3})


def _cer_with_vsai(members: list[Avp]) -> bytes:
    cer = Message.request(
        257,
        0,
        [
            Avp.new("Origin-Host", "pgw.client.example"),
            Avp.new("Origin-Realm", "client.example"),
            Avp.new("Host-IP-Address", ipaddress.ip_address("127.0.0.1")),
            Avp.new("Vendor-Id", 0),
            Avp.new("Product-Name", "x"),
            Avp.new("Vendor-Specific-Application-Id", members),
        ],
        hop_by_hop=7,
        end_to_end=9,
    )
    return cer.encode()


@pytest.mark.parametrize(
    ("members", "code", "failed_code"),
    [
        ([Avp.new("Vendor-Id", 10415)], 5005, 258),
        (
            [
                Avp.new("Vendor-Id", 10415),
                Avp.new("Auth-Application-Id", 4),
                Avp.new("Acct-Application-Id", 3),
            ],
            5009,
            259,
        ),
    ],
)
def test_bad_vendor_specific_application_id(
    members: list[Avp], code: int, failed_code: int
) -> None:
    server = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    server.receive_data(_cer_with_vsai(members), 0.0)
    (cea,) = answers_from(server.data_to_send())
    assert cea.get("Result-Code") == code
    assert (cea.hop_by_hop, cea.end_to_end) == (7, 9)
    failed = cea.find("Failed-AVP")
    assert failed is not None and failed.value[0].code == failed_code
    assert server.terminated


def test_inband_tls_only_gets_5017() -> None:
    cer = decode_message(
        _cer_with_vsai([Avp.new("Vendor-Id", 10415), Avp.new("Auth-Application-Id", 4)])
    )
    cer.avps.append(Avp.new("Inband-Security-Id", 1))
    server = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    server.receive_data(cer.encode(), 0.0)
    (cea,) = answers_from(server.data_to_send())
    assert cea.get("Result-Code") == 5017 and server.terminated


def test_first_message_not_a_cer_closes() -> None:
    server = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    events = server.receive_data(ccr().encode(), 0.0)
    assert of(events, ConnectionTerminated)
    assert server.data_to_send() == b""


def test_no_cer_within_timeout_closes() -> None:
    server = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    assert server.get_timer() == 10.0
    assert server.handle_timer(9.0) == []
    (ev,) = of(server.handle_timer(10.0), ConnectionTerminated)
    assert "CER" in ev.reason


def test_no_cea_within_timeout_closes_initiator() -> None:
    client = PeerConnection(CLIENT, Role.INITIATOR, 0.0, rng=half)
    assert client.state is PeerState.WAIT_I_CEA
    assert client.data_to_send()  # the CER
    assert of(client.handle_timer(10.0), ConnectionTerminated)


def test_initiator_waits_for_connection() -> None:
    client = PeerConnection(CLIENT, Role.INITIATOR, 0.0, rng=half, connected=False)
    assert client.state is PeerState.WAIT_CONN_ACK and client.data_to_send() == b""
    client.connection_made(0.1)
    assert client.state is PeerState.WAIT_I_CEA and client.data_to_send()
    failed = PeerConnection(CLIENT, Role.INITIATOR, 0.0, rng=half, connected=False)
    assert of(failed.connection_failed(0.1), ConnectionTerminated)


def test_cer_rejected_by_peer_closes_initiator() -> None:
    p = Pair(server_cfg=replace(SERVER, allowed_peers=("nobody",)))
    p.pump()
    assert p.client.terminated and "3010" in p.client.termination_reason


# ---------------------------------------------------------------- watchdog
def test_dwr_dwa_after_tw_of_silence() -> None:
    p = Pair()
    p.pump()
    p.take("client"), p.take("server")
    p.advance(29.0)
    assert p.take("client") == [] and p.take("server") == []
    p.advance(1.0)  # Tw = 30 s (jitter 0 with the fixed rng): both sides send a DWR, both answer
    assert p.client._watchdog is not None and not p.client._watchdog.pending
    assert p.server._watchdog is not None and not p.server._watchdog.pending
    assert p.client.is_open and p.server.is_open


def test_traffic_postpones_dwr() -> None:
    p = Pair()
    p.pump()
    p.advance(20.0)
    p.client.send_request(ccr(), p.now)
    p.pump()
    assert p.server.get_timer() == pytest.approx(p.now + 30.0)


def test_watchdog_suspect_then_down_closes() -> None:
    p = Pair()
    p.pump()
    p.take("client")
    # the server goes silent: its bytes are never delivered from now on
    now = p.now + 30.0
    p.client.handle_timer(now)
    dwr = p.client.data_to_send()
    assert decode_message(dwr).code == 280
    events = p.client.handle_timer(now + 30.0)
    (ch,) = of(events, WatchdogStateChanged)
    assert ch.new is WatchdogState.SUSPECT and p.client.is_open
    events = p.client.handle_timer(now + 60.0)
    assert any(e.new is WatchdogState.DOWN for e in of(events, WatchdogStateChanged))
    assert of(events, ConnectionTerminated)


def test_suspect_link_fails_back_on_any_traffic() -> None:
    p = Pair()
    p.pump()
    now = p.now + 30.0
    p.client.handle_timer(now)
    p.client.data_to_send()  # DWR lost
    p.client.handle_timer(now + 30.0)
    assert p.client.watchdog_state == "suspect"
    p.now = now + 31.0
    p.server.send_request(
        Message.request(
            258,
            4,
            [
                Avp.new("Session-Id", "s;1"),
                Avp.new("Origin-Host", "ocs.icx.local"),
                Avp.new("Origin-Realm", "icx.local"),
                Avp.new("Destination-Realm", "client.example"),
                Avp.new("Destination-Host", "pgw.client.example"),
                Avp.new("Auth-Application-Id", 4),
                Avp.new("Re-Auth-Request-Type", 0),
            ],
            proxiable=True,
        ),
        p.now,
    )
    p.pump()
    assert p.client.watchdog_state == "okay"


def test_reopened_connection_needs_three_dwa() -> None:
    server = PeerConnection(SERVER, Role.RESPONDER, 0.0, rng=half)
    client = PeerConnection(CLIENT, Role.INITIATOR, 0.0, rng=half, reopen=True)
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send(), 0.0)
    assert client.watchdog_state == "reopen"
    t = 0.0
    for _ in range(3):
        server.receive_data(client.data_to_send(), t)  # DWR
        client.receive_data(server.data_to_send(), t)  # DWA
        if client.watchdog_state == "okay":
            break
        t = client.get_timer() or t
        client.handle_timer(t)
    assert client.watchdog_state == "okay"


# ---------------------------------------------------------------- DPR / DPA
def test_dpr_dpa_client_initiated() -> None:
    p = Pair()
    p.pump()
    p.take("client"), p.take("server")
    p.client_events += p.client.close(p.now, cause=1)
    assert p.client.state is PeerState.CLOSING
    p.pump()
    (closing,) = of(p.take("server"), PeerClosing)
    assert closing.by_peer and closing.disconnect_cause == 1
    assert p.server.state is PeerState.CLOSING and not p.server.terminated
    # the DPA receiver (the client) closes the transport
    assert p.client.terminated and of(p.take("client"), ConnectionTerminated)
    assert of(p.server.connection_lost(p.now), ConnectionTerminated)


def test_dpr_dpa_server_initiated() -> None:
    p = Pair()
    p.pump()
    p.server.close(p.now)
    p.pump()
    assert p.server.terminated and p.client.state is PeerState.CLOSING


def test_crossing_dprs_are_both_answered() -> None:
    p = Pair()
    p.pump()
    p.client.close(p.now)
    p.server.close(p.now)
    p.pump()
    assert p.client.terminated and p.server.terminated


def test_no_dpa_closes_after_timeout() -> None:
    p = Pair()
    p.pump()
    p.client.close(p.now)
    p.client.data_to_send()  # lost
    t = p.client.get_timer()
    assert t == p.now + 5.0
    assert of(p.client.handle_timer(t), ConnectionTerminated)


# ---------------------------------------------------------------- application traffic
def open_pair(**server_kw: object) -> Pair:
    p = Pair(**server_kw)  # type: ignore[arg-type]
    p.pump()
    p.take("client"), p.take("server")
    return p


def test_request_answer_roundtrip() -> None:
    p = open_pair()
    hbh = p.client.send_request(ccr(), p.now)
    p.pump()
    (req,) = of(p.take("server"), RequestReceived)
    assert p.server.inflight == 1
    p.server.send_answer(answer_for(req.message, p.server.me, 2001), p.now)
    p.pump()
    (ans,) = of(p.take("client"), AnswerReceived)
    assert ans.message.hop_by_hop == hbh and ans.request is not None
    assert p.server.inflight == 0


def test_duplicate_gets_stored_answer_handler_not_invoked_twice() -> None:
    p = open_pair()
    original = ccr()
    p.client.send_request(original, p.now)
    p.pump()
    (req,) = of(p.take("server"), RequestReceived)
    # the same request again (same Origin-Host + End-to-End) while the first is in flight
    copy = decode_message(original.encode())
    copy.flags |= 0x10  # T flag
    p.client.send_request(copy, p.now)
    p.pump()
    assert of(p.take("server"), RequestReceived) == []
    assert p.server.duplicates_dropped == 1
    first = answer_for(req.message, p.server.me, 2001, [Avp.new("CC-Request-Number", 0)])
    p.server.send_answer(first, p.now)
    p.pump()
    p.take("client")
    # and once more after the answer: the stored answer comes back, new Hop-by-Hop
    again = decode_message(original.encode())
    hbh = p.client.send_request(again, p.now)
    p.pump()
    assert of(p.take("server"), RequestReceived) == []
    (ans,) = of(p.take("client"), AnswerReceived)
    assert ans.message.hop_by_hop == hbh
    assert ans.message.encode()[16:] == first.encode()[16:]
    assert p.server.duplicates_answered == 1


def test_original_after_t_flagged_copy_is_a_duplicate() -> None:
    p = open_pair()
    t_copy = ccr()
    t_copy.flags |= 0x10
    p.client.send_request(t_copy, p.now)
    p.pump()
    (req,) = of(p.take("server"), RequestReceived)
    p.server.send_answer(answer_for(req.message, p.server.me, 2001), p.now)
    original = decode_message(t_copy.encode())
    original.flags &= ~0x10
    p.client.send_request(original, p.now)
    p.pump()
    assert of(p.take("server"), RequestReceived) == []
    assert p.server.duplicates_answered == 1


def test_too_busy_3004_beyond_inflight_limit() -> None:
    p = open_pair(server_cfg=replace(SERVER, max_inflight=2))
    for i in range(3):
        p.client.send_request(ccr(session=f"pgw.client.example;1;{i}"), p.now)
    p.pump()
    assert len(of(p.take("server"), RequestReceived)) == 2
    (busy,) = of(p.take("client"), AnswerReceived)
    assert busy.message.get("Result-Code") == 3004 and busy.message.is_error
    assert p.server.too_busy == 1


def test_application_not_negotiated_3007() -> None:
    p = open_pair()  # the client advertised only Ro (4)
    acr = Message.request(
        271,
        3,
        [
            Avp.new("Session-Id", "pgw.client.example;9;9"),
            Avp.new("Origin-Host", "pgw.client.example"),
            Avp.new("Origin-Realm", "client.example"),
            Avp.new("Destination-Realm", "icx.local"),
            Avp.new("Accounting-Record-Type", 2),
            Avp.new("Accounting-Record-Number", 0),
        ],
        proxiable=True,
    )
    # fed as raw bytes, as a misbehaving client would send it
    p.server.receive_data(acr.encode(), p.now)
    (ans,) = answers_from(p.server.data_to_send())
    assert ans.get("Result-Code") == 3007 and ans.is_error
    assert ans.avps[0].code == 263  # Session-Id first


def test_unknown_command_3001() -> None:
    p = open_pair()
    msg = Message.request(
        999, 4, [Avp.new("Origin-Host", "pgw.client.example"), Avp.new("Origin-Realm", "x")]
    )
    p.server.receive_data(msg.encode(), p.now)
    (ans,) = answers_from(p.server.data_to_send())
    assert ans.get("Result-Code") == 3001 and ans.is_error and ans.code == 999


def test_missing_avp_5005_with_failed_avp() -> None:
    p = open_pair()
    bad = ccr()
    bad.avps = [a for a in bad.avps if a.code != 415]  # no CC-Request-Number
    bad.hop_by_hop, bad.end_to_end = 0x11, 0x22
    events = p.server.receive_data(bad.encode(), p.now)
    assert of(events, ProtocolErrorEvent)[0].answered
    (ans,) = answers_from(p.server.data_to_send())
    assert ans.get("Result-Code") == 5005 and not ans.is_error
    assert ans.avps[0].code == 263
    assert ans.find("Failed-AVP").value[0].code == 415
    assert (ans.hop_by_hop, ans.end_to_end) == (0x11, 0x22)


def test_fatal_framing_answers_what_it_can_and_aborts() -> None:
    p = open_pair()
    hdr = bytearray(ccr().encode())
    hdr[0] = 2  # version 2: the stream cannot be trusted any more
    events = p.server.receive_data(bytes(hdr), p.now)
    (term,) = of(events, ConnectionTerminated)
    assert term.abort
    assert p.server.receive_data(b"more", p.now) == []


def test_answer_with_unknown_hop_by_hop_is_dropped() -> None:
    p = open_pair()
    stray = ccr().answer([Avp.new("Result-Code", 2001)])
    stray.hop_by_hop = 0xDEAD
    events = p.client.receive_data(stray.encode(), p.now)
    assert not of(events, AnswerReceived) and p.client.answers_dropped == 1


def test_send_request_before_open_is_refused() -> None:
    client = PeerConnection(CLIENT, Role.INITIATOR, 0.0, rng=half)
    with pytest.raises(InvalidTransition):
        client.send_request(ccr(), 0.0)


def test_byte_at_a_time_delivery() -> None:
    p = Pair()
    cer = p.client.data_to_send()
    events = []
    for i in range(len(cer)):
        events += p.server.receive_data(cer[i : i + 1], p.now)
    assert of(events, CapabilitiesExchanged) and p.server.is_open
