"""[rf] enabled = false: the CEA must not advertise Acct-Application-Id 3 (RFC 6733 §5.3), so
a peer never negotiates Rf and then gets 3007 on every ACR; with Rf enabled it is advertised."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from diameter.framing import FrameBuffer
from diameter.message import Message, decode_message
from icx import wiring
from icx.diameter_client import A
from icx.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _cer() -> Message:
    return Message.request(257, 0, [
        A("Origin-Host", "rf.icx.test"), A("Origin-Realm", "icx.test"),
        A("Host-IP-Address", "127.0.0.1"), A("Vendor-Id", 0), A("Product-Name", "t"),
        A("Auth-Application-Id", 4), A("Acct-Application-Id", 3)], hop_by_hop=1, end_to_end=1)


def _acr() -> Message:
    return Message.request(271, 3, [
        A("Session-Id", "rf.icx.test;1"), A("Origin-Host", "rf.icx.test"),
        A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local"),
        A("Accounting-Record-Type", 2), A("Accounting-Record-Number", 0)],
        proxiable=True, hop_by_hop=2, end_to_end=2)


async def _exchange(rf_enabled: bool) -> tuple[Message, Message]:
    settings = load_settings(ROOT / "config" / "icx.toml")
    settings = dataclasses.replace(
        settings, rf=dataclasses.replace(settings.rf, enabled=rf_enabled),
        diameter=dataclasses.replace(settings.diameter, listen_host="127.0.0.1",
                                     listen_port=0))
    server = wiring.build_server(settings)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        frames = FrameBuffer(1 << 16)
        got: list[Message] = []

        async def one() -> Message:
            while not got:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "server closed the connection"
                got.extend(decode_message(f) for f in frames.feed(data))
            return got.pop(0)

        writer.write(_cer().encode())
        cea = await one()
        writer.write(_acr().encode())
        aca = await one()
        writer.close()
        return cea, aca
    finally:
        await server.close(timeout=1.0)


def _acct_ids(cea: Message) -> list[int]:
    return [a.value for a in cea.avps if a.code == 259]


@pytest.mark.parametrize("rf_enabled", [False, True])
def test_cea_advertises_rf_only_when_served(rf_enabled: bool) -> None:
    cea, aca = asyncio.run(_exchange(rf_enabled))
    assert cea.get("Result-Code") == 2001
    assert cea.get("Auth-Application-Id") == 4
    if rf_enabled:
        assert _acct_ids(cea) == [3]
        # negotiated: the handler-less server answers the ACR itself (3001), not 3007
        assert aca.get("Result-Code") == 3001
    else:
        assert _acct_ids(cea) == []
        # Rf was not negotiated: the peer layer answers 3007 with the E bit (§7.1.3)
        assert aca.get("Result-Code") == 3007 and aca.is_error


def test_peer_config_follows_rf_setting() -> None:
    settings = load_settings(ROOT / "config" / "icx.toml")
    off = dataclasses.replace(settings, rf=dataclasses.replace(settings.rf, enabled=False))
    assert wiring.peer_config(off).acct_application_ids == ()
    assert 3 not in wiring.peer_config(off).local_applications()
    on = dataclasses.replace(settings, rf=dataclasses.replace(settings.rf, enabled=True))
    assert wiring.peer_config(on).acct_application_ids == (3,)
