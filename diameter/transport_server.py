"""The listening side of the adapter: :class:`DiameterServer` (TCP, or SCTP where possible)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from diameter.duplicates import DuplicateCache
from diameter.peer import DISCONNECT_REBOOTING
from diameter.peer_config import PeerConfig, Role
from diameter.peer_registry import PeerRegistry
from diameter.transport_protocol import COUNTERS, Handler, PeerProtocol, Responder
from diameter.transport_sctp import TransportUnavailable, sctp_server_socket

__all__ = ["DiameterServer"]

log = structlog.get_logger("icx.diameter")


class DiameterServer:
    """A listening Diameter node. ``await start()``, then ``await close()`` to DPR every peer.

    Extension point: *responder* (synchronous, calls ``peer.reply`` once per request, now or
    later: the Ro/Rf agent's ``respond``) or *handler* (``async def``, returns the answer)
    answers every application request; the responder wins when both are given. :attr:`peers` lists the open connections by Origin-Host (for RAR/ASR).
    """

    def __init__(
        self,
        config: PeerConfig,
        handler: Handler | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 3868,
        transport: str = "tcp",
        responder: Responder | None = None,
        eager_handlers: bool = False,
    ) -> None:
        self.config = config
        self.eager_handlers = eager_handlers
        self.handler = handler
        self.responder = responder
        self.host = host
        self.port = port
        self.transport = transport
        self.duplicates = DuplicateCache(
            config.duplicate_cache_seconds, config.duplicate_cache_entries
        )
        self.registry = PeerRegistry()
        self.connections: set[PeerProtocol] = set()  # open (CER/CEA done)
        self.peers: dict[str, PeerProtocol] = {}
        self._accepted: set[PeerProtocol] = set()  # every live transport, open or not
        self._closed_totals = dict.fromkeys(COUNTERS, 0)
        self._closed_errors: dict[tuple[int, int], int] = {}
        self.accepted_total = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind and listen. Raises TransportUnavailable (SCTP) or OSError (port in use)."""
        loop = asyncio.get_running_loop()
        if self.transport == "sctp":
            sock = sctp_server_socket(self.host, self.port)  # raises TransportUnavailable
            self._server = await loop.create_server(self._protocol, sock=sock)
        elif self.transport == "tcp":
            self._server = await loop.create_server(
                self._protocol, self.host, self.port, reuse_address=True
            )
        else:
            raise TransportUnavailable(f"unknown transport {self.transport!r}")
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("diameter.listening", host=self.host, port=self.port, transport=self.transport)

    def _protocol(self) -> PeerProtocol:
        proto = PeerProtocol(
            self.config,
            Role.RESPONDER,
            self.handler,
            duplicates=self.duplicates,
            registry=self.registry,
            on_open=self._opened,
            on_close=self._closed,
            responder=self.responder,
            eager_handlers=self.eager_handlers,
        )
        self._accepted.add(proto)
        self.accepted_total += 1
        return proto

    def _opened(self, proto: PeerProtocol) -> None:
        self.connections.add(proto)
        if proto.peer_host:
            self.peers[proto.peer_host] = proto

    def _closed(self, proto: PeerProtocol) -> None:
        if proto.conn is not None:
            for name in COUNTERS:
                self._closed_totals[name] += getattr(proto.conn, name)
            for key, n in proto.conn.error_answers.items():
                self._closed_errors[key] = self._closed_errors.get(key, 0) + n
        self._accepted.discard(proto)
        self.connections.discard(proto)
        host = proto.peer_host
        if host and self.peers.get(host) is proto:
            del self.peers[host]

    def error_answers(self) -> dict[tuple[int, int], int]:
        """Since start: (command code, Result-Code) -> requests this layer answered itself
        (decode/validation errors, 3004, 3007..., and duplicates answered from the duplicate
        cache with their stored answer's code): the application's metrics never see these
        requests, /metrics adds them to its request counts."""
        out = dict(self._closed_errors)
        for proto in self._accepted:
            if proto.conn is not None:
                for key, n in proto.conn.error_answers.items():
                    out[key] = out.get(key, 0) + n
        return out

    def stats(self) -> dict[str, int]:
        """Counters for /metrics: connections, open peers, requests in flight, and since start
        the duplicates answered/dropped, 3004 answers, answers dropped (unknown H-b-H) and
        answers that could not be encoded (sent as 5012)."""
        out = dict(self._closed_totals)
        for proto in self._accepted:
            if proto.conn is not None:
                for name in COUNTERS:
                    out[name] += getattr(proto.conn, name)
        out["connections"] = len(self._accepted)
        out["connections_total"] = self.accepted_total
        out["peers_open"] = len(self.connections)
        out["requests_inflight"] = sum(p.conn.inflight for p in self._accepted if p.conn)
        return out

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self, timeout: float = 5.0, cause: int = DISCONNECT_REBOOTING) -> None:
        """Stop listening; let requests already being handled finish and be answered (up to
        half of *timeout*: after DPR/DPA the transport goes, and answers with it); then send
        DPR to every open peer and wait for them to close (or abort them)."""
        if self._server is not None:
            self._server.close()
        protos = list(self._accepted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout / 2
        busy = [t for p in protos for t in p._tasks]
        if busy:
            await asyncio.wait(busy, timeout=timeout / 2)
        # answers a responder still owes (waiting for journal durability, say)
        while loop.time() < deadline and any(
            p.conn is not None and p.conn.inflight and not p.conn.terminated for p in protos
        ):
            await asyncio.sleep(0.005)
        for proto in protos:
            proto.close(cause)  # DPR when open; a connection still before CER just closes
        if protos:
            waits = [asyncio.shield(p.closed) for p in protos]
            _done, pending = await asyncio.wait(waits, timeout=timeout)
            if pending:
                for proto in protos:
                    if not proto.closed.done():
                        proto.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        log.info("diameter.stopped", peers=len(protos))
