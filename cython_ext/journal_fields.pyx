# cython: language_level=3
"""Compiled twin of charging.journal.fields.pick (the pure version is the spec): decode only
the wanted top-level fields of msgpack-encoded journal records and step over the others
without building them.

Recovery needs 6-10 of a record's ~15 fields; msgpack built all of them, and reading was
half of the replay time (benchmarks/replay.py). Values of the wanted fields decode exactly as
``msgpack.unpackb(raw=False, strict_map_key=False)`` decodes them (str, bytes, int, float,
bool, None, list, dict); anything else (ext types, bad UTF-8, a record that is not a map, a
truncated one) raises ``ValueError`` and the caller decodes that chunk with msgpack.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcmp, memcpy


cdef inline uint64_t _be(const uint8_t* p, int n) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef class _Cursor:
    cdef const uint8_t* p
    cdef Py_ssize_t pos
    cdef Py_ssize_t end
    # map keys seen (their bytes and the str made of them): nested records repeat a few
    # names ("account", "amount", ...), reused instead of decoded again (msgpack interns them)
    cdef list key_raw
    cdef list key_str

    def __cinit__(self):
        self.key_raw = []
        self.key_str = []

    cdef object key(self):
        """Decode a map key: a short str through the cache, anything else in full."""
        cdef uint8_t b
        cdef Py_ssize_t n, i
        cdef const uint8_t* q
        cdef bytes raw
        if self.pos >= self.end:
            raise ValueError("truncated msgpack")
        b = self.p[self.pos]
        if not (0xA0 <= b <= 0xBF):
            return self.value()
        self.pos += 1
        n = b & 0x1F
        q = self.take(n)
        for i in range(len(self.key_raw)):
            raw = <bytes>self.key_raw[i]
            if len(raw) == n and memcmp(<const char*>raw, q, n) == 0:
                return self.key_str[i]
        k = PyUnicode_DecodeUTF8(<const char*>q, n, NULL)
        if len(self.key_raw) < 32:
            self.key_raw.append(PyBytes_FromStringAndSize(<const char*>q, n))
            self.key_str.append(k)
        return k

    cdef inline const uint8_t* take(self, Py_ssize_t n) except NULL:
        cdef const uint8_t* at = self.p + self.pos
        if n < 0 or self.end - self.pos < n:
            raise ValueError("truncated msgpack")
        self.pos += n
        return at

    cdef Py_ssize_t length(self, uint8_t b, uint8_t base, int width) except -1:
        # the big-endian length field after a str/bin/array/map type byte
        return <Py_ssize_t>_be(self.take(width), width)

    cdef object value(self):
        """Decode one msgpack object, as msgpack-python does with raw=False."""
        cdef uint8_t b = self.take(1)[0]
        cdef Py_ssize_t n
        cdef const uint8_t* q
        cdef double d
        cdef float f
        cdef uint64_t u
        if b <= 0x7F:
            return <long>b
        if b >= 0xE0:
            return <long>(<int8_t>b)
        if 0xA0 <= b <= 0xBF:
            return self.text(b & 0x1F)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F)
        if 0x80 <= b <= 0x8F:
            return self.mapping(b & 0x0F)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b == 0xCC or b == 0xCD or b == 0xCE or b == 0xCF:
            n = 1 << (b - 0xCC)
            return _be(self.take(n), <int>n)
        if b == 0xD0:
            return <long>(<int8_t>self.take(1)[0])
        if b == 0xD1:
            return <long>(<int16_t>_be(self.take(2), 2))
        if b == 0xD2:
            return <long>(<int32_t>_be(self.take(4), 4))
        if b == 0xD3:
            return <long long>(<int64_t>_be(self.take(8), 8))
        if b == 0xCB:
            u = _be(self.take(8), 8)
            memcpy(&d, &u, 8)
            return d
        if b == 0xCA:
            u = _be(self.take(4), 4)
            memcpy(&f, &u, 4)
            return <double>f
        if b == 0xD9 or b == 0xDA or b == 0xDB:
            return self.text(self.length(b, 0xD9, 1 << (b - 0xD9)))
        if b == 0xC4 or b == 0xC5 or b == 0xC6:
            n = self.length(b, 0xC4, 1 << (b - 0xC4))
            q = self.take(n)
            return PyBytes_FromStringAndSize(<const char*>q, n)
        if b == 0xDC or b == 0xDD:
            return self.array(self.length(b, 0xDC, 2 if b == 0xDC else 4))
        if b == 0xDE or b == 0xDF:
            return self.mapping(self.length(b, 0xDE, 2 if b == 0xDE else 4))
        raise ValueError(f"msgpack type 0x{b:02x} is not decoded here")

    cdef object text(self, Py_ssize_t n):
        cdef const uint8_t* q = self.take(n)
        return PyUnicode_DecodeUTF8(<const char*>q, n, NULL)

    cdef list array(self, Py_ssize_t n):
        cdef list out = []
        cdef Py_ssize_t i
        for i in range(n):
            out.append(self.value())
        return out

    cdef dict mapping(self, Py_ssize_t n):
        cdef dict out = {}
        cdef Py_ssize_t i
        for i in range(n):
            k = self.key()
            out[k] = self.value()
        return out

    cdef int skip(self) except -1:
        """Step over one msgpack object without building it."""
        cdef uint8_t b = self.take(1)[0]
        cdef Py_ssize_t n, i
        if b <= 0x7F or b >= 0xE0 or b == 0xC0 or b == 0xC2 or b == 0xC3:
            return 0
        if 0xA0 <= b <= 0xBF:
            self.take(b & 0x1F)
            return 0
        if 0x90 <= b <= 0x9F or b == 0xDC or b == 0xDD:
            n = (b & 0x0F) if b <= 0x9F else self.length(b, 0xDC, 2 if b == 0xDC else 4)
            for i in range(n):
                self.skip()
            return 0
        if 0x80 <= b <= 0x8F or b == 0xDE or b == 0xDF:
            n = (b & 0x0F) if b <= 0x8F else self.length(b, 0xDE, 2 if b == 0xDE else 4)
            for i in range(2 * n):
                self.skip()
            return 0
        if 0xCC <= b <= 0xCF:
            self.take(1 << (b - 0xCC))
            return 0
        if 0xD0 <= b <= 0xD3:
            self.take(1 << (b - 0xD0))
            return 0
        if b == 0xCA:
            self.take(4)
            return 0
        if b == 0xCB:
            self.take(8)
            return 0
        if b == 0xD9 or b == 0xDA or b == 0xDB or b == 0xC4 or b == 0xC5 or b == 0xC6:
            # a skipped str is not checked for valid UTF-8 (our own packer wrote it)
            n = self.length(b, 0, 1 << ((b - 0xD9) if b >= 0xD9 else (b - 0xC4)))
            self.take(n)
            return 0
        raise ValueError(f"msgpack type 0x{b:02x} is not decoded here")


cdef dict _pick(_Cursor c, tuple names, list encoded):
    cdef uint8_t b = c.take(1)[0]
    cdef Py_ssize_t n, i, j, klen
    cdef const uint8_t* kp
    cdef bytes w
    cdef dict out = {}
    if 0x80 <= b <= 0x8F:
        n = b & 0x0F
    elif b == 0xDE:
        n = <Py_ssize_t>_be(c.take(2), 2)
    elif b == 0xDF:
        n = <Py_ssize_t>_be(c.take(4), 4)
    else:
        raise ValueError("journal record is not a map")
    for i in range(n):
        b = c.take(1)[0]
        if 0xA0 <= b <= 0xBF:
            klen = b & 0x1F
        elif b == 0xD9:
            klen = c.take(1)[0]
        else:
            c.pos -= 1  # not a short str key: decode it the general way
            key = c.value()
            if key in names:
                out[key] = c.value()
            else:
                c.skip()
            continue
        kp = c.take(klen)
        for j in range(len(encoded)):
            w = encoded[j]
            if len(w) == klen and memcmp(<const char*>w, kp, klen) == 0:
                out[names[j]] = c.value()
                break
        else:
            c.skip()
    if c.pos != c.end:
        raise ValueError("bytes after the journal record")
    return out


def pick(payload, tuple names):
    """See charging.journal.fields.pick."""
    cdef const uint8_t[::1] mv = memoryview(payload).cast("B")
    cdef _Cursor c = _Cursor()
    if mv.shape[0] == 0:
        raise ValueError("truncated msgpack")
    c.p = &mv[0]
    c.pos = 0
    c.end = mv.shape[0]
    try:
        return _pick(c, names, [name.encode() for name in names])
    except TypeError as exc:  # a map key msgpack cannot hash either
        raise ValueError(str(exc)) from None


def pick_frames(buf, ends, Py_ssize_t start, Py_ssize_t head, tuple names):
    """See charging.journal.fields.pick_frames."""
    cdef const uint8_t[::1] mv = memoryview(buf).cast("B")
    cdef _Cursor c = _Cursor()
    cdef list encoded = [name.encode() for name in names]
    cdef list out = []
    cdef Py_ssize_t prev = start, e
    if mv.shape[0] == 0:
        return out
    c.p = &mv[0]
    for end in ends:
        e = end
        if e > mv.shape[0] or e < prev + head:
            raise ValueError("frame end outside the buffer")
        c.pos = prev + head
        c.end = e
        try:
            out.append(_pick(c, names, encoded))
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        prev = e
    return out
