"""Parity of the compiled validator's byte path: a received Grouped AVP is checked on its
payload bytes (no member Avp objects) and must give exactly the spec's verdict -- the same
DiameterError (code, Failed-AVP) or none -- for every CCR shape and byte mutation.

Each verdict is taken on a FRESH decode, so the twin sees untouched Grouped AVPs (the byte
path) in both strict modes. Skipped without the compiled codec (then there is one validator).
"""

from __future__ import annotations

import random

import pytest

from benchmarks._ro_edge import frames as bench_frames
from diameter import DiameterError, dictionary
from diameter.avp import EXT
from diameter.message import decode_message_py
from diameter.validate import _ANY, check_avps_py

pytestmark = pytest.mark.skipif(EXT is None, reason="compiled codec not built or disabled")


def _verdict(raw: bytes, compiled: bool, strict: bool) -> object:
    try:
        m = EXT.decode_message(raw) if compiled else decode_message_py(raw)
    except DiameterError as exc:
        return ("undecodable", exc.key())
    cmd = dictionary.command(m.code, m.app_id)
    grammar = (cmd.request if m.is_request else cmd.answer) if cmd else _ANY
    try:
        (EXT.check_avps if compiled else check_avps_py)(m.avps, grammar, strict=strict)
    except DiameterError as exc:
        return exc.key()
    return None


def test_byte_path_agrees_on_ccr_mutations() -> None:
    rng = random.Random(6733)
    base = bench_frames(8)
    seen = set()
    for i in range(2000):
        b = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(20, len(b))] = rng.randrange(256)
        raw = bytes(b)
        strict = bool(i & 1)
        got = _verdict(raw, True, strict)
        assert got == _verdict(raw, False, strict)
        seen.add(got if got is None else str(got)[:6])
    assert None in seen and len(seen) > 5  # both accepted and refused mutations were seen


def test_byte_path_accepts_the_hot_path_ccrs() -> None:
    for raw in bench_frames(8):
        m = EXT.decode_message(raw)
        EXT.check_avps(m.avps, dictionary.command(272, 4).request)
        groups = [a for a in m.avps if a.code in (443, 456, 873)]
        assert groups and all(type(a._value) is not list for a in groups)  # not materialised
