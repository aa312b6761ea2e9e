"""On-disk framing of journal segments: the pure-Python reference (executable spec).

A segment file is a 16-byte header followed by frames::

    header  = b"ICXJ" + u16 version (=1) + 10 reserved zero bytes
    frame   = 0xCE u32be(len) 0xCE u32be(crc32) payload[len]

``payload`` is one msgpack map (docs/journal-schema.md) and ``crc32`` is **zlib.crc32** (the
IEEE/ISO-HDLC polynomial, C speed in the stdlib) of the payload. The two frame header fields
are themselves valid msgpack ``uint32`` values, so a verified run of frames is one valid msgpack
stream ``len, crc, record, len, crc, record, ...`` that a single ``msgpack.Unpacker`` decodes at
C speed (the reader's fast path); the checksums are checked first by :func:`scan_frames`.

A scan stops at the first frame that does not check. Whether that is a torn tail (an
unfinished group commit: safe to truncate, nobody was answered) or corruption (must be
quarantined, never skipped) is decided by :func:`classify_stop`.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

MAGIC = b"ICXJ"
FORMAT_VERSION = 1
SEGMENT_HEADER = MAGIC + struct.pack(">H", FORMAT_VERSION) + bytes(10)
HEADER_LEN = len(SEGMENT_HEADER)  # 16
FRAME_HEAD = struct.Struct(">BIBI")
FRAME_HEAD_LEN = FRAME_HEAD.size  # 10
MARK = 0xCE  # msgpack uint32 marker
MAX_RECORD = 16 * 1024 * 1024  # a larger length claim is corruption, not a record

_pack_head = FRAME_HEAD.pack
_crc32 = zlib.crc32


def frame(payload: bytes) -> bytes:
    """Frame one msgpack payload (header + payload)."""
    return _pack_head(MARK, len(payload), MARK, _crc32(payload)) + payload


class ScanResult(NamedTuple):
    """Outcome of :func:`scan_frames`.

    ``good_end`` is the offset just after the last frame that checked; ``ends`` lists the end
    offset of every good frame (these are the records' positions); ``problem`` is None when the
    scan reached the end of the buffer cleanly, else a short description of the frame at
    ``good_end``.
    """

    good_end: int
    ends: list[int]
    problem: str | None


def scan_frames(buf: bytes | bytearray | memoryview, start: int) -> ScanResult:
    """Check every frame of ``buf`` from ``start``; stop at the first that does not check."""
    mv = memoryview(buf)
    n = len(mv)
    off = start
    ends: list[int] = []
    append = ends.append
    unpack = FRAME_HEAD.unpack_from
    crc32 = _crc32
    while off < n:
        if n - off < FRAME_HEAD_LEN:
            return ScanResult(off, ends, "truncated frame header")
        m1, length, m2, crc = unpack(mv, off)
        if m1 != MARK or m2 != MARK or length > MAX_RECORD:
            return ScanResult(off, ends, "bad frame header")
        p = off + FRAME_HEAD_LEN
        e = p + length
        if e > n:
            return ScanResult(off, ends, "truncated record")
        if crc32(mv[p:e]) != crc:
            return ScanResult(off, ends, "checksum mismatch")
        append(e)
        off = e
    return ScanResult(off, ends, None)


def classify_stop(buf: bytes | bytearray | memoryview, stop: int, problem: str) -> bool:
    """Return True when a scan stop at ``stop`` is a *torn tail* (safe to truncate).

    A torn tail is what a crash during a group-commit write leaves: an incomplete last frame,
    a last frame whose bytes did not all reach the disk (checksum fails and nothing follows
    it), or zero bytes the filesystem allocated but never wrote. Anything else -- a bad frame
    with complete, non-zero data after it -- is corruption of data that was once durable.
    """
    mv = memoryview(buf)
    n = len(mv)
    if problem in ("truncated frame header", "truncated record"):
        return True
    if not any(mv[stop:n]):  # all zero: allocated, never written
        return True
    if problem == "checksum mismatch":
        _m1, length, _m2, _crc = FRAME_HEAD.unpack_from(mv, stop)
        return stop + FRAME_HEAD_LEN + length == n
    return False


def check_header(buf: bytes | bytearray | memoryview) -> str | None:
    """Return a problem text when ``buf`` does not start with a valid segment header."""
    if len(buf) < HEADER_LEN:
        return "truncated segment header"
    if bytes(buf[:4]) != MAGIC:
        return "not a journal segment (bad magic)"
    (version,) = struct.unpack_from(">H", buf, 4)
    if version != FORMAT_VERSION:
        return f"unsupported segment format version {version}"
    return None
