"""Property tests: every dictionary type round-trips its values; encoding is deterministic."""

from __future__ import annotations

import ipaddress
import math
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from diameter import Avp, Message, decode_message, dictionary
from diameter.types import AvpType, RawAddress


def _values(t: AvpType) -> st.SearchStrategy[Any]:
    return {
        AvpType.INTEGER32: st.integers(-(2**31), 2**31 - 1),
        AvpType.ENUMERATED: st.integers(-(2**31), 2**31 - 1),
        AvpType.UNSIGNED32: st.integers(0, 2**32 - 1),
        AvpType.INTEGER64: st.integers(-(2**63), 2**63 - 1),
        AvpType.UNSIGNED64: st.integers(0, 2**64 - 1),
        AvpType.FLOAT32: st.floats(width=32),
        AvpType.FLOAT64: st.floats(),
        # Unix seconds representable as Diameter Time (RFC 2030 eras 0 and 1)
        AvpType.TIME: st.integers(2**31 - 2208988800, 2**32 + 2**31 - 1 - 2208988800),
        AvpType.ADDRESS: st.ip_addresses()
        | st.builds(RawAddress, st.integers(3, 65534), st.binary(max_size=16)),
        AvpType.CHARGING_ID: st.integers(0, 2**32 - 1),
        AvpType.OCTET_STRING: st.binary(max_size=40),
        AvpType.GROUPED: st.just([]),
    }.get(t, st.text(max_size=40))


_named = st.sampled_from(sorted(dictionary.BY_NAME)).flatmap(
    lambda n: st.tuples(st.just(n), _values(dictionary.BY_NAME[n].type))
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("!d", a) == struct.pack("!d", b)
    return bool(a == b)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_named, max_size=10), hbh=st.integers(0, 2**32 - 1))
def test_values_roundtrip_through_the_wire(items: list[tuple[str, Any]], hbh: int) -> None:
    avps = [Avp.new(n, v) for n, v in items]
    raw = Message.request(272, 4, avps, proxiable=True, hop_by_hop=hbh).encode()
    assert len(raw) % 4 == 0 and int.from_bytes(raw[1:4], "big") == len(raw)
    m = decode_message(raw)
    assert m.hop_by_hop == hbh and m.encode() == raw
    for (name, v), a in zip(items, m.avps, strict=True):
        d = dictionary.avp_by_name(name)
        assert (a.code, a.vendor, a.flags) == (d.code, d.vendor, d.default_flags)
        got = a.value
        if d.type == AvpType.ADDRESS and isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address):
            assert got == v
        elif d.type == AvpType.FLOAT32:
            assert _same(struct.unpack("!f", struct.pack("!f", v))[0], got)
        else:
            assert _same(v, got), (name, v, got)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(_named, max_size=6))
def test_encoding_is_deterministic_and_grouping_nests(items: list[tuple[str, Any]]) -> None:
    a1 = Avp.new("Service-Information", [Avp.new(n, v) for n, v in items])
    a2 = Avp.new("Service-Information", [Avp.new(n, v) for n, v in items])
    assert a1.encode() == a2.encode()
    raw = a1.encode()
    assert int.from_bytes(raw[5:8], "big") == len(raw)  # Grouped length includes member padding
    m = decode_message(Message.request(272, 4, [a1]).encode())
    g = m.find("Service-Information", 10415)
    assert g is not None and len(g.value) == len(items)
    assert g.encode() == raw
