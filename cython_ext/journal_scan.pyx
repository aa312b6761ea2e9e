# cython: language_level=3
"""Compiled twin of charging.journal.framing.scan_frames (the pure version is the spec).

Same contract: scan_frames(buf, start) -> (good_end, ends, problem). The CRC-32 is the
zlib/IEEE one (reflected polynomial 0xEDB88320), computed here with slicing-by-8 tables so the
extension needs no zlib headers at build time.
"""

from libc.stdint cimport uint32_t, uint8_t

cdef uint32_t T[8][256]
cdef uint32_t MAX_RECORD = 16 * 1024 * 1024
cdef uint32_t ALL = 0xFFFFFFFF
cdef uint32_t POLY = 0xEDB88320


cdef void _init_tables():
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = <uint32_t>n
        for k in range(8):
            if c & 1:
                c = POLY ^ (c >> 1)
            else:
                c = c >> 1
        T[0][n] = c
    for n in range(256):
        c = T[0][n]
        for k in range(1, 8):
            c = T[0][c & 0xFF] ^ (c >> 8)
            T[k][n] = c


_init_tables()


cdef inline uint32_t _crc32(const uint8_t* p, Py_ssize_t n) nogil:
    cdef uint32_t crc = ALL
    cdef uint32_t one, two
    while n >= 8:
        one = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
               | (<uint32_t>p[3] << 24)) ^ crc
        two = (<uint32_t>p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16)
               | (<uint32_t>p[7] << 24))
        crc = (T[7][one & 0xFF] ^ T[6][(one >> 8) & 0xFF] ^ T[5][(one >> 16) & 0xFF]
               ^ T[4][one >> 24] ^ T[3][two & 0xFF] ^ T[2][(two >> 8) & 0xFF]
               ^ T[1][(two >> 16) & 0xFF] ^ T[0][two >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = T[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc ^ ALL


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
