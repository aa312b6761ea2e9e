"""pack_frames (pure reference) and its compiled twin cython_ext/journal_frame.pyx: parity."""

from __future__ import annotations

import enum
import os
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import framing
from charging.journal.framing import HEADER_LEN, MAX_RECORD, frame, pack_frames, scan_frames

_ext = cython_ext.load("journal_frame")
IMPLS = [pytest.param(pack_frames, id="py")]
if _ext is not None:
    IMPLS.append(pytest.param(_ext.pack_frames, id="cython"))

_pack = msgpack.Packer(use_bin_type=True).pack

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.text(max_size=40), st.binary(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=5)
records = st.one_of(st.dictionaries(st.text(max_size=8), values, max_size=8),
                    st.binary(max_size=60))


def _run(impl: Any, recs: list[Any], offset: int, limit: int, start: int = 0
         ) -> tuple[int, int, bytes, list[int]]:
    buf = bytearray(b"prefix")
    ends: list[int] = []
    i, off = impl(_pack, recs, start, buf, offset, limit, ends)
    return i, off, bytes(buf), ends


def test_vector() -> None:
    buf = bytearray()
    ends: list[int] = []
    i, off = pack_frames(_pack, [{"v": 1}, b"\x01"], 0, buf, HEADER_LEN, 1 << 20, ends)
    assert (i, off) == (2, HEADER_LEN + 14 + 11)
    assert bytes(buf) == frame(b"\x81\xa1v\x01") + frame(b"\x01")
    assert ends == [HEADER_LEN + 14, HEADER_LEN + 25]


@settings(max_examples=120, deadline=None)
@given(st.lists(records, max_size=8), st.integers(HEADER_LEN, 400), st.integers(0, 900),
       st.integers(0, 3))
def test_parity(recs: list[Any], offset: int, limit: int, start: int) -> None:
    start = min(start, len(recs))
    results = [_run(p.values[0], recs, offset, limit, start) for p in IMPLS]
    assert all(r == results[0] for r in results)
    i, off, data, ends = results[0]
    # the framed bytes are valid frames of exactly the records taken, in order
    body = data[len(b"prefix"):]
    scan = scan_frames(body, 0)
    assert scan.problem is None and len(scan.ends) == i - start
    assert [offset + e for e in scan.ends] == ends and off == (ends[-1] if ends else offset)
    payloads = [r if isinstance(r, bytes) else _pack(r) for r in recs[start:i]]
    assert body == b"".join(frame(x) for x in payloads)
    # stops only where the next record would pass the limit of a non-empty segment
    if i < len(recs):
        nxt = recs[i] if isinstance(recs[i], bytes) else _pack(recs[i])
        assert off > HEADER_LEN and off + 10 + len(nxt) > limit


@pytest.mark.parametrize("impl", IMPLS)
def test_first_record_always_fits(impl: Any) -> None:
    # an empty segment takes a record bigger than the limit (else it could never be written)
    i, off, _data, ends = _run(impl, [b"x" * 100], HEADER_LEN, 50)
    assert (i, off, ends) == (1, HEADER_LEN + 110, [HEADER_LEN + 110])


@pytest.mark.parametrize("impl", IMPLS)
def test_no_ends_list(impl: Any) -> None:
    buf = bytearray()
    assert impl(_pack, [{"a": 1}] * 3, 0, buf, HEADER_LEN, 1 << 20, None) == (3, HEADER_LEN + 42)


@pytest.mark.parametrize("impl", IMPLS)
def test_oversized_record_refused(impl: Any) -> None:
    buf = bytearray()
    with pytest.raises(ValueError, match="exceeds"):
        impl(_pack, [bytes(MAX_RECORD + 1)], 0, buf, HEADER_LEN, 1 << 40, None)
    assert buf == bytearray()


def test_twin_selected() -> None:
    required = os.environ.get("CI") == "true" or os.environ.get("ICX_REQUIRE_EXTENSIONS") == "1"
    if not cython_ext.extensions_enabled():
        assert framing.frame_packer() is pack_frames
    elif _ext is None:
        assert not required, "cython_ext.journal_frame is not built"
    else:
        assert framing.frame_packer() is _ext.pack_frames


class _Status(str, enum.Enum):  # like charging.store.base.OpStatus
    OK = "ok"


class _Kind(enum.IntEnum):
    ONE = 1


schema_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
              st.floats(allow_nan=False), st.text(max_size=300), st.binary(max_size=70),
              st.sampled_from([_Status.OK, _Kind.ONE])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=8), inner, max_size=5),
                            st.dictionaries(st.integers(-5, 300), inner, max_size=3)),
    max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(schema_values)
def test_record_packer_writes_msgpack_bytes(inner: Any) -> None:
    value = {"k": inner}  # a record is a map (top-level bytes mean "already packed")
    pack, fallback = framing.record_packers()
    reference = msgpack.Packer(use_bin_type=True).pack
    try:
        want: bytes | type[BaseException] = reference(value)
    except Exception as exc:  # noqa: BLE001
        want = type(exc)
    buf = bytearray()
    for impl in [p.values[0] for p in IMPLS]:
        buf.clear()
        try:
            impl(pack, [value], 0, buf, HEADER_LEN, 1 << 30, None, fallback)
            got: bytes | type[BaseException] = bytes(buf[10:])
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        assert got == want


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, "\ud800", {"a": object()}],
                         ids=["big", "small", "surrogate", "object"])
def test_record_packer_refuses_like_msgpack(value: Any) -> None:
    pack, fallback = framing.record_packers()
    with pytest.raises(Exception) as want:
        msgpack.Packer(use_bin_type=True).pack(value)
    for impl in [p.values[0] for p in IMPLS]:
        with pytest.raises(want.type):
            impl(pack, [value], 0, bytearray(), HEADER_LEN, 1 << 30, None, fallback)


@pytest.mark.skipif(_ext is None, reason="journal_frame extension not built or disabled")
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 15))
def test_frame_crc_matches_zlib(data: bytes, skip: int) -> None:
    """The framer's CRC (carry-less-multiply folding when the CPU has it, zlib's for the
    tail) is zlib.crc32, for every length and alignment."""
    import zlib

    assert _ext is not None
    view = memoryview(data)[min(skip, len(data)):]
    assert _ext.crc32(view) == zlib.crc32(view) == _ext.crc32_zlib(view)


def test_frame_crc_large_and_patterns() -> None:
    import zlib

    if _ext is None:
        pytest.skip("journal_frame extension not built or disabled")
    for data in [bytes(64), b"\xff" * 64, bytes(range(256)) * 4099, os.urandom(1 << 20) + b"x"]:
        assert _ext.crc32(data) == zlib.crc32(data)
