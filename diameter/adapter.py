"""The asyncio adapter: a thin shell around :class:`diameter.peer.PeerConnection`.

Shape of aioquic ``asyncio/protocol.py``: on every input (bytes, timer, connection loss) feed
the sans-IO connection, drain its events, write its bytes, re-arm its one timer.

- :class:`DiameterServer` listens (TCP; SCTP where the kernel and pysctp allow, see
  :mod:`diameter.transport_sctp`) and runs one :class:`PeerProtocol` per accepted connection.
- :func:`connect` dials a peer as initiator and returns once CER/CEA succeeded.
- Application requests go to ``responder(request, peer)`` (synchronous; it calls
  ``peer.reply(request, answer)`` exactly once, now or later -- e.g. once the journal is
  durable; later replies are coalesced into one write per connection per loop turn) or to
  ``handler(request, peer) -> answer`` (an ``async def`` run as a Task, or started eagerly
  with ``eager_handlers=True``: an answer ready without suspending then costs no Task; one
  that suspends continues in a Task, so a slow answer never blocks the connection). Without either, requests are answered 3001 (the peer layer
  already answers 3007 for applications not negotiated).
- Backpressure: reading pauses while the transport's write buffer is above its high-water mark
  or the peer has ``max_inflight`` requests being handled; requests that still arrive beyond
  the limit (same read) are answered 3004 DIAMETER_TOO_BUSY by the peer layer.
- One canonical structlog line per answered request (peer, command, session, result code,
  elapsed µs); nothing is formatted when the level is disabled.
"""

from __future__ import annotations

from diameter.transport_client import PersistentPeer, connect
from diameter.transport_protocol import Handler, PeerProtocol, Responder
from diameter.transport_sctp import TransportUnavailable
from diameter.transport_server import DiameterServer

__all__ = [
    "Handler",
    "Responder",
    "PeerProtocol",
    "DiameterServer",
    "connect",
    "PersistentPeer",
    "TransportUnavailable",
]
