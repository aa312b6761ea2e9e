"""The compiled receive lane (cython_ext/ro_lane.pyx ``Lane``) against its spec, the Python
path (PeerConnection.receive_data -> peer_receive.on_frame/process_request ->
PeerProtocol._handle): the same byte stream, cut into reads at random points, must give the
same bytes on the wire, the same responder calls in the same order and the same counters.

The stream mixes what the lane handles itself (new CCRs) with everything it must hand to the
spec: duplicates inside one read and across reads, 3004 at the in-flight limit, 3007 (an
application not negotiated), malformed AVPs (5xxx with Failed-AVP), a request with the E bit
(3008), a DWR, an answer with an unknown Hop-by-Hop, a frame cut across reads and, last, a
framing error (bad version) that closes the connection."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter import transport_protocol
from diameter.answers import answer_for
from diameter.message import Message
from diameter.peer_config import Role
from diameter.transport_protocol import PeerProtocol
from tests.diameter.peer_helpers import SERVER, ccr
from tests.diameter.test_adapter_responder import MemTransport, cer

pytestmark = pytest.mark.skipif(transport_protocol._LANE is None,
                                reason="the compiled receive lane is not built")


def _ccr(i: int, e2e: int, hbh: int, app: int = 4) -> bytes:
    m = ccr(f"pgw.client.example;{i}")
    m.hop_by_hop, m.end_to_end, m.app_id = hbh, e2e, app
    return m.encode()


def _frames(kinds: list[int]) -> list[bytes]:
    out = []
    for i, k in enumerate(kinds):
        hbh = 1000 + i
        if k <= 3:  # a new CCR
            out.append(_ccr(i, 5000 + i, hbh))
        elif k == 4:  # a duplicate of an earlier CCR (same Origin-Host + End-to-End)
            out.append(_ccr(i, 5000 + max(0, i - 3), hbh))
        elif k == 5:  # application not negotiated: 3007
            out.append(_ccr(i, 5000 + i, hbh, app=16777238))
        elif k == 6:  # a malformed AVP: an AVP length past the end (5014 / framing in AVPs)
            b = bytearray(_ccr(i, 5000 + i, hbh))
            b[20 + 5:20 + 8] = (0xFFF0).to_bytes(3, "big")
            out.append(bytes(b))
        elif k == 7:  # the E bit on a request: 3008
            b = bytearray(_ccr(i, 5000 + i, hbh))
            b[4] |= 0x20
            out.append(bytes(b))
        elif k == 8:  # a DWR
            out.append(Message.request(280, 0, [
                _a("Origin-Host", "pgw.client.example"), _a("Origin-Realm", "client.example")],
                hop_by_hop=hbh, end_to_end=5000 + i).encode())
        else:  # an answer nobody asked for: dropped
            m = Message(272, 4, [_a("Origin-Host", "pgw.client.example")], flags=0,
                        hop_by_hop=hbh, end_to_end=5000 + i)
            out.append(m.encode())
    return out


def _a(name: str, value: Any) -> Any:
    from diameter.avp import Avp
    return Avp.new(name, value)


def _run(stream: bytes, cuts: list[int], lane: bool, defer: list[bool]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        seen: list[tuple[int, int]] = []
        loop = asyncio.get_running_loop()

        def responder(req: Message, peer: PeerProtocol) -> None:
            seen.append((req.hop_by_hop, req.end_to_end))
            ans = answer_for(req, peer.conn.me, 2001).encode()  # type: ignore[union-attr]
            if defer[len(seen) % len(defer)]:
                loop.call_soon(peer.reply, req, ans)  # later, like the journal callback
            else:
                peer.reply(req, ans)

        saved = transport_protocol._LANE
        if not lane:
            transport_protocol._LANE = None
        try:
            proto = PeerProtocol(replace(SERVER, max_inflight=4), Role.RESPONDER, None,
                                 responder=responder)
            tr = MemTransport()
            proto.connection_made(tr)  # type: ignore[arg-type]
            proto.data_received(cer())
            assert proto.is_open
            prev = 0
            for c in [*cuts, len(stream)]:
                if c > prev:
                    proto.data_received(stream[prev:c])
                    prev = c
                await asyncio.sleep(0)
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            transport_protocol._LANE = saved
        conn = proto.conn
        assert conn is not None
        return {"wire": b"".join(tr.writes), "seen": seen, "state": conn.state,
                "counters": (conn.duplicates_answered, conn.duplicates_dropped, conn.too_busy,
                             conn.answers_dropped, conn._frames.frames_total),
                "inflight": sorted(conn._inflight), "dups": list(conn._dups._entries),
                "dups_order": list(conn._dups._order)}

    return asyncio.run(main())


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.integers(0, 9), min_size=1, max_size=24),
       cut_points=st.lists(st.floats(0, 1), max_size=6),
       defer=st.lists(st.booleans(), min_size=1, max_size=4),
       bad_tail=st.booleans())
def test_lane_matches_the_python_path(kinds: list[int], cut_points: list[float],
                                      defer: list[bool], bad_tail: bool) -> None:
    stream = b"".join(_frames(kinds))
    if bad_tail:  # a bad version: framing lost, the connection closes
        stream += b"\x02" + stream[1:20]
    cuts = sorted({int(c * len(stream)) for c in cut_points})
    fast = _run(stream, cuts, True, defer)
    spec = _run(stream, cuts, False, defer)
    assert fast == spec


def test_lane_handles_plain_ccrs_itself() -> None:
    """The common case really takes the lane (not the spec it falls back to)."""
    calls: list[int] = []
    spec = transport_protocol.PeerConnection.receive_data

    def counting(self: Any, data: bytes, now: float) -> Any:
        calls.append(len(data))
        return spec(self, data, now)

    stream = b"".join(_frames([0, 1, 2, 3]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transport_protocol.PeerConnection, "receive_data", counting)
        out = _run(stream, [], True, [True])
    assert calls == [] and len(out["seen"]) == 4
    assert out["wire"].count(b"\x01") >= 4


def test_lane_keeps_duplicate_entries_out_of_the_collector() -> None:
    """The duplicate cache's (host, End-to-End) keys and (time, answer) entries made by the
    lane are untracked at once (cython_ext/gc_untrack.pxi): they are atomic tuples, kept for
    minutes, and each young collection would otherwise walk them once."""
    import gc

    entries: list[Any] = []

    def keep(self: Any, data: bytes, now: float) -> Any:  # pragma: no cover - must not run
        raise AssertionError("the lane handed a plain CCR to the spec")

    async def main() -> None:
        proto = PeerProtocol(SERVER, Role.RESPONDER, None,
                             responder=lambda req, peer: entries.append(peer))
        proto.connection_made(MemTransport())  # type: ignore[arg-type]
        proto.data_received(cer())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(transport_protocol.PeerConnection, "receive_data", keep)
            proto.data_received(b"".join(_frames([0, 1, 2, 3])))
        await asyncio.sleep(0)
        conn = proto.conn
        assert conn is not None
        items = list(conn._dups._entries.items())
        assert len(items) == 4 and len(entries) == 4
        assert not any(gc.is_tracked(k) or gc.is_tracked(v) for k, v in items)

    asyncio.run(main())


def test_lane_reads_the_connection_fields_by_offset() -> None:
    """The lane reads the per-request fields of these classes at their slot offsets
    (cython_ext/slot_layout.pxi); a class that lost its __slots__ or a field silently falls
    back to names (correct but slower): this says which."""
    assert transport_protocol._LANE.layouts_known() == {  # type: ignore[union-attr]
        "PeerConnection": True, "PeerProtocol": True, "DuplicateCache": True,
        "Watchdog": True, "FrameBuffer": True}

