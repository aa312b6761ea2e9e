"""The dialling side of the adapter: :func:`connect` and :class:`PersistentPeer` (Tc)."""

from __future__ import annotations

import asyncio

import structlog

from diameter.message import Message
from diameter.peer_config import PeerConfig, Role
from diameter.peer_registry import PeerRegistry
from diameter.transport_protocol import Handler, PeerProtocol

__all__ = ["connect", "PersistentPeer"]

log = structlog.get_logger("icx.diameter")


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
    after three DWR/DWA exchanges (RFC 3539 REOPEN). :class:`PersistentPeer` does that
    reconnecting every Tc."""
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


class PersistentPeer:
    """Keep one connection to a configured peer: reconnect every *tc* seconds (RFC 6733 §2.1
    Tc, 30 s recommended) after a failure. A connection that replaces one lost without DPR
    starts in RFC 3539 REOPEN (trusted after three DWR/DWA exchanges).

    ``start()`` launches the loop; :attr:`current` is the open connection or None;
    ``await ready()`` waits for one; ``await close()`` sends DPR and stops reconnecting.
    """

    def __init__(
        self,
        config: PeerConfig,
        host: str,
        port: int,
        *,
        handler: Handler | None = None,
        peer_host: str | None = None,
        registry: PeerRegistry | None = None,
        tc: float = 30.0,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.handler = handler
        self.peer_host = peer_host
        self.registry = registry
        self.tc = tc
        self.current: PeerProtocol | None = None
        self.connects = 0  # successful capabilities exchanges
        self.failures = 0  # connect failures and connections lost without DPR
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._up = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def ready(self, timeout: float | None = None) -> PeerProtocol:
        """The open connection, waiting for one if needed."""
        await asyncio.wait_for(self._up.wait(), timeout)
        assert self.current is not None
        return self.current

    async def request(self, message: Message, timeout: float = 10.0) -> Message:
        proto = self.current
        if proto is None or not proto.is_open:
            raise ConnectionError(f"no open connection to {self.peer_host or self.host}")
        return await proto.request(message, timeout)

    async def _run(self) -> None:
        reopen = False
        while not self._stopping:
            try:
                proto = await connect(
                    self.config,
                    self.host,
                    self.port,
                    handler=self.handler,
                    peer_host=self.peer_host,
                    registry=self.registry,
                    reopen=reopen,
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.failures += 1
                log.info("diameter.connect_failed", host=self.host, port=self.port, error=str(exc))
            else:
                self.connects += 1
                self.current = proto
                self._up.set()
                reason = await proto.closed
                self._up.clear()
                self.current = None
                cause = proto.disconnect_cause
                graceful = cause is not None or self._stopping
                reopen = not graceful
                if not graceful:
                    self.failures += 1
                    log.info("diameter.peer_lost", host=self.host, port=self.port, reason=reason)
                elif cause in (1, 2):
                    # Disconnect-Cause BUSY / DO_NOT_WANT_TO_TALK_TO_YOU: the peer asked us
                    # not to reconnect (RFC 6733 §5.4.3).
                    log.info("diameter.peer_refuses", host=self.host, disconnect_cause=cause)
                    self._stopping = True
            if not self._stopping:
                await asyncio.sleep(self.tc)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop reconnecting; DPR the open connection and wait for it to close."""
        self._stopping = True
        proto = self.current
        if proto is not None:
            proto.close()
            try:
                await asyncio.wait_for(asyncio.shield(proto.closed), timeout)
            except TimeoutError:
                proto.abort()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
