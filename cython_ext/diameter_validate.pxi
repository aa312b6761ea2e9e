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


cdef tuple _grammar_info(object grammar):
    """(limits dict, any_avp, ((key, min, name), ...)) for a Grammar, cached by identity."""
    info = _GCACHE.get(id(grammar))
    if info is not None and (<tuple>info)[3] is grammar:
        return <tuple>info
    req = tuple(((<uint64_t><uint32_t>r.key[1] << 32) | <uint32_t>r.key[0], r.min, r.name)
                for r in grammar.required)
    info = (grammar.limits, bool(grammar.any_avp), req, grammar)
    _GCACHE[id(grammar)] = info
    return <tuple>info


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
    cdef tuple info = _grammar_info(grammar)
    cdef dict limits = <dict>info[0]
    cdef bint any_avp = info[1]
    cdef dict counts = {}
    cdef Avp a
    cdef int flags, t
    cdef Py_ssize_t mx, c, n
    cdef tuple d
    for a in avps:
        flags = a.flags
        if flags & 0x1F or (flags & 0x80 and a.vendor == 0):
            raise _Error(3009, f"AVP {a.code} flags 0x{flags:02x}", failed_avp=a.encode())
        key = (<uint64_t>a.vendor << 32) | a.code
        dd = _VDEFS.get(key)
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
            v = a.value
            sub = d[4]
            check_avps(v, sub if sub is not None else _ANY_GRAMMAR, strict=strict)
            if key == 260:
                _check_vsai(v)
        elif _fixed_size(t) > 0:
            n = _payload_len(a)
            if n != _fixed_size(t):
                raise _Error(5014, f"{name} payload length {n}", failed_avp=a.encode())
            if t == T_ENUM:
                enum = d[3]
                if enum and a.value not in enum:
                    raise _Error(5004, f"{name} value {a.value} unknown", failed_avp=a.encode())
        elif t == T_UTF8 or t == T_IDENT or t == T_URI or t == T_IPFILTER:
            a.value
        elif t == T_ADDRESS:
            _check_address_c(a, name)
    for r in <tuple>info[2]:
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
