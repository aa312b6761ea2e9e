"""The asyncio adapter: a thin shell around :class:`diameter.peer.PeerConnection`.

Shape of aioquic ``asyncio/protocol.py``: on every input (bytes, timer, connection loss) feed
the sans-IO connection, drain its events, write its bytes, re-arm its one timer.

- :class:`DiameterServer` listens (TCP; SCTP where the kernel and pysctp allow, see
  :mod:`diameter.transport_sctp`) and runs one :class:`PeerProtocol` per accepted connection.
- :func:`connect` dials a peer as initiator and returns once CER/CEA succeeded.
- Application requests go to ``handler(request, peer) -> answer`` (an ``async def``); each runs
  as its own task, so a slow answer never blocks the connection. Without a handler, requests
  are answered 3001 (the peer layer already answers 3007 for applications not negotiated).
- Backpressure: reading pauses while the transport's write buffer is above its high-water mark
  or the peer has ``max_inflight`` requests being handled; requests that still arrive beyond
  the limit (same read) are answered 3004 DIAMETER_TOO_BUSY by the peer layer.
- One canonical structlog line per answered request (peer, command, session, result code,
  elapsed µs); nothing is formatted when the level is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog

from diameter.answers import error_answer
from diameter.duplicates import DuplicateCache
from diameter.message import Message
from diameter.peer import DISCONNECT_REBOOTING, PeerConnection
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import (
    AnswerReceived,
    CapabilitiesExchanged,
    ConnectionTerminated,
    Event,
    PeerClosing,
    ProtocolErrorEvent,
    RequestReceived,
    WatchdogStateChanged,
)
from diameter.peer_registry import PeerRegistry
from diameter.transport_sctp import TransportUnavailable, sctp_server_socket

__all__ = [
    "Handler",
    "PeerProtocol",
    "DiameterServer",
    "connect",
    "TransportUnavailable",
]

Handler = Callable[[Message, "PeerProtocol"], Awaitable[Message]]

log = structlog.get_logger("icx.diameter")
# PeerConnection counters summed by DiameterServer.stats()
_COUNTERS = ("duplicates_answered", "duplicates_dropped", "too_busy", "answers_dropped")
_INFO = logging.INFO


class PeerProtocol(asyncio.Protocol):
    """One transport connection to one Diameter peer (also the ``peer`` a handler receives).

    Useful to a handler: :attr:`peer_host`, :attr:`applications`, :meth:`request` (send a
    server-initiated request such as RAR/ASR and await the answer), :attr:`is_open`.
    """

    def __init__(
        self,
        config: PeerConfig,
        role: Role,
        handler: Handler | None,
        *,
        duplicates: DuplicateCache | None = None,
        registry: PeerRegistry | None = None,
        on_open: Callable[[PeerProtocol], None] | None = None,
        on_close: Callable[[PeerProtocol], None] | None = None,
        peer_host: str | None = None,
        reopen: bool = False,
    ) -> None:
        self.config = config
        self.role = role
        self.handler = handler
        self.conn: PeerConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.remote_address: Any = None
        self.opened: asyncio.Future[CapabilitiesExchanged] = (
            asyncio.get_running_loop().create_future()
        )
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._dups = duplicates
        self._registry = registry
        self._on_open = on_open
        self._on_close = on_close
        self._peer_host = peer_host
        self._reopen = reopen
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._waiters: dict[int, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._write_paused = False
        self._read_paused = False
        self._closing = False
        self.disconnect_cause: int | None = None  # set when the peer sent us a DPR

    # ------------------------------------------------------------------ properties
    @property
    def peer_host(self) -> str | None:
        return self.conn.peer_host if self.conn is not None else self._peer_host

    @property
    def applications(self) -> frozenset[int]:
        return self.conn.applications if self.conn is not None else frozenset()

    @property
    def is_open(self) -> bool:
        return self.conn is not None and self.conn.is_open

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but speak the same API
        self.transport = cast(asyncio.Transport, transport)
        self.remote_address = self.transport.get_extra_info("peername")
        self.conn = PeerConnection(
            self.config,
            self.role,
            self._loop.time(),
            duplicates=self._dups,
            registry=self._registry,
            reopen=self._reopen,
            peer_host=self._peer_host,
        )
        self.conn.wakeup = self._wakeup
        self._transmit()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        self._handle(conn.receive_data(data, self._loop.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        if conn is not None:
            self._handle(conn.connection_lost(self._loop.time()), transmit=False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost before the answer"))
        self._waiters.clear()
        reason = conn.termination_reason if conn is not None else "connection lost"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
            self.opened.exception()  # mark retrieved: nobody may be waiting
        if not self.closed.done():
            self.closed.set_result(reason)
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # ------------------------------------------------------------------ public
    async def request(self, message: Message, timeout: float = 10.0) -> Message:
        """Send a request on this connection and await its answer (Tx timer = *timeout*)."""
        conn = self.conn
        if conn is None or not conn.is_open:
            raise ConnectionError("peer connection is not open")
        hbh = conn.send_request(message, self._loop.time())
        fut: asyncio.Future[Message] = self._loop.create_future()
        self._waiters[hbh] = fut
        self._transmit()
        try:
            return await asyncio.wait_for(fut, timeout)
        except BaseException:
            conn.cancel_request(hbh)
            raise
        finally:
            self._waiters.pop(hbh, None)

    def close(self, cause: int = DISCONNECT_REBOOTING) -> None:
        """Graceful close: DPR when open (the DPA receiver closes), else close at once."""
        conn = self.conn
        if conn is None:
            return
        self._handle(conn.close(self._loop.time(), cause))

    def abort(self) -> None:
        """Drop the transport now."""
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ internals
    def _wakeup(self) -> None:
        # another connection changed ours (election): drain on the next loop iteration
        self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        if self.conn is not None:
            self._handle(self.conn.handle_timer(self._loop.time()))

    def _handle(self, events: list[Event], transmit: bool = True) -> None:
        terminated: ConnectionTerminated | None = None
        for ev in events:
            if isinstance(ev, RequestReceived):
                self._dispatch(ev)
            elif isinstance(ev, AnswerReceived):
                fut = self._waiters.get(ev.message.hop_by_hop)
                if fut is not None and not fut.done():
                    fut.set_result(ev.message)
            elif isinstance(ev, CapabilitiesExchanged):
                log.info(
                    "diameter.peer_open",
                    peer=ev.peer_host,
                    realm=ev.peer_realm,
                    applications=sorted(ev.applications),
                    address=str(self.remote_address),
                )
                if not self.opened.done():
                    self.opened.set_result(ev)
                if self._on_open is not None:
                    self._on_open(self)
            elif isinstance(ev, ConnectionTerminated):
                terminated = ev
            elif isinstance(ev, WatchdogStateChanged):
                log.info(
                    "diameter.watchdog", peer=self.peer_host, old=ev.old.value, new=ev.new.value
                )
            elif isinstance(ev, ProtocolErrorEvent):
                log.warning(
                    "diameter.protocol_error",
                    peer=self.peer_host,
                    address=str(self.remote_address),
                    result_code=ev.error.result_code if ev.error is not None else None,
                    error=ev.description,
                    answered=ev.answered,
                )
            elif isinstance(ev, PeerClosing):
                if ev.by_peer:
                    self.disconnect_cause = ev.disconnect_cause
                log.info(
                    "diameter.peer_closing",
                    peer=self.peer_host,
                    disconnect_cause=ev.disconnect_cause,
                    by_peer=ev.by_peer,
                )
        if transmit:
            self._transmit()
        if terminated is not None and self.transport is not None and not self._closing:
            self._closing = True
            log.info("diameter.peer_closed", peer=self.peer_host, reason=terminated.reason)
            # close() flushes what is buffered first: "send what can be sent, then close"
            self.transport.close()

    def _transmit(self) -> None:
        conn = self.conn
        transport = self.transport
        if conn is None or transport is None:
            return
        data = conn.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        t = conn.get_timer()
        armed = self._timer_at
        # Re-arm only when the deadline moved earlier (or went away). Traffic pushes the
        # watchdog deadline later on every message; an early wake-up costs one no-op
        # handle_timer, re-arming on every request would cost a heap push each time.
        if t is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = None
        elif armed is None or t < armed:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = t
            self._timer = self._loop.call_at(t, self._on_timer)
        self._update_reading()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.conn is not None:
            self._handle(self.conn.handle_timer(self._loop.time()))

    def _update_reading(self) -> None:
        transport = self.transport
        conn = self.conn
        if transport is None or conn is None or transport.is_closing():
            return
        want_pause = self._write_paused or conn.inflight >= self.config.max_inflight
        if want_pause and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        elif not want_pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    def _dispatch(self, ev: RequestReceived) -> None:
        handler = self.handler
        if handler is None:
            conn = self.conn
            assert conn is not None
            ans = error_answer(
                ev.message, conn.me, 3001, error_message="no application handler is configured"
            )
            conn.send_answer(ans, self._loop.time())
            self._log_request(ev.message, ans, time.perf_counter_ns())
            return
        task = self._loop.create_task(self._run_handler(handler, ev.message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, handler: Handler, request: Message) -> None:
        t0 = time.perf_counter_ns()
        conn = self.conn
        assert conn is not None
        try:
            answer = await handler(request, self)
        except asyncio.CancelledError:
            conn.abandon_request(request.hop_by_hop)  # never answered: not a pending duplicate
            raise
        except Exception:
            log.exception("diameter.handler_failed", peer=self.peer_host, command=request.code)
            answer = error_answer(
                request, conn.me, 5012, error_message="internal error", e_bit=False
            )
        # the answer must correlate whatever the handler built (RFC 6733 §6.2)
        answer.hop_by_hop = request.hop_by_hop
        answer.end_to_end = request.end_to_end
        conn.send_answer(answer, self._loop.time())
        self._log_request(request, answer, t0)
        self._transmit()

    def _log_request(self, request: Message, answer: Message, t0: int) -> None:
        if not log.is_enabled_for(_INFO):
            return
        log.info(
            "diameter.request",
            peer=self.peer_host,
            command=request.code,
            app=request.app_id,
            session=request.get("Session-Id"),
            result_code=answer.get("Result-Code"),
            elapsed_us=(time.perf_counter_ns() - t0) // 1000,
        )


class DiameterServer:
    """A listening Diameter node. ``await start()``, then ``await close()`` to DPR every peer.

    Extension point: *handler* answers every application request (the Ro/Rf agent's
    ``handle``); :attr:`peers` lists the open connections by Origin-Host (for RAR/ASR).
    """

    def __init__(
        self,
        config: PeerConfig,
        handler: Handler | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 3868,
        transport: str = "tcp",
    ) -> None:
        self.config = config
        self.handler = handler
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
        self._closed_totals = dict.fromkeys(_COUNTERS, 0)
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
            for name in _COUNTERS:
                self._closed_totals[name] += getattr(proto.conn, name)
        self._accepted.discard(proto)
        self.connections.discard(proto)
        host = proto.peer_host
        if host and self.peers.get(host) is proto:
            del self.peers[host]

    def stats(self) -> dict[str, int]:
        """Counters for /metrics: connections, open peers, requests in flight, and since start
        the duplicates answered/dropped, 3004 answers and answers dropped (unknown H-b-H)."""
        out = dict(self._closed_totals)
        for proto in self._accepted:
            if proto.conn is not None:
                for name in _COUNTERS:
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
        busy = [t for p in protos for t in p._tasks]
        if busy:
            await asyncio.wait(busy, timeout=timeout / 2)
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


async def connect(
    config: PeerConfig,
    host: str,
    port: int,
    *,
    handler: Handler | None = None,
    peer_host: str | None = None,
    registry: PeerRegistry | None = None,
    timeout: float | None = None,
    reopen: bool = False,
) -> PeerProtocol:
    """Dial a peer as initiator (TCP), wait for CER/CEA; raise ConnectionError on refusal.

    *reopen*: this replaces a connection whose watchdog failed; the link is trusted again
    after three DWR/DWA exchanges (RFC 3539 REOPEN). Reconnecting every Tc is the caller's
    loop (none is built in yet)."""
    loop = asyncio.get_running_loop()
    _transport, proto = await loop.create_connection(
        lambda: PeerProtocol(
            config, Role.INITIATOR, handler, registry=registry, peer_host=peer_host, reopen=reopen
        ),
        host,
        port,
    )
    wait = timeout if timeout is not None else config.cer_timeout_seconds + 1.0
    try:
        await asyncio.wait_for(asyncio.shield(proto.opened), wait)
    except BaseException:
        proto.abort()
        raise
    return proto
