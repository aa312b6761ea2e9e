"""An answer that cannot be encoded is still answered (RFC 6733 §7.1.5, facts A6/B5), over a
real socket: the Diameter layer sends the minimal 5012 DIAMETER_UNABLE_TO_COMPLY instead of
nothing, and the agent ends the session whose grant the client never heard of.

The encoding step gets a test double: ``mediation.ro.result_to_cca`` (the CCA builder the
agent uses whenever the pre-encoded writers decline, as they do for command-level units)
adds a Validity-Time past Unsigned32 to the answers of the sessions named ``...;poison-N``
for their request of CC-Request-Type N -- what a value out of range for its AVP type did
before (07ad02e: a quota threshold of 10^10)."""

from __future__ import annotations

import asyncio
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from diameter.avp import Avp
from diameter.message import Message, decode_message
from icx.diameter_client import A, ClientPeer, connect, voice_info
from mediation import ro
from tests.e2e.conftest import Server, e2e_settings, serving

SUB = "41790000017"  # 50.00 EUR in the e2e accounts
HOST = "unencodable.icx.test"
_HDR = struct.Struct("!IIIII")


def _poisoned(real: Any) -> Any:
    def result_to_cca(msg: Message, req: Any, result: Any, **kw: Any) -> Message:
        cca = real(msg, req, result, **kw)
        sid = str(msg.get("Session-Id"))
        if sid.endswith(f";poison-{msg.get('CC-Request-Type')}"):
            cca.avps.append(Avp.new("Validity-Time", 2**32))  # an Unsigned32 cannot hold it
        return cca
    return result_to_cca


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setattr(ro, "result_to_cca", _poisoned(ro.result_to_cca))
    with serving(e2e_settings(tmp_path), tmp_path / "data") as srv:
        yield srv


def ccr(sid: str, rtype: int, number: int, *units: Avp) -> Message:
    """A CCR with command-level units (no Multiple-Services-Indicator)."""
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", HOST), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", "32260@3gpp.org"), A("CC-Request-Type", rtype),
        A("CC-Request-Number", number),
        A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", SUB)]),
        *units, voice_info(SUB, "41791234567")], proxiable=True)


def rsu(seconds: int) -> Avp:
    return A("Requested-Service-Unit", [A("CC-Time", seconds)])


def usu(seconds: int) -> Avp:
    return A("Used-Service-Unit", [A("CC-Time", seconds)])


def send(peer: ClientPeer, msg: Message, e2e: int | None = None,
         retransmit: bool = False) -> asyncio.Future[bytes]:
    """*msg* with its own End-to-End id (or *e2e*, T flag when *retransmit*)."""
    body = b"".join(a.encode() for a in msg.avps)
    hbh, fresh = peer.next_ids()
    flags = 0x80 | 0x40 | (0x10 if retransmit else 0)
    header = _HDR.pack((1 << 24) | (20 + len(body)), (flags << 24) | 272, 4, hbh,
                       fresh if e2e is None else e2e)
    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    peer.pending[hbh] = fut
    peer.write(header + body)
    return fut


def metrics(server: Server) -> str:
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def settled(server: Server, want: tuple[int, int]) -> tuple[int, int]:
    """The balance once it is *want* (the release runs after the answer), or after 5 s."""
    deadline = time.monotonic() + 5
    got = server.balance(SUB)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.02)
        got = server.balance(SUB)
    return got


def _is_minimal_5012(frame: bytes, sid: str, rtype: int, number: int) -> None:
    cca = decode_message(frame)
    assert cca.get("Result-Code") == 5012
    assert not cca.flags & 0x20  # E bit clear: a 5xxx in the CCA's own grammar (facts A6)
    assert cca.avps[0].code == 263 and cca.get("Session-Id") == sid
    assert cca.get("Origin-Host") == "ocs.icx.local" and cca.get("Origin-Realm") == "icx.local"
    assert cca.get("Auth-Application-Id") == 4
    assert (cca.get("CC-Request-Type"), cca.get("CC-Request-Number")) == (rtype, number)
    assert cca.find("Granted-Service-Unit") is None and cca.find("Validity-Time") is None


def test_an_unencodable_cca_is_answered_5012_and_its_grant_released(server: Server) -> None:
    """Before: the CCA could not be encoded in the journal's durability callback, nothing
    went out, the client timed out, its retransmission was dropped as a pending duplicate
    and 0.12 EUR stayed held until Tcc."""
    sid = f"{HOST};poison-1"
    frames: list[bytes] = []

    async def main() -> None:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            e2e = peer.next_ids()[1]
            frames.append(await asyncio.wait_for(send(peer, ccr(sid, 1, 0, rsu(60)), e2e), 5))
            # the retransmission gets the same answer from the duplicate cache
            frames.append(await asyncio.wait_for(
                send(peer, ccr(sid, 1, 0, rsu(60)), e2e, retransmit=True), 5))
            # the connection keeps serving
            ok = await peer.request(ccr(f"{HOST};fine", 1, 0, rsu(60)), timeout=5)
            assert ok.get("Result-Code") == 2001
            end = await peer.request(ccr(f"{HOST};fine", 3, 1, usu(60)), timeout=5)
            assert end.get("Result-Code") == 2001
        finally:
            await peer.close()

    with capture_logs() as logs:
        asyncio.run(main())
    first, again = frames
    _is_minimal_5012(first, sid, 1, 0)
    assert again[16:] == first[16:]  # (only the Hop-by-Hop id differs)
    # the grant the client never heard of is released; the other call paid 0.12 EUR
    assert settled(server, (49_880_000, 0)) == (49_880_000, 0)
    releases = [r for r in server.journal()
                if r.get("session") == sid and r.get("type") == "release"]
    assert [r.get("reason") for r in releases] == ["answer_unencodable"], releases
    bad = [e for e in logs if e["event"] == "diameter.answer_unencodable"]
    assert len(bad) == 1 and bad[0]["session"] == sid, bad
    assert bad[0]["avp"] == "Validity-Time=4294967296"
    text = metrics(server)
    assert "icx_diameter_answers_unencodable_total 1\n" in text
    # (the retransmission too: the duplicate cache answered it with the stored 5012)
    assert 'icx_diameter_requests_total{command="CCR",result_code="5012"} 2\n' in text
    assert 'icx_diameter_requests_total{command="CCR",result_code="2001"} 2\n' in text
    assert "icx_diameter_requests_inflight 0\n" in text


def test_an_unencodable_update_keeps_its_usage_and_ends_the_session(server: Server) -> None:
    """RFC 4006 server state machine (facts B5): a failed UPDATE debits the usage it reports
    and ends the session. The client was told 5012, so the new grant is released at once and
    its CCR-T finds no session (5002) instead of being charged against a hold it never saw."""
    sid = f"{HOST};poison-2"

    async def main() -> list[Message]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            return [await peer.request(m, timeout=5) for m in (
                ccr(sid, 1, 0, rsu(60)), ccr(sid, 2, 1, usu(60), rsu(60)))]
        finally:
            await peer.close()

    init, update = asyncio.run(main())
    assert init.get("Result-Code") == 2001
    _is_minimal_5012(update.encode(), sid, 2, 1)
    # 60 s to 41 (0.12 EUR/min) committed, the second minute's hold released
    assert settled(server, (49_880_000, 0)) == (49_880_000, 0)

    async def terminate() -> Message:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            return await peer.request(ccr(sid, 3, 2, usu(0)), timeout=5)
        finally:
            await peer.close()

    assert asyncio.run(terminate()).get("Result-Code") == 5002
    assert server.balance(SUB) == (49_880_000, 0)
