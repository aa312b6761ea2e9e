"""Which requests this node consumes locally (RFC 6733 §6.1.4): peer_receive.not_served, the
check the compiled receive lane mirrors (tests/e2e/test_destination.py runs both over a
socket)."""

from __future__ import annotations

from dataclasses import replace

from diameter.avp import Avp
from diameter.message import Message, decode_message
from diameter.peer_receive import not_served
from tests.diameter.peer_helpers import SERVER, ccr


def test_not_served_names_the_rfc_answer() -> None:
    """peer_receive.not_served (RFC 6733 §6.1.4): Destination-Host first (3002 unless ours),
    else Destination-Realm (3003 unless served); case-insensitive; None = no check."""
    cfg = replace(SERVER, served_realms=frozenset({"icx.local"}),
                  served_hosts=frozenset({"ocs.icx.local"}))

    def req(realm: str | None, host: str | None = None) -> Message:
        m = decode_message(ccr("pgw.client.example;1").encode())
        m.avps = [a for a in m.avps if a.code not in (283, 293)]
        if realm is not None:
            m.avps.append(Avp.new("Destination-Realm", realm))
        if host is not None:
            m.avps.append(Avp.new("Destination-Host", host))
        return m

    assert not_served(cfg, req("icx.local")) is None
    assert not_served(cfg, req("ICX.LOCAL")) is None
    assert not_served(cfg, req(None)) is None  # neither: local (§6.1.4)
    assert not_served(cfg, req("other.realm"))[0] == 3003  # type: ignore[index]
    assert not_served(cfg, req("icx.local", "peer.icx.local"))[0] == 3002  # type: ignore[index]
    assert not_served(cfg, req("other.realm", "OCS.icx.local")) is None
    assert not_served(replace(cfg, served_realms=None, served_hosts=None),
                      req("other.realm", "x")) is None
