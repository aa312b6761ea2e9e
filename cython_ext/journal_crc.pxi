# Shared by the journal twins (journal_scan.pyx, journal_frame.pyx): zlib's CRC-32 (IEEE,
# reflected polynomial 0xEDB88320) with slicing-by-8 tables, so no zlib headers are needed at
# build time. Include after `from libc.stdint cimport uint32_t, uint8_t`.

cdef uint32_t T[8][256]
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
