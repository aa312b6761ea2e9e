"""The agent's protocol-error answers for requests it does not serve (RFC 6733 §7.1.3)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from diameter.message import Message, decode_message
from mediation.agent import ChargingAgent
from mediation.service_map import ServiceMap
from tests.mediation.conftest import A

SMAP = ServiceMap.from_config({"32260@3gpp.org": "voice"}, {}, "")


def agent(rf_enabled: bool) -> ChargingAgent:
    # These paths never reach the charging service: None proves it.
    return ChargingAgent(cast(Any, None), SMAP, origin_host="ocs.test", origin_realm="test",
                         rf_enabled=rf_enabled)


def request(code: int, app: int) -> Message:
    avps = [A("Session-Id", "c.test;1;1"), A("Origin-Host", "c.test"), A("Origin-Realm", "test"),
            A("Destination-Realm", "test")]
    return decode_message(Message.request(code, app, avps, proxiable=True, hop_by_hop=11,
                                          end_to_end=12).encode())


@pytest.mark.parametrize("code,app,rc", [(271, 3, 3007), (275, 4, 3001)])
def test_unserved_requests_get_e_bit_protocol_errors(code: int, app: int, rc: int) -> None:
    ans = decode_message(asyncio.run(agent(rf_enabled=False).handle(request(code, app)))
                         .encode())
    assert ans.is_error and not ans.is_request and ans.code == code
    assert ans.get("Result-Code") == rc
    assert ans.avps[0].name == "Session-Id"
    assert (ans.hop_by_hop, ans.end_to_end) == (11, 12)
