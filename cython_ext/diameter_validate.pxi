# Included by diameter_codec.pyx (one extension module): the compiled twin of
# diameter/validate.py check_avps_py. Same codes, same Failed-AVP; parity-tested.

cdef dict _VDEFS = {}
cdef dict _FIXED_SIZES = {}
cdef object _ANY_GRAMMAR = None
cdef object _example = None
cdef object _check_vsai = None
cdef object _check_avps_py = None
cdef dict _GCACHE = {}

cdef enum:
    T_ADDRESS = 9
    MAX_SLOTS = 255

# (vendor 0 | 3GPP) code -> the _VDEFS tuple (borrowed: _VDEFS holds it), NULL when unknown.
cdef PyObject* _D0[_T0_SIZE]
cdef PyObject* _D3[_T3_SIZE]


cdef inline object _vdef(uint32_t code, uint32_t vendor):
    """_VDEFS.get(vendor << 32 | code) without building the key for the common vendors."""
    cdef PyObject* d
    if vendor == 0 and code < _T0_SIZE:
        d = _D0[code]
        return None if d == NULL else <object>d
    if vendor == 10415 and code < _T3_SIZE:
        d = _D3[code]
        return None if d == NULL else <object>d
    return _VDEFS.get((<uint64_t>vendor << 32) | code)


cdef inline object _value_of(Avp a):
    """``a.value`` without the Python property dispatch (same decode, same cache, same
    5004 on bad UTF-8)."""
    v = a._value
    if v is _UNSET:
        v = a._decode()
        a._value = v
    return v


@cython.final
cdef class _GInfo:
    """A grammar's limits as C tables (code -> count slot) when every key it names is a
    vendor 0 / 3GPP code the tables cover; otherwise ``tabled`` is False and the dict path
    (limits, counts by key) runs, as before."""
    cdef object grammar
    cdef dict limits
    cdef bint any_avp
    cdef tuple req          # ((key, min, name), ...)
    cdef bint tabled
    cdef int nslots
    cdef unsigned char s0[_T0_SIZE]  # code -> slot + 1 (0: not in the grammar)
    cdef unsigned char s3[_T3_SIZE]
    cdef int mx[MAX_SLOTS]
    cdef int nreq
    cdef unsigned char req_slot[MAX_SLOTS]
    cdef int req_min[MAX_SLOTS]

    cdef inline int slot(self, uint32_t code, uint32_t vendor) noexcept:
        """count slot + 1 of (code, vendor), 0 when the grammar does not name it."""
        if vendor == 0:
            return self.s0[code] if code < _T0_SIZE else 0
        if vendor == 10415:
            return self.s3[code] if code < _T3_SIZE else 0
        return 0


def configure_validate(*, defs, fixed_sizes, any_grammar, example, check_vsai, check_avps_py):
    """Hand over the validator's tables (called once by diameter/validate.py)."""
    global _VDEFS, _FIXED_SIZES, _ANY_GRAMMAR, _example, _check_vsai, _check_avps_py
    _VDEFS = defs
    _FIXED_SIZES = fixed_sizes
    _ANY_GRAMMAR = any_grammar
    _example = example
    _check_vsai = check_vsai
    _check_avps_py = check_avps_py
    _GCACHE.clear()
    memset(_gfront_key, 0, sizeof(_gfront_key))
    memset(_gfront_val, 0, sizeof(_gfront_val))
    memset(_D0, 0, sizeof(_D0))
    memset(_D3, 0, sizeof(_D3))
    for key, d in defs.items():
        code = key & 0xFFFFFFFF
        vendor = key >> 32
        if vendor == 0 and code < _T0_SIZE:
            _D0[code] = <PyObject*>d
        elif vendor == 10415 and code < _T3_SIZE:
            _D3[code] = <PyObject*>d


# A direct-mapped front for _GCACHE, by the grammar's address: several lookups per message
# (one per Grouped AVP checked), each a call of id() and a dict lookup otherwise. Borrowed
# pointers: _GCACHE keeps every _GInfo (and each keeps its grammar) until configure_validate
# clears both.
cdef enum:
    _GFRONT = 64
cdef PyObject* _gfront_key[_GFRONT]
cdef PyObject* _gfront_val[_GFRONT]


cdef _GInfo _grammar_info(object grammar):
    """The grammar's tables, cached by identity."""
    cdef size_t h = (<size_t><PyObject*>grammar >> 4) & (_GFRONT - 1)
    if _gfront_key[h] == <PyObject*>grammar:
        return <_GInfo>_gfront_val[h]
    info = _GCACHE.get(id(grammar))
    if info is not None and (<_GInfo>info).grammar is grammar:
        _gfront_key[h] = <PyObject*>grammar
        _gfront_val[h] = <PyObject*>info
        return <_GInfo>info
    cdef _GInfo g = _GInfo.__new__(_GInfo)
    g.grammar = grammar
    g.limits = grammar.limits
    g.any_avp = bool(grammar.any_avp)
    g.req = tuple(((<uint64_t><uint32_t>r.key[1] << 32) | <uint32_t>r.key[0], r.min, r.name)
                  for r in grammar.required)
    memset(g.s0, 0, sizeof(g.s0))
    memset(g.s3, 0, sizeof(g.s3))
    g.tabled = len(g.limits) <= MAX_SLOTS and len(g.req) <= MAX_SLOTS
    g.nslots = 0
    if g.tabled:
        for key, mx in g.limits.items():
            code = key & 0xFFFFFFFF
            vendor = key >> 32
            if not (-2**31 <= mx < 2**31):
                g.tabled = False
                break
            if vendor == 0 and code < _T0_SIZE:
                g.s0[code] = g.nslots + 1
            elif vendor == 10415 and code < _T3_SIZE:
                g.s3[code] = g.nslots + 1
            else:
                g.tabled = False
                break
            g.mx[g.nslots] = mx
            g.nslots += 1
    g.nreq = 0
    if g.tabled:
        for key, mn, name in g.req:
            sl = g.slot(key & 0xFFFFFFFF, key >> 32)
            if sl == 0 or not (-2**31 <= mn < 2**31):
                g.tabled = False
                break
            g.req_slot[g.nreq] = sl - 1
            g.req_min[g.nreq] = mn
            g.nreq += 1
    _GCACHE[id(grammar)] = g
    return g


cdef inline Py_ssize_t _fixed_size(int t) noexcept:
    """Payload size of the fixed-size types (diameter.types.FIXED_SIZE), 0 for the others."""
    if t == T_I32 or t == T_U32 or t == T_ENUM or t == 6 or t == 10:  # 6 Float32, 10 Time
        return 4
    if t == T_I64 or t == T_U64 or t == 7:  # 7 Float64
        return 8
    return 0


cdef inline Py_ssize_t _payload_len(Avp a):
    if a._buf is not None and type(a._value) is not list:
        return a._len - a._hlen
    return len(a._encode_data())


def check_avps(list avps, object grammar, *, bint strict=False):
    """Twin of diameter.validate.check_avps_py (same codes, same Failed-AVP)."""
    for x in avps:
        if type(x) is not Avp:  # AVPs built with the pure class: use the spec
            return _check_avps_py(avps, grammar, strict=strict)
    cdef _GInfo info = _grammar_info(grammar)
    cdef dict limits = info.limits
    cdef bint any_avp = info.any_avp
    cdef bint tabled = info.tabled
    cdef dict counts = None if tabled else {}
    cdef int cnt[MAX_SLOTS]
    cdef Avp a
    cdef int flags, t, sl, i
    cdef Py_ssize_t mx, c, n
    cdef tuple d
    if tabled:
        memset(cnt, 0, info.nslots * sizeof(int))
    for a in avps:
        flags = a.flags
        if flags & 0x1F or (flags & 0x80 and a.vendor == 0):
            raise _Error(3009, f"AVP {a.code} flags 0x{flags:02x}", failed_avp=a.encode())
        dd = _vdef(a.code, a.vendor)
        if dd is None:
            if flags & 0x40:
                raise _Error(5001, f"unsupported AVP {a.code}/{a.vendor} with M bit",
                             failed_avp=a.encode())
            continue
        d = <tuple>dd
        name = d[0]
        t = d[1]
        if strict and d[2] and flags & 0x40:
            raise _Error(3009, f"M bit set on {name}", failed_avp=a.encode())
        if tabled:
            sl = info.slot(a.code, a.vendor)
            if sl == 0:
                if not any_avp:
                    raise _Error(5008, f"{name} not allowed here", failed_avp=a.encode())
            else:
                mx = info.mx[sl - 1]
                if mx == 0:
                    raise _Error(5008, f"{name} not allowed here", failed_avp=a.encode())
                cnt[sl - 1] += 1
                if mx > 0 and cnt[sl - 1] > mx:
                    raise _Error(5009, f"{name} occurs too many times", failed_avp=a.encode())
        else:
            key = (<uint64_t>a.vendor << 32) | a.code
            lim = limits.get(key)
            if lim is None:
                if not any_avp:
                    raise _Error(5008, f"{name} not allowed here", failed_avp=a.encode())
            else:
                mx = lim
                if mx == 0:
                    raise _Error(5008, f"{name} not allowed here", failed_avp=a.encode())
                c = counts.get(key, 0) + 1
                counts[key] = c
                if mx > 0 and c > mx:
                    raise _Error(5009, f"{name} occurs too many times", failed_avp=a.encode())
        if t == T_GROUPED:
            sub = d[4]
            if sub is None:
                sub = _ANY_GRAMMAR
            # A received, untouched Grouped AVP is checked on its bytes (no member objects);
            # on any doubt the object path below runs and raises the exact error.
            if (not (a.code == 260 and a.vendor == 0) and a._buf is not None
                    and a._value is _UNSET
                    and _group_ok(<bytes>a._buf, a._off + a._hlen, a._off + a._len, sub,
                                  strict)):
                continue
            v = a.value
            check_avps(v, sub, strict=strict)
            if a.code == 260 and a.vendor == 0:
                _check_vsai(v)
        elif _fixed_size(t) > 0:
            n = _payload_len(a)
            if n != _fixed_size(t):
                raise _Error(5014, f"{name} payload length {n}", failed_avp=a.encode())
            if t == T_ENUM:
                enum = d[3]
                if enum and _value_of(a) not in enum:
                    raise _Error(5004, f"{name} value {a.value} unknown", failed_avp=a.encode())
        elif t == T_UTF8 or t == T_IDENT or t == T_URI or t == T_IPFILTER:
            # valid UTF-8 is all that is checked: test the bytes in place (no str is built
            # for AVPs nobody reads); on a problem the decode raises the exact 5004
            if not (a._value is _UNSET and a._buf is not None
                    and _utf8_ok(<const unsigned char*>PyBytes_AS_STRING(<bytes>a._buf)
                                 + a._off + a._hlen, a._len - a._hlen)):
                _value_of(a)
        elif t == T_ADDRESS:
            _check_address_c(a, name)
    if tabled:
        for i in range(info.nreq):
            if cnt[info.req_slot[i]] < info.req_min[i]:
                r = info.req[i]
                raise _Error(5005, f"missing {r[2]}", failed_avp=_example(r[2]))
    else:
        for r in info.req:
            if counts.get(r[0], 0) < r[1]:
                raise _Error(5005, f"missing {r[2]}", failed_avp=_example(r[2]))


cdef _check_address_c(Avp a, str name):
    cdef bytes data = a.data
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    if n < 2:
        raise _Error(5014, f"{name} shorter than its address family", failed_avp=a.encode())
    cdef int family = (p[0] << 8) | p[1]
    if (family == 1 and n != 6) or (family == 2 and n != 18):
        raise _Error(5004, f"{name} family {family} with {n - 2} octets", failed_avp=a.encode())
    if family == 0 or family == 65535:
        raise _Error(5004, f"{name} address family {family}", failed_avp=a.encode())


cdef bint _utf8_ok(const unsigned char* p, Py_ssize_t n):
    """True when p[:n] is valid UTF-8 (ASCII checked in C; others by the codec itself)."""
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] >= 0x80:
            try:
                PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
            except UnicodeDecodeError:
                return False
            return True
    return True


cdef bint _group_ok(bytes buf, Py_ssize_t start, Py_ssize_t end, object grammar,
                    bint strict) except -1:
    """True when check_avps would accept the members of buf[start:end] against ``grammar``
    (the same rules, on the bytes, without Avp objects); False on any problem or doubt --
    the caller then runs the object path, which raises the exact DiameterError. Never True
    where that path would raise."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef _GInfo info = _grammar_info(grammar)
    cdef dict limits = info.limits
    cdef bint any_avp = info.any_avp
    cdef bint tabled = info.tabled
    cdef dict counts = None if tabled else {}
    cdef int cnt[MAX_SLOTS]
    cdef Py_ssize_t off = start, length, hlen, nxt, n, mx, c, fixed
    cdef uint32_t code, vendor, fl
    cdef int flags, t, family, sl, i
    cdef tuple d
    if end > PyBytes_GET_SIZE(buf):
        return False
    if tabled:
        memset(cnt, 0, info.nslots * sizeof(int))
    while off < end:
        if end - off < 8:
            return False
        code = _u32(p + off)
        fl = _u32(p + off + 4)
        flags = fl >> 24
        length = fl & 0xFFFFFF
        if flags & 0x80:
            if end - off < 12:
                return False
            vendor = _u32(p + off + 8)
            hlen = 12
        else:
            vendor = 0
            hlen = 8
        if length < hlen or off + length > end:
            return False
        nxt = off + ((length + 3) & ~3)
        if nxt > end:
            nxt = end
        n = length - hlen
        if flags & 0x1F or (flags & 0x80 and vendor == 0):
            return False
        dd = _vdef(code, vendor)
        if dd is None:
            if flags & 0x40:
                return False
            off = nxt
            continue
        d = <tuple>dd
        t = d[1]
        if strict and d[2] and flags & 0x40:
            return False
        if tabled:
            sl = info.slot(code, vendor)
            if sl == 0:
                if not any_avp:
                    return False
            else:
                mx = info.mx[sl - 1]
                if mx == 0:
                    return False
                cnt[sl - 1] += 1
                if mx > 0 and cnt[sl - 1] > mx:
                    return False
        else:
            key = (<uint64_t>vendor << 32) | code
            lim = limits.get(key)
            if lim is None:
                if not any_avp:
                    return False
            else:
                mx = lim
                if mx == 0:
                    return False
                c = counts.get(key, 0) + 1
                counts[key] = c
                if mx > 0 and c > mx:
                    return False
        if t == T_GROUPED:
            if code == 260 and vendor == 0:
                return False
            sub = d[4]
            if not _group_ok(buf, off + hlen, off + length,
                             sub if sub is not None else _ANY_GRAMMAR, strict):
                return False
        else:
            fixed = _fixed_size(t)
            if fixed > 0:
                if n != fixed:
                    return False
                if t == T_ENUM:
                    enum = d[3]
                    if enum and <int32_t>_u32(p + off + hlen) not in enum:
                        return False
            elif t == T_UTF8 or t == T_IDENT or t == T_URI or t == T_IPFILTER:
                if not _utf8_ok(p + off + hlen, n):
                    return False
            elif t == T_ADDRESS:
                if n < 2:
                    return False
                family = (p[off + hlen] << 8) | p[off + hlen + 1]
                if (family == 1 and n != 6) or (family == 2 and n != 18):
                    return False
                if family == 0 or family == 65535:
                    return False
        off = nxt
    if tabled:
        for i in range(info.nreq):
            if cnt[info.req_slot[i]] < info.req_min[i]:
                return False
    else:
        for r in info.req:
            if counts.get(r[0], 0) < r[1]:
                return False
    return True
