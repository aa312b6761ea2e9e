"""The adapter's request hooks without sockets (an in-memory transport): eager handlers (no
Task when the answer is ready), the synchronous responder with deferred replies coalesced into
one write per connection, 5012 on failures, and in-flight accounting (3004) staying exact."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from diameter.answers import answer_for
from diameter.framing import FrameBuffer
from diameter.message import Message, decode_message
from diameter.peer_config import Role
from diameter.transport_protocol import PeerProtocol
from tests.diameter.peer_helpers import SERVER, ccr


class MemTransport:
    """What PeerProtocol uses of a transport; every write is kept separately."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...

    def answers(self) -> list[Message]:
        fb = FrameBuffer(1 << 20)
        return [decode_message(f) for w in self.writes for f in fb.feed(w)]


def cer() -> bytes:
    return Message.request(257, 0, [
        _a("Origin-Host", "pgw.client.example"), _a("Origin-Realm", "client.example"),
        _a("Host-IP-Address", "127.0.0.1"), _a("Vendor-Id", 0), _a("Product-Name", "t"),
        _a("Auth-Application-Id", 4)], hop_by_hop=1, end_to_end=1).encode()


def _a(name: str, value: Any) -> Any:
    from diameter.avp import Avp
    return Avp.new(name, value)


def ccrs(n: int, first: int = 100) -> bytes:
    out = []
    for i in range(n):
        m = ccr(f"pgw.client.example;{first + i}")
        m.hop_by_hop = m.end_to_end = first + i
        out.append(m.encode())
    return b"".join(out)


async def opened(**kw: Any) -> tuple[PeerProtocol, MemTransport]:
    handler = kw.pop("handler", None)
    proto = PeerProtocol(replace(SERVER, **kw.pop("cfg", {})), Role.RESPONDER, handler, **kw)
    tr = MemTransport()
    proto.connection_made(tr)  # type: ignore[arg-type]
    proto.data_received(cer())
    assert proto.is_open
    tr.writes.clear()
    return proto, tr


def test_sync_handler_answers_without_a_task() -> None:
    async def main() -> None:
        async def handle(req: Message, peer: PeerProtocol) -> Message:
            return answer_for(req, peer.conn.me, 2001)  # type: ignore[union-attr]

        proto, tr = await opened(handler=handle, eager_handlers=True)
        proto.data_received(ccrs(3))
        # answered inside data_received: one write for the whole read, no task left
        assert len(tr.writes) == 1 and not proto._tasks
        assert [a.hop_by_hop for a in tr.answers()] == [100, 101, 102]
        assert proto.conn is not None and proto.conn.inflight == 0

    asyncio.run(main())


def test_suspending_handler_continues_in_a_task() -> None:
    async def main() -> None:
        gate = asyncio.get_running_loop().create_future()

        async def handle(req: Message, peer: PeerProtocol) -> Message:
            await asyncio.sleep(0)
            await gate
            return answer_for(req, peer.conn.me, 2001)  # type: ignore[union-attr]

        proto, tr = await opened(handler=handle, eager_handlers=True)
        proto.data_received(ccrs(2))
        assert not tr.writes and len(proto._tasks) == 2
        assert proto.conn is not None and proto.conn.inflight == 2
        gate.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(a.hop_by_hop for a in tr.answers()) == [100, 101]
        assert proto.conn.inflight == 0 and not proto._tasks

    asyncio.run(main())


def test_handler_exception_answers_5012_eager_and_suspended() -> None:
    async def main() -> None:
        async def handle(req: Message, peer: PeerProtocol) -> Message:
            if req.hop_by_hop == 101:
                await asyncio.sleep(0)
            raise RuntimeError("boom")

        proto, tr = await opened(handler=handle, eager_handlers=True)
        proto.data_received(ccrs(2))
        for _ in range(3):
            await asyncio.sleep(0)
        got = {a.hop_by_hop: a.get("Result-Code") for a in tr.answers()}
        assert got == {100: 5012, 101: 5012}

    asyncio.run(main())


def test_deferred_replies_are_coalesced_into_one_write() -> None:
    async def main() -> None:
        held: list[tuple[Message, PeerProtocol]] = []

        def respond(req: Message, peer: PeerProtocol) -> None:
            held.append((req, peer))

        proto, tr = await opened(responder=respond)
        proto.data_received(ccrs(5))
        assert not tr.writes and proto.conn is not None and proto.conn.inflight == 5
        # a "group commit" releases all five in one callback run
        for req, peer in held:
            peer.reply(req, answer_for(req, peer.conn.me, 2001))  # type: ignore[union-attr]
        assert not tr.writes  # written on the next loop turn, together
        await asyncio.sleep(0)
        assert len(tr.writes) == 1
        assert [a.hop_by_hop for a in tr.answers()] == [100, 101, 102, 103, 104]
        assert proto.conn.inflight == 0

    asyncio.run(main())


def test_reply_accepts_encoded_answer_and_feeds_duplicate_cache() -> None:
    async def main() -> None:
        def respond(req: Message, peer: PeerProtocol) -> None:
            ans = answer_for(req, peer.conn.me, 2001)  # type: ignore[union-attr]
            ans.hop_by_hop, ans.end_to_end = req.hop_by_hop, req.end_to_end
            peer.reply(req, ans.encode())

        proto, tr = await opened(responder=respond)
        proto.data_received(ccrs(1))
        assert len(tr.writes) == 1
        # retransmission (same End-to-End, new Hop-by-Hop): the stored bytes, re-correlated
        m = ccr("pgw.client.example;100")
        m.hop_by_hop, m.end_to_end = 555, 100
        proto.data_received(m.encode())
        answers = tr.answers()
        assert [a.hop_by_hop for a in answers] == [100, 555]
        assert answers[1].get("Result-Code") == 2001
        assert proto.conn is not None and proto.conn.duplicates_answered == 1

    asyncio.run(main())


def test_inflight_limit_counts_deferred_replies() -> None:
    async def main() -> None:
        held: list[tuple[Message, PeerProtocol]] = []

        def respond(req: Message, peer: PeerProtocol) -> None:
            held.append((req, peer))

        proto, tr = await opened(responder=respond, cfg={"max_inflight": 3})
        proto.data_received(ccrs(5))
        codes = {a.hop_by_hop: a.get("Result-Code") for a in tr.answers()}
        assert codes == {103: 3004, 104: 3004} and len(held) == 3
        assert proto.conn is not None and proto.conn.too_busy == 2
        for req, peer in held:
            peer.reply(req, answer_for(req, peer.conn.me, 2001))  # type: ignore[union-attr]
        await asyncio.sleep(0)
        assert proto.conn.inflight == 0

    asyncio.run(main())


def test_responder_exception_answers_5012_once() -> None:
    async def main() -> None:
        def respond(req: Message, peer: PeerProtocol) -> None:
            if req.hop_by_hop == 101:  # fails after replying: no second answer
                peer.reply(req, answer_for(req, peer.conn.me, 2001))  # type: ignore[union-attr]
            raise RuntimeError("boom")

        proto, tr = await opened(responder=respond)
        proto.data_received(ccrs(2))
        got = [(a.hop_by_hop, a.get("Result-Code")) for a in tr.answers()]
        assert got == [(100, 5012), (101, 2001)]

    asyncio.run(main())


def test_request_log_line_and_its_switch() -> None:
    from structlog.testing import capture_logs

    async def main(log_requests: bool) -> list[dict[str, Any]]:
        def respond(req: Message, peer: PeerProtocol) -> None:
            peer.reply(req, answer_for(req, peer.conn.me, 2001))  # type: ignore[union-attr]

        with capture_logs() as logs:
            proto, tr = await opened(responder=respond, cfg={"log_requests": log_requests})
            proto.data_received(ccrs(2))
        assert len(tr.answers()) == 2
        return [e for e in logs if e["event"] == "diameter.request"]

    on = asyncio.run(main(True))
    assert [(e["session"], e["result_code"], e["command"]) for e in on] == [
        ("pgw.client.example;100", 2001, 272), ("pgw.client.example;101", 2001, 272)]
    assert asyncio.run(main(False)) == []


def test_default_handlers_run_in_a_task_with_current_task() -> None:
    """Without eager_handlers a handler may use asyncio.timeout() from its first line."""

    async def main() -> None:
        async def handle(req: Message, peer: PeerProtocol) -> Message:
            async with asyncio.timeout(5):
                assert asyncio.current_task() is not None
                await asyncio.sleep(0)
            return answer_for(req, peer.conn.me, 2001)  # type: ignore[union-attr]

        proto, tr = await opened(handler=handle)
        proto.data_received(ccrs(2))
        assert not tr.writes and len(proto._tasks) == 2
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted((a.hop_by_hop, a.get("Result-Code")) for a in tr.answers()) == [
            (100, 2001), (101, 2001)]

    asyncio.run(main())
