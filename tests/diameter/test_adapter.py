"""The asyncio adapter on real sockets (127.0.0.1, free port): server, client, handler, DPR."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import pytest
from structlog.testing import capture_logs

from diameter.adapter import (
    DiameterServer,
    PeerProtocol,
    PersistentPeer,
    TransportUnavailable,
    connect,
)
from diameter.answers import answer_for
from diameter.avp import Avp
from diameter.message import Message, decode_message
from diameter.peer import PeerConnection
from diameter.peer_config import Role
from diameter.transport_sctp import sctp_unavailable_reason
from tests.diameter.peer_helpers import CLIENT, SERVER, ccr


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def serving(handler: Any = None, **cfg: Any) -> DiameterServer:
    server = DiameterServer(replace(SERVER, **cfg), handler, host="127.0.0.1", port=0)
    await server.start()
    return server


def test_handlerless_server_answers_3001_and_dpr_on_close() -> None:
    async def main() -> None:
        server = await serving()
        client = await connect(CLIENT, "127.0.0.1", server.port)
        assert client.is_open and client.applications == frozenset({4})
        ans = await client.request(ccr())
        assert ans.get("Result-Code") == 3001 and ans.is_error
        assert "pgw.client.example" in server.peers
        await server.close()
        assert await asyncio.wait_for(client.closed, 5)
        assert not server.peers

    run(main())


def test_handler_answers_and_logs_one_canonical_line() -> None:
    seen: list[PeerProtocol] = []

    async def handle(request: Message, peer: PeerProtocol) -> Message:
        seen.append(peer)
        return answer_for(request, peer.conn.me, 2001)  # type: ignore[union-attr]

    async def main() -> None:
        server = await serving(handle)
        client = await connect(CLIENT, "127.0.0.1", server.port)
        with capture_logs() as logs:
            ans = await client.request(ccr(session="pgw.client.example;7;7"))
        assert ans.get("Result-Code") == 2001 and not ans.is_error
        assert seen and seen[0].peer_host == "pgw.client.example"
        lines = [e for e in logs if e["event"] == "diameter.request"]
        assert len(lines) == 1
        line = lines[0]
        assert line["session"] == "pgw.client.example;7;7" and line["result_code"] == 2001
        assert line["command"] == 272 and line["peer"] == "pgw.client.example"
        assert isinstance(line["elapsed_us"], int)
        client.close()
        await client.closed
        await server.close()

    run(main())


def test_handler_exception_becomes_5012() -> None:
    async def boom(request: Message, peer: PeerProtocol) -> Message:
        raise RuntimeError("bug")

    async def main() -> None:
        server = await serving(boom)
        client = await connect(CLIENT, "127.0.0.1", server.port)
        ans = await client.request(ccr())
        assert ans.get("Result-Code") == 5012 and not ans.is_error
        await server.close()

    run(main())


def test_server_initiated_request_reaches_client_handler() -> None:
    async def client_handler(request: Message, peer: PeerProtocol) -> Message:
        return answer_for(request, peer.conn.me, 2002)  # type: ignore[union-attr]

    async def main() -> None:
        server = await serving()
        client = await connect(CLIENT, "127.0.0.1", server.port, handler=client_handler)
        proto = server.peers["pgw.client.example"]
        rar = Message.request(
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
        )
        raa = await proto.request(rar)
        assert raa.get("Result-Code") == 2002
        client.abort()
        await server.close()

    run(main())


async def raw_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, PeerConnection]:
    """A hand-driven client: sans-IO PeerConnection over asyncio streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    pc = PeerConnection(CLIENT, Role.INITIATOR, loop.time())
    writer.write(pc.data_to_send())
    while not pc.is_open:
        data = await reader.read(65536)
        assert data, "server closed during CER/CEA"
        pc.receive_data(data, loop.time())
    return reader, writer, pc


def test_garbage_closes_the_connection_server_keeps_serving() -> None:
    async def main() -> None:
        server = await serving()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x07" + b"\x00" * 63)  # version 7: framing lost
        assert await reader.read() == b""  # closed: nothing can be answered
        writer.close()
        client = await connect(CLIENT, "127.0.0.1", server.port)  # others still served
        assert client.is_open
        await server.close()

    run(main())


def test_first_message_not_cer_is_closed() -> None:
    async def main() -> None:
        server = await serving()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ccr().encode())
        assert await reader.read() == b""
        writer.close()
        await server.close()

    run(main())


def test_backpressure_pauses_reading_at_the_inflight_limit() -> None:
    gate: dict[str, asyncio.Event] = {}

    async def slow(request: Message, peer: PeerProtocol) -> Message:
        gate["started"].set()
        await gate["release"].wait()
        return answer_for(request, peer.conn.me, 2001)  # type: ignore[union-attr]

    async def main() -> None:
        gate["started"], gate["release"] = asyncio.Event(), asyncio.Event()
        server = await serving(slow, max_inflight=1)
        reader, writer, pc = await raw_open(server.port)
        loop = asyncio.get_running_loop()
        pc.send_request(ccr(session="pgw.client.example;1;1"), loop.time())
        writer.write(pc.data_to_send())
        await gate["started"].wait()
        (proto,) = server.connections
        assert proto.transport is not None and not proto.transport.is_reading()
        gate["release"].set()
        answers = 0
        while answers < 1:
            data = await reader.read(65536)
            answers += sum(1 for _ in pc.receive_data(data, loop.time()))
        await asyncio.sleep(0)
        assert proto.transport.is_reading()
        writer.close()
        await server.close()

    run(main())


def test_too_busy_3004_when_a_burst_exceeds_the_limit() -> None:
    async def never(request: Message, peer: PeerProtocol) -> Message:
        await asyncio.Event().wait()
        raise AssertionError

    async def main() -> None:
        server = await serving(never, max_inflight=1)
        reader, writer, pc = await raw_open(server.port)
        loop = asyncio.get_running_loop()
        for i in range(3):  # one write: the server reads the burst in one go
            pc.send_request(ccr(session=f"pgw.client.example;1;{i}"), loop.time())
        writer.write(pc.data_to_send())
        codes: list[int] = []
        while len(codes) < 2:
            data = await reader.read(65536)
            assert data
            for ev in pc.receive_data(data, loop.time()):
                msg = getattr(ev, "message", None)
                if msg is not None:
                    codes.append(msg.get("Result-Code"))
        assert codes == [3004, 3004]
        writer.close()
        await server.close(timeout=0.5)

    run(main())


def test_sctp_gives_a_clear_error_where_unsupported() -> None:
    if sctp_unavailable_reason() is None:
        pytest.skip("this kernel supports SCTP")

    async def main() -> None:
        server = DiameterServer(SERVER, host="127.0.0.1", port=0, transport="sctp")
        with pytest.raises(TransportUnavailable, match="SCTP not supported"):
            await server.start()

    run(main())


def test_duplicate_answered_from_cache_across_connections() -> None:
    calls: list[int] = []

    async def count(request: Message, peer: PeerProtocol) -> Message:
        calls.append(request.end_to_end)
        return answer_for(request, peer.conn.me, 2001)  # type: ignore[union-attr]

    async def main() -> None:
        server = await serving(count)
        c1 = await connect(CLIENT, "127.0.0.1", server.port)
        original = ccr()
        first = await c1.request(original)
        c1.close()
        await c1.closed
        # failover: the same request (T flag) arrives over a new connection
        c2 = await connect(CLIENT, "127.0.0.1", server.port)
        again = decode_message(original.encode())
        again.flags |= 0x10
        second = await c2.request(again)
        assert calls == [original.end_to_end]
        assert second.encode()[16:] == first.encode()[16:]
        stats = server.stats()
        assert stats["duplicates_answered"] == 1 and stats["connections_total"] == 2
        assert stats["peers_open"] == 1 and stats["requests_inflight"] == 0
        await server.close()

    run(main())


def test_both_sides_dial_one_connection_survives() -> None:
    a_cfg = replace(SERVER, origin_host="a.example", origin_realm="example")
    b_cfg = replace(SERVER, origin_host="b.example", origin_realm="example")

    async def main() -> None:
        a = DiameterServer(a_cfg, host="127.0.0.1", port=0)
        b = DiameterServer(b_cfg, host="127.0.0.1", port=0)
        await a.start()
        await b.start()
        results = await asyncio.gather(
            connect(a_cfg, "127.0.0.1", b.port, registry=a.registry, peer_host="b.example"),
            connect(b_cfg, "127.0.0.1", a.port, registry=b.registry, peer_host="a.example"),
            return_exceptions=True,
        )
        for _ in range(50):  # let the losing connection finish closing
            await asyncio.sleep(0.01)
            alive = [r for r in results if isinstance(r, PeerProtocol) and r.is_open]
            open_a = [c for c in a.registry.open_connections() if c.peer_host == "b.example"]
            open_b = [c for c in b.registry.open_connections() if c.peer_host == "a.example"]
            if len(open_a) == 1 and len(open_b) == 1 and len(alive) <= 1:
                break
        assert len(open_a) == 1 and len(open_b) == 1, (results, open_a, open_b)
        for r in results:
            if isinstance(r, PeerProtocol):
                r.abort()
        await a.close(timeout=1)
        await b.close(timeout=1)

    for _ in range(2):
        run(main())


def test_close_lets_requests_in_flight_be_answered_before_dpr() -> None:
    gate: dict[str, asyncio.Event] = {}

    async def slow(request: Message, peer: PeerProtocol) -> Message:
        gate["started"].set()
        await asyncio.sleep(0.05)
        return answer_for(request, peer.conn.me, 2001)  # type: ignore[union-attr]

    async def main() -> None:
        gate["started"] = asyncio.Event()
        server = await serving(slow)
        client = await connect(CLIENT, "127.0.0.1", server.port)
        pending = asyncio.ensure_future(client.request(ccr()))
        await gate["started"].wait()
        await server.close()
        ans = await pending
        assert ans.get("Result-Code") == 2001
        assert client.disconnect_cause == 0  # and then the DPR came

    run(main())


def test_persistent_peer_reconnects_into_reopen_and_honours_busy() -> None:
    async def main() -> None:
        server = await serving()
        client = PersistentPeer(CLIENT, "127.0.0.1", server.port, tc=0.05)
        client.start()
        first = await client.ready(10)
        assert client.connects == 1 and first.conn is not None
        assert first.conn.watchdog_state == "okay"
        (on_server,) = server.connections
        on_server.abort()  # lost without DPR: the next connection starts in REOPEN
        await first.closed
        second = await client.ready(10)
        assert second is not first and client.failures == 1
        assert second.conn is not None and second.conn.watchdog_state == "reopen"
        await server.close(cause=1)  # DPR with BUSY: do not reconnect
        await second.closed
        assert client._task is not None
        await asyncio.wait_for(client._task, 5)
        assert client.connects == 2
        await client.close()

    run(main())
