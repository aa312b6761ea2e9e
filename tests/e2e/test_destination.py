"""A request that is not for this node (RFC 6733 §6.1.4) is answered with the protocol error
of a node that routes nowhere (§6.1.6, §7.1.3): another Destination-Realm 3003
DIAMETER_REALM_NOT_SERVED, another Destination-Host 3002 DIAMETER_UNABLE_TO_DELIVER, both
with the E bit (facts A6), nothing charged; names compare case-insensitively. Found by the
load-harness audit: `icx bench diameter --realm other.realm` was charged and answered 2001."""

from __future__ import annotations

import asyncio

from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A, connect, mscc
from tests.e2e.conftest import Server
from tests.e2e.test_malformed import ccr_avps

SUB = "41790000007"


def _ccr(sid: str, realm: str, host: str | None = None) -> Message:
    avps: list[Avp] = [a if a.code != 283 else A("Destination-Realm", realm)
                       for a in ccr_avps(sid)]
    if host is not None:
        avps.append(A("Destination-Host", host))
    return Message.request(272, 4, [*avps, A("Multiple-Services-Indicator", 1),
                                    mscc(100, rsu=("CC-Time", 60))], proxiable=True)


def test_requests_for_another_realm_or_host_are_refused(server: Server) -> None:
    before = server.balance(SUB)

    async def run() -> list[Message]:
        peer = await connect("127.0.0.1", server.port, origin_host="dest.icx.test")
        try:
            return [await peer.request(m) for m in (
                _ccr("dest;1", "other.realm"),
                _ccr("dest;2", "icx.local", host="other.icx.local"),
                _ccr("dest;3", "ICX.Local"),  # ours, in another case: served
                _ccr("dest;4", "other.realm", host="OCS.icx.local"),  # Destination-Host wins
            )]
        finally:
            await peer.close()

    realm, host, ours, by_host = asyncio.run(run())
    assert realm.get("Result-Code") == 3003 and realm.is_error
    assert realm.get("Session-Id") == "dest;1" and realm.get("Origin-Host") == "ocs.icx.local"
    assert host.get("Result-Code") == 3002 and host.is_error
    assert ours.get("Result-Code") == 2001 and not ours.is_error
    assert by_host.get("Result-Code") == 2001
    # only the two served sessions hold money
    amount, reserved = server.balance(SUB)
    assert amount == before[0] and reserved > before[1]
    assert {s["session_id"] for s in server.call(_sessions(server))} == {"dest;3", "dest;4"}


async def _sessions(server: Server) -> list[dict[str, str]]:
    return [{"session_id": s.id} for s in server.running.charging.service.sessions]
