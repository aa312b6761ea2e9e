"""Helpers for pair tests: two sans-IO PeerConnections wired back to back on a fake clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from diameter.avp import Avp
from diameter.message import Message
from diameter.peer import PeerConnection
from diameter.peer_config import PeerConfig, Role
from diameter.peer_events import Event

SERVER = PeerConfig(
    origin_host="ocs.icx.local",
    origin_realm="icx.local",
    watchdog_seconds=30.0,
    cer_timeout_seconds=10.0,
)
CLIENT = replace(
    SERVER,
    origin_host="pgw.client.example",
    origin_realm="client.example",
    acct_application_ids=(),
    product_name="test-client",
)


def half() -> float:
    """A fixed 'random' value: Tw jitter 0, predictable ids."""
    return 0.5


class Pair:
    """client (initiator) <-> server (responder), pumped by hand."""

    def __init__(
        self,
        client_cfg: PeerConfig = CLIENT,
        server_cfg: PeerConfig = SERVER,
        now: float = 1000.0,
        **server_kw: Any,
    ) -> None:
        self.now = now
        self.server = PeerConnection(server_cfg, Role.RESPONDER, now, rng=half, **server_kw)
        self.client = PeerConnection(client_cfg, Role.INITIATOR, now, rng=half)
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []

    def pump(self) -> None:
        """Move bytes both ways until quiet."""
        for _ in range(20):
            c = self.client.data_to_send()
            s = self.server.data_to_send()
            if not c and not s:
                return
            if c:
                self.server_events += self.server.receive_data(c, self.now)
            if s:
                self.client_events += self.client.receive_data(s, self.now)
        raise AssertionError("pump did not settle")

    def advance(self, seconds: float) -> None:
        """Move the fake clock, run due timers on both sides, pump."""
        self.now += seconds
        for conn, sink in ((self.client, self.client_events), (self.server, self.server_events)):
            t = conn.get_timer()
            if t is not None and t <= self.now:
                sink += conn.handle_timer(self.now)
        self.pump()

    def take(self, side: str) -> list[Event]:
        evs = self.client_events if side == "client" else self.server_events
        out = list(evs)
        evs.clear()
        return out


def of(events: Iterable[Event], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def ccr(session: str = "pgw.client.example;1;1", number: int = 0, **kw: Any) -> Message:
    """A minimal valid CCR-Initial."""
    avps = [
        Avp.new("Session-Id", session),
        Avp.new("Origin-Host", kw.get("origin_host", "pgw.client.example")),
        Avp.new("Origin-Realm", "client.example"),
        Avp.new("Destination-Realm", "icx.local"),
        Avp.new("Auth-Application-Id", 4),
        Avp.new("Service-Context-Id", "32251@3gpp.org"),
        Avp.new("CC-Request-Type", 1),
        Avp.new("CC-Request-Number", number),
    ]
    avps += kw.get("extra", [])
    return Message.request(272, 4, avps, proxiable=True)
