# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of charging/rating/index.py (PureDeckIndex): same constructor, methods and
results. The pure module is the spec; tests/charging/rating/test_parity.py checks both agree.

Structure: one open-addressing hash table over (service, prefix bytes) -> a run of row
indices in preference order (built by charging.rating.index.build_groups). A lookup hashes
every leading substring of the key in one FNV-1a pass, then probes from the longest present
length down. Prices use 128-bit integer arithmetic (no float): the same formula as
charging/rating/price.py.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy
from cpython.unicode cimport PyUnicode_Check

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef extern from *:
    ctypedef long long i128 "__int128"

DEF MAXSVC = 8
DEF STACK_KEY = 64

cdef enum:
    NO_TARIFF = -1
    BLOCKED = -2

cdef uint64_t FNV_OFFSET = 14695981039346656037ULL
cdef uint64_t FNV_PRIME = 1099511628211ULL
cdef int64_t UNLIMITED = 1LL << 53


cdef inline uint64_t _seed(int svc) nogil:
    return (FNV_OFFSET ^ <uint64_t>(svc + 1)) * FNV_PRIME


cdef class CompiledDeck:
    cdef public object data
    cdef Py_ssize_t nrows, nentries, cap
    cdef uint64_t mask
    # hash table: slot -> entry + 1 (0 = empty)
    cdef int32_t* slots
    # entries
    cdef uint64_t* e_hash
    cdef int32_t* e_len
    cdef int8_t* e_svc
    cdef int64_t* e_off
    cdef int32_t* e_start
    cdef int32_t* e_count
    cdef char* blob
    cdef int32_t* order
    # rows
    cdef int64_t* eff_from
    cdef int64_t* eff_to
    cdef int64_t* rate
    cdef int64_t* rate_first
    cdef int64_t* inc_first
    cdef int64_t* inc_next
    cdef int64_t* rate_unit
    cdef int64_t* fee
    cdef int64_t* min_charge
    cdef int8_t* band
    cdef int8_t* blocked
    cdef int64_t* o_off
    cdef int32_t* o_len
    cdef char* oblob
    cdef int32_t maxlen[MAXSVC]
    cdef uint64_t lenmask[MAXSVC]

    def __cinit__(self):
        self.slots = NULL

    def __init__(self, data, groups):
        cdef Py_ssize_t n = len(data.prefix)
        cdef Py_ssize_t i, j, e, k
        cdef bytes pb
        cdef const char* pp
        cdef Py_ssize_t plen
        cdef uint64_t h
        self.data = data
        self.nrows = n
        cdef Py_ssize_t nent = 0
        cdef Py_ssize_t blob_len = 0
        for g in groups:
            nent += len(g)
            for p in g:
                blob_len += len((<str>p).encode("utf-8"))
        self.nentries = nent
        cap = 16
        while cap < 2 * nent + 2:
            cap *= 2
        self.cap = cap
        self.mask = cap - 1
        self.slots = <int32_t*>calloc(cap, sizeof(int32_t))
        self.e_hash = <uint64_t*>malloc((nent + 1) * sizeof(uint64_t))
        self.e_len = <int32_t*>malloc((nent + 1) * sizeof(int32_t))
        self.e_svc = <int8_t*>malloc((nent + 1) * sizeof(int8_t))
        self.e_off = <int64_t*>malloc((nent + 1) * sizeof(int64_t))
        self.e_start = <int32_t*>malloc((nent + 1) * sizeof(int32_t))
        self.e_count = <int32_t*>malloc((nent + 1) * sizeof(int32_t))
        self.blob = <char*>malloc(blob_len + 1)
        self.order = <int32_t*>malloc((n + 1) * sizeof(int32_t))
        for k in range(MAXSVC):
            self.maxlen[k] = -1
            self.lenmask[k] = 0
        e = 0
        cdef Py_ssize_t off = 0, pos = 0
        cdef int svc
        for svc in range(len(groups)):
            if svc >= MAXSVC:
                raise ValueError("too many services")
            for p, rows in groups[svc].items():
                pb = (<str>p).encode("utf-8")
                pp = pb
                plen = len(pb)
                h = _seed(svc)
                for j in range(plen):
                    h = (h ^ <unsigned char>pp[j]) * FNV_PRIME
                memcpy(self.blob + off, pp, plen)
                self.e_hash[e] = h
                self.e_len[e] = <int32_t>plen
                self.e_svc[e] = <int8_t>svc
                self.e_off[e] = off
                self.e_start[e] = <int32_t>pos
                self.e_count[e] = <int32_t>len(rows)
                for r in rows:
                    self.order[pos] = <int32_t>r
                    pos += 1
                off += plen
                if plen > self.maxlen[svc]:
                    self.maxlen[svc] = <int32_t>plen
                if plen < 64:
                    self.lenmask[svc] |= (1ULL << plen)
                else:
                    self.lenmask[svc] |= (1ULL << 63)
                k = h & self.mask
                while self.slots[k] != 0:
                    k = (k + 1) & self.mask
                self.slots[k] = <int32_t>(e + 1)
                e += 1
        self.eff_from = _copy64(data.eff_from, n)
        self.eff_to = _copy64(data.eff_to, n)
        self.rate = _copy64(data.rate, n)
        self.rate_first = _copy64(data.rate_first, n)
        self.inc_first = _copy64(data.inc_first, n)
        self.inc_next = _copy64(data.inc_next, n)
        self.rate_unit = _copy64(data.rate_unit, n)
        self.fee = _copy64(data.fee, n)
        self.min_charge = _copy64(data.min_charge, n)
        self.band = _copy8(data.band, n)
        self.blocked = _copy8(data.blocked, n)
        self.o_off = <int64_t*>malloc((n + 1) * sizeof(int64_t))
        self.o_len = <int32_t*>malloc((n + 1) * sizeof(int32_t))
        origins = data.origin
        cdef Py_ssize_t olen_total = 0
        for i in range(n):
            o = origins[i]
            if o:
                olen_total += len((<str>o).encode("utf-8"))
        self.oblob = <char*>malloc(olen_total + 1)
        off = 0
        for i in range(n):
            o = origins[i]
            self.o_off[i] = off
            if o:
                pb = (<str>o).encode("utf-8")
                pp = pb
                plen = len(pb)
                memcpy(self.oblob + off, pp, plen)
                self.o_len[i] = <int32_t>plen
                off += plen
            else:
                self.o_len[i] = 0

    def __dealloc__(self):
        if self.slots == NULL:
            return
        free(self.slots); free(self.e_hash); free(self.e_len); free(self.e_svc); free(self.e_off)
        free(self.e_start); free(self.e_count); free(self.blob); free(self.order)
        free(self.eff_from); free(self.eff_to); free(self.rate); free(self.rate_first)
        free(self.inc_first); free(self.inc_next); free(self.rate_unit); free(self.fee)
        free(self.min_charge); free(self.band); free(self.blocked); free(self.o_off)
        free(self.o_len); free(self.oblob)

    cdef inline Py_ssize_t _find(self, int svc, const char* key, Py_ssize_t n,
                                 const char* okey, Py_ssize_t on, int64_t at, int bnd) nogil:
        cdef uint64_t hs[STACK_KEY + 1]
        cdef uint64_t* hp = hs
        cdef Py_ssize_t top, L, j, k, e, r, s, cnt
        cdef uint64_t h, lm
        cdef int32_t olen
        cdef int8_t rb
        if svc < 0 or svc >= MAXSVC or self.maxlen[svc] < 0:
            return -1
        top = self.maxlen[svc]
        if n < top:
            top = n
        if top > STACK_KEY:
            hp = <uint64_t*>malloc((top + 1) * sizeof(uint64_t))
        h = _seed(svc)
        hp[0] = h
        for j in range(top):
            h = (h ^ <unsigned char>key[j]) * FNV_PRIME
            hp[j + 1] = h
        lm = self.lenmask[svc]
        result = -1
        L = top
        while L >= 0:
            if L < 63 and not (lm >> L) & 1:
                L -= 1
                continue
            h = hp[L]
            k = h & self.mask
            while True:
                e = self.slots[k]
                if e == 0:
                    break
                e -= 1
                if (self.e_hash[e] == h and self.e_len[e] == L and self.e_svc[e] == svc
                        and memcmp(self.blob + self.e_off[e], key, L) == 0):
                    s = self.e_start[e]
                    cnt = self.e_count[e]
                    for j in range(cnt):
                        r = self.order[s + j]
                        if self.eff_from[r] <= at and at < self.eff_to[r]:
                            olen = self.o_len[r]
                            if olen and (olen > on or memcmp(self.oblob + self.o_off[r], okey, olen) != 0):
                                continue
                            rb = self.band[r]
                            if rb != 0 and rb != bnd:
                                continue
                            result = r
                            break
                    break
                k = (k + 1) & self.mask
            if result >= 0:
                break
            L -= 1
        if hp != hs:
            free(hp)
        return result

    cdef inline int64_t _price(self, Py_ssize_t i, int64_t usage, int64_t* billed_out) nogil:
        cdef int64_t a, b, billed, total, den
        cdef i128 num
        if usage <= 0:
            billed_out[0] = 0
            return 0
        a = self.inc_first[i]
        if usage <= a:
            billed = a
        else:
            b = self.inc_next[i]
            billed = a + ((usage - a + b - 1) // b) * b
        billed_out[0] = billed
        num = <i128>a * self.rate_first[i] + <i128>(billed - a) * self.rate[i]
        den = self.rate_unit[i] * 1000
        total = self.fee[i] + <int64_t>((2 * num + den) // (2 * <i128>den))
        if total < self.min_charge[i]:
            total = self.min_charge[i]
        return total

    def find(self, int svc, str key, str origin, long long at, int band):
        """Row index of the match, or -1 (see PureDeckIndex.find)."""
        cdef Py_ssize_t n, on
        cdef const char* kp = PyUnicode_AsUTF8AndSize(key, &n)
        cdef const char* op = PyUnicode_AsUTF8AndSize(origin, &on)
        return self._find(svc, kp, n, op, on, at, band)

    def price_row(self, Py_ssize_t i, long long usage):
        """(price micro-units, billed units) of *usage* under row *i*."""
        cdef int64_t billed
        if i < 0 or i >= self.nrows:
            raise IndexError(i)
        p = self._price(i, usage, &billed)
        return p, billed

    def price(self, int svc, str key, long long at, long long usage, str origin="", int band=0):
        """Price in micro-units, or -1 (no tariff) / -2 (blocked)."""
        cdef Py_ssize_t n, on
        cdef int64_t billed
        cdef const char* kp = PyUnicode_AsUTF8AndSize(key, &n)
        cdef const char* op = PyUnicode_AsUTF8AndSize(origin, &on)
        cdef Py_ssize_t r = self._find(svc, kp, n, op, on, at, band)
        if r < 0:
            return NO_TARIFF
        if self.blocked[r]:
            return BLOCKED
        return self._price(r, usage, &billed)

    def max_units_row(self, Py_ssize_t i, long long budget):
        """See charging.rating.price.max_units."""
        cdef i128 m, den, limit, base, step
        cdef i128 units
        if i < 0 or i >= self.nrows:
            raise IndexError(i)
        if self.min_charge[i] > budget:
            return 0
        m = budget - self.fee[i]
        if m < 0:
            return 0
        den = <i128>self.rate_unit[i] * 1000
        limit = (2 * m + 1) * den - 1
        base = 2 * <i128>self.inc_first[i] * self.rate_first[i]
        if base > limit:
            return 0
        step = 2 * <i128>self.inc_next[i] * self.rate[i]
        if step <= 0:
            return UNLIMITED
        units = self.inc_first[i] + ((limit - base) // step) * self.inc_next[i]
        if units < UNLIMITED:
            return <int64_t>units
        return UNLIMITED

    def rate_batch(self, int svc, list keys, long long[::1] usages, long long[::1] ats,
                   long long[::1] prices, long long[::1] rows, origins=None, bands=None):
        """Rate len(keys) usages (see PureDeckIndex.rate_batch). Returns how many priced."""
        cdef Py_ssize_t n = len(keys)
        cdef Py_ssize_t j, r, kn, on = 0
        cdef const char* kp
        cdef const char* op = ""
        cdef int64_t billed
        cdef Py_ssize_t ok = 0
        cdef int b = 0
        cdef long long[::1] bandv
        cdef bint has_bands = bands is not None
        cdef bint has_origins = origins is not None
        if usages.shape[0] < n or ats.shape[0] < n or prices.shape[0] < n or rows.shape[0] < n:
            raise ValueError("arrays shorter than keys")
        if has_bands:
            bandv = bands
        for j in range(n):
            kp = PyUnicode_AsUTF8AndSize(<object>(<list>keys)[j], &kn)
            if has_origins:
                op = PyUnicode_AsUTF8AndSize(origins[j], &on)
            if has_bands:
                b = <int>bandv[j]
            r = self._find(svc, kp, kn, op, on, ats[j], b)
            rows[j] = r
            if r < 0:
                prices[j] = NO_TARIFF
            elif self.blocked[r]:
                prices[j] = BLOCKED
            else:
                prices[j] = self._price(r, usages[j], &billed)
                ok += 1
        return ok


cdef int64_t* _copy64(object arr, Py_ssize_t n) except NULL:
    cdef int64_t* out = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    cdef long long[::1] v
    cdef Py_ssize_t i
    if n:
        v = arr
        for i in range(n):
            out[i] = v[i]
    return out


cdef int8_t* _copy8(object arr, Py_ssize_t n) except NULL:
    cdef int8_t* out = <int8_t*>malloc(n + 1)
    cdef signed char[::1] v
    cdef Py_ssize_t i
    if n:
        v = arr
        for i in range(n):
            out[i] = v[i]
    return out
