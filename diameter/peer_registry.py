"""Which connection carries each peer's RFC 6733 §5.6 state machine (sans-IO bookkeeping).

The §5.6 machine is per *peer*; a peer may have two transport connections for a moment (both
sides dialled: the election of §5.6.4). Incoming-connection logic (protocol-facts A7) looks the
peer up by the CER's Origin-Host: when an *owner* connection exists — an initiator still in
Wait-Conn-Ack/Wait-I-CEA, or an open connection — the new connection's R-Conn-CER is fed to the
owner's machine (election, or R-Reject), otherwise the new connection's own machine takes it.

A server shares one registry among all its connections; an adapter that dials a configured
peer registers the initiator with :meth:`add_initiator` before connecting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diameter.peer import PeerConnection

__all__ = ["PeerRegistry"]


def _norm(host: str) -> str:
    return host.lower()  # DiameterIdentity compares ignoring ASCII case


class PeerRegistry:
    """Origin-Host -> the connection that owns the peer's state machine."""

    def __init__(self) -> None:
        self._owners: dict[str, PeerConnection] = {}

    def owner(self, host: str) -> PeerConnection | None:
        """The live owner connection for *host*, or None."""
        conn = self._owners.get(_norm(host))
        if conn is not None and conn.terminated:
            del self._owners[_norm(host)]
            return None
        return conn

    def add_initiator(self, host: str, conn: PeerConnection) -> None:
        """We are dialling *host* with *conn* (call before connecting)."""
        self._owners[_norm(host)] = conn

    def opened(self, conn: PeerConnection) -> None:
        """*conn* completed the capabilities exchange and now owns its peer."""
        if conn.peer_host:
            self._owners[_norm(conn.peer_host)] = conn

    def forget(self, conn: PeerConnection) -> None:
        """*conn* terminated: drop it if it owned its peer."""
        for host, owner in list(self._owners.items()):
            if owner is conn:
                del self._owners[host]

    def open_connections(self) -> list[PeerConnection]:
        """Every owner connection that is open (R-Open or I-Open)."""
        return [c for c in self._owners.values() if c.is_open]

    def __len__(self) -> int:
        return len(self._owners)
