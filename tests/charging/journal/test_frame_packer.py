"""pack_frames (pure reference) and its compiled twin cython_ext/journal_frame.pyx: parity."""

from __future__ import annotations

import collections
import enum
import functools
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
    # the built-in encoder (dict records written straight into the buffer)
    IMPLS.append(pytest.param(functools.partial(_ext.pack_frames, native=True),
                              id="cython-native"))

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


# -- the compiled built-in encoder (pack_frames(..., native=True)) -----------------------------

_native = pytest.mark.skipif(_ext is None, reason="journal_frame extension not built or disabled")


def _both(recs: list[Any], buf: bytes = b"", limit: int = 1 << 40,
          start: int = 0) -> list[Any]:
    """(result or exception type, buffer bytes, ends) of the pure reference and the native
    encoder, each with the journal's own packers (record_packers)."""
    assert _ext is not None
    pack, fallback = framing.record_packers()
    out = []
    for impl, native in [(pack_frames, False), (_ext.pack_frames, True)]:
        b = bytearray(buf)
        ends: list[Any] = []
        try:
            got: Any = impl(pack, recs, start, b, HEADER_LEN, limit, ends, fallback, None, 0,
                            native)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        out.append((got, bytes(b), ends))
    return out


class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


class _Obj:
    def __init__(self) -> None:
        self.a = 1
        self.b = "two"


def _split_dict() -> dict[str, Any]:
    return _Obj().__dict__  # a split-table dict (keys shared with the class)


def _holed_dict() -> dict[str, Any]:
    d = {"a": 1, "b": 2, "c": 3, "d": 4}
    del d["b"]  # a deleted entry inside the table
    d["e"] = 5
    return d


_BOUNDARY_INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**30 - 1, 2**30, 2**32 - 1, 2**32,
                  2**60 - 1, 2**60, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -1, -32, -33, -128,
                  -129, -32768, -32769, -(2**30), -(2**31), -(2**31) - 1, -(2**60),
                  -(2**60) - 1, -(2**63), -(2**63) - 1, 10**30]
_BOUNDARY_STRS = ["", "a", "ab", "abc", "abcd", "x" * 7, "x" * 8, "x" * 15, "x" * 16,
                  "x" * 17, "x" * 31, "x" * 32, "x" * 255, "x" * 256, "x" * 65535,
                  "x" * 65536, "é", "é" * 15, "é" * 16, "€" * 100, "\U0001F600" * 9, "\ud800"]


@_native
@pytest.mark.parametrize("value", [
    *_BOUNDARY_INTS, *_BOUNDARY_STRS, None, True, False, 0.0, -1.5, 1e300, float("inf"),
    float("nan"), b"", b"x" * 255, b"x" * 256, b"x" * 65536, bytearray(b"ab"),
    list(range(15)), list(range(16)), list(range(65536)), tuple(range(3)), (),
    {str(i): i for i in range(15)}, {str(i): i for i in range(16)},
    {str(i): i for i in range(65536)}, {1: "int key", (1, 2): "tuple key", None: 0},
    _holed_dict(), _split_dict(), collections.OrderedDict(a=1), _Dict(a=1), _Str("s"),
    _Int(3), _Float(2.5), _Status.OK, _Kind.ONE, object(), {"a": [1, {"b": object()}]},
], ids=repr)
def test_native_encoder_writes_the_reference_bytes(value: Any) -> None:
    """Every format boundary, dict layout and declined type: the native path leaves the
    same bytes (or raises the same error) as the pure reference."""
    for rec in ({"k": value}, {"k": [value, {"n": value}]}):
        py, nat = _both([rec, {"after": 1}], b"prefix")
        assert nat == py
    for rec in (_holed_dict(), _split_dict()):  # the record itself in those layouts
        py, nat = _both([rec])
        assert nat == py


@_native
def test_native_encoder_nesting() -> None:
    """Past its own depth bound (32) the encoder declines: the reference packs or refuses."""
    for depth in (30, 31, 32, 33, 40, 600):
        v: Any = 1
        for _ in range(depth):
            v = [v]
        py, nat = _both([{"k": v}])
        assert nat == py
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    py, nat = _both([cyclic])
    assert nat == py and isinstance(py[0], type)  # refused, by both


@_native
@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.dictionaries(st.text(max_size=8), schema_values, max_size=6),
                          st.binary(max_size=60), st.just({"bad": object()}),
                          st.just({"big": 2**70})), max_size=10),
       st.integers(0, 4000), st.binary(max_size=20), st.integers(0, 3))
def test_native_parity(recs: list[Any], limit: int, prefix: bytes, start: int) -> None:
    """Random records (incl. ones the encoder declines and ones nobody can pack), random
    segment limits, a buffer with bytes already in it: the same outcome as the reference --
    result, buffer contents (also after an error) and positions."""
    py, nat = _both(recs, prefix, limit, min(start, len(recs)))
    assert nat == py


@_native
def test_native_grows_a_buffer_across_calls() -> None:
    """Many calls appending to one buffer (as a group collects records): the bytes are the
    concatenation of the frames, whatever the buffer's allocation was."""
    assert _ext is not None
    pack, fallback = framing.record_packers()
    recs = [{"i": i, "s": "v" * (i % 40), "l": [i] * (i % 5)} for i in range(500)]
    buf = bytearray()
    off = HEADER_LEN
    for k in range(0, 500, 7):
        _i, off = _ext.pack_frames(pack, recs[k:k + 7], 0, buf, off, 1 << 40, None, fallback,
                                   None, 0, True)
    assert bytes(buf) == b"".join(frame(_pack(r)) for r in recs)
    assert off == HEADER_LEN + len(buf)


@pytest.mark.parametrize("impl", IMPLS)
def test_exported_buffer_refused(impl: Any) -> None:
    """A buffer with a live export (memoryview) cannot grow: BufferError, nothing written."""
    pack, fallback = framing.record_packers()
    buf = bytearray(b"abc")
    view = memoryview(buf)
    with pytest.raises(BufferError):
        impl(pack, [{"a": 1}], 0, buf, HEADER_LEN, 1 << 30, None, fallback)
    assert bytes(buf) == b"abc"
    view.release()


@pytest.mark.parametrize("reserve", [framing.reserve] + (
    [_ext.reserve] if _ext is not None else []), ids=["py", "cython"][:1 + (_ext is not None)])
def test_reserve_keeps_size_and_bytes(reserve: Any) -> None:
    """reserve() changes nothing a caller can see: size and bytes stay; framing into the
    buffer afterwards gives the same bytes as into a fresh one."""
    pack, fallback = framing.record_packers()
    for start in (b"", b"abc", bytes(range(256)) * 20):
        buf = bytearray(start)
        reserve(buf, 100_000)
        assert bytes(buf) == start
        reserve(buf, 10)  # smaller than what it holds: nothing
        assert bytes(buf) == start
        recs = [{"i": i, "s": "x" * i} for i in range(50)]
        framing.frame_packer()(pack, recs, 0, buf, HEADER_LEN, 1 << 40, None, fallback,
                               None, 0, True)
        assert bytes(buf) == start + b"".join(frame(_pack(r)) for r in recs)
    buf = bytearray(b"pinned")
    view = memoryview(buf)
    reserve(buf, 1 << 20)  # an export pins the buffer: nothing, no error
    assert bytes(buf) == b"pinned"
    view.release()
