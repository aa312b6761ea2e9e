"""The Tw watchdog on real sockets and a real clock (slow: Tw is at least 6 s by RFC 3539)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from diameter.adapter import DiameterServer
from diameter.peer import PeerConnection
from diameter.peer_config import Role
from tests.diameter.peer_helpers import CLIENT, SERVER

pytestmark = pytest.mark.slow


def test_silent_peer_is_suspected_then_closed() -> None:
    """The client completes CER/CEA then never answers: DWR after Tw, SUSPECT, DOWN, close."""

    async def main() -> float:
        server = DiameterServer(replace(SERVER, watchdog_seconds=6.0), host="127.0.0.1", port=0)
        await server.start()
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        pc = PeerConnection(replace(CLIENT, watchdog_seconds=None), Role.INITIATOR, loop.time())
        writer.write(pc.data_to_send())
        while not pc.is_open:
            pc.receive_data(await reader.read(65536), loop.time())
        t0 = loop.time()
        dwrs = 0
        while True:  # read everything, answer nothing
            data = await reader.read(65536)
            if not data:
                break
            dwrs += data.count(bytes([0x80, 0x00, 0x01, 0x18]))  # R flag + command 280
        elapsed = loop.time() - t0
        assert dwrs == 1  # one DWR, unanswered: SUSPECT after Tw, DOWN after another Tw
        writer.close()
        await server.close(timeout=1)
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed >= 8.0  # never before 2 Tw (Tw = 6 s, jitter at most -2 s each)


def test_answered_watchdog_keeps_the_link() -> None:
    async def main() -> None:
        server = DiameterServer(replace(SERVER, watchdog_seconds=6.0), host="127.0.0.1", port=0)
        await server.start()
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        pc = PeerConnection(replace(CLIENT, watchdog_seconds=None), Role.INITIATOR, loop.time())
        writer.write(pc.data_to_send())
        end = loop.time() + 20.0
        while loop.time() < end:  # the sans-IO client answers every DWR with a DWA
            try:
                data = await asyncio.wait_for(reader.read(65536), end - loop.time())
            except TimeoutError:
                break
            assert data, "server closed a link whose watchdog was answered"
            pc.receive_data(data, loop.time())
            writer.write(pc.data_to_send())
        (proto,) = server.connections
        assert proto.is_open and proto.conn is not None
        assert proto.conn.watchdog_state == "okay"
        writer.close()
        await server.close(timeout=1)

    asyncio.run(main())
