"""The compiled AVP (cython_ext/diameter_codec.pyx) is out of the cyclic collector's sight:
every request in flight holds tens of AVPs, and a young collection walked all of them for
nothing (an AVP cannot be in a cycle: its value is an atom or its grouped children). The
measure behind it: at 10k CCR/s paced, the objects alive at each young collection fell from
~16k to ~4-8k and its pause from 2.5-9 ms to 0.4-3.6 ms (docs/diameter.md, round 12)."""

from __future__ import annotations

import gc
import sys

import pytest

import cython_ext
from diameter import Avp, Message
from diameter.message import decode_message
from icx.diameter_client import A, mscc

pytestmark = pytest.mark.skipif(cython_ext.load("diameter_codec") is None,
                                reason="cython_ext.diameter_codec not built (or disabled)")


def _walk(avps: list[Avp]) -> list[Avp]:
    out = []
    for a in avps:
        out.append(a)
        if isinstance(a.value, list):
            out.extend(_walk(a.value))
    return out


def test_decoded_and_built_avps_are_not_tracked() -> None:
    msg = Message.request(272, 4, [A("Session-Id", "gc;1"), A("CC-Request-Type", 2),
                                   mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 30))])
    decoded = decode_message(msg.encode())
    avps = _walk(decoded.avps)
    assert any(isinstance(a.value, list) for a in avps)  # a grouped AVP and its children
    assert avps and not any(gc.is_tracked(a) for a in avps)
    assert not any(gc.is_tracked(a) for a in _walk(msg.avps))
    # the values are the same objects a tracked AVP would hold; re-encoding is unchanged
    assert decoded.encode() == msg.encode()


def test_nothing_but_its_holders_keeps_an_avp_alive() -> None:
    """Reference counting alone frees a message's AVPs (no collection needed): once the
    message is gone, a grouped AVP's child is held by its parent's list and our name only."""
    decoded = decode_message(Message.request(272, 4, [A("Session-Id", "gc;2"), mscc(
        1, rsu=("CC-Time", 60))]).encode())
    grouped = next(a for a in decoded.avps if isinstance(a.value, list))
    child = grouped.value[0]
    del decoded
    assert sys.getrefcount(grouped) == 2  # (the name, getrefcount's argument)
    assert sys.getrefcount(child) == 3  # (the parent's list, the name, the argument)
