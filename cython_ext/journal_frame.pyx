# cython: language_level=3
# distutils: libraries = z
"""Compiled twin of charging.journal.framing.pack_frames (the pure version is the spec).

Packs records with the caller's packer (framing.record_packers: msgspec's MessagePack encoder,
msgpack's Packer as the fallback: the same bytes) and appends each as a frame
``0xCE len 0xCE crc32 payload`` to one contiguous bytearray: one C call per batch.

Where the pure version calls ``pack`` once per record, this one packs a run of up to
``RUN`` map records in ONE call, ``pack(records[i:j])``: a msgpack encoder writes a list as an
array header followed by each element's own encoding, so a structural walk of that one bytes
object (:func:`_skip`, no decoding) finds every record's payload -- the very bytes
``pack(record)`` returns. One Python call, one bytes object and one buffer resize per run
instead of per record (the per-record call and allocation were ~30% of the loop thread's
time per record). A run whose packing raises, or whose bytes do not walk as exactly ``j - i``
objects, is packed again record by record exactly as the reference does, so errors and the
fallback packer behave the same. Records already given as ``bytes`` are never in a run.

The CRC-32 is zlib's: whole 16-byte blocks (payloads of 64+ bytes) are folded with
carry-less multiplication (PCLMULQDQ, when the CPU has it: :data:`SIMD_CRC`), the tail and
short payloads go through slicing-by-8 tables (journal_crc.pxi); without PCLMULQDQ zlib's own
``crc32`` does it all (linked: the function Python's ``zlib.crc32`` calls). callgrind, a 421-byte record: ~216 instructions folded, ~1,830 zlib alone, ~1,400 the
slicing-by-8 tables alone. The folding code lives in journal_crc.pxi, shared with
journal_scan.pyx (recovery, verify, readers).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_CheckExact
from cpython.list cimport PyList_GET_ITEM, PyList_GetSlice
from libc.stdint cimport uint32_t, uint8_t
from libc.string cimport memcpy

cdef extern from "zlib.h":
    unsigned long zcrc32 "crc32" (unsigned long crc, const unsigned char* buf,
                                  unsigned int length) nogil

cdef extern from *:
    """
    /* A Position (a NamedTuple: a tuple subclass without __dict__) built the way
       tuple.__new__(Position, (segment, offset)) builds it, without the argument tuple. */
    static PyObject* icx_make_position(PyObject* tp, PyObject* seg, Py_ssize_t off) {
        PyTypeObject* t = (PyTypeObject*)tp;
        PyObject* o = t->tp_alloc(t, 2);
        PyObject* x;
        if (o == NULL) return NULL;
        x = PyLong_FromSsize_t(off);
        if (x == NULL) { Py_DECREF(o); return NULL; }
        Py_INCREF(seg);
        PyTuple_SET_ITEM(o, 0, seg);
        PyTuple_SET_ITEM(o, 1, x);
        return o;
    }
    """
    object icx_make_position(object tp, object seg, Py_ssize_t off)

cdef extern from *:
    """
    /* The journal's record encoder: msgpack.Packer(use_bin_type=True)'s bytes for the exact
       types a journal record holds (dict, list, tuple, str, int, float, bool, None, bytes),
       written straight into the group's bytearray -- no intermediate bytes object, no walk
       to find where a record ends, no buffer copy. Anything else (a subclass, a str that is
       not UTF-8 encodable, an int beyond 64 bits, nesting deeper than ICX_MAX_DEPTH) makes
       it return 1 ("declined") and the caller packs that record with the reference path.
       Returns 0 (done), 1 (declined), -1 (a Python error is set: memory).

       Writes go to the bytearray's allocation past its visible size; icx_out_close sets the
       size to what was written (the same two fields PyByteArray_Resize's quick path sets). */
    #include <string.h>
    #include <stdint.h>
    #define ICX_MAX_DEPTH 32
    typedef struct {
        PyObject* buf;          /* the bytearray (borrowed) */
        unsigned char* base;    /* its ob_start */
        Py_ssize_t pos;         /* bytes written */
        Py_ssize_t cap;         /* bytes that fit in its allocation (one kept for the NUL) */
    } icx_out;

    static void icx_out_room(icx_out* o) {
        PyByteArrayObject* b = (PyByteArrayObject*)o->buf;
        o->base = (unsigned char*)b->ob_start;
        o->cap = b->ob_alloc ? b->ob_alloc - (b->ob_start - b->ob_bytes) - 1 : 0;
    }
    /* a buffer export (memoryview) pins the bytearray: only PyByteArray_Resize may then
       decide (it refuses, as the reference's ``buf +=`` does) */
    static int icx_exported(PyObject* buf) { return ((PyByteArrayObject*)buf)->ob_exports > 0; }
    static void icx_out_open(icx_out* o, PyObject* buf) {
        o->buf = buf;
        o->pos = Py_SIZE(buf);
        icx_out_room(o);
    }
    static void icx_out_close(icx_out* o) {
        /* what PyByteArray_Resize does when the size fits the allocation (no allocation
           yet: nothing was written, the size is still 0) */
        if (o->base != NULL) {
            Py_SET_SIZE(o->buf, o->pos);
            o->base[o->pos] = 0;
        }
    }
    static int icx_out_grow(icx_out* o, Py_ssize_t need) {
        Py_ssize_t want = o->pos + need;
        Py_ssize_t cap = 2 * o->cap;
        if (cap < want) cap = want;
        if (cap < 1024) cap = 1024;
        icx_out_close(o);  /* the bytes written so far are kept by the resize */
        if (PyByteArray_Resize(o->buf, cap) < 0) return -1;
        icx_out_room(o);
        icx_out_close(o);
        return 0;
    }
    #define ICX_NEED(o, n) do { if ((o)->pos + (Py_ssize_t)(n) > (o)->cap \
                                    && icx_out_grow((o), (Py_ssize_t)(n)) < 0) return -1; } while (0)

    static inline void icx_be16(unsigned char* p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
    static inline void icx_be32(unsigned char* p, uint32_t v) {
        p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
    }
    static inline void icx_be64(unsigned char* p, uint64_t v) {
        icx_be32(p, (uint32_t)(v >> 32)); icx_be32(p + 4, (uint32_t)v);
    }

    /* a container header: fix form below `fix`, else 16 or 32-bit count */
    static inline unsigned char* icx_head(unsigned char* p, Py_ssize_t n, unsigned char fix,
                                          Py_ssize_t fixmax, unsigned char t16) {
        if (n < fixmax) { *p++ = fix | (unsigned char)n; }
        else if (n < 65536) { p[0] = t16; icx_be16(p + 1, (uint32_t)n); p += 3; }
        else { p[0] = t16 + 1; icx_be32(p + 1, (uint32_t)n); p += 5; }
        return p;
    }

    /* A short copy without a call and without reading past the source: two overlapping
       loads, the way memcpy itself does short sizes. */
    static inline void icx_copy(unsigned char* d, const char* s, Py_ssize_t n) {
        if (n > 16) {
            memcpy(d, s, (size_t)n);
        } else if (n >= 8) {
            uint64_t x, y;
            memcpy(&x, s, 8); memcpy(&y, s + n - 8, 8);
            memcpy(d, &x, 8); memcpy(d + n - 8, &y, 8);
        } else if (n >= 4) {
            uint32_t x, y;
            memcpy(&x, s, 4); memcpy(&y, s + n - 4, 4);
            memcpy(d, &x, 4); memcpy(d + n - 4, &y, 4);
        } else if (n > 0) {
            d[0] = s[0]; d[n >> 1] = s[n >> 1]; d[n - 1] = s[n - 1];
        }
    }

    static int icx_enc_str_slow(icx_out* o, PyObject* s) {
        const char* d;
        Py_ssize_t n;
        unsigned char* p;
        if (PyUnicode_IS_COMPACT_ASCII(s)) {
            d = (const char*)(((PyASCIIObject*)s) + 1);
            n = ((PyASCIIObject*)s)->length;
        } else {
            d = PyUnicode_AsUTF8AndSize(s, &n);
            if (d == NULL) { PyErr_Clear(); return 1; }  /* e.g. a lone surrogate */
        }
        if ((uint64_t)n > 0xFFFFFFFFu) return 1;
        ICX_NEED(o, n + 5);
        p = o->base + o->pos;
        if (n < 32) { *p++ = 0xA0 | (unsigned char)n; }
        else if (n < 256) { p[0] = 0xD9; p[1] = (unsigned char)n; p += 2; }
        else if (n < 65536) { p[0] = 0xDA; icx_be16(p + 1, (uint32_t)n); p += 3; }
        else { p[0] = 0xDB; icx_be32(p + 1, (uint32_t)n); p += 5; }
        icx_copy(p, d, n);
        o->pos = (p - o->base) + n;
        return 0;
    }

    /* an exact str; the common case (ASCII, under 32 bytes: a fixstr) inline */
    static inline int icx_enc_str(icx_out* o, PyObject* s) {
        if (PyUnicode_IS_COMPACT_ASCII(s)) {
            Py_ssize_t n = ((PyASCIIObject*)s)->length;
            if (n < 32 && o->pos + 32 <= o->cap) {
                unsigned char* p = o->base + o->pos;
                p[0] = 0xA0 | (unsigned char)n;
                icx_copy(p + 1, (const char*)(((PyASCIIObject*)s) + 1), n);
                o->pos += n + 1;
                return 0;
            }
        }
        return icx_enc_str_slow(o, s);
    }

    static int icx_enc_int(icx_out* o, PyObject* v) {
        int overflow = 0;
        long long x;
        unsigned char* p;
        uint64_t u;
    #if PY_VERSION_HEX < 0x030C0000 && PYLONG_BITS_IN_DIGIT == 30
        /* up to 60 bits read from the digits (the layout of CPython <= 3.11) */
        Py_ssize_t sz = Py_SIZE(v);
        const digit* dg = ((PyLongObject*)v)->ob_digit;
        if (sz == 0) { x = 0; }
        else if (sz == 1) { x = (long long)dg[0]; }
        else if (sz == -1) { x = -(long long)dg[0]; }
        else if (sz == 2) { x = (long long)dg[0] | ((long long)dg[1] << 30); }
        else if (sz == -2) { x = -((long long)dg[0] | ((long long)dg[1] << 30)); }
        else
    #endif
        {
            x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow < 0) return 1;
            if (overflow == 0 && x == -1 && PyErr_Occurred()) { PyErr_Clear(); return 1; }
        }
        if (overflow > 0) {
            u = PyLong_AsUnsignedLongLong(v);
            if (u == (uint64_t)-1 && PyErr_Occurred()) { PyErr_Clear(); return 1; }
        } else {
            u = (uint64_t)x;
        }
        ICX_NEED(o, 9);
        p = o->base + o->pos;
        if (overflow > 0 || x >= 0) {  /* msgpack: a non-negative int is unsigned */
            if (u < 0x80) { p[0] = (unsigned char)u; o->pos += 1; }
            else if (u < 0x100) { p[0] = 0xCC; p[1] = (unsigned char)u; o->pos += 2; }
            else if (u < 0x10000) { p[0] = 0xCD; icx_be16(p + 1, (uint32_t)u); o->pos += 3; }
            else if (u < 0x100000000ULL) { p[0] = 0xCE; icx_be32(p + 1, (uint32_t)u); o->pos += 5; }
            else { p[0] = 0xCF; icx_be64(p + 1, u); o->pos += 9; }
        } else {
            if (x >= -32) { p[0] = (unsigned char)(x & 0xFF); o->pos += 1; }
            else if (x >= -128) { p[0] = 0xD0; p[1] = (unsigned char)(x & 0xFF); o->pos += 2; }
            else if (x >= -32768) { p[0] = 0xD1; icx_be16(p + 1, (uint32_t)(x & 0xFFFF)); o->pos += 3; }
            else if (x >= -2147483648LL) { p[0] = 0xD2; icx_be32(p + 1, (uint32_t)x); o->pos += 5; }
            else { p[0] = 0xD3; icx_be64(p + 1, (uint64_t)x); o->pos += 9; }
        }
        return 0;
    }

    static int icx_enc(icx_out* o, PyObject* v, int depth);

    /* a value: str (most of a record) inline, the rest through icx_enc */
    #define ICX_ENC(o, v, depth) \
        (Py_IS_TYPE((v), &PyUnicode_Type) ? icx_enc_str((o), (v)) : icx_enc((o), (v), (depth)))

    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    /* CPython 3.11's dict keys object (Include/internal/pycore_dict.h, 3.11): a combined
       table's entries in insertion order -- what PyDict_Next walks -- read directly, at a
       fraction of PyDict_Next's cost per entry. Any other layout goes to PyDict_Next, and
       the entry count is checked against the dict's size (declined if they differ). */
    #define ICX_DICT_311 1
    typedef struct {
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size;
        uint8_t dk_log2_index_bytes;
        uint8_t dk_kind;  /* 0 general (hash, key, value), 1 unicode (key, value), 2 split */
        uint32_t dk_version;
        Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries;
        char dk_indices[];
    } icx_dictkeys311;
    #endif

    static int icx_enc_map(icx_out* o, PyObject* d, int depth) {
        Py_ssize_t n = PyDict_GET_SIZE(d), it = 0, seen = 0;
        PyObject *k, *val;
        int rc;
        if ((uint64_t)n > 0xFFFFFFFFu) return 1;
        ICX_NEED(o, 5);
        o->pos = icx_head(o->base + o->pos, n, 0x80, 16, 0xDE) - o->base;
    #ifdef ICX_DICT_311
        if (((PyDictObject*)d)->ma_values == NULL) {
            icx_dictkeys311* dk = (icx_dictkeys311*)((PyDictObject*)d)->ma_keys;
            PyObject** e = (PyObject**)(dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes));
            PyObject** end;
            Py_ssize_t step;
            if (dk->dk_kind == 1) { step = 2; }
            else if (dk->dk_kind == 0) { step = 3; e += 1; }  /* skip me_hash */
            else return 1;
            end = e + step * dk->dk_nentries;
            for (; e < end; e += step) {
                val = e[1];
                if (val == NULL) continue;  /* a deleted entry */
                k = e[0];
                rc = ICX_ENC(o, k, depth + 1);
                if (rc) return rc;
                rc = ICX_ENC(o, val, depth + 1);
                if (rc) return rc;
                seen++;
            }
            return seen == n ? 0 : 1;
        }
    #endif
        while (PyDict_Next(d, &it, &k, &val)) {
            rc = ICX_ENC(o, k, depth + 1);
            if (rc) return rc;
            rc = ICX_ENC(o, val, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }

    static int icx_enc_seq(icx_out* o, PyObject** items, Py_ssize_t n, int depth) {
        Py_ssize_t k;
        int rc;
        if ((uint64_t)n > 0xFFFFFFFFu) return 1;
        ICX_NEED(o, 5);
        o->pos = icx_head(o->base + o->pos, n, 0x90, 16, 0xDC) - o->base;
        for (k = 0; k < n; k++) {
            rc = ICX_ENC(o, items[k], depth + 1);
            if (rc) return rc;
        }
        return 0;
    }

    static int icx_enc(icx_out* o, PyObject* v, int depth) {
        PyTypeObject* t = Py_TYPE(v);
        unsigned char* p;
        Py_ssize_t n;
        if (t == &PyUnicode_Type) return icx_enc_str(o, v);
        if (t == &PyLong_Type) return icx_enc_int(o, v);
        if (v == Py_None || t == &PyBool_Type) {
            ICX_NEED(o, 1);
            o->base[o->pos++] = v == Py_None ? 0xC0 : (v == Py_True ? 0xC3 : 0xC2);
            return 0;
        }
        if (t == &PyFloat_Type) {  /* msgpack's default: float 64 */
            double x = PyFloat_AS_DOUBLE(v);
            uint64_t bits;
            memcpy(&bits, &x, 8);
            ICX_NEED(o, 9);
            p = o->base + o->pos;
            p[0] = 0xCB;
            icx_be64(p + 1, bits);
            o->pos += 9;
            return 0;
        }
        if (depth >= ICX_MAX_DEPTH) return 1;  /* the reference decides (its nest limit) */
        if (t == &PyDict_Type) return icx_enc_map(o, v, depth);
        if (t == &PyList_Type)
            return icx_enc_seq(o, ((PyListObject*)v)->ob_item, PyList_GET_SIZE(v), depth);
        if (t == &PyTuple_Type)
            return icx_enc_seq(o, ((PyTupleObject*)v)->ob_item, PyTuple_GET_SIZE(v), depth);
        if (t == &PyBytes_Type) {  /* use_bin_type=True: bin 8/16/32 */
            n = PyBytes_GET_SIZE(v);
            if ((uint64_t)n > 0xFFFFFFFFu) return 1;
            ICX_NEED(o, n + 5);
            p = o->base + o->pos;
            if (n < 256) { p[0] = 0xC4; p[1] = (unsigned char)n; p += 2; }
            else if (n < 65536) { p[0] = 0xC5; icx_be16(p + 1, (uint32_t)n); p += 3; }
            else { p[0] = 0xC6; icx_be32(p + 1, (uint32_t)n); p += 5; }
            icx_copy(p, PyBytes_AS_STRING(v), n);
            o->pos = (p - o->base) + n;
            return 0;
        }
        return 1;
    }

    /* One record: room for its frame head, then the map; on anything but success the output
       goes back to where the record began. */
    static int icx_enc_record(icx_out* o, PyObject* r) {
        Py_ssize_t at = o->pos;
        int rc;
        if (o->pos + 10 > o->cap && icx_out_grow(o, 10) < 0) return -1;
        o->pos += 10;
        rc = icx_enc_map(o, r, 0);
        if (rc) o->pos = at;
        return rc;
    }

    /* Room for n bytes in the bytearray's allocation, its size and contents unchanged. */
    static int icx_reserve(PyObject* buf, Py_ssize_t n) {
        icx_out o;
        Py_ssize_t at;
        icx_out_open(&o, buf);
        if (n <= o.cap || ((PyByteArrayObject*)buf)->ob_exports > 0) return 0;
        at = o.pos;
        if (PyByteArray_Resize(buf, n) < 0) return -1;
        icx_out_room(&o);
        o.pos = at;
        icx_out_close(&o);
        return 0;
    }
    """
    ctypedef struct icx_out:
        unsigned char* base
        Py_ssize_t pos
        Py_ssize_t cap
    bint icx_exported(object buf)
    void icx_out_open(icx_out* o, object buf)
    void icx_out_close(icx_out* o)
    int icx_out_grow(icx_out* o, Py_ssize_t need) except -1
    int icx_enc_record(icx_out* o, object r) except -1
    int icx_reserve(object buf, Py_ssize_t n) except -1


cdef Py_ssize_t MAX_RECORD = 16 * 1024 * 1024
cdef Py_ssize_t HEADER_LEN = 16
cdef Py_ssize_t HEAD = 10
DEF RUN = 64  # records packed per call: bounds the work wasted when a segment fills up


include "journal_crc.pxi"

SIMD_CRC = bool(SIMD)  # for tests and the benchmark's report


cdef inline uint32_t _crc(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef unsigned long c = 0  # zlib's initial value (crc32(0, NULL, 0))
    if SIMD:
        # folded 16-byte blocks, the tables for the tail (< 16 bytes) and short payloads:
        # no call into zlib for a few bytes (~96 -> ~35 instructions per record)
        return _crc32(p, n)
    while n > 0x40000000:  # zlib takes an unsigned int length
        c = zcrc32(c, p, 0x40000000)
        p += 0x40000000
        n -= 0x40000000
    return <uint32_t>zcrc32(c, p, <unsigned int>n)


def crc32_zlib(const uint8_t[::1] data):
    """zlib's crc32 as linked here, without the folding path (for parity tests)."""
    if not data.shape[0]:
        return 0
    return <uint32_t>zcrc32(0, &data[0], <unsigned int>data.shape[0])


def crc32(const uint8_t[::1] data):
    """zlib.crc32(data) (for parity tests)."""
    return _crc(&data[0], data.shape[0]) if data.shape[0] else 0


cdef inline void _put_be32(unsigned char* d, uint32_t v) noexcept nogil:
    d[0] = (v >> 24) & 0xFF
    d[1] = (v >> 16) & 0xFF
    d[2] = (v >> 8) & 0xFF
    d[3] = v & 0xFF


cdef inline Py_ssize_t _be(const uint8_t* p, int k) noexcept nogil:
    cdef Py_ssize_t v = 0
    cdef int x
    for x in range(k):
        v = (v << 8) | p[x]
    return v


# msgpack tag byte -> total size of the object when the tag alone fixes it (0: it does not),
# and how many further objects it opens (fixmap: 2 per entry, fixarray: 1 per element).
cdef uint8_t FIXED[256]
cdef uint8_t OPENS[256]


cdef void _init_tags():
    cdef int b
    for b in range(256):
        FIXED[b] = 0
        OPENS[b] = 0
    for b in range(0x00, 0x80):
        FIXED[b] = 1  # positive fixint
    for b in range(0xE0, 0x100):
        FIXED[b] = 1  # negative fixint
    for b in range(0x80, 0x90):
        FIXED[b] = 1
        OPENS[b] = 2 * (b & 0x0F)  # fixmap
    for b in range(0x90, 0xA0):
        FIXED[b] = 1
        OPENS[b] = b & 0x0F  # fixarray
    for b in range(0xA0, 0xC0):
        FIXED[b] = 1 + (b & 0x1F)  # fixstr
    FIXED[0xC0] = FIXED[0xC2] = FIXED[0xC3] = 1  # nil, false, true
    FIXED[0xCC] = FIXED[0xD0] = 2
    FIXED[0xCD] = FIXED[0xD1] = 3
    FIXED[0xCE] = FIXED[0xD2] = FIXED[0xCA] = 5
    FIXED[0xCF] = FIXED[0xD3] = FIXED[0xCB] = 9
    FIXED[0xD4] = 3
    FIXED[0xD5] = 4
    FIXED[0xD6] = 6
    FIXED[0xD7] = 10
    FIXED[0xD8] = 18


_init_tags()


cdef Py_ssize_t _skip(const uint8_t* p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """End offset of the one msgpack object starting at ``pos`` (-1 if it runs past ``n`` or
    is not msgpack). Iterative: a counter of objects still to pass, no recursion; one table
    lookup per tag for all but the length-prefixed and 16/32-bit counted kinds."""
    cdef Py_ssize_t todo = 1
    cdef uint8_t b, s
    cdef Py_ssize_t w
    while todo > 0:
        if pos >= n:
            return -1
        b = p[pos]
        todo -= 1
        s = FIXED[b]
        if s:
            pos += s
            todo += OPENS[b]
            continue
        # length-prefixed (str/bin/ext 8/16/32) or counted (array/map 16/32)
        if b == 0xD9 or b == 0xC4 or b == 0xC7:
            w = 1
        elif b == 0xDA or b == 0xC5 or b == 0xC8 or b == 0xDC or b == 0xDE:
            w = 2
        elif b == 0xDB or b == 0xC6 or b == 0xC9 or b == 0xDD or b == 0xDF:
            w = 4
        else:
            return -1  # 0xC1: never used
        if pos + 1 + w > n:
            return -1
        if b == 0xDC or b == 0xDD:
            todo += _be(p + pos + 1, <int>w)
            pos += 1 + w
        elif b == 0xDE or b == 0xDF:
            todo += 2 * _be(p + pos + 1, <int>w)
            pos += 1 + w
        elif b == 0xC7 or b == 0xC8 or b == 0xC9:
            pos += 2 + w + _be(p + pos + 1, <int>w)  # + the ext type byte
        else:
            pos += 1 + w + _be(p + pos + 1, <int>w)
    return pos if pos <= n else -1


cdef inline Py_ssize_t _array_header(const uint8_t* p, Py_ssize_t n, Py_ssize_t* count
                                     ) noexcept nogil:
    """Length of the msgpack array header at ``p`` (0 if none); its count into ``count``."""
    if n >= 1 and 0x90 <= p[0] <= 0x9F:
        count[0] = p[0] & 0x0F
        return 1
    if n >= 3 and p[0] == 0xDC:
        count[0] = _be(p + 1, 2)
        return 3
    if n >= 5 and p[0] == 0xDD:
        count[0] = _be(p + 1, 4)
        return 5
    return 0


cdef int _append_frame(bytearray buf, const uint8_t* src, Py_ssize_t plen) except -1:
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(buf)
    PyByteArray_Resize(buf, old + HEAD + plen)
    cdef unsigned char* d = <unsigned char*>PyByteArray_AS_STRING(buf) + old
    d[0] = 0xCE
    _put_be32(d + 1, <uint32_t>plen)
    d[5] = 0xCE
    _put_be32(d + 6, _crc(src, plen))
    memcpy(d + HEAD, src, plen)
    return 0


cdef object _reference_payload(pack, object r, fallback):
    """The payload of one record as the pure reference makes it."""
    if PyBytes_Check(r):
        return r
    if fallback is None:
        payload = pack(r)
    else:
        try:
            payload = pack(r)
        except Exception:
            payload = fallback(r)
    if not PyBytes_Check(payload):
        payload = bytes(payload)
    return payload


cdef inline int _note_end(list ends, position, segment, Py_ssize_t offset) except -1:
    """Record a frame's end in *ends* (when the caller wants them): the offset, or a
    ``position`` tuple of (segment, offset)."""
    if ends is not None:
        if position is None:
            ends.append(offset)
        else:
            ends.append(icx_make_position(position, segment, offset))
    return 0


cdef Py_ssize_t _frame_reference(bytearray buf, pack, r, fallback, Py_ssize_t offset,
                                 Py_ssize_t limit) except -2:
    """Frame one record packed by the reference path at the end of *buf*; returns the new
    offset, or -1 when the segment has no room for it (nothing written)."""
    payload = _reference_payload(pack, r, fallback)
    cdef Py_ssize_t plen = PyBytes_GET_SIZE(payload)
    if plen > MAX_RECORD:
        raise ValueError(f"journal record of {plen} bytes exceeds the {MAX_RECORD} limit")
    if offset > HEADER_LEN and offset + HEAD + plen > limit:
        return -1
    _append_frame(buf, <const uint8_t*>PyBytes_AS_STRING(payload), plen)
    return offset + HEAD + plen


cdef object _pack_native(pack, list records, Py_ssize_t start, bytearray buf,
                         Py_ssize_t offset, Py_ssize_t limit, list ends, fallback, position,
                         segment):
    """pack_frames with the built-in encoder (icx_enc_record) for dict records: each is
    encoded straight into ``buf`` behind room for its frame head, its CRC taken from there
    (still in cache), the head filled in; a bytes record is copied the same way. Records it
    declines, and any other kind, go through the reference path one by one."""
    cdef Py_ssize_t n = len(records)
    cdef Py_ssize_t i = start
    cdef Py_ssize_t at, plen, size
    cdef unsigned char* d
    cdef icx_out out
    cdef int rc
    cdef object r, payload
    icx_out_open(&out, buf)
    try:
        while i < n:
            r = <object>PyList_GET_ITEM(records, i)
            at = out.pos
            if PyBytes_CheckExact(r):  # already packed: copied as it is
                plen = PyBytes_GET_SIZE(r)
                if plen > MAX_RECORD:
                    raise ValueError(
                        f"journal record of {plen} bytes exceeds the {MAX_RECORD} limit")
                if offset > HEADER_LEN and offset + HEAD + plen > limit:
                    return (i, offset)
                if at + HEAD + plen > out.cap:
                    icx_out_grow(&out, HEAD + plen)
                memcpy(out.base + at + HEAD, PyBytes_AS_STRING(r), plen)
                out.pos = at + HEAD + plen
                rc = 0
            elif PyDict_CheckExact(r):
                rc = icx_enc_record(&out, r)
                if rc == 0:
                    plen = out.pos - at - HEAD
                    if plen > MAX_RECORD:
                        out.pos = at
                        raise ValueError(
                            f"journal record of {plen} bytes exceeds the {MAX_RECORD} limit")
                    if offset > HEADER_LEN and offset + HEAD + plen > limit:
                        out.pos = at
                        return (i, offset)
            else:
                rc = 1
            if rc == 0:
                d = out.base + at
                d[0] = 0xCE
                _put_be32(d + 1, <uint32_t>plen)
                d[5] = 0xCE
                _put_be32(d + 6, _crc(d + HEAD, plen))
                offset += HEAD + plen
                _note_end(ends, position, segment, offset)
                i += 1
                continue
            # the reference path runs Python code: the bytearray must be consistent meanwhile
            icx_out_close(&out)
            size = _frame_reference(buf, pack, r, fallback, offset, limit)
            if size < 0:
                return (i, offset)
            icx_out_open(&out, buf)
            offset = size
            _note_end(ends, position, segment, offset)
            i += 1
        return (i, offset)
    finally:
        icx_out_close(&out)


def reserve(bytearray buf, Py_ssize_t n):
    """Make room for ``n`` bytes in ``buf``'s allocation without changing its size or
    contents (nothing when it has the room, or an export pins it), so framing that much
    into it needs no reallocation: a group's buffer starts with room for what the last
    group held. See charging.journal.framing.reserve."""
    icx_reserve(buf, n)


def pack_frames(pack, list records, Py_ssize_t start, bytearray buf, Py_ssize_t offset,
                Py_ssize_t limit, list ends, fallback=None, position=None, segment=0,
                bint native=False):
    """See charging.journal.framing.pack_frames. ``native``: dict records are encoded by the
    built-in encoder (msgpack.Packer(use_bin_type=True)'s bytes, which ``pack`` must write
    too) straight into ``buf``; else runs of them are packed by ``pack`` in one call."""
    cdef Py_ssize_t n = len(records)
    cdef Py_ssize_t i = start
    cdef Py_ssize_t j, k, m, plen, size, old, hl, count, total
    cdef Py_ssize_t solo_until = start  # records below this are packed one by one
    cdef Py_ssize_t bounds[RUN + 1]
    cdef unsigned char* d
    cdef const uint8_t* src
    cdef const uint8_t* q
    cdef object r, payload, blob
    if position is not None and not issubclass(position, tuple):
        raise TypeError("position must be a tuple subclass")
    if native and not icx_exported(buf):
        return _pack_native(pack, records, start, buf, offset, limit, ends, fallback,
                            position, segment)
    while i < n:
        if i >= solo_until:
            # A run of map records: pack them in one call, frame each from the one blob.
            j = i
            while j < n and j - i < RUN and not PyBytes_Check(<object>PyList_GET_ITEM(records, j)):
                j += 1
            if j - i >= 2:
                try:
                    blob = pack(PyList_GetSlice(records, i, j))
                except Exception:
                    blob = None
                m = j - i
                if blob is not None and PyBytes_Check(blob):
                    q = <const uint8_t*>PyBytes_AS_STRING(blob)
                    total = PyBytes_GET_SIZE(blob)
                    count = -1
                    hl = _array_header(q, total, &count)
                    if hl and count == m:
                        bounds[0] = hl
                        for k in range(m):
                            bounds[k + 1] = _skip(q, bounds[k], total)
                            if bounds[k + 1] < 0:
                                break
                        else:
                            if bounds[m] == total:
                                # every record walked: size the frames that fit, then write
                                size = 0
                                for k in range(m):
                                    plen = bounds[k + 1] - bounds[k]
                                    if plen > MAX_RECORD:
                                        m = k  # frame those before it; the solo path raises
                                        solo_until = i + k + 1
                                        break
                                    if offset + size > HEADER_LEN and \
                                            offset + size + HEAD + plen > limit:
                                        m = k
                                        j = -1  # the segment is full
                                        break
                                    size += HEAD + plen
                                old = PyByteArray_GET_SIZE(buf)
                                PyByteArray_Resize(buf, old + size)
                                d = <unsigned char*>PyByteArray_AS_STRING(buf) + old
                                for k in range(m):
                                    src = q + bounds[k]
                                    plen = bounds[k + 1] - bounds[k]
                                    d[0] = 0xCE
                                    _put_be32(d + 1, <uint32_t>plen)
                                    d[5] = 0xCE
                                    _put_be32(d + 6, _crc(src, plen))
                                    memcpy(d + HEAD, src, plen)
                                    d += HEAD + plen
                                    offset += HEAD + plen
                                    _note_end(ends, position, segment, offset)
                                i += m
                                if j < 0:
                                    return (i, offset)
                                continue
                solo_until = i + (j - i)  # this run goes record by record
        size = _frame_reference(buf, pack, records[i], fallback, offset, limit)
        if size < 0:
            return (i, offset)
        offset = size
        _note_end(ends, position, segment, offset)
        i += 1
    return (i, offset)
