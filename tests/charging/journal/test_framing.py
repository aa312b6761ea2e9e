"""Framing: byte-exact vectors and the scan invariant (never anything but a ScanResult)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import framing
from charging.journal.framing import (
    HEADER_LEN,
    SEGMENT_HEADER,
    check_header,
    classify_stop,
    frame,
    scan_frames,
)

_ext = cython_ext.load("journal_scan")
SCANNERS = [pytest.param(scan_frames, id="py")]
if _ext is not None:
    SCANNERS.append(pytest.param(_ext.scan_frames, id="cython"))


def test_header_vector() -> None:
    assert SEGMENT_HEADER == b"ICXJ\x00\x01" + bytes(10)
    assert HEADER_LEN == 16
    assert check_header(SEGMENT_HEADER) is None
    assert check_header(b"XXXX" + bytes(12)) == "not a journal segment (bad magic)"
    assert check_header(b"ICXJ") == "truncated segment header"


def test_frame_vector() -> None:
    # {"v": 1} -> 81 a1 76 01 ; crc32 = 0x... (zlib / IEEE)
    payload = msgpack.packb({"v": 1})
    assert payload == b"\x81\xa1v\x01"
    import zlib

    crc = zlib.crc32(payload)
    assert frame(payload) == b"\xce\x00\x00\x00\x04\xce" + crc.to_bytes(4, "big") + payload
    # the frame head is a valid msgpack stream: len, crc, record
    u = msgpack.Unpacker()
    u.feed(frame(payload))
    assert list(u) == [4, crc, {"v": 1}]


@pytest.mark.parametrize("scan", SCANNERS)
def test_scan_clean_and_stops(scan) -> None:  # type: ignore[no-untyped-def]
    recs = [msgpack.packb({"i": i, "pad": "x" * i}) for i in range(20)]
    buf = SEGMENT_HEADER + b"".join(frame(r) for r in recs)
    good_end, ends, problem = scan(buf, HEADER_LEN)
    assert problem is None and good_end == len(buf) and len(ends) == 20
    # torn: cut in the middle of the last frame
    torn = buf[:-3]
    good_end, ends, problem = scan(torn, HEADER_LEN)
    assert problem == "truncated record" and len(ends) == 19
    assert classify_stop(torn, good_end, problem)
    # corrupt in the middle: flip a payload byte of record 5
    bad = bytearray(buf)
    bad[ends[4] + 12] ^= 0xFF
    good_end, ends5, problem = scan(bytes(bad), HEADER_LEN)
    assert problem == "checksum mismatch" and len(ends5) == 5
    assert not classify_stop(bytes(bad), good_end, problem)


def test_classify_zero_tail_and_last_bad_crc() -> None:
    buf = SEGMENT_HEADER + frame(b"\x80") + bytes(100)
    good_end, ends, problem = scan_frames(buf, HEADER_LEN)
    assert problem == "bad frame header" and classify_stop(buf, good_end, problem)
    last = bytearray(SEGMENT_HEADER + frame(b"\x80") + frame(b"\x81\xa1v\x01"))
    last[-1] ^= 1
    good_end, ends, problem = scan_frames(bytes(last), HEADER_LEN)
    assert problem == "checksum mismatch" and classify_stop(bytes(last), good_end, problem)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=320))
def test_scan_fuzz_never_raises(data: bytes, start: int) -> None:
    for scan in [p.values[0] for p in SCANNERS]:
        good_end, ends, problem = scan(data, min(start, len(data)))
        assert min(start, len(data)) <= good_end <= len(data)
        assert all(e <= good_end for e in ends)
        if problem is not None:
            classify_stop(data, good_end, problem)  # must not raise either


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(min_value=-(2**63), max_value=2**63 - 1)), max_size=10),
       st.integers(min_value=0, max_value=10_000))
def test_scan_parity_and_truncation(records: list[dict[str, int]], cut: int) -> None:
    buf = SEGMENT_HEADER + b"".join(frame(msgpack.packb(r)) for r in records)
    cut = min(cut, len(buf) - HEADER_LEN)
    data = buf[: len(buf) - cut] if cut else buf
    results = [scan(data, HEADER_LEN) for scan in [p.values[0] for p in SCANNERS]]
    assert all(tuple(r) == tuple(results[0]) for r in results)
    good_end, ends, problem = results[0]
    if problem is not None:  # any pure truncation is a torn tail, never corruption
        assert classify_stop(data, good_end, problem)


def test_max_record_guard() -> None:
    head = framing.FRAME_HEAD.pack(framing.MARK, framing.MAX_RECORD + 1, framing.MARK, 0)
    assert scan_frames(SEGMENT_HEADER + head, HEADER_LEN).problem == "bad frame header"


@pytest.mark.skipif(_ext is None, reason="journal_scan extension not built or disabled")
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_cython_crc32_matches_zlib(data: bytes) -> None:
    import zlib

    assert _ext.crc32(data) == zlib.crc32(data)


@pytest.mark.skipif(_ext is None, reason="journal_scan extension not built or disabled")
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 15))
def test_scan_crc_folded_matches_zlib_every_alignment(data: bytes, skip: int) -> None:
    """The scanner's CRC (PCLMULQDQ folding for the 16-byte blocks when the CPU has it, the
    tables for the rest) is zlib.crc32 for every length and alignment; a frame the folding
    gets wrong would read as corruption at recovery."""
    import zlib

    view = memoryview(data)[min(skip, len(data)):]
    assert _ext.crc32(view) == zlib.crc32(view)


def test_scan_crc_large_and_patterns() -> None:
    import os
    import zlib

    if _ext is None:
        pytest.skip("journal_scan extension not built or disabled")
    for data in [bytes(64), b"\xff" * 64, bytes(range(256)) * 4099, os.urandom(1 << 20) + b"x"]:
        assert _ext.crc32(data) == zlib.crc32(data)
    # a scan of real frames checks them all
    recs = [framing.frame(os.urandom(n)) for n in (0, 1, 63, 64, 65, 421, 5000)]
    body = SEGMENT_HEADER + b"".join(recs)
    good_end, ends, problem = _ext.scan_frames(body, HEADER_LEN)
    assert problem is None and good_end == len(body) and len(ends) == len(recs)
