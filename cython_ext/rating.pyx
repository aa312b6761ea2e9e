# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of charging/rating/index.py (PureDeckIndex): same constructor, methods and
results. The pure module is the spec; tests/charging/rating/test_parity.py checks both agree.

Structure: one open-addressing hash table over (service, prefix bytes) -> a run of row
indices in preference order (built by charging.rating.index.build_groups). A lookup hashes
every leading substring of the key in one FNV-1a pass, then probes from the longest present
length down. Prices use 128-bit integer arithmetic (no float): the same formula as
charging/rating/price.py.
"""

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint64_t
from posix.stdlib cimport posix_memalign
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy
from cpython.unicode cimport PyUnicode_Check

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef extern from *:
    ctypedef long long i128 "__int128"
    void __builtin_prefetch(const void* addr) nogil

DEF MAXSVC = 8
DEF STACK_KEY = 64
DEF BLOCK = 64

cdef struct RowC:
    # One row's hot fields in exactly one 64-byte cache line (the array is 64-byte aligned):
    # a lookup touches one line, not ten arrays. Values that do not fit these widths make
    # the constructor raise OverflowError (the engine then uses the pure rater).
    int64_t eff_from
    int64_t eff_to
    int64_t rate
    int64_t rate_first
    int64_t fee
    int64_t min_charge
    int32_t inc_first
    int32_t inc_next
    int32_t rate_unit
    int16_t o_len
    int8_t band
    int8_t blocked


cdef struct EntryC:
    # One (service, prefix) and its run of rows, stored inline in the hash table: a probe
    # reads one 32-byte entry (count == 0: empty slot). row0 saves a hop for one-row prefixes.
    uint64_t hash
    int32_t off
    int32_t len
    int32_t start
    int32_t count
    int32_t row0
    int32_t svc


cdef enum:
    NO_TARIFF = -1
    BLOCKED = -2

cdef uint64_t FNV_OFFSET = 14695981039346656037ULL
cdef uint64_t FNV_PRIME = 1099511628211ULL
cdef int64_t UNLIMITED = 1LL << 53
cdef int64_t LIM30 = 1LL << 30
cdef int64_t LIM31 = 1LL << 31
cdef int64_t LIM62 = 1LL << 62
cdef int64_t INT64_MAX = 0x7FFFFFFFFFFFFFFF


cdef inline uint64_t _seed(int svc) noexcept nogil:
    return (FNV_OFFSET ^ <uint64_t>(svc + 1)) * FNV_PRIME


cdef class CompiledDeck:
    cdef public object data
    cdef Py_ssize_t nrows, nentries, cap
    cdef uint64_t mask
    # open-addressing table of entries (count == 0: empty)
    cdef EntryC* table
    # A one-hash Bloom filter over the entries' hashes, small enough to stay in L2: most
    # candidate lengths of a key have no entry, and this answers that without a DRAM miss.
    cdef uint64_t* bloom
    cdef uint64_t bmask
    cdef char* blob
    cdef int32_t* order
    cdef RowC* rows
    cdef int64_t* o_off
    cdef char* oblob
    cdef int32_t maxlen[MAXSVC]
    cdef uint64_t lenmask[MAXSVC]

    def __cinit__(self):
        self.table = NULL
        self.bloom = NULL
        self.blob = NULL
        self.order = NULL
        self.rows = NULL
        self.o_off = NULL
        self.oblob = NULL

    def __init__(self, data, groups=None):
        """Build the index from the columns of *data* (a DeckData). *groups* is accepted
        for signature parity with PureDeckIndex and ignored: the grouping and preference
        order are rebuilt here in C (and checked against the pure order by the parity tests)."""
        cdef Py_ssize_t n = len(data.prefix)
        cdef Py_ssize_t i, j, e, k, m
        cdef const char* pp
        cdef Py_ssize_t plen
        cdef uint64_t h, word
        cdef int svc
        cdef list prefixes = data.prefix
        cdef list origins = data.origin
        self.data = data
        self.nrows = n
        for k in range(MAXSVC):
            self.maxlen[k] = -1
            self.lenmask[k] = 0
        cdef void* mem = NULL
        if posix_memalign(&mem, 64, (n + 1) * sizeof(RowC)) != 0:
            raise MemoryError()
        self.rows = <RowC*>mem
        self.o_off = <int64_t*>malloc((n + 1) * sizeof(int64_t))
        cdef int64_t I32 = 2147483647
        cdef long long[::1] c_from, c_to, c_rate, c_first, c_incf, c_incn, c_unit, c_fee, c_min
        cdef signed char[::1] c_band, c_blk
        cdef int8_t* svcs = _copy8(data.service, n)
        if n:
            c_from = data.eff_from
            c_to = data.eff_to
            c_rate = data.rate
            c_first = data.rate_first
            c_incf = data.inc_first
            c_incn = data.inc_next
            c_unit = data.rate_unit
            c_fee = data.fee
            c_min = data.min_charge
            c_band = data.band
            c_blk = data.blocked
        for i in range(n):
            if not (0 < c_incf[i] <= I32 and 0 < c_incn[i] <= I32 and 0 < c_unit[i] <= I32):
                raise OverflowError(f"row {i}: increments/unit out of the compiled range")
            self.rows[i].eff_from = c_from[i]
            self.rows[i].eff_to = c_to[i]
            self.rows[i].rate = c_rate[i]
            self.rows[i].rate_first = c_first[i]
            self.rows[i].inc_first = <int32_t>c_incf[i]
            self.rows[i].inc_next = <int32_t>c_incn[i]
            self.rows[i].rate_unit = <int32_t>c_unit[i]
            self.rows[i].fee = c_fee[i]
            self.rows[i].min_charge = c_min[i]
            self.rows[i].band = c_band[i]
            self.rows[i].blocked = c_blk[i]
        # Origins: one blob.
        cdef Py_ssize_t total = 0
        for i in range(n):
            o = origins[i]
            if o:
                PyUnicode_AsUTF8AndSize(o, &plen)
                total += plen
        self.oblob = <char*>malloc(total + 1)
        cdef Py_ssize_t off = 0
        for i in range(n):
            o = origins[i]
            self.o_off[i] = off
            self.rows[i].o_len = 0
            if o:
                pp = PyUnicode_AsUTF8AndSize(o, &plen)
                if plen > 32767:
                    raise OverflowError(f"row {i}: origin key too long for the compiled index")
                memcpy(self.oblob + off, pp, plen)
                self.rows[i].o_len = <int16_t>plen
                off += plen
        # Pass 1: hash every (service, prefix); find or create its entry; count rows per entry.
        total = 0
        for i in range(n):
            PyUnicode_AsUTF8AndSize(prefixes[i], &plen)
            total += plen
        cap = 16
        while cap < 2 * n + 2:
            cap *= 2
        self.cap = cap
        self.mask = cap - 1
        if total >= I32:
            raise OverflowError("prefix bytes too large for the compiled index")
        self.table = <EntryC*>calloc(cap, sizeof(EntryC))
        cdef uint64_t bbits = 1 << 16
        while bbits < 16 * <uint64_t>n:
            bbits *= 2
        self.bmask = bbits - 1
        self.bloom = <uint64_t*>calloc(bbits // 64, sizeof(uint64_t))
        self.blob = <char*>malloc(total + 1)
        self.order = <int32_t*>malloc((n + 1) * sizeof(int32_t))
        cdef int32_t* row_slot = <int32_t*>malloc((n + 1) * sizeof(int32_t))
        cdef EntryC* ent
        off = 0
        e = 0
        for i in range(n):
            pp = PyUnicode_AsUTF8AndSize(prefixes[i], &plen)
            svc = svcs[i]
            if svc < 0 or svc >= MAXSVC:
                free(row_slot); free(svcs)
                raise ValueError(f"bad service code {svc}")
            h = _seed(svc)
            for j in range(plen):
                h = (h ^ <unsigned char>pp[j]) * FNV_PRIME
            k = h & self.mask
            while True:
                ent = &self.table[k]
                if ent.count == 0:
                    memcpy(self.blob + off, pp, plen)
                    ent.hash = h
                    self.bloom[((h >> 24) & self.bmask) >> 6] |= 1ULL << ((h >> 24) & 63)
                    ent.len = <int32_t>plen
                    ent.svc = svc
                    ent.off = <int32_t>off
                    off += plen
                    e += 1
                    if plen > self.maxlen[svc]:
                        self.maxlen[svc] = <int32_t>plen
                    if plen < 63:
                        self.lenmask[svc] |= (1ULL << plen)
                    else:
                        self.lenmask[svc] |= (1ULL << 63)
                    break
                if (ent.hash == h and ent.len == plen and ent.svc == svc
                        and memcmp(self.blob + ent.off, pp, plen) == 0):
                    break
                k = (k + 1) & self.mask
            row_slot[i] = <int32_t>k
            ent.count += 1
        self.nentries = e
        free(svcs)
        # Pass 2: runs of row indices per entry (rows in file order), then preference order.
        cdef Py_ssize_t pos = 0
        for k in range(cap):
            if self.table[k].count:
                self.table[k].start = <int32_t>pos
                pos += self.table[k].count
                self.table[k].row0 = 0  # reused as a fill counter below
        for i in range(n):
            ent = &self.table[row_slot[i]]
            self.order[ent.start + ent.row0] = <int32_t>i
            ent.row0 += 1
        free(row_slot)
        for k in range(cap):
            ent = &self.table[k]
            if ent.count:
                if ent.count > 1:
                    self._sort_run(ent.start, ent.count)
                ent.row0 = self.order[ent.start]

    cdef inline bint _before(self, int32_t a, int32_t b) noexcept nogil:
        """Preference order of PureDeckIndex: longer origin, specific band, later start, index."""
        cdef RowC* ra = &self.rows[a]
        cdef RowC* rb = &self.rows[b]
        if ra.o_len != rb.o_len:
            return ra.o_len > rb.o_len
        if (ra.band == 0) != (rb.band == 0):
            return ra.band != 0
        if ra.eff_from != rb.eff_from:
            return ra.eff_from > rb.eff_from
        return a < b

    cdef void _sort_run(self, Py_ssize_t start, Py_ssize_t count) noexcept nogil:
        # Insertion sort: runs are short (versions/bands/origins of one prefix).
        cdef Py_ssize_t x, y
        cdef int32_t v
        for x in range(start + 1, start + count):
            v = self.order[x]
            y = x - 1
            while y >= start and self._before(v, self.order[y]):
                self.order[y + 1] = self.order[y]
                y -= 1
            self.order[y + 1] = v

    def __dealloc__(self):
        free(self.table)
        free(self.bloom)
        free(self.blob)
        free(self.order)
        free(self.rows)
        free(self.o_off)
        free(self.oblob)

    cdef inline bint _maybe(self, uint64_t h) noexcept nogil:
        cdef uint64_t bit = (h >> 24) & self.bmask
        return (self.bloom[bit >> 6] >> (bit & 63)) & 1

    cdef inline Py_ssize_t _find(self, int svc, const char* key, Py_ssize_t n,
                                 const char* okey, Py_ssize_t on, int64_t at, int bnd) noexcept nogil:
        cdef uint64_t hs[STACK_KEY + 1]
        cdef uint64_t* hp = hs
        cdef Py_ssize_t top, L, j, k, r, cnt
        cdef uint64_t h, lm
        cdef int32_t olen
        cdef int8_t rb
        cdef EntryC* ent
        cdef RowC* row
        cdef Py_ssize_t result = -1
        if svc < 0 or svc >= MAXSVC or self.maxlen[svc] < 0:
            return -1
        top = self.maxlen[svc]
        if n < top:
            top = n
        if top > STACK_KEY:
            hp = <uint64_t*>malloc((top + 1) * sizeof(uint64_t))
        lm = self.lenmask[svc]
        h = _seed(svc)
        hp[0] = h
        for j in range(top):
            h = (h ^ <unsigned char>key[j]) * FNV_PRIME
            hp[j + 1] = h
        L = top
        while L >= 0:
            if (L < 63 and not (lm >> L) & 1) or not self._maybe(hp[L]):
                L -= 1
                continue
            h = hp[L]
            k = h & self.mask
            while True:
                ent = &self.table[k]
                if ent.count == 0:
                    break
                if (ent.hash == h and ent.len == L and ent.svc == svc
                        and memcmp(self.blob + ent.off, key, L) == 0):
                    cnt = ent.count
                    for j in range(cnt):
                        r = ent.row0 if j == 0 else self.order[ent.start + j]
                        row = &self.rows[r]
                        if row.eff_from <= at and at < row.eff_to:
                            olen = row.o_len
                            if olen and (olen > on or memcmp(self.oblob + self.o_off[r], okey, olen) != 0):
                                continue
                            rb = row.band
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

    cdef inline int64_t _price(self, Py_ssize_t i, int64_t usage, int64_t* billed_out,
                               bint* big) noexcept nogil:
        """The price in micro-units, exactly as price.price_micros; sets *big* (and returns 0)
        when the billed units or the price do not fit in 64 bits, or a value is negative (C
        division truncates where Python floors): the caller then prices with :meth:`_exact`
        in Python integers, so no price is ever truncated (an absurd rate, > ~134 major units
        per unit, used to wrap in the 128-bit branch)."""
        cdef int64_t a, b, billed, den, n64
        cdef i128 num, q, total, billed128
        cdef RowC* row = &self.rows[i]
        big[0] = False
        if usage <= 0:
            billed_out[0] = 0
            return 0
        a = row.inc_first
        if usage <= a:
            billed = a
        else:
            b = row.inc_next
            billed128 = a + ((<i128>usage - a + b - 1) // b) * b
            if billed128 >= LIM62:
                big[0] = True
                return 0
            billed = <int64_t>billed128
        billed_out[0] = billed
        den = <int64_t>row.rate_unit * 1000  # int32 * 1000 would wrap past 2**31
        if (billed < LIM31 and 0 <= row.rate_first < LIM30 and 0 <= row.rate < LIM30
                and den < LIM30 and 0 <= row.fee < LIM62):
            # Everything fits in 63 bits: plain 64-bit division (the common case).
            n64 = a * row.rate_first + (billed - a) * row.rate
            total = row.fee + (2 * n64 + den) // (2 * den)
        else:
            if row.rate_first < 0 or row.rate < 0 or row.fee < 0:
                big[0] = True
                return 0
            # a < 2**31, rates < 2**63, billed < 2**62: num < 2**125 + 2**94, 2*num fits
            num = <i128>a * row.rate_first + <i128>(billed - a) * row.rate
            q = (2 * num + den) // (2 * <i128>den)
            total = row.fee + q
            if total > INT64_MAX:
                big[0] = True
                return 0
        if total < row.min_charge:
            total = row.min_charge
        return <int64_t>total

    cdef object _exact(self, Py_ssize_t i, object usage):
        """(price, billed) in Python integers: price.price_micros on row *i* (never wraps)."""
        cdef RowC* row = &self.rows[i]
        a = int(row.inc_first)
        b = int(row.inc_next)
        if usage <= 0:
            return 0, 0
        billed = a if usage <= a else a + -(-(usage - a) // b) * b
        num = a * int(row.rate_first) + (billed - a) * int(row.rate)
        den = int(row.rate_unit) * 1000
        total = int(row.fee) + (2 * num + den) // (2 * den)
        m = int(row.min_charge)
        return (total if total >= m else m), billed

    def find(self, int svc, str key, str origin, long long at, int band):
        """Row index of the match, or -1 (see PureDeckIndex.find)."""
        cdef Py_ssize_t n, on
        cdef const char* kp = PyUnicode_AsUTF8AndSize(key, &n)
        cdef const char* op = PyUnicode_AsUTF8AndSize(origin, &on)
        return self._find(svc, kp, n, op, on, at, band)

    def price_row(self, Py_ssize_t i, long long usage):
        """(price micro-units, billed units) of *usage* under row *i*."""
        cdef int64_t billed
        cdef bint big
        if i < 0 or i >= self.nrows:
            raise IndexError(i)
        p = self._price(i, usage, &billed, &big)
        if big:
            return self._exact(i, usage)
        return p, billed

    def price(self, int svc, str key, long long at, long long usage, str origin="", int band=0):
        """Price in micro-units, or -1 (no tariff) / -2 (blocked)."""
        cdef Py_ssize_t n, on
        cdef int64_t billed
        cdef const char* kp = PyUnicode_AsUTF8AndSize(key, &n)
        cdef const char* op = PyUnicode_AsUTF8AndSize(origin, &on)
        cdef bint big
        cdef Py_ssize_t r = self._find(svc, kp, n, op, on, at, band)
        if r < 0:
            return NO_TARIFF
        if self.rows[r].blocked:
            return BLOCKED
        p = self._price(r, usage, &billed, &big)
        if big:
            return self._exact(r, usage)[0]
        return p

    def max_units_row(self, Py_ssize_t i, long long budget):
        """See charging.rating.price.max_units."""
        cdef i128 m, den, limit, base, step
        cdef i128 units
        if i < 0 or i >= self.nrows:
            raise IndexError(i)
        cdef RowC* row = &self.rows[i]
        if row.min_charge > budget:
            return 0
        m = budget - row.fee
        if m < 0:
            return 0
        den = <i128>row.rate_unit * 1000
        limit = (2 * m + 1) * den - 1
        base = 2 * <i128>row.inc_first * row.rate_first
        if base > limit:
            return 0
        step = 2 * <i128>row.inc_next * row.rate
        if step <= 0:
            return UNLIMITED
        units = row.inc_first + ((limit - base) // step) * row.inc_next
        if units < UNLIMITED:
            return <int64_t>units
        return UNLIMITED

    def rate_batch(self, int svc, list keys, long long[::1] usages, long long[::1] ats,
                   long long[::1] prices, long long[::1] rows, origins=None, bands=None):
        """Rate len(keys) usages (see PureDeckIndex.rate_batch). Returns how many priced.

        Works in blocks of BLOCK usages and three passes so that the cache misses of many
        usages overlap (memory-level parallelism): hash + prefetch the candidate slots,
        probe + prefetch the row, then check the row and price. Any usage whose first
        candidate row does not qualify takes the full :meth:`_find` (same result)."""
        cdef Py_ssize_t n = len(keys)
        cdef Py_ssize_t j, r, kn, on = 0, base, cnt, b_i, L, top, k, t
        cdef const char* op = ""
        cdef int64_t billed
        cdef bint big
        cdef Py_ssize_t ok = 0
        cdef int b = 0
        cdef long long[::1] bandv
        cdef bint has_bands = bands is not None
        cdef bint has_origins = origins is not None
        cdef const char* kps[BLOCK]
        cdef Py_ssize_t kns[BLOCK]
        cdef EntryC* ents[BLOCK]
        cdef uint64_t* hb
        cdef uint64_t h, lm
        cdef EntryC* ent
        cdef RowC* row
        cdef int stride
        if usages.shape[0] < n or ats.shape[0] < n or prices.shape[0] < n or rows.shape[0] < n:
            raise ValueError("arrays shorter than keys")
        if has_bands:
            bandv = bands
        if svc < 0 or svc >= MAXSVC or self.maxlen[svc] < 0:
            for j in range(n):
                rows[j] = -1
                prices[j] = NO_TARIFF
            return 0
        top = self.maxlen[svc]
        lm = self.lenmask[svc]
        stride = <int>top + 1
        hb = <uint64_t*>malloc(BLOCK * stride * sizeof(uint64_t))
        try:
            base = 0
            while base < n:
                cnt = n - base if n - base < BLOCK else BLOCK
                # pass 1: hashes of every candidate length; prefetch their slots
                for b_i in range(cnt):
                    kps[b_i] = PyUnicode_AsUTF8AndSize(<object>(<list>keys)[base + b_i], &kns[b_i])
                    h = _seed(svc)
                    hb[b_i * stride] = h
                    t = kns[b_i] if kns[b_i] < top else top
                    for L in range(1, t + 1):
                        h = (h ^ <unsigned char>kps[b_i][L - 1]) * FNV_PRIME
                        hb[b_i * stride + L] = h
                    # prefetch the longest plausible candidate (usually the match)
                    L = t
                    while L >= 0:
                        if (L >= 63 or (lm >> L) & 1) and self._maybe(hb[b_i * stride + L]):
                            __builtin_prefetch(&self.table[hb[b_i * stride + L] & self.mask])
                            break
                        L -= 1
                # pass 2: the longest existing entry; prefetch its first row
                for b_i in range(cnt):
                    ents[b_i] = NULL
                    t = kns[b_i] if kns[b_i] < top else top
                    L = t
                    while L >= 0 and ents[b_i] == NULL:
                        if (L < 63 and not (lm >> L) & 1) or not self._maybe(hb[b_i * stride + L]):
                            L -= 1
                            continue
                        h = hb[b_i * stride + L]
                        k = h & self.mask
                        while True:
                            ent = &self.table[k]
                            if ent.count == 0:
                                break
                            if (ent.hash == h and ent.len == L and ent.svc == svc
                                    and memcmp(self.blob + ent.off, kps[b_i], L) == 0):
                                ents[b_i] = ent
                                __builtin_prefetch(&self.rows[ent.row0])
                                break
                            k = (k + 1) & self.mask
                        L -= 1
                # pass 3: check the row, price
                for b_i in range(cnt):
                    j = base + b_i
                    if has_origins:
                        op = PyUnicode_AsUTF8AndSize(origins[j], &on)
                    if has_bands:
                        b = <int>bandv[j]
                    ent = ents[b_i]
                    r = -1
                    if ent != NULL:
                        row = &self.rows[ent.row0]
                        if (ent.count == 1 and row.eff_from <= ats[j] and ats[j] < row.eff_to
                                and row.o_len == 0 and row.band == 0):
                            r = ent.row0
                        else:
                            r = self._find(svc, kps[b_i], kns[b_i], op, on, ats[j], b)
                    rows[j] = r
                    if r < 0:
                        prices[j] = NO_TARIFF
                    elif self.rows[r].blocked:
                        prices[j] = BLOCKED
                    else:
                        prices[j] = self._price(r, usages[j], &billed, &big)
                        if big:
                            # exact in Python integers; a price beyond int64 raises
                            # OverflowError here, as the pure twin's array("q") does
                            prices[j] = self._exact(r, usages[j])[0]
                        ok += 1
                base += cnt
        finally:
            free(hb)
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


# --- CSV import fast path (twin of charging.rating.csvdeck._Rows.read_fast) ----------------

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)

DEF MAXCELLS = 64


cdef struct _BSet:
    # Open-addressing set of byte strings that live in the caller's text (offset, length).
    int64_t* off
    int32_t* len
    uint64_t* hash
    int32_t* val
    Py_ssize_t mask


cdef int _bset_init(_BSet* t, Py_ssize_t expected) except -1:
    cdef Py_ssize_t cap = 16
    while cap < 2 * expected + 2:
        cap *= 2
    t.mask = cap - 1
    t.off = <int64_t*>malloc(cap * sizeof(int64_t))
    t.len = <int32_t*>calloc(cap, sizeof(int32_t))
    t.hash = <uint64_t*>malloc(cap * sizeof(uint64_t))
    t.val = <int32_t*>malloc(cap * sizeof(int32_t))
    cdef Py_ssize_t i
    for i in range(cap):
        t.len[i] = -1
    return 0


cdef void _bset_free(_BSet* t) noexcept:
    free(t.off); free(t.len); free(t.hash); free(t.val)


cdef inline Py_ssize_t _bset_slot(_BSet* t, const char* base, Py_ssize_t off, Py_ssize_t n,
                                  uint64_t h) noexcept nogil:
    """The slot holding base[off:off+n], or the empty slot where it belongs (len == -1)."""
    cdef Py_ssize_t k = h & t.mask
    while t.len[k] != -1:
        if t.hash[k] == h and t.len[k] == n and memcmp(base + t.off[k], base + off, n) == 0:
            return k
        k = (k + 1) & t.mask
    return k


cdef inline uint64_t _fnv(const char* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = FNV_OFFSET
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ <unsigned char>p[i]) * FNV_PRIME
    return h


def split_simple(str text, Py_ssize_t start_at, str delim, int ncols, int c_prefix, int c_rate, tuple rest_idx):
    """Split an unquoted deck body (``text`` from offset ``start_at``, the line after the
    header; UTF-8 offsets equal str offsets only for ASCII text, so a non-ASCII text must be
    passed from 0) into
    (prefixes: list[str], rates: array('q') nano-units, ids: array('i'), keys: list[str],
    lines, distinct prefixes).

    ``keys[ids[j]]`` is row j's non-code, non-rate cells (``rest_idx`` order) joined by
    ``\\x1f``. Returns None as soon as a line needs the csv module or the row-by-row path: a
    quote, a CR inside a line, a ``\\x1f``, too many cells, a code that is not all digits, a
    rate that is not plain ``digits[.digits]`` (below 1e9, at most 9 significant decimals), a
    non-empty cell past the first ``ncols`` (the header's cells).
    """
    from array import array
    cdef Py_ssize_t size
    cdef const char* p = PyUnicode_AsUTF8AndSize(text, &size)
    cdef bytes dl = delim.encode()
    if len(dl) != 1:
        return None
    cdef char d = dl[0]
    cdef Py_ssize_t nrest = len(rest_idx)
    cdef int ridx[MAXCELLS]
    if start_at and not text.isascii():
        return None  # byte offsets would not match str offsets
    cdef Py_ssize_t i, j, k, start, end, pos = start_at, lines = 0, ncells, nrows = 0, slot
    cdef Py_ssize_t cs[MAXCELLS]
    cdef Py_ssize_t ce[MAXCELLS]
    cdef char c
    cdef int64_t whole, frac
    cdef int fdig
    cdef bint seen_dot
    cdef uint64_t h
    if nrest > MAXCELLS or ncols > MAXCELLS:
        return None
    for i in range(nrest):
        ridx[i] = rest_idx[i]
    cdef Py_ssize_t maxrows = 1
    for i in range(start_at, size):
        if p[i] == 10:
            maxrows += 1
    cdef int64_t* rates = <int64_t*>malloc(maxrows * sizeof(int64_t))
    cdef int32_t* ids = <int32_t*>malloc(maxrows * sizeof(int32_t))
    # Keys are built in a side buffer (their cells are not contiguous in the text).
    cdef Py_ssize_t kcap = 1 << 16, kused = 0, klen, kstart
    cdef char* kbuf = <char*>malloc(kcap)
    cdef _BSet kset
    _bset_init(&kset, 4096)
    # Distinct prefixes: one packed word per slot (hash high 32 bits | row + 1) so a probe
    # touches one cache line; the bytes are compared through the row's offset only on a hit.
    cdef Py_ssize_t pcap = 16
    while pcap < 2 * maxrows + 2:
        pcap *= 2
    cdef uint64_t pmask = pcap - 1
    cdef uint64_t* pslots = <uint64_t*>calloc(pcap, sizeof(uint64_t))
    cdef int64_t* poff = <int64_t*>malloc(maxrows * sizeof(int64_t))
    cdef int32_t* plen = <int32_t*>malloc(maxrows * sizeof(int32_t))
    cdef uint64_t word, hi
    cdef Py_ssize_t plen_row, other
    cdef Py_ssize_t nkeys = 0, distinct = 0
    cdef list prefixes = []
    cdef list keys = []
    try:
        while pos < size:
            start = pos
            end = pos
            while end < size and p[end] != 10:
                end += 1
            pos = end + 1
            lines += 1
            if end > start and p[end - 1] == 13:
                end -= 1
            ncells = 0
            cs[0] = start
            for i in range(start, end):
                c = p[i]
                if c == 34 or c == 13 or c == 31:
                    return None
                if c == d:
                    ce[ncells] = i
                    ncells += 1
                    if ncells >= MAXCELLS:
                        return None
                    cs[ncells] = i + 1
            ce[ncells] = end
            ncells += 1
            if end == start or ncells <= 1:
                continue  # blank line or a one-cell note: skipped like the row path
            for k in range(ncols, ncells):
                if ce[k] > cs[k]:
                    return None  # a cell past the header: the row path names the shifted row
            for k in range(ncells, ncols):
                cs[k] = end
                ce[k] = end
            if ce[c_prefix] <= cs[c_prefix]:
                return None
            for i in range(cs[c_prefix], ce[c_prefix]):
                if p[i] < 48 or p[i] > 57:
                    return None
            whole = 0
            frac = 0
            fdig = 0
            seen_dot = False
            if ce[c_rate] <= cs[c_rate] or (ce[c_rate] - cs[c_rate] == 1 and p[cs[c_rate]] == 46):
                return None
            for i in range(cs[c_rate], ce[c_rate]):
                c = p[i]
                if c == 46 and not seen_dot:
                    seen_dot = True
                elif 48 <= c <= 57:
                    if seen_dot:
                        if fdig < 9:
                            frac = frac * 10 + (c - 48)
                            fdig += 1
                        elif c != 48:
                            return None
                    else:
                        whole = whole * 10 + (c - 48)
                        if whole >= 1000000000:
                            return None  # let the exact Python path decide
                else:
                    return None
            while fdig < 9:
                frac *= 10
                fdig += 1
            # key of the other cells
            klen = 0
            for j in range(nrest):
                klen += ce[ridx[j]] - cs[ridx[j]] + 1
            if kused + klen + 1 > kcap:
                while kused + klen + 1 > kcap:
                    kcap *= 2
                kbuf = <char*>realloc_or_fail(kbuf, kcap)
            kstart = kused
            for j in range(nrest):
                k = ridx[j]
                if j:
                    kbuf[kused] = 31
                    kused += 1
                memcpy(kbuf + kused, p + cs[k], ce[k] - cs[k])
                kused += ce[k] - cs[k]
            klen = kused - kstart
            h = _fnv(kbuf + kstart, klen)
            slot = _bset_slot(&kset, kbuf, kstart, klen, h)
            if kset.len[slot] == -1:
                if nkeys >= (kset.mask + 1) // 2:
                    return None  # very many distinct combinations: the Python path copes
                kset.len[slot] = <int32_t>klen
                kset.off[slot] = kstart
                kset.hash[slot] = h
                kset.val[slot] = <int32_t>nkeys
                keys.append(PyUnicode_DecodeUTF8(kbuf + kstart, klen, "strict"))
                nkeys += 1
            else:
                kused = kstart  # already known: drop the copy
            ids[nrows] = kset.val[slot]
            # distinct prefixes
            plen_row = ce[c_prefix] - cs[c_prefix]
            poff[nrows] = cs[c_prefix]
            plen[nrows] = <int32_t>plen_row
            h = _fnv(p + cs[c_prefix], plen_row)
            hi = h >> 32
            slot = h & pmask
            while True:
                word = pslots[slot]
                if word == 0:
                    pslots[slot] = (hi << 32) | <uint64_t>(nrows + 1)
                    distinct += 1
                    break
                if (word >> 32) == hi:
                    other = <Py_ssize_t>(word & 0xFFFFFFFFULL) - 1
                    if plen[other] == plen_row and memcmp(p + poff[other], p + cs[c_prefix], plen_row) == 0:
                        break
                slot = (slot + 1) & pmask
            prefixes.append(PyUnicode_DecodeASCII(p + cs[c_prefix], ce[c_prefix] - cs[c_prefix], "strict"))
            rates[nrows] = whole * 1000000000 + frac
            nrows += 1
        out_rates = array("q")
        out_rates.frombytes((<char*>rates)[:nrows * sizeof(int64_t)])
        out_ids = array("i")
        out_ids.frombytes((<char*>ids)[:nrows * sizeof(int32_t)])
    finally:
        free(rates)
        free(ids)
        free(kbuf)
        free(pslots)
        free(poff)
        free(plen)
        _bset_free(&kset)
    return prefixes, out_rates, out_ids, keys, lines, distinct


cdef void* realloc_or_fail(void* ptr, size_t n) except NULL:
    cdef void* out = realloc(ptr, n)
    if out == NULL:
        raise MemoryError()
    return out


def take(int[::1] ids, long long[::1] values, str typecode="q"):
    """array(typecode) with values[ids[j]] for every j (expands per-key attributes to rows);
    typecode "q" (int64), "i" (int32) or "b" (int8)."""
    from array import array
    cdef Py_ssize_t n = ids.shape[0], j
    cdef long long[::1] oq
    cdef int[::1] oi
    cdef signed char[::1] ob
    if typecode == "q":
        out = array("q", bytes(8 * n))
        oq = out
        for j in range(n):
            oq[j] = values[ids[j]]
    elif typecode == "i":
        out = array("i", bytes(4 * n))
        oi = out
        for j in range(n):
            oi[j] = <int>values[ids[j]]
    elif typecode == "b":
        out = array("b", bytes(n))
        ob = out
        for j in range(n):
            ob[j] = <signed char>values[ids[j]]
    else:
        raise ValueError(typecode)
    return out
