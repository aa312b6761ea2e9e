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

import os
import struct
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

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


def pack_frames(pack: Callable[[Any], bytes], records: list[Any], start: int, buf: bytearray,
                offset: int, limit: int, ends: list[Any] | None,
                fallback: Callable[[Any], bytes] | None = None,
                position: type[tuple[Any, ...]] | None = None,
                segment: int = 0, native: bool = False) -> tuple[int, int]:
    """Pack ``records[start:]`` and append each, framed, to ``buf`` (the group's bytes).

    A record is a msgpack-able map packed with ``pack``, or ``bytes`` already packed. When
    ``pack`` raises and ``fallback`` is given, the record is packed with ``fallback`` instead
    (its result or its exception counts): see :func:`record_packers`. ``offset`` is the segment offset where ``buf`` ends. Stops before
    a record that would take the segment past ``limit`` bytes unless the segment holds no record
    yet (``offset == HEADER_LEN``): the caller rotates and calls again from the returned index.
    Appends each framed record's end offset (its position) to ``ends`` unless None -- as
    ``position(segment, offset)`` when ``position`` (a tuple subclass: segments.Position) is
    given, else as the bare offset. Returns ``(index of the first record not framed, new
    offset)``. Raises ValueError for a record over :data:`MAX_RECORD` (recovery would take it
    for corruption). ``pack`` must be a msgpack encoder: the compiled twin
    (``cython_ext/journal_frame.pyx``, select with :func:`frame_packer`) packs runs of map
    records as one list, ``pack(records[i:j])``, and cuts the array's elements apart (the same
    bytes as ``pack`` of each); records before one that raises are framed, as here.
    ``native=True`` promises that ``pack`` writes ``msgpack.Packer(use_bin_type=True)``'s bytes
    (as :func:`record_packers`' does): the compiled twin then encodes dict records itself,
    straight into ``buf`` (exact dict/list/tuple/str/int/float/bool/None/bytes; anything else
    goes through ``pack``/``fallback`` as here). Here it changes nothing.
    """
    n = len(records)
    i = start
    head = _pack_head
    crc32 = _crc32
    while i < n:
        r = records[i]
        if isinstance(r, bytes):
            payload = r
        elif fallback is None:
            payload = pack(r)
        else:
            try:
                payload = pack(r)
            except Exception:  # noqa: BLE001 -- the reference packer decides (value or error)
                payload = fallback(r)
        plen = len(payload)
        if plen > MAX_RECORD:
            raise ValueError(f"journal record of {plen} bytes exceeds the {MAX_RECORD} limit")
        size = FRAME_HEAD_LEN + plen
        if offset > HEADER_LEN and offset + size > limit:
            return i, offset
        buf += head(MARK, plen, MARK, crc32(payload))
        buf += payload
        offset += size
        if ends is not None:
            ends.append(offset if position is None else tuple.__new__(position, (segment, offset)))
        i += 1
    return i, offset


PackFrames = Callable[
    [Callable[[Any], bytes], list[Any], int, bytearray, int, int, "list[Any] | None",
     "Callable[[Any], bytes] | None", "type[tuple[Any, ...]] | None", int, bool],
    tuple[int, int],
]


def record_packers() -> tuple[Callable[[Any], bytes], Callable[[Any], bytes] | None]:
    """``(pack, fallback)`` for :func:`pack_frames`: the journal's record packer.

    The reference encoding is ``msgpack.Packer(use_bin_type=True)`` (docs/journal-schema.md).
    msgspec's MessagePack encoder writes the very same bytes for every value the schema uses
    (None, bool, int, float, str, bytes, list, tuple, dict; tests/charging/journal/
    test_frame_packer.py checks byte parity) about twice as fast, so it packs first and msgpack
    is the fallback: whatever msgspec refuses is packed -- or refused, with msgpack's own
    error -- exactly as before. (msgspec also accepts a few types msgpack refuses, e.g.
    Decimal, datetime, UUID, set: not schema types; callers must not pass them.) Without
    msgspec installed msgpack packs alone.
    """
    import msgpack

    reference = msgpack.Packer(use_bin_type=True).pack
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a pinned dependency
        return reference, None
    return msgspec.msgpack.Encoder().encode, reference


def reserve(buf: bytearray, n: int) -> None:
    """Make room for ``n`` bytes in ``buf`` ahead of use, its size and contents unchanged.

    A bytearray's allocation is not visible from Python, so here this does nothing; the
    compiled twin sizes the allocation, so that framing a group that large into ``buf``
    needs no reallocation (select with :func:`buffer_reserve`)."""


def buffer_reserve() -> Callable[[bytearray, int], None]:
    """:func:`reserve`, the compiled twin when built and enabled, else the pure one."""
    import cython_ext

    mod = cython_ext.load("journal_frame")
    return mod.reserve if mod is not None else reserve  # type: ignore[no-any-return]


def frame_packer() -> PackFrames:
    """:func:`pack_frames`, the compiled twin when built and enabled, else the pure one."""
    import cython_ext

    mod = cython_ext.load("journal_frame")
    return mod.pack_frames if mod is not None else pack_frames  # type: ignore[no-any-return]


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

    A crash during a group-commit write leaves a prefix of that write on disk: complete frames
    (which the scan accepted), then part of one frame, possibly followed by zero bytes the
    filesystem allocated but never wrote. So the stop is a torn tail when **no intact frame
    follows it**; an intact frame after a bad one means once-durable data was damaged:
    corruption, to be quarantined. (Like RocksDB's tolerate-corrupted-tail mode, damage
    confined to the very last frame is indistinguishable from a torn write and is truncated.)
    """
    # Even "truncated record" goes through the search: a damaged length field in the middle
    # of a segment also claims to run past the end, and must not truncate what follows it.
    # A preallocated segment's zero tail (segments.py) is the common case: all zeros after
    # the stop is the end of the data, nothing to search.
    if zeros_from(buf, stop):
        return True
    return not intact_frame_after(buf, stop + 1)


def zeros_from(buf: bytes | bytearray | memoryview, start: int) -> bool:
    """True when every byte of ``buf`` from ``start`` on is zero (or there is none).

    ``bytes.count`` runs in C (a 64 MiB preallocated tail takes ~50 ms; ``any()`` over a
    memoryview took seconds)."""
    data = buf if isinstance(buf, bytes | bytearray) else bytes(buf)
    return data.count(0, start) == max(len(data) - start, 0)


_ZERO_STEP = 1 << 20


def data_end(buf: bytes | bytearray | memoryview, start: int) -> int:
    """Offset just after the last non-zero byte of ``buf`` at or after ``start`` (``start``
    when there is none): where a preallocated segment's zero tail begins."""
    data = buf if isinstance(buf, bytes | bytearray) else bytes(buf)
    return _nonzero_end(lambda lo, hi: data[lo:hi], start, len(data))


def file_data_end(path: str | os.PathLike[str]) -> int:
    """:func:`data_end` of a whole file, read backwards a MiB at a time: the size of a
    segment without its preallocated zero tail (an open segment is kept at full size, so its
    ``st_size`` says nothing of how much it holds). 0 for a missing file."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 -- closed below
    except FileNotFoundError:
        return 0
    with fh:
        def block(lo: int, hi: int) -> bytes:
            fh.seek(lo)
            return fh.read(hi - lo)

        return _nonzero_end(block, 0, fh.seek(0, os.SEEK_END))


def _nonzero_end(block: Callable[[int, int], bytes | bytearray], start: int, hi: int) -> int:
    """Offset just after the last non-zero byte in ``[start, hi)``, *block(lo, hi)* giving
    those bytes: whole zero blocks from the end first (``count`` runs in C), then the one
    block that is not."""
    while hi > start:
        lo = max(start, hi - _ZERO_STEP)
        data = block(lo, hi)
        if data.count(0) != len(data):
            return lo + len(data.rstrip(b"\0"))
        hi = lo
    return start


def intact_frame_after(buf: bytes | bytearray | memoryview, start: int) -> bool:
    """True when a complete frame with a matching checksum starts anywhere at/after ``start``
    (a resynchronising search; used only when recovery meets a bad frame)."""
    data = bytes(buf)
    n = len(data)
    i = data.find(b"\xce", start)
    while i != -1 and i + FRAME_HEAD_LEN <= n:
        if data[i + 5] == MARK:
            _m1, length, _m2, crc = FRAME_HEAD.unpack_from(data, i)
            e = i + FRAME_HEAD_LEN + length
            if length <= MAX_RECORD and e <= n and _crc32(data[i + FRAME_HEAD_LEN:e]) == crc:
                return True
        i = data.find(b"\xce", i + 1)
    return False


def torn_header(buf: bytes | bytearray | memoryview) -> bool:
    """True when a segment that fails :func:`check_header` is a header write cut short by a
    crash: a prefix of the header followed only by zero bytes (no record was ever in it)."""
    data = bytes(buf)
    k = 0
    while k < min(len(data), HEADER_LEN) and data[k] == SEGMENT_HEADER[k]:
        k += 1
    return not any(data[k:])


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
