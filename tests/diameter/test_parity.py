"""Parity: the compiled twin (cython_ext/diameter_codec.pyx) and the pure-Python spec give
identical values, bytes and errors over the real captures, random AVP trees and random bytes.
Skipped when the extension is not built or ICX_NO_EXTENSIONS=1 (then there is one codec)."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext import extensions_enabled
from diameter import DiameterError, dictionary
from diameter.avp import EXT, AvpPy
from diameter.message import MessagePy, decode_message_py
from diameter.types import AvpType
from diameter.validate import check_answer, check_request
from tests.diameter.conftest import deep


@pytest.fixture(autouse=True, scope="module")
def _compiled_codec() -> None:
    """Skip when there is one codec (ICX_NO_EXTENSIONS=1, or a dev box without the build);
    under CI=true (or ICX_REQUIRE_EXTENSIONS=1) with extensions enabled a missing or stale build fails instead of hiding
    every parity test behind a skip."""
    if EXT is not None:
        return
    required = (os.environ.get("CI", "").lower() in ("1", "true", "yes")
                or os.environ.get("ICX_REQUIRE_EXTENSIONS") == "1")  # same switch as charging
    if required and extensions_enabled():
        pytest.fail("compiled codec not built or stale (run setup.py build_ext --inplace)")
    pytest.skip("compiled codec not built or disabled")


def _outcome(decode: Any, raw: bytes) -> Any:
    try:
        m = decode(raw)
    except DiameterError as exc:
        return ("error", exc.key(), exc.header)
    image = (m.header, deep(m.avps), m.encode())
    try:
        (check_request if m.is_request else check_answer)(m)
        verdict: Any = None
    except DiameterError as exc:
        verdict = exc.key()
    return (image, verdict)


def test_parity_over_captures(corpus: list[bytes]) -> None:
    assert EXT is not None
    for raw in corpus:
        assert _outcome(EXT.decode_message, raw) == _outcome(decode_message_py, raw)


# --- random AVP trees ------------------------------------------------------------------------
_codes = st.sampled_from([k for k in dictionary.AVPS]) | st.tuples(
    st.integers(0, 2**32 - 1), st.sampled_from([0, 0, 10415, 12345])
)
_flags = st.sampled_from([0x00, 0x40, 0x20, 0x60, 0x1F, 0xFF])


@st.composite
def _leaf(draw: st.DrawFn) -> bytes:
    code, vendor = draw(_codes)
    flags = draw(_flags)
    payload = draw(st.binary(max_size=24))
    return AvpPy(code, payload, vendor=vendor, flags=flags, type=int(AvpType.OCTET_STRING)).encode()


def _group(children: list[bytes]) -> st.SearchStrategy[bytes]:
    grouped = [k for k, d in dictionary.AVPS.items() if d.type == AvpType.GROUPED]
    return st.sampled_from(grouped).map(
        lambda k: AvpPy(k[0], b"".join(children), vendor=k[1], type=int(AvpType.OCTET_STRING)).encode()
    )


_tree = st.recursive(_leaf(), lambda inner: st.lists(inner, max_size=4).flatmap(_group), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(avps=st.lists(_tree, max_size=6), code=st.sampled_from([257, 272, 271, 280, 258, 999]),
       app=st.sampled_from([0, 3, 4]), flags=st.sampled_from([0x80, 0xC0, 0x40, 0xA0, 0x00]))
def test_parity_random_trees(avps: list[bytes], code: int, app: int, flags: int) -> None:
    assert EXT is not None
    raw = MessagePy(code, app, flags=flags).encode()
    body = b"".join(avps)
    raw = ((1 << 24) | (20 + len(body))).to_bytes(4, "big") + raw[4:] + body
    assert _outcome(EXT.decode_message, raw) == _outcome(decode_message_py, raw)


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=200), code=st.sampled_from([257, 272, 280]))
def test_parity_random_bytes(body: bytes, code: int) -> None:
    assert EXT is not None
    body = body + bytes(-len(body) % 4)
    raw = ((1 << 24) | (20 + len(body))).to_bytes(4, "big") + bytes([0x80, 0, code >> 8, code & 0xFF]) + bytes(12) + body
    assert _outcome(EXT.decode_message, raw) == _outcome(decode_message_py, raw)


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=64))
def test_parity_garbage(raw: bytes) -> None:
    assert EXT is not None
    assert _outcome(EXT.decode_message, raw) == _outcome(decode_message_py, raw)


# --- building --------------------------------------------------------------------------------
def _value_for(t: int) -> st.SearchStrategy[Any]:
    return {
        AvpType.INTEGER32: st.integers(-(2**31), 2**31 - 1),
        AvpType.ENUMERATED: st.integers(-(2**31), 2**31 - 1),
        AvpType.UNSIGNED32: st.integers(0, 2**32 - 1),
        AvpType.INTEGER64: st.integers(-(2**63), 2**63 - 1),
        AvpType.UNSIGNED64: st.integers(0, 2**64 - 1),
        AvpType.FLOAT32: st.floats(width=32, allow_nan=False),
        AvpType.FLOAT64: st.floats(allow_nan=False),
        AvpType.TIME: st.integers(-2208988800 + 2**31, 2**32 + 2**31 - 2208988800 - 1),
        AvpType.ADDRESS: st.ip_addresses(),
        AvpType.CHARGING_ID: st.integers(0, 2**32 - 1) | st.binary(max_size=8),
        AvpType.OCTET_STRING: st.binary(max_size=20),
    }.get(AvpType(t), st.text(max_size=20))


_named = st.sampled_from(
    sorted(n for n, d in dictionary.BY_NAME.items() if d.type != AvpType.GROUPED)
).flatmap(lambda n: st.tuples(st.just(n), _value_for(dictionary.BY_NAME[n].type)))


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_named, min_size=1, max_size=8), group=st.sampled_from(["Service-Information", "Multiple-Services-Credit-Control"]))
def test_parity_building(items: list[tuple[str, Any]], group: str) -> None:
    assert EXT is not None
    py = [AvpPy.new(n, v) for n, v in items]
    cx = [EXT.Avp.new(n, v) for n, v in items]
    assert [a.encode() for a in py] == [a.encode() for a in cx]
    mp = MessagePy.request(272, 4, [AvpPy.new(group, py)], proxiable=True, hop_by_hop=3)
    mc = EXT.Message.request(272, 4, [EXT.Avp.new(group, cx)], proxiable=True, hop_by_hop=3)
    assert mp.encode() == mc.encode()
    assert mp.answer([AvpPy.new("Result-Code", 2001)]).encode() == mc.answer([EXT.Avp.new("Result-Code", 2001)]).encode()


def test_parity_unencodable_values_raise_alike() -> None:
    assert EXT is not None
    for name, v in [("Result-Code", -1), ("Result-Code", 2**32), ("Value-Digits", 2**63), ("Host-IP-Address", "nope")]:
        errs = []
        for cls in (AvpPy, EXT.Avp):
            try:
                cls.new(name, v).encode()
                errs.append(None)
            except Exception as exc:  # noqa: BLE001 - comparing exception types
                errs.append(type(exc))
        assert errs[0] is not None and errs[0] == errs[1], (name, v, errs)
    assert AvpPy.new("Host-IP-Address", ipaddress.ip_address("::1")).encode() == EXT.Avp.new("Host-IP-Address", "::1").encode()


def _verdict(fn: Any, avps: list[Any], grammar: Any, strict: bool) -> Any:
    try:
        fn(avps, grammar, strict=strict)
    except DiameterError as exc:
        return exc.key()
    return None


def test_validation_twin_agrees_on_captures_and_mutations(corpus: list[bytes]) -> None:
    """check_avps (compiled) and check_avps_py (spec) give the same verdict on the same
    compiled-decoded AVPs: every capture frame and 1500 seeded mutations of them."""
    import random

    from diameter.validate import _ANY, check_avps_py

    assert EXT is not None
    rng = random.Random(4006)
    frames = list(corpus)
    for _ in range(1500):
        b = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(20, len(b)) if len(b) > 20 else 0
            b[i] = rng.randrange(256)
        frames.append(bytes(b))
    for raw in frames:
        try:
            m = EXT.decode_message(raw)
        except DiameterError:
            continue
        cmd = dictionary.command(m.code, m.app_id)
        grammar = (cmd.request if m.is_request else cmd.answer) if cmd else _ANY
        for strict in (False, True):
            assert _verdict(EXT.check_avps, m.avps, grammar, strict) == _verdict(
                check_avps_py, m.avps, grammar, strict
            )


def test_fixed_sizes_known_to_the_twin() -> None:
    """The compiled validator hard-codes the fixed payload sizes: keep them equal to the spec."""
    from diameter.types import FIXED_SIZE

    assert {int(t): n for t, n in FIXED_SIZE.items()} == {2: 4, 3: 8, 4: 4, 5: 8, 6: 4, 7: 8, 14: 4, 10: 4}
