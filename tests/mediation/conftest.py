"""Builders for Ro/Rf test messages (our own codec, in process)."""

from __future__ import annotations

from typing import Any

import pytest

from diameter.avp import Avp
from diameter.message import Message, decode_message

A = Avp.new


def ccr(*, sid: str = "pgw.test;1;1", rtype: int = 1, number: int = 0,
        context: str = "32260@3gpp.org", subscriber: str | None = "41790000001",
        msccs: list[list[Avp]] | None = None, extra: list[Avp] | None = None,
        drop: tuple[str, ...] = ()) -> Message:
    """A CCR decoded from its own bytes (so values go through the real codec)."""
    avps: list[Avp] = [
        A("Session-Id", sid), A("Origin-Host", "pgw.test"), A("Origin-Realm", "test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", context), A("CC-Request-Type", rtype),
        A("CC-Request-Number", number),
    ]
    if subscriber is not None:
        avps.append(A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                          A("Subscription-Id-Data", subscriber)]))
    if msccs is not None:
        avps.append(A("Multiple-Services-Indicator", 1))
        avps.extend(A("Multiple-Services-Credit-Control", m) for m in msccs)
    avps.extend(extra or [])
    avps = [a for a in avps if a.name not in drop]
    return decode_message(Message.request(272, 4, avps, proxiable=True,
                                          hop_by_hop=7, end_to_end=9).encode())


def ims(called: str, calling: str = "tel:+41790000001") -> Avp:
    return A("Service-Information", [A("IMS-Information", [
        A("Node-Functionality", 0), A("Calling-Party-Address", calling),
        A("Called-Party-Address", called)])])


def sms_info(recipient: str) -> Avp:
    return A("Service-Information", [A("SMS-Information", [
        A("Recipient-Info", [A("Recipient-Address", [A("Address-Type", 1),
                                                     A("Address-Data", recipient)])])])])


def rsu(**units: int) -> Avp:
    return A("Requested-Service-Unit", [A(k.replace("_", "-"), v) for k, v in units.items()])


def usu(**units: int) -> Avp:
    return A("Used-Service-Unit", [A(k.replace("_", "-"), v) for k, v in units.items()])


def values(avps: list[Avp]) -> dict[str, Any]:
    """name -> value of the first AVP of each name (grouped values stay lists)."""
    out: dict[str, Any] = {}
    for a in avps:
        out.setdefault(a.name or str(a.code), a.value)
    return out


@pytest.fixture
def build_ccr() -> Any:
    return ccr
