# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of settlement aggregation over raw journal segments.

The executable spec is settlement/aggregate.py (``Aggregator``); settlement/fastagg.py drives
this module and sends every record it does not handle here to the spec (the "slow" list).

Per frame (charging/journal/framing.py: ``0xCE u32be(len) 0xCE u32be(crc32) payload``) the
loop checks the header and the CRC-32 (zlib's polynomial: PCLMULQDQ folding where the CPU
has it, else zlib's own crc32, else slice-by-8 tables), then walks the payload's msgpack map
without creating Python objects: it keeps byte spans of the few keys settlement needs and
skips the rest. A settled record (rated/refund/adjust with a partner, or legs) is folded into
*slots*: the concatenated raw msgpack values of the key fields (partner, direction, service,
destination, deck, deck_version, currency, fx, type -- a leg supplies its own partner,
direction, deck, deck_version, currency), found in an open-addressing hash table and verified
byte for byte; its plain-decimal price is parsed and summed per slot, exactly, in int64.
Balance effects on a prepaid partner account go to movement slots the same way. The Python
side decodes each distinct slot key once (``new_slot``, which also gives the slot's period
window). Anything unusual (a start outside the window, a price that is not a plain decimal,
an odd type, malformed msgpack) goes to the slow list as (payload start, payload end) for the
spec to handle.
"""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport int8_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

cdef uint32_t CRC[8][256]


cdef inline uint64_t _fnv(const uint8_t* p, Py_ssize_t n) noexcept:
    """A fast 64-bit hash of a slot key (8 bytes per step; keys are verified by memcmp)."""
    cdef uint64_t h = 14695981039346656037ULL ^ <uint64_t>n
    cdef uint64_t w
    while n >= 8:
        memcpy(&w, p, 8)
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL
        h ^= h >> 29
        p += 8
        n -= 8
    while n > 0:
        h = (h ^ p[0]) * 1099511628211ULL
        p += 1
        n -= 1
    # murmur3 fmix64: every output bit depends on every input bit (the table uses low bits)
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    h *= 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    return h


cdef void _init_crc():
    cdef uint32_t c
    cdef int i, j
    for i in range(256):
        c = i
        for j in range(8):
            c = (c >> 1) ^ 0xEDB88320 if (c & 1) else (c >> 1)
        CRC[0][i] = c
    for i in range(256):
        c = CRC[0][i]
        for j in range(1, 8):
            c = CRC[0][c & 0xFF] ^ (c >> 8)
            CRC[j][i] = c


_init_crc()

ctypedef unsigned long (*zcrc_t)(unsigned long, const unsigned char*, unsigned int) noexcept nogil
cdef zcrc_t ZCRC = NULL


def _find_zlib_crc():
    """The address of zlib's crc32 (the same library Python's zlib module uses), or 0."""
    import ctypes
    import ctypes.util

    for name in (ctypes.util.find_library("z"), "libz.so.1", "libz.dylib"):
        if not name:
            continue
        try:
            return ctypes.cast(ctypes.CDLL(name).crc32, ctypes.c_void_p).value or 0
        except (OSError, AttributeError):
            continue
    return 0


_addr = _find_zlib_crc()
if _addr:
    ZCRC = <zcrc_t><size_t>_addr


cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #include <string.h>
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    /* CRC-32 (reflected 0x04C11DB7) folding with carry-less multiplication: Intel,
       "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ" (2009); constants as in
       Linux arch/x86/crypto/crc32-pclmul_asm.S (R2R1: fold 512 bits, R4R3: fold 128 bits).
       Folds the first floor(len/16)*16 bytes (len >= 64) into 16 bytes *out whose CRC
       (register 0) followed by the rest equals the CRC of the input from register crc. */
    __attribute__((target("pclmul,sse2")))
    static size_t icx_crc_fold(uint32_t crc, const unsigned char *p, size_t len,
                               unsigned char *out) {
        const __m128i k512 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL);
        const __m128i k128 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
        __m128i x1 = _mm_loadu_si128((const __m128i *)(p));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 48));
        size_t off = 64;
        x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    #define ICX_FOLD(x, k, d) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128((x), (k), 0x00), \
                              _mm_clmulepi64_si128((x), (k), 0x11)), (d))
        while (len - off >= 64) {
            x1 = ICX_FOLD(x1, k512, _mm_loadu_si128((const __m128i *)(p + off)));
            x2 = ICX_FOLD(x2, k512, _mm_loadu_si128((const __m128i *)(p + off + 16)));
            x3 = ICX_FOLD(x3, k512, _mm_loadu_si128((const __m128i *)(p + off + 32)));
            x4 = ICX_FOLD(x4, k512, _mm_loadu_si128((const __m128i *)(p + off + 48)));
            off += 64;
        }
        x1 = ICX_FOLD(x1, k128, x2);
        x1 = ICX_FOLD(x1, k128, x3);
        x1 = ICX_FOLD(x1, k128, x4);
        while (len - off >= 16) {
            x1 = ICX_FOLD(x1, k128, _mm_loadu_si128((const __m128i *)(p + off)));
            off += 16;
        }
    #undef ICX_FOLD
        _mm_storeu_si128((__m128i *)out, x1);
        return off;
    }
    static int icx_have_pclmul(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
    }
    #else
    static size_t icx_crc_fold(uint32_t crc, const unsigned char *p, size_t len,
                               unsigned char *out) { (void)crc; (void)p; (void)len; (void)out; return 0; }
    static int icx_have_pclmul(void) { return 0; }
    #endif
    """
    size_t icx_crc_fold(uint32_t crc, const unsigned char* p, size_t n, unsigned char* out) noexcept
    int icx_have_pclmul() noexcept


cdef int HAVE_PCLMUL = icx_have_pclmul()
if os.environ.get("ICX_SETTLE_NO_PCLMUL") == "1":
    HAVE_PCLMUL = 0


cdef inline uint32_t frame_crc(const uint8_t* p, Py_ssize_t n) noexcept:
    """CRC-32 of one frame payload: carry-less-multiply folding where the CPU has it, else
    zlib's crc32 (linked at run time), else the slice-by-8 tables."""
    cdef unsigned char folded[16]
    cdef size_t used
    cdef uint32_t c
    if HAVE_PCLMUL and n >= 64:
        used = icx_crc_fold(0xFFFFFFFF, p, n, folded)
        c = crc_raw(0, folded, 16)
        return crc_raw(c, p + used, n - used) ^ 0xFFFFFFFF
    if ZCRC != NULL:
        return <uint32_t>ZCRC(0, p, <unsigned int>n)
    return crc32(p, n)


def frame_crc_py(data):
    """frame_crc of *data* (the dispatching one): for the parity test against zlib.crc32."""
    cdef const uint8_t[:] v = data
    if v.shape[0] == 0:
        return 0
    return frame_crc(&v[0], v.shape[0])


def crc_backend():
    """Which CRC-32 implementation frames use: "pclmul", "zlib" or "tables"."""
    return "pclmul" if HAVE_PCLMUL else ("zlib" if ZCRC != NULL else "tables")


def crc32_zlib_linked():
    """True when frames are checked with zlib's own crc32 (else the slice-by-8 tables)."""
    return ZCRC != NULL


cdef inline uint32_t crc32(const uint8_t* p, Py_ssize_t n) noexcept:
    return crc_raw(0xFFFFFFFF, p, n) ^ 0xFFFFFFFF


cdef inline uint32_t crc_raw(uint32_t c, const uint8_t* p, Py_ssize_t n) noexcept:
    """The CRC register after *p* starting from register *c* (no pre/post inversion)."""
    cdef uint32_t one, two
    while n >= 8:
        one = (p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)) ^ c
        two = p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16) | (<uint32_t>p[7] << 24)
        c = (CRC[7][one & 0xFF] ^ CRC[6][(one >> 8) & 0xFF] ^ CRC[5][(one >> 16) & 0xFF]
             ^ CRC[4][one >> 24] ^ CRC[3][two & 0xFF] ^ CRC[2][(two >> 8) & 0xFF]
             ^ CRC[1][(two >> 16) & 0xFF] ^ CRC[0][two >> 24])
        p += 8
        n -= 8
    while n > 0:
        c = CRC[0][(c ^ p[0]) & 0xFF] ^ (c >> 8)
        p += 1
        n -= 1
    return c


def crc32_py(data):
    """CRC-32 of *data* (bytes-like): for the parity test against zlib.crc32."""
    cdef const uint8_t[:] v = data
    if v.shape[0] == 0:
        return 0
    return crc32(&v[0], v.shape[0])


cdef inline uint32_t be32(const uint8_t* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t be64(const uint8_t* p) noexcept:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)


cdef uint8_t FIXED[256]  # total size of fixed-size msgpack objects by first byte, 0 = other


cdef void _init_fixed() noexcept:
    cdef int t
    for t in range(256):
        FIXED[t] = 0
    for t in range(0x00, 0x80):
        FIXED[t] = 1
    for t in range(0xe0, 0x100):
        FIXED[t] = 1
    for t in (0xc0, 0xc2, 0xc3):
        FIXED[t] = 1
    for t in (0xcc, 0xd0):
        FIXED[t] = 2
    for t in (0xcd, 0xd1):
        FIXED[t] = 3
    FIXED[0xd4] = 3
    FIXED[0xd5] = 4
    for t in (0xce, 0xd2, 0xca):
        FIXED[t] = 5
    FIXED[0xd6] = 6
    for t in (0xcf, 0xd3, 0xcb):
        FIXED[t] = 9
    FIXED[0xd7] = 10
    FIXED[0xd8] = 18


_init_fixed()


cdef inline Py_ssize_t skip(const uint8_t* b, Py_ssize_t off, Py_ssize_t end) noexcept:
    """Offset after the msgpack object at *off*, or -1 when malformed or past *end*."""
    cdef Py_ssize_t pending = 1
    cdef uint8_t t
    cdef uint64_t n
    while pending > 0:
        if off >= end:
            return -1
        t = b[off]
        pending -= 1
        if FIXED[t]:
            off += FIXED[t]
        elif 0xa0 <= t <= 0xbf:
            off += 1 + (t & 0x1f)
        elif 0x80 <= t <= 0x8f:
            pending += 2 * (t & 0x0f)
            off += 1
        elif 0x90 <= t <= 0x9f:
            pending += t & 0x0f
            off += 1
        elif t == 0xd9 or t == 0xc4:
            if off + 2 > end:
                return -1
            off += 2 + b[off + 1]
        elif t == 0xda or t == 0xc5:
            if off + 3 > end:
                return -1
            off += 3 + ((<Py_ssize_t>b[off + 1] << 8) | b[off + 2])
        elif t == 0xdb or t == 0xc6:
            if off + 5 > end:
                return -1
            off += 5 + be32(b + off + 1)
        elif t == 0xdc or t == 0xde:
            if off + 3 > end:
                return -1
            n = (<uint64_t>b[off + 1] << 8) | b[off + 2]
            pending += n * 2 if t == 0xde else n
            off += 3
        elif t == 0xdd or t == 0xdf:
            if off + 5 > end:
                return -1
            n = be32(b + off + 1)
            if n > <uint64_t>(end - off):
                return -1
            pending += n * 2 if t == 0xdf else n
            off += 5
        elif t == 0xc7:
            if off + 2 > end:
                return -1
            off += 3 + b[off + 1]
        elif t == 0xc8:
            if off + 3 > end:
                return -1
            off += 4 + ((<Py_ssize_t>b[off + 1] << 8) | b[off + 2])
        elif t == 0xc9:
            if off + 5 > end:
                return -1
            off += 6 + be32(b + off + 1)
        else:
            return -1  # 0xc1 is never used
    return off if off <= end else -1


cdef inline int read_int(const uint8_t* b, Py_ssize_t off, Py_ssize_t end, int64_t* out) noexcept:
    """1 and *out* set when the object at *off* is an integer that fits int64, else 0."""
    cdef uint8_t t = b[off]
    cdef uint64_t u
    if t <= 0x7f:
        out[0] = t
    elif t >= 0xe0:
        out[0] = <int8_t>t
    elif t == 0xcc and off + 2 <= end:
        out[0] = b[off + 1]
    elif t == 0xcd and off + 3 <= end:
        out[0] = (<int64_t>b[off + 1] << 8) | b[off + 2]
    elif t == 0xce and off + 5 <= end:
        out[0] = be32(b + off + 1)
    elif t == 0xcf and off + 9 <= end:
        u = be64(b + off + 1)
        if u > 0x7FFFFFFFFFFFFFFFULL:
            return 0
        out[0] = <int64_t>u
    elif t == 0xd0 and off + 2 <= end:
        out[0] = <int8_t>b[off + 1]
    elif t == 0xd1 and off + 3 <= end:
        out[0] = <short>((b[off + 1] << 8) | b[off + 2])
    elif t == 0xd2 and off + 5 <= end:
        out[0] = <int>be32(b + off + 1)
    elif t == 0xd3 and off + 9 <= end:
        out[0] = <int64_t>be64(b + off + 1)
    else:
        return 0
    return 1



# fields kept from a record (the first NKEY form the slot key, in KEY order)
cdef enum:
    F_PARTNER = 0
    F_DIRECTION = 1
    F_SERVICE = 2
    F_DESTINATION = 3
    F_DECK = 4
    F_DECK_VERSION = 5
    F_CURRENCY = 6
    F_FX = 7
    F_PRICE = 8
    F_TYPE = 9
    NKEY = 10
    F_USAGE = 10
    F_START = 11
    F_TS = 12
    F_LEGS = 13
    F_EFFECTS = 14
    F_ACCOUNT = 15
    F_AMOUNT = 16
    NF = 17
    MAXKEY = 1024
    MAXSLOTS = 16

# the slot key: these record fields' raw msgpack values (nil when absent), in this order; a
# leg supplies partner, direction, deck, deck_version, currency and price, the record the rest.
# A movement slot key is 0xc1 (never used by msgpack) + account + currency + amount.
SLOT_FIELDS = ("partner", "direction", "service", "destination", "deck", "deck_version",
               "currency", "fx", "price", "type")
cdef int LEG_FIELD[NKEY]
LEG_FIELD[:] = [1, 1, 0, 0, 1, 1, 1, 0, 1, 0]
# The price is NOT part of the slot key: it is parsed here and summed per slot, which keeps
# the slot table small enough to stay in cache. Sums stay exact in int64: a price has at most
# 11 whole digits (|micros| < 2**57), a record touches at most MAXSLOTS (16) slots, and a slot
# whose |sum| reached 2**58 takes no more fast records (17 * 2**58 < 2**63); the spec, with
# Python ints, takes the rest.
cdef int64_t SUM_LIMIT = 1LL << 58


cdef inline int parse_micros(const uint8_t* b, Py_ssize_t o, Py_ssize_t e,
                             int64_t* out) noexcept:
    """1 and *out* = micro-units when the value at [o, e) is a str ``-?digits(.1-6 digits)?``
    with at most 11 whole digits; 0 otherwise (the spec, charging.money.parse_amount, decides)."""
    cdef Py_ssize_t so = 0, n = 0
    cdef const uint8_t* p
    cdef int neg = 0, digits = 0, fd = 0
    cdef int64_t whole = 0, frac = 0
    if o < 0 or not str_span(b, o, e, &so, &n):
        return 0
    p = b + so
    if n and p[0] == 45:  # '-'
        neg = 1
        p += 1
        n -= 1
    while n and 48 <= p[0] <= 57:
        whole = whole * 10 + (p[0] - 48)
        digits += 1
        p += 1
        n -= 1
        if digits > 11:
            return 0
    if digits == 0:
        return 0
    if n:
        if p[0] != 46:  # '.'
            return 0
        p += 1
        n -= 1
        if n == 0 or n > 6:
            return 0
        while n:
            if not 48 <= p[0] <= 57:
                return 0
            frac = frac * 10 + (p[0] - 48)
            fd += 1
            p += 1
            n -= 1
    while fd < 6:
        frac *= 10
        fd += 1
    out[0] = -(whole * 1000000 + frac) if neg else whole * 1000000 + frac
    return 1


cdef inline int field_of(const uint8_t* k, Py_ssize_t n) noexcept:
    if n == 2:
        if k[0] == b'f' and k[1] == b'x':
            return F_FX
        if k[0] == b't' and k[1] == b's':
            return F_TS
    elif n == 4:
        if memcmp(k, b"type", 4) == 0:
            return F_TYPE
        if memcmp(k, b"deck", 4) == 0:
            return F_DECK
        if memcmp(k, b"legs", 4) == 0:
            return F_LEGS
    elif n == 5:
        if memcmp(k, b"price", 5) == 0:
            return F_PRICE
        if memcmp(k, b"usage", 5) == 0:
            return F_USAGE
        if memcmp(k, b"start", 5) == 0:
            return F_START
    elif n == 6:
        if memcmp(k, b"amount", 6) == 0:
            return F_AMOUNT
    elif n == 7:
        if memcmp(k, b"partner", 7) == 0:
            return F_PARTNER
        if memcmp(k, b"service", 7) == 0:
            return F_SERVICE
        if memcmp(k, b"account", 7) == 0:
            return F_ACCOUNT
    elif n == 8:
        if memcmp(k, b"currency", 8) == 0:
            return F_CURRENCY
    elif n == 9:
        if memcmp(k, b"direction", 9) == 0:
            return F_DIRECTION
    elif n == 11:
        if memcmp(k, b"destination", 11) == 0:
            return F_DESTINATION
    elif n == 12:
        if memcmp(k, b"deck_version", 12) == 0:
            return F_DECK_VERSION
    elif n == 15:
        if memcmp(k, b"balance_effects", 15) == 0:
            return F_EFFECTS
    return -1


cdef inline int str_span(const uint8_t* b, Py_ssize_t o, Py_ssize_t e,
                         Py_ssize_t* so, Py_ssize_t* sl) noexcept:
    """1 and the payload span when the value at [o, e) is a msgpack str, else 0."""
    cdef uint8_t t = b[o]
    if 0xa0 <= t <= 0xbf:
        so[0] = o + 1
    elif t == 0xd9:
        so[0] = o + 2
    elif t == 0xda:
        so[0] = o + 3
    elif t == 0xdb:
        so[0] = o + 5
    else:
        return 0
    sl[0] = e - so[0]
    return 1


cdef inline int is_nil_or_absent(const uint8_t* b, Py_ssize_t o) noexcept:
    return o < 0 or b[o] == 0xc0


cdef inline int is_empty_array(const uint8_t* b, Py_ssize_t o) noexcept:
    return b[o] == 0x90 or (b[o] == 0xdc and b[o + 1] == 0 and b[o + 2] == 0) or (
        b[o] == 0xdd and b[o + 1] == 0 and b[o + 2] == 0 and b[o + 3] == 0 and b[o + 4] == 0)


cdef inline Py_ssize_t container(const uint8_t* b, Py_ssize_t o, Py_ssize_t e, int is_map,
                                 Py_ssize_t* cnt) noexcept:
    """Offset of the first item of the array (is_map=0) or map (1) at o, -1 if not one."""
    cdef uint8_t t = b[o]
    cdef uint8_t fix = 0x80 if is_map else 0x90
    cdef uint8_t c16 = 0xde if is_map else 0xdc
    if fix <= t <= fix + 0x0f:
        cnt[0] = t & 0x0f
        return o + 1
    if t == c16 and o + 3 <= e:
        cnt[0] = (<Py_ssize_t>b[o + 1] << 8) | b[o + 2]
        return o + 3
    if t == c16 + 1 and o + 5 <= e:
        cnt[0] = be32(b + o + 1)
        return o + 5
    return -1


ctypedef int (*field_fn)(const uint8_t* k, Py_ssize_t n) noexcept


cdef inline Py_ssize_t walk_keys(const uint8_t* b, Py_ssize_t p, Py_ssize_t e, Py_ssize_t* fo,
                                 Py_ssize_t* fe, Py_ssize_t nf, field_fn field) noexcept:
    """Spans of the keys ``field`` knows (index < nf) in the map at p (the last of a repeated
    key wins, as in a decoded dict); return the offset after the map, -1 if malformed or not
    a map."""
    cdef Py_ssize_t cnt, ko, klen, vo, ve, i
    cdef uint8_t t
    cdef int f
    for i in range(nf):
        fo[i] = -1
    ko = container(b, p, e, 1, &cnt)
    if ko < 0:
        return -1
    for i in range(cnt):
        if ko >= e:
            return -1
        t = b[ko]
        if 0xa0 <= t <= 0xbf:
            klen = t & 0x1f
            vo = ko + 1 + klen
            f = field(b + ko + 1, klen)
        elif t == 0xd9 and ko + 2 <= e:
            klen = b[ko + 1]
            vo = ko + 2 + klen
            f = field(b + ko + 2, klen)
        else:
            vo = skip(b, ko, e)
            f = -1
            if vo < 0:
                return -1
        if vo >= e:
            return -1
        ve = skip(b, vo, e)
        if ve < 0:
            return -1
        if f >= 0:
            fo[f] = vo
            fe[f] = ve
        ko = ve
    return ko


cdef inline Py_ssize_t walk(const uint8_t* b, Py_ssize_t p, Py_ssize_t e, Py_ssize_t* fo,
                            Py_ssize_t* fe) noexcept:
    """Spans of the settlement keys of the map at p (see walk_keys)."""
    return walk_keys(b, p, e, fo, fe, NF, field_of)


cdef class SegmentAggregator:
    """Slots and their sums across segments. ``new_slot(key: bytes) -> (lo, hi)`` is called
    once per distinct slot key: the record window [lo, hi) in epoch µs (lo == hi: never fast).

    *prepaid* lists the UTF-8 ids of prepaid partner accounts: their balance effects become
    movement slots. With *deck_slow*, a record without a partner but with a deck goes to the
    slow list (the spec maps decks to partners)."""

    cdef object new_slot
    cdef list keys
    cdef list prepaid
    cdef int deck_slow
    cdef int64_t* lo
    cdef int64_t* hi
    cdef int64_t* count
    cdef int64_t* usage
    cdef int64_t* amount
    cdef Py_ssize_t nslots, cap
    cdef uint64_t* table_hash
    cdef int64_t* table_slot
    cdef Py_ssize_t tsize
    cdef public int64_t records, fast, skipped, settled
    cdef public list slow
    cdef public Py_ssize_t stop
    cdef public str problem

    def __cinit__(self):
        self.cap = 0
        self.nslots = 0
        self.tsize = 0
        self.lo = self.hi = self.count = self.usage = self.amount = NULL
        self.table_hash = NULL
        self.table_slot = NULL

    def __init__(self, new_slot, prepaid=(), deck_slow=False):
        self.new_slot = new_slot
        self.deck_slow = 1 if deck_slow else 0
        self.keys = []
        self.prepaid = [bytes(p) for p in prepaid]
        self.records = self.fast = self.skipped = self.settled = 0
        self.slow = []
        self.problem = None
        self._grow_slots(256)
        self._rehash(1024)

    def __dealloc__(self):
        free(self.lo)
        free(self.hi)
        free(self.count)
        free(self.usage)
        free(self.amount)
        free(self.table_hash)
        free(self.table_slot)

    cdef void _grow_slots(self, Py_ssize_t cap) except *:
        cdef void* p
        p = realloc(self.lo, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.lo = <int64_t*>p
        p = realloc(self.hi, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.hi = <int64_t*>p
        p = realloc(self.count, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.count = <int64_t*>p
        p = realloc(self.usage, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.usage = <int64_t*>p
        p = realloc(self.amount, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.amount = <int64_t*>p
        self.cap = cap

    cdef void _rehash(self, Py_ssize_t size) except *:
        cdef uint64_t* th = <uint64_t*>malloc(size * sizeof(uint64_t))
        cdef int64_t* ts = <int64_t*>malloc(size * sizeof(int64_t))
        cdef Py_ssize_t i, j
        cdef bytes k
        if th == NULL or ts == NULL:
            free(th)
            free(ts)
            raise MemoryError()
        for i in range(size):
            ts[i] = -1
        for i in range(self.nslots):
            k = <bytes>self.keys[i]
            h = _fnv(<const uint8_t*>PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k))
            j = <Py_ssize_t>(h & <uint64_t>(size - 1))
            while ts[j] != -1:
                j = (j + 1) & (size - 1)
            th[j] = h
            ts[j] = i
        free(self.table_hash)
        free(self.table_slot)
        self.table_hash = th
        self.table_slot = ts
        self.tsize = size

    cdef Py_ssize_t _slot(self, const uint8_t* key, Py_ssize_t n) except -2:
        cdef uint64_t h = _fnv(key, n)
        cdef Py_ssize_t j = <Py_ssize_t>(h & <uint64_t>(self.tsize - 1))
        cdef Py_ssize_t s
        cdef object kb
        while True:
            s = self.table_slot[j]
            if s == -1:
                break
            if self.table_hash[j] == h:
                kb = <object>PyList_GET_ITEM(self.keys, s)
                if PyBytes_GET_SIZE(kb) == n and memcmp(PyBytes_AS_STRING(kb), key, n) == 0:
                    return s
            j = (j + 1) & (self.tsize - 1)
        # a new slot: ask Python for its window
        kb = PyBytes_FromStringAndSize(<const char*>key, n)
        lo, hi = self.new_slot(kb)
        if self.nslots == self.cap:
            self._grow_slots(self.cap * 2)
        s = self.nslots
        self.keys.append(kb)
        self.lo[s] = lo
        self.hi[s] = hi
        self.count[s] = 0
        self.amount[s] = 0
        self.usage[s] = 0
        self.nslots += 1
        self.table_hash[j] = h
        self.table_slot[j] = s
        if self.nslots * 2 > self.tsize:
            self._rehash(self.tsize * 2)
        return s

    def slots(self):
        """[(key bytes, count, usage, amount micro-units)] of every slot with records."""
        return [(self.keys[i], self.count[i], self.usage[i], self.amount[i])
                for i in range(self.nslots) if self.count[i]]

    cdef Py_ssize_t _key(self, uint8_t* key, const uint8_t* b, Py_ssize_t* so, Py_ssize_t* se,
                         Py_ssize_t* ro, Py_ssize_t* re) noexcept:
        """Concatenate the slot key fields (leg spans so/se where LEG_FIELD, else the record's
        ro/re); nil for an absent field. Return the length, or -1 when too long."""
        cdef Py_ssize_t total = 0, i, o, n
        for i in range(NKEY):
            if i == F_PRICE:
                continue
            if LEG_FIELD[i]:
                o = so[i]
                n = se[i] - o
            else:
                o = ro[i]
                n = re[i] - o
            if o < 0:
                if total + 1 > MAXKEY:
                    return -1
                key[total] = 0xc0
                total += 1
            else:
                if total + n > MAXKEY:
                    return -1
                memcpy(key + total, b + o, n)
                total += n
        return total

    cdef int _record(self, const uint8_t* b, Py_ssize_t p, Py_ssize_t e) except -1:
        """Fold one record into its slots: 1 done, 0 send to the slow list."""
        cdef Py_ssize_t fo[NF]
        cdef Py_ssize_t fe[NF]
        cdef Py_ssize_t lo_[NF]
        cdef Py_ssize_t le_[NF]
        cdef Py_ssize_t slots[MAXSLOTS]
        cdef int64_t amt[MAXSLOTS]
        cdef Py_ssize_t ns = 0, nm = 0, k, so, sl, cnt, io, s, n, i, f
        cdef uint8_t key[MAXKEY]
        cdef int64_t when, usage
        cdef uint8_t t
        cdef bytes pp
        cdef int matched
        if walk(b, p, e, fo, fe) < 0:
            return 0
        # type: rated/refund/adjust settle (it is part of the slot key); other str: skip
        if fo[F_TYPE] < 0 or b[fo[F_TYPE]] == 0xc0:
            self.skipped += 1
            return 1
        if not str_span(b, fo[F_TYPE], fe[F_TYPE], &so, &sl):
            return 0
        if not ((sl == 5 and memcmp(b + so, b"rated", 5) == 0)
                or (sl == 6 and memcmp(b + so, b"refund", 6) == 0)
                or (sl == 6 and memcmp(b + so, b"adjust", 6) == 0)):
            self.skipped += 1
            return 1
        # when: an int start, else (start absent or nil) an int ts
        if fo[F_START] >= 0 and read_int(b, fo[F_START], fe[F_START], &when):
            pass
        elif is_nil_or_absent(b, fo[F_START]) and fo[F_TS] >= 0 and read_int(
                b, fo[F_TS], fe[F_TS], &when):
            pass
        else:
            return 0
        usage = 0
        if fo[F_USAGE] >= 0 and not read_int(b, fo[F_USAGE], fe[F_USAGE], &usage):
            t = b[fo[F_USAGE]]
            if not (t == 0xc0 or t == 0xc2 or t == 0xc3 or (0xa0 <= t <= 0xbf)):
                return 0
            usage = 0
        if usage > 0xFFFFFFFFFF or usage < -0xFFFFFFFFFF:
            return 0
        if fo[F_LEGS] >= 0 and b[fo[F_LEGS]] != 0xc0 and not is_empty_array(b, fo[F_LEGS]):
            # transit/hub record: one slot per leg with a partner
            io = container(b, fo[F_LEGS], fe[F_LEGS], 0, &cnt)
            if io < 0:
                return 0
            for i in range(cnt):
                n = walk(b, io, fe[F_LEGS], lo_, le_)
                if n < 0:
                    return 0
                io = n
                if lo_[F_PARTNER] < 0 or b[lo_[F_PARTNER]] == 0xc0 or b[lo_[F_PARTNER]] == 0xa0:
                    continue
                k = self._key(key, b, lo_, le_, fo, fe)
                if k < 0 or ns == MAXSLOTS:
                    return 0
                if not parse_micros(b, lo_[F_PRICE], le_[F_PRICE], &amt[ns]):
                    return 0
                s = self._slot(key, k)
                if when < self.lo[s] or when >= self.hi[s]:
                    return 0
                slots[ns] = s
                ns += 1
        elif not is_nil_or_absent(b, fo[F_PARTNER]) and b[fo[F_PARTNER]] != 0xa0:
            k = self._key(key, b, fo, fe, fo, fe)
            if k < 0:
                return 0
            if not parse_micros(b, fo[F_PRICE], fe[F_PRICE], &amt[ns]):
                return 0
            s = self._slot(key, k)
            if when < self.lo[s] or when >= self.hi[s]:
                return 0
            slots[ns] = s
            ns += 1
        elif self.deck_slow and not is_nil_or_absent(b, fo[F_DECK]):
            return 0  # no partner but a deck: the spec maps decks to partners
        nm = ns
        # balance effects on a prepaid partner account: movement slots
        if self.prepaid and fo[F_EFFECTS] >= 0 and not is_empty_array(b, fo[F_EFFECTS]):
            io = container(b, fo[F_EFFECTS], fe[F_EFFECTS], 0, &cnt)
            if io < 0:
                return 0
            for i in range(cnt):
                n = walk(b, io, fe[F_EFFECTS], lo_, le_)
                if n < 0:
                    return 0
                io = n
                if lo_[F_ACCOUNT] < 0 or not str_span(b, lo_[F_ACCOUNT], le_[F_ACCOUNT], &so, &sl):
                    if lo_[F_ACCOUNT] >= 0 and b[lo_[F_ACCOUNT]] != 0xc0:
                        return 0  # an account that is not a string: let the spec decide
                    continue
                matched = 0
                for pp in self.prepaid:
                    if PyBytes_GET_SIZE(pp) == sl and memcmp(PyBytes_AS_STRING(pp), b + so, sl) == 0:
                        matched = 1
                        break
                if not matched or is_nil_or_absent(b, lo_[F_CURRENCY]):
                    continue
                # 0xc1 + account + currency; the amount is summed
                if nm == MAXSLOTS or not parse_micros(b, lo_[F_AMOUNT], le_[F_AMOUNT], &amt[nm]):
                    return 0
                k = 1
                key[0] = 0xc1
                for f in range(2):
                    n = F_ACCOUNT if f == 0 else F_CURRENCY
                    if lo_[n] < 0:
                        key[k] = 0xc0
                        k += 1
                    else:
                        if k + le_[n] - lo_[n] > MAXKEY:
                            return 0
                        memcpy(key + k, b + lo_[n], le_[n] - lo_[n])
                        k += le_[n] - lo_[n]
                if nm == MAXSLOTS:
                    return 0
                s = self._slot(key, k)
                if when < self.lo[s] or when >= self.hi[s]:
                    return 0
                slots[nm] = s
                nm += 1
        for i in range(nm):  # all or nothing: check every sum before adding any
            if not -SUM_LIMIT < self.amount[slots[i]] < SUM_LIMIT:
                return 0
        for i in range(ns):
            if not -SUM_LIMIT < self.usage[slots[i]] < SUM_LIMIT:
                return 0
        for i in range(nm):
            self.amount[slots[i]] += amt[i]
            self.count[slots[i]] += 1
        for i in range(ns):
            self.usage[slots[i]] += usage
        if ns:
            self.settled += 1
        self.fast += 1
        return 1

    def feed(self, data, Py_ssize_t start, Py_ssize_t max_record=16 * 1024 * 1024):
        """Process the frames of segment bytes *data* from *start*; return the offset after
        the last frame that checked. ``problem`` is set (and ``stop`` = that offset) when a
        frame does not check; the caller decides torn tail (open segment) or corruption."""
        cdef const uint8_t[:] view = data
        cdef Py_ssize_t n = view.shape[0]
        cdef const uint8_t* b
        cdef Py_ssize_t off = start, p, e
        cdef uint32_t length, crc
        cdef list slow_list = self.slow
        self.problem = None
        if n == 0:
            return start
        b = &view[0]
        while off < n:
            if n - off < 10:
                self.problem = "truncated frame header"
                break
            if b[off] != 0xCE or b[off + 5] != 0xCE:
                self.problem = "bad frame header"
                break
            length = be32(b + off + 1)
            crc = be32(b + off + 6)
            if length > max_record:
                self.problem = "bad frame header"
                break
            p = off + 10
            e = p + length
            if e > n:
                self.problem = "truncated record"
                break
            if frame_crc(b + p, length) != crc:
                self.problem = "checksum mismatch"
                break
            off = e
            self.records += 1
            if not self._record(b, p, e):
                slow_list.append((p, e))
        self.stop = off
        return off


# --- reconciliation: select one partner's calls from raw segments ----------------------------
# Twin of settlement.reconcile.our_cdrs over journal bytes (spec: the pure path in
# settlement/recon_source.py); tests/settlement/test_recon_source.py holds both equal.

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)

cdef enum:
    R_TYPE = 0
    R_SERVICE = 1
    R_START = 2
    R_LEGS = 3
    R_PARTNER = 4
    R_DECK = 5
    R_ID = 6
    R_A = 7
    R_B = 8
    R_USAGE = 9
    R_UNIT = 10
    R_PRICE = 11
    R_CURRENCY = 12
    R_DIRECTION = 13
    R_FX = 14
    RNF = 15


cdef inline int recon_field(const uint8_t* k, Py_ssize_t n) noexcept:
    if n == 1:
        if k[0] == b'a':
            return R_A
        if k[0] == b'b':
            return R_B
    elif n == 2:
        if k[0] == b'i' and k[1] == b'd':
            return R_ID
        if k[0] == b'f' and k[1] == b'x':
            return R_FX
    elif n == 4:
        if memcmp(k, b"type", 4) == 0:
            return R_TYPE
        if memcmp(k, b"legs", 4) == 0:
            return R_LEGS
        if memcmp(k, b"deck", 4) == 0:
            return R_DECK
        if memcmp(k, b"unit", 4) == 0:
            return R_UNIT
    elif n == 5:
        if memcmp(k, b"start", 5) == 0:
            return R_START
        if memcmp(k, b"usage", 5) == 0:
            return R_USAGE
        if memcmp(k, b"price", 5) == 0:
            return R_PRICE
    elif n == 7:
        if memcmp(k, b"service", 7) == 0:
            return R_SERVICE
        if memcmp(k, b"partner", 7) == 0:
            return R_PARTNER
    elif n == 8:
        if memcmp(k, b"currency", 8) == 0:
            return R_CURRENCY
    elif n == 9:
        if memcmp(k, b"direction", 9) == 0:
            return R_DIRECTION
    return -1


cdef inline Py_ssize_t recon_walk(const uint8_t* b, Py_ssize_t p, Py_ssize_t e, Py_ssize_t* fo,
                                  Py_ssize_t* fe) noexcept:
    """Spans of the reconciliation keys of the map at p (see walk_keys)."""
    return walk_keys(b, p, e, fo, fe, RNF, recon_field)


cdef inline int str_is(const uint8_t* b, Py_ssize_t o, Py_ssize_t e, const char* want,
                       Py_ssize_t n) noexcept:
    """1 when the value at [o, e) is the msgpack str *want*."""
    cdef Py_ssize_t so = 0, sl = 0
    if o < 0 or not str_span(b, o, e, &so, &sl):
        return 0
    return sl == n and memcmp(b + so, want, n) == 0


cdef inline object opt_str(const uint8_t* b, Py_ssize_t o, Py_ssize_t e, int* ok):
    """The str at [o, e) (None when absent or nil); *ok* = 0 for any other type."""
    cdef Py_ssize_t so = 0, sl = 0
    if o < 0 or b[o] == 0xc0:
        return None
    if not str_span(b, o, e, &so, &sl):
        ok[0] = 0
        return None
    return PyUnicode_DecodeUTF8(<const char*>(b + so), sl, "strict")


def select_calls(data, Py_ssize_t start, Py_ssize_t max_record, bytes partner, list decks,
                 str service, long long lo, long long hi):
    """One partner's calls of [lo, hi) in segment bytes *data* from *start*.

    Returns ``(end, problem, fast, slow)``: *end* the offset after the last frame that checked
    (*problem* set when a frame does not check, as in SegmentAggregator.feed); *fast* a list
    of ``(id, a, b, start, usage, is_seconds, micros | None, currency, direction)`` for plain
    records of *partner* (or, with no partner, whose deck is in *decks*: ``(deck, direction)``
    pairs of str); *slow* the (payload start, end) spans the spec must decode (legs, fx, a
    price that is not a plain decimal, unusual types). Any other record is not a candidate.
    *service* "any" selects every service."""
    cdef const uint8_t[:] view = data
    cdef Py_ssize_t n = view.shape[0]
    cdef const uint8_t* b
    cdef Py_ssize_t off = start, p, e, so = 0, sl = 0
    cdef uint32_t length, crc
    cdef Py_ssize_t fo[RNF]
    cdef Py_ssize_t fe[RNF]
    cdef int64_t when, usage, micros
    cdef int ok, is_s, has_price
    cdef Py_ssize_t cnt, k
    cdef const char* pp = PyBytes_AS_STRING(partner)
    cdef Py_ssize_t pn = PyBytes_GET_SIZE(partner)
    cdef bytes svc_b = service.encode()
    cdef const char* sp = PyBytes_AS_STRING(svc_b)
    cdef Py_ssize_t sn = PyBytes_GET_SIZE(svc_b)
    cdef bint any_service = service == "any"
    cdef list deck_b = [d.encode() for d, _ in decks]
    cdef list deck_dir = [dr for _, dr in decks]
    cdef list fast = []
    cdef list slow = []
    cdef object direction, price, currency, rid, a, bb
    cdef bytes db
    problem = None
    if n == 0:
        return start, None, fast, slow
    b = &view[0]
    while off < n:
        if n - off < 10:
            problem = "truncated frame header"
            break
        if b[off] != 0xCE or b[off + 5] != 0xCE:
            problem = "bad frame header"
            break
        length = be32(b + off + 1)
        crc = be32(b + off + 6)
        if length > max_record:
            problem = "bad frame header"
            break
        p = off + 10
        e = p + length
        if e > n:
            problem = "truncated record"
            break
        if frame_crc(b + p, length) != crc:
            problem = "checksum mismatch"
            break
        off = e
        if recon_walk(b, p, e, fo, fe) < 0:
            slow.append((p, e))
            continue
        if not (str_is(b, fo[R_TYPE], fe[R_TYPE], "rated", 5)
                or str_is(b, fo[R_TYPE], fe[R_TYPE], "adjust", 6)):
            continue
        if not any_service and not str_is(b, fo[R_SERVICE], fe[R_SERVICE], sp, sn):
            continue
        if fo[R_START] < 0 or not read_int(b, fo[R_START], fe[R_START], &when):
            continue  # not an int (a uint64 past int64 is past hi too)
        if not lo <= when < hi:
            continue
        if fo[R_LEGS] >= 0 and b[fo[R_LEGS]] != 0xc0:
            if not (container(b, fo[R_LEGS], fe[R_LEGS], 0, &cnt) >= 0 and cnt == 0):
                slow.append((p, e))  # legs (or an odd value): the spec decides
                continue
        direction = None
        if fo[R_PARTNER] >= 0 and b[fo[R_PARTNER]] != 0xc0:
            if not str_span(b, fo[R_PARTNER], fe[R_PARTNER], &so, &sl):
                slow.append((p, e))
                continue
            if sl == 0:
                pass  # "" is no partner: the deck decides, as for an absent one
            elif not (sl == pn and memcmp(b + so, pp, pn) == 0):
                continue
            else:
                ok = 1
                direction = opt_str(b, fo[R_DIRECTION], fe[R_DIRECTION], &ok)
                if not ok:
                    slow.append((p, e))
                    continue
        if direction is None and not (fo[R_PARTNER] >= 0 and b[fo[R_PARTNER]] != 0xc0
                                      and fe[R_PARTNER] - fo[R_PARTNER] > 1):
            # no partner: the record settles with the partner whose agreement names its deck
            if fo[R_DECK] < 0 or not str_span(b, fo[R_DECK], fe[R_DECK], &so, &sl):
                continue
            for k in range(len(deck_b)):
                db = <bytes>PyList_GET_ITEM(deck_b, k)
                if PyBytes_GET_SIZE(db) == sl and memcmp(b + so, PyBytes_AS_STRING(db), sl) == 0:
                    direction = <object>PyList_GET_ITEM(deck_dir, k)
                    break
            else:
                continue
        if fo[R_FX] >= 0 and b[fo[R_FX]] != 0xc0:
            slow.append((p, e))
            continue
        ok = 1
        rid = opt_str(b, fo[R_ID], fe[R_ID], &ok)
        a = opt_str(b, fo[R_A], fe[R_A], &ok)
        bb = opt_str(b, fo[R_B], fe[R_B], &ok)
        currency = opt_str(b, fo[R_CURRENCY], fe[R_CURRENCY], &ok)
        if not ok or rid is None:
            slow.append((p, e))
            continue
        usage = 0
        if fo[R_USAGE] >= 0 and b[fo[R_USAGE]] != 0xc0:
            if not read_int(b, fo[R_USAGE], fe[R_USAGE], &usage):
                slow.append((p, e))
                continue
        is_s = fo[R_UNIT] < 0 or str_is(b, fo[R_UNIT], fe[R_UNIT], "s", 1)
        price = None
        if fo[R_PRICE] >= 0 and b[fo[R_PRICE]] != 0xc0:
            if b[fo[R_PRICE]] == 0xa0:
                pass  # "" is no price
            elif parse_micros(b, fo[R_PRICE], fe[R_PRICE], &micros):
                price = micros
            else:
                slow.append((p, e))
                continue
        fast.append((rid, a or "", bb or "", when, usage, bool(is_s), price, currency,
                     direction))
    return off, problem, fast, slow
