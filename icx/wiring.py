"""Composition root: settings in, running servers out. No business logic lives here.

Extension points (for the Ro/Rf agent, the admin HTTP server and anything that comes later):

- :func:`peer_config` turns ``[diameter]`` into the plain :class:`~diameter.peer_config.PeerConfig`
  the stack needs (the diameter package never imports icx).
- :func:`build_server` builds the Diameter server from the settings and an optional request
  handler ``async def handle(request: Message, peer: PeerProtocol) -> Message``. Without a
  handler, application requests are answered 3001 (3007 for applications not negotiated).
- :func:`start` builds everything ``icx serve`` runs: the charging stack (rating, store,
  journal, ledger, Ro/Rf agent, admin HTTP — :mod:`icx.charging_app`) whose ``agent.handle``
  becomes the handler, and wires server-initiated requests (RAR/ASR) back through the peer the
  session came from (:func:`send_server_request`). Pass ``charging=False`` to serve only the
  Diameter base. Add new front doors (SMPP, SIP) as further fields of :class:`Runtime`, started
  in :func:`start` and stopped in :meth:`Runtime.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from diameter.adapter import DiameterServer, Handler, PeerProtocol
from diameter.avp import Avp
from diameter.constants import APP_ACCOUNTING
from diameter.message import Message
from diameter.peer import DISCONNECT_REBOOTING
from diameter.peer_config import PeerConfig
from diameter.transport_protocol import Responder
from diameter.transport_sctp import TransportUnavailable, sctp_unavailable_reason
from icx.settings import Settings

__all__ = ["peer_config", "build_server", "send_server_request", "server_request_sender", "count_protocol_answers",
           "peer_finder", "peer_metrics", "Runtime", "start"]

log = structlog.get_logger("icx.wiring")


def _host_ip(listen_host: str) -> str:
    """Host-IP-Address for CER/CEA: the listen address, or loopback for a wildcard/name."""
    try:
        addr = ipaddress.ip_address(listen_host)
    except ValueError:
        return "127.0.0.1"
    return "127.0.0.1" if addr.is_unspecified else str(addr)


def peer_config(settings: Settings, *, origin_state_id: int | None = None) -> PeerConfig:
    """The stack's view of ``[diameter]``. Origin-State-Id defaults to the boot time, so it
    increases on every restart (RFC 6733 §8.16)."""
    d = settings.diameter
    return PeerConfig(
        origin_host=d.origin_host,
        # Advertise only what is served (RFC 6733 §5.3): with [rf] disabled a peer that
        # negotiated Rf from our CEA would get 3007 on every ACR.
        acct_application_ids=(APP_ACCOUNTING,) if settings.rf.enabled else (),
        origin_realm=d.origin_realm,
        host_ip_addresses=(_host_ip(d.listen_host),),
        vendor_id=d.vendor_id,
        product_name=d.product_name,
        origin_state_id=int(time.time()) if origin_state_id is None else origin_state_id,
        allowed_peers=d.allowed_peers,
        watchdog_seconds=d.watchdog_seconds,
        cer_timeout_seconds=d.cer_timeout_seconds,
        max_message_size=d.max_message_size,
        max_inflight=d.max_inflight_per_peer,
        duplicate_cache_seconds=d.duplicate_cache_seconds,
        duplicate_cache_entries=d.duplicate_cache_entries,
        log_requests=d.request_log,
        served_realms=frozenset(r.lower() for r in (d.origin_realm, *d.realms))
        if d.check_destination else None,
        served_hosts=frozenset(h.lower() for h in (d.origin_host, *d.hosts))
        if d.check_destination else None,
    )


def build_server(settings: Settings, handler: Handler | None = None, *,
                 responder: Responder | None = None) -> DiameterServer:
    """The Diameter server of ``[diameter]`` (not started: ``await server.start()``).
    *responder* (the agent's ``respond``) wins over *handler* when both are given."""
    d = settings.diameter
    return DiameterServer(
        peer_config(settings),
        handler,
        host=d.listen_host,
        port=d.listen_port,
        transport=d.transport,
        responder=responder,
    )


async def send_server_request(
    peer: Any, code: int, app_id: int, avps: list[Any], timeout: float = 10.0
) -> Message | None:
    """Send a server-initiated request (RAR 258, ASR 274) on *peer*; None when the peer is
    gone or does not answer within *timeout* (the agent's ``Sender`` signature)."""
    if not isinstance(peer, PeerProtocol) or not peer.is_open:
        return None
    request = Message.request(code, app_id, [a for a in avps if isinstance(a, Avp)], proxiable=True)
    try:
        return await peer.request(request, timeout)
    except (ConnectionError, TimeoutError):
        return None


def server_request_sender(settings: Settings) -> Any:
    """:func:`send_server_request` waiting ``[diameter] answer_timeout_seconds`` for the
    answer (the agent's ``Sender``)."""
    timeout = settings.diameter.answer_timeout_seconds

    async def send(peer: Any, code: int, app_id: int, avps: list[Any]) -> Message | None:
        return await send_server_request(peer, code, app_id, avps, timeout)

    return send


def peer_finder(server: DiameterServer) -> Any:
    """``find_peer(identity) -> open connection | None`` over *server*'s peers, for the
    agent's RAR/ASR to a client that reconnected (DiameterIdentity ignores ASCII case)."""

    def find_peer(host: str) -> PeerProtocol | None:
        peer = server.peers.get(host)
        if peer is None:
            low = host.lower()
            peer = next((p for h, p in server.peers.items() if h.lower() == low), None)
        return peer if peer is not None and peer.is_open else None

    return find_peer


def count_protocol_answers(metrics: Any, server: DiameterServer) -> None:
    """Make /metrics count the requests *server* answered itself (validation 5xxx, 3004,
    3007..., duplicates from its cache: the agent never sees them) under their command and
    Result-Code, and
    show its connection and protocol counters (:func:`peer_metrics`)."""
    from mediation.agent import CMD_NAMES

    def source() -> dict[tuple[str, int], int]:
        return {(CMD_NAMES.get(code) or str(code), rc): n
                for (code, rc), n in server.error_answers().items()}

    metrics.answered_elsewhere = source
    metrics.collector(lambda: peer_metrics(server.stats()))


# DiameterServer.stats() -> (metric, type, help); the counters count since start.
_PEER_METRICS = {
    "connections": ("icx_diameter_connections", "gauge",
                    "Diameter transport connections open (CER/CEA done or not)."),
    "peers_open": ("icx_diameter_peers_open", "gauge", "Diameter peers in state Open."),
    "requests_inflight": ("icx_diameter_requests_inflight", "gauge",
                          "Requests received and not yet answered."),
    "connections_total": ("icx_diameter_connections_total", "counter",
                          "Transport connections accepted."),
    "duplicates_answered": ("icx_diameter_duplicates_answered_total", "counter",
                            "Retransmitted requests answered from the duplicate cache "
                            "(RFC 6733 §5.3.1)."),
    "duplicates_dropped": ("icx_diameter_duplicates_dropped_total", "counter",
                           "Duplicates of a request still in progress, dropped."),
    "too_busy": ("icx_diameter_too_busy_total", "counter",
                 "Requests answered 3004 DIAMETER_TOO_BUSY (the per-peer in-flight limit)."),
    "answers_dropped": ("icx_diameter_answers_dropped_total", "counter",
                        "Answers dropped: no request of ours with that Hop-by-Hop id."),
    "answers_unencodable": ("icx_diameter_answers_unencodable_total", "counter",
                            "Answers that could not be encoded (a value out of range for its "
                            "AVP type), sent as 5012 DIAMETER_UNABLE_TO_COMPLY instead."),
}


def peer_metrics(stats: dict[str, int]) -> list[str]:
    """Prometheus lines for :meth:`DiameterServer.stats` (what an engineer on call looks at
    first: who is connected, what is queued, what the protocol layer refused)."""
    out: list[str] = []
    for key, (name, kind, help_text) in _PEER_METRICS.items():
        if key in stats:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {stats[key]}"]
    return out


@dataclass
class Runtime:
    """Everything ``icx serve`` runs; ``await runtime.close()`` stops it in order."""

    settings: Settings
    server: DiameterServer
    charging: Any = None  # icx.charging_app.ChargingApp when charging=True
    extra: list[Any] = field(default_factory=list)

    async def close(self, timeout: float = 5.0) -> None:
        """DPR every peer and stop listening, then stop the charging stack."""
        await self.server.close(timeout=timeout, cause=DISCONNECT_REBOOTING)
        if self.charging is not None:
            with contextlib.suppress(Exception):
                await self.charging.close()


async def start(
    settings: Settings,
    data_dir: Path,
    *,
    handler: Handler | None = None,
    charging: bool = True,
) -> Runtime:
    """Build and start everything: the charging stack first (it recovers the journal before
    any request is accepted), then the Diameter listener. An explicit *handler* wins over the
    charging agent."""
    if settings.diameter.transport == "sctp":
        reason = sctp_unavailable_reason()  # fail before building anything (exit 2)
        if reason is not None:
            raise TransportUnavailable(reason)
    app = None
    responder: Responder | None = None
    if charging and handler is None:
        from icx.charging_app import build_charging  # heavy: only when charging is served

        app = await build_charging(settings, data_dir)
        handler = app.agent.handle
        responder = app.agent.respond
        app.agent.sender = server_request_sender(settings)
    server = build_server(settings, handler, responder=responder)
    if app is not None:
        count_protocol_answers(app.agent.metrics, server)
        app.agent.find_peer = peer_finder(server)
    try:
        await server.start()
    except BaseException:
        if app is not None:
            await app.close()
        raise
    return Runtime(settings=settings, server=server, charging=app)


async def run_until_stopped(runtime: Runtime, stop: asyncio.Event) -> None:
    """Serve until *stop* is set (SIGINT/SIGTERM), then close gracefully."""
    await stop.wait()
    log.info("icx.stopping")
    await runtime.close()
