"""Malformed input on the wire is answered with the protocol's error and the peer keeps being
served (invariant 5): a Multiple-Services-Credit-Control whose member overruns the group, a
CCR for a service without a tariff (5031)."""

from __future__ import annotations

import asyncio
import struct

from diameter.avp import Avp
from diameter.message import Message, decode_message
from icx.diameter_client import A, connect, mscc, voice_info
from tests.e2e.conftest import Server


def ccr_avps(sid: str, context: str = "32260@3gpp.org") -> list[Avp]:
    return [A("Session-Id", sid), A("Origin-Host", "bad.icx.test"), A("Origin-Realm", "icx.test"),
            A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
            A("Service-Context-Id", context), A("CC-Request-Type", 1), A("CC-Request-Number", 0),
            A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", "41790000007")]),
            voice_info("41790000007", "41791234567")]


def broken_mscc() -> bytes:
    """MSCC { Rating-Group 1, RSU { CC-Time with Length 40 in a 12-byte AVP } }."""
    cc_time = struct.pack("!II", 420, (0x40 << 24) | 40) + (60).to_bytes(4, "big")
    rsu = struct.pack("!II", 437, (0x40 << 24) | (8 + len(cc_time))) + cc_time
    rg = A("Rating-Group", 1).encode()
    body = rg + rsu
    return struct.pack("!II", 456, (0x40 << 24) | (8 + len(body))) + body


def test_malformed_mscc_and_unknown_context_then_service_continues(server: Server) -> None:
    async def run() -> list[Message]:
        peer = await connect("127.0.0.1", server.port, origin_host="bad.icx.test")
        try:
            bad = b"".join(a.encode() for a in ccr_avps("bad;1")) + broken_mscc()
            fut = peer.send_raw(bad, 272, 4)
            assert fut is not None
            a1 = decode_message(await asyncio.wait_for(fut, 10))
            # MMS (32270): the demo deck has no MMS tariff -> 5031 with Failed-AVP
            a2 = await peer.request(Message.request(
                272, 4, [*ccr_avps("bad;2", context="32270@3gpp.org"),
                         A("Multiple-Services-Indicator", 1),
                         mscc(100, rsu=("CC-Time", 60))], proxiable=True))
            a3 = await peer.request(Message.request(
                272, 4, [*ccr_avps("good;1"), A("Multiple-Services-Indicator", 1),
                         mscc(100, rsu=("CC-Time", 60))], proxiable=True))
            return [a1, a2, a3]
        finally:
            await peer.close()

    a1, a2, a3 = asyncio.run(run())
    # A member overrunning its Grouped AVP is a bad AVP length (RFC 6733 §7.1.5: 5014), a
    # permanent failure: no E bit (§7.1.3), in both codec modes.
    assert a1.get("Result-Code") == 5014 and a1.find("Failed-AVP") is not None
    assert not a1.is_error and not a1.is_request
    assert not a2.is_error and a2.get("CC-Request-Type") == 1 and a2.get("CC-Request-Number") == 0
    assert a1.get("Session-Id") == "bad;1"
    assert a2.get("Result-Code") == 5031 and a2.find("Failed-AVP") is not None
    assert a3.get("Result-Code") == 2001
    assert server.balance("41790000007") == (50_000_000, 120_000)
