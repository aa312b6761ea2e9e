# cython: language_level=3
"""Compiled twin of charging.journal.framing.scan_frames (the pure version is the spec).

Same contract: scan_frames(buf, start) -> (good_end, ends, problem). The CRC-32 is the
zlib/IEEE one (reflected polynomial 0xEDB88320): whole 16-byte blocks folded with carry-less
multiplication when the CPU has PCLMULQDQ (:data:`SIMD_CRC`), the rest with slicing-by-8
tables (journal_crc.pxi), so the extension needs no zlib headers at build time.
"""

from libc.stdint cimport uint32_t, uint8_t

cdef uint32_t MAX_RECORD = 16 * 1024 * 1024

include "journal_crc.pxi"

SIMD_CRC = bool(SIMD)  # for tests


def crc32(const uint8_t[::1] data):
    """zlib.crc32(data) (for parity tests)."""
    return _crc32(&data[0], data.shape[0]) if data.shape[0] else 0


cdef inline uint32_t _be32(const uint8_t* p) nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


def scan_frames(buf, Py_ssize_t start):
    """See charging.journal.framing.scan_frames."""
    cdef const uint8_t[::1] mv
    if len(buf) == 0:
        return (start, [], None)
    mv = memoryview(buf).cast("B")
    cdef const uint8_t* p = &mv[0]
    cdef Py_ssize_t n = mv.shape[0]
    cdef Py_ssize_t off = start
    cdef Py_ssize_t e
    cdef uint32_t length, crc
    ends = []
    while off < n:
        if n - off < 10:
            return (off, ends, "truncated frame header")
        length = _be32(p + off + 1)
        crc = _be32(p + off + 6)
        if p[off] != 0xCE or p[off + 5] != 0xCE or length > MAX_RECORD:
            return (off, ends, "bad frame header")
        e = off + 10 + length
        if e > n:
            return (off, ends, "truncated record")
        if _crc32(p + off + 10, length) != crc:
            return (off, ends, "checksum mismatch")
        ends.append(e)
        off = e
    return (off, ends, None)
