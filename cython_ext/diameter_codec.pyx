# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of the Diameter codec hot path (diameter/avp.py + diameter/message.py).

The pure-Python classes AvpPy / MessagePy / decode_message_py are the executable spec; this
module provides Avp / Message / decode_message / walk with the same behaviour (same values,
same bytes, same DiameterError codes and Failed-AVP), selected once in diameter/avp.py via
cython_ext.load("diameter_codec"). It imports nothing from the project: the dictionary tables,
the exception classes and the rare-type value codecs are handed over by ``configure()``.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

# AvpType values (diameter.types.AvpType)
cdef enum:
    T_OCTET = 1
    T_I32 = 2
    T_I64 = 3
    T_U32 = 4
    T_U64 = 5
    T_GROUPED = 8
    T_UTF8 = 11
    T_IDENT = 12
    T_URI = 13
    T_ENUM = 14
    T_IPFILTER = 15


# Bumped whenever the interface with diameter/avp.py, message.py or validate.py changes, so
# a stale build is ignored (pure Python runs) instead of half-working.
ABI = 2

cdef dict _TYPES = {}
cdef dict _SPECS = {}
cdef dict _KEYS = {}
cdef dict _DEFAULT_FLAGS = {}
cdef dict _NAMES = {}
cdef object _Error = Exception
cdef object _TypeError = Exception
cdef object _decode_scalar = None
cdef object _encode_scalar = None
cdef object _zero_filled = None


# Fast type tables for the common vendors (filled by configure): 0 = unknown AVP.
cdef enum:
    _T0_SIZE = 2048
    _T3_SIZE = 8192
cdef unsigned char _T0[_T0_SIZE]
cdef unsigned char _T3[_T3_SIZE]


cdef class _Unset:
    def __repr__(self):
        return "<unset>"


cdef object _UNSET = _Unset()


def configure(*, types, specs, keys, default_flags, names, error, type_error, decode_scalar,
              encode_scalar, zero_filled):
    """Hand over the dictionary tables and helpers (called once by diameter/avp.py)."""
    global _TYPES, _SPECS, _KEYS, _DEFAULT_FLAGS, _NAMES, _Error, _TypeError
    global _decode_scalar, _encode_scalar, _zero_filled
    _TYPES = types
    _SPECS = specs
    _KEYS = keys
    _DEFAULT_FLAGS = default_flags
    _NAMES = names
    _Error = error
    _TypeError = type_error
    _decode_scalar = decode_scalar
    _encode_scalar = encode_scalar
    _zero_filled = zero_filled
    memset(_T0, 0, _T0_SIZE)
    memset(_T3, 0, _T3_SIZE)
    for key, t in types.items():
        code = key & 0xFFFFFFFF
        vendor = key >> 32
        if vendor == 0 and code < _T0_SIZE:
            _T0[code] = t
        elif vendor == 10415 and code < _T3_SIZE:
            _T3[code] = t


cdef inline uint32_t _u32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _u64(const unsigned char* p) noexcept nogil:
    return (<uint64_t>_u32(p) << 32) | _u32(p + 4)


cdef inline void _put32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline int _tid(Avp a) except -2:
    """The AvpType of ``a`` as a C int, -1 when unknown (the dictionary has no entry)."""
    if a._type is not None:
        return a._type
    if a.vendor == 0:
        if a.code < _T0_SIZE:
            return _T0[a.code] or -1
    elif a.vendor == 10415:
        if a.code < _T3_SIZE:
            return _T3[a.code] or -1
    t = _TYPES.get((<uint64_t>a.vendor << 32) | a.code)
    return -1 if t is None else t


cdef inline object _type_of(Avp a):
    cdef int t = _tid(a)
    return None if t < 0 else t


cdef bytes _assemble(uint32_t code, int flags, uint32_t vendor, const unsigned char* data,
                     Py_ssize_t n):
    """header + data + zero padding as one bytes object."""
    cdef Py_ssize_t hlen = 12 if flags & 0x80 else 8
    cdef Py_ssize_t length = hlen + n
    cdef Py_ssize_t total = (length + 3) & ~3
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    _put32(p, code)
    _put32(p + 4, (<uint32_t>(flags & 0xFF) << 24) | <uint32_t>length)
    if hlen == 12:
        _put32(p + 8, vendor)
    if n:
        memcpy(p + hlen, data, n)
    if total > length:
        memset(p + length, 0, total - length)
    return out


@cython.no_gc
@cython.freelist(256)
cdef class Avp:
    """Compiled twin of diameter.avp.AvpPy (see its docstring for the contract).

    Out of the cyclic collector's sight (``no_gc``): an AVP holds its header fields, its
    message's bytes and its value -- atoms, or the list of a grouped AVP's children, which
    never refer back to their parent -- so it cannot be in a cycle (one built by hand, an
    AVP put inside its own value, would leak, never corrupt). Every request in flight holds
    tens of AVPs: thousands were alive at each young collection, walked for nothing."""

    # Attributes are declared in diameter_codec.pxd (shared with the other twins).

    def __init__(self, code, value=_UNSET, *, vendor=0, flags=None, type=None):
        if flags is None:
            f = _DEFAULT_FLAGS.get((<uint64_t><uint32_t>vendor << 32) | <uint32_t>code)
            flags = f if f is not None else (0x40 if not vendor else 0xC0)
        if vendor:
            flags |= 0x80
        else:
            flags &= ~0x80
        self.code = code
        self.flags = flags
        self.vendor = vendor
        self._type = type
        self._value = b"" if value is _UNSET else value
        self._buf = None
        self._off = self._hlen = self._len = self._end = 0

    @classmethod
    def new(cls, name_or_code, value, *, vendor=None, flags=None):
        """Build an AVP by dictionary name (or code); see AvpPy.new."""
        cdef Avp a
        cdef int f
        cdef tuple spec
        if type(name_or_code) is str:
            spec = _SPECS[name_or_code]
            if cls is Avp:
                a = Avp.__new__(Avp)
            else:
                a = cls.__new__(cls)
            a.code = spec[0]
            if vendor is None:
                vendor = spec[1]
            a.vendor = vendor
            f = spec[2] if flags is None else flags
            a.flags = (f | 0x80) if vendor else (f & ~0x80)
            a._type = spec[3]
            a._value = value
            a._buf = None
            return a
        return cls(name_or_code, value, vendor=vendor or 0, flags=flags)

    @property
    def is_mandatory(self):
        return bool(self.flags & 0x40)

    @property
    def is_vendor(self):
        return bool(self.flags & 0x80)

    @property
    def is_protected(self):
        return bool(self.flags & 0x20)

    @property
    def name(self):
        return _NAMES.get((<uint64_t>self.vendor << 32) | self.code)

    @property
    def type(self):
        return _type_of(self)

    @property
    def value(self):
        v = self._value
        if v is _UNSET:
            v = self._decode()
            self._value = v
        return v

    @value.setter
    def value(self, v):
        self._value = v
        self._buf = None

    @property
    def data(self):
        if self._buf is not None:
            return self._buf[self._off + self._hlen:self._off + self._len]
        return self._encode_data()

    cdef object _decode(self):
        cdef bytes buf = self._buf
        if buf is None:
            return b""
        cdef int ti = _tid(self)
        cdef Py_ssize_t start = self._off + self._hlen
        cdef Py_ssize_t end = self._off + self._len
        cdef Py_ssize_t n = end - start
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf) + start
        if ti < 0:
            return PyBytes_FromStringAndSize(<const char*>p, n)
        if ti == T_GROUPED:
            return walk(buf, start, end)
        if ti == T_U32 and n == 4:
            return _u32(p)
        if (ti == T_I32 or ti == T_ENUM) and n == 4:
            return <int32_t>_u32(p)
        if ti == T_U64 and n == 8:
            return _u64(p)
        if ti == T_I64 and n == 8:
            return <int64_t>_u64(p)
        if ti == T_UTF8 or ti == T_IDENT or ti == T_URI or ti == T_IPFILTER:
            try:
                return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
            except UnicodeDecodeError as exc:
                raise _Error(5004, f"AVP {self.code}/{self.vendor}: invalid UTF-8: {exc.reason}",
                             failed_avp=self.encode()) from None
        if ti == T_OCTET:
            return PyBytes_FromStringAndSize(<const char*>p, n)
        try:
            return _decode_scalar(ti, PyBytes_FromStringAndSize(<const char*>p, n))
        except _TypeError as exc:
            raise _Error(exc.code, f"AVP {self.code}/{self.vendor}: {exc.message}",
                         failed_avp=self.encode()) from None

    def __getitem__(self, name_or_code):
        a = _find(self.value, name_or_code, 0)
        if a is None:
            raise KeyError(name_or_code)
        return (<Avp>a).value

    def get(self, name_or_code, default=None):
        a = _find(self.value, name_or_code, 0)
        return default if a is None else (<Avp>a).value

    def find(self, name_or_code, vendor=0):
        return _find(self.value, name_or_code, vendor)

    def find_all(self, name_or_code, vendor=0):
        return _find_all(self.value, name_or_code, vendor)

    cdef bytes _encode_data(self):
        cdef int ti
        cdef uint64_t u64
        cdef unsigned char tmp[8]
        v = self._value
        ti = _tid(self)
        if type(v) is list or ti == T_GROUPED:
            return _join(v)
        if ti < 0:
            if type(v) is str:
                return (<str>v).encode("utf-8")
            return bytes(v)
        if type(v) is int:
            # Out-of-range values fall back to the spec's encoder, which raises struct.error.
            try:
                if ti == T_U32:
                    _put32(tmp, <uint32_t>v)
                    return PyBytes_FromStringAndSize(<char*>tmp, 4)
                if ti == T_I32 or ti == T_ENUM:
                    _put32(tmp, <uint32_t><int32_t>v)
                    return PyBytes_FromStringAndSize(<char*>tmp, 4)
                if ti == T_U64:
                    u64 = <uint64_t>v
                    _put32(tmp, <uint32_t>(u64 >> 32))
                    _put32(tmp + 4, <uint32_t>u64)  # low 32 bits, in C
                    return PyBytes_FromStringAndSize(<char*>tmp, 8)
                if ti == T_I64:
                    u64 = <uint64_t><int64_t>v
                    _put32(tmp, <uint32_t>(u64 >> 32))
                    _put32(tmp + 4, <uint32_t>u64)  # low 32 bits, in C
                    return PyBytes_FromStringAndSize(<char*>tmp, 8)
            except OverflowError:
                return _encode_scalar(ti, v)
        if type(v) is str and (ti == T_UTF8 or ti == T_IDENT or ti == T_URI or ti == T_IPFILTER):
            return (<str>v).encode("utf-8")
        return _encode_scalar(ti, v)

    cpdef bytes encode(self):
        """Wire bytes including padding; see AvpPy.encode."""
        cdef bytes buf = self._buf
        cdef bytes data
        cdef Py_ssize_t n
        if buf is not None:
            if type(self._value) is not list:
                return buf[self._off:self._end]
            data = self._encode_data()
            n = self._len - self._hlen
            if PyBytes_GET_SIZE(data) == n and memcmp(PyBytes_AS_STRING(data),
                                                     PyBytes_AS_STRING(buf) + self._off + self._hlen,
                                                     n) == 0:
                return buf[self._off:self._end]
        else:
            if type(self._value) is int:
                out = _encode_int(self)
                if out is not None:
                    return out
            data = self._encode_data()
        return _assemble(self.code, self.flags, self.vendor,
                         <const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    @property
    def length(self):
        if self._buf is not None and type(self._value) is not list:
            return self._len
        return (12 if self.flags & 0x80 else 8) + len(self._encode_data())

    def zero_example(self):
        return _zero_filled(self.code, self.vendor, self.flags)

    def __eq__(self, other):
        if not isinstance(other, Avp):
            return NotImplemented
        return self.encode() == (<Avp>other).encode()

    def __hash__(self):
        return hash(self.encode())

    def __repr__(self):
        name = self.name or str(self.code)
        try:
            v = self.value
        except _Error as exc:
            v = f"<undecodable: {exc.message}>"
        ven = f", vendor={self.vendor}" if self.vendor else ""
        return f"Avp({name}{ven}, flags=0x{self.flags:02x}, {v!r})"


cdef object _encode_int(Avp a):
    """Header + 4/8-octet integer payload in one allocation; None when not that case (the
    general path then encodes, raising like the spec for out-of-range values)."""
    cdef int ti = _tid(a)
    cdef uint64_t u
    cdef int width
    v = a._value
    try:
        if ti == T_U32:
            u = <uint32_t>v
            width = 4
        elif ti == T_I32 or ti == T_ENUM:
            u = <uint32_t><int32_t>v
            width = 4
        elif ti == T_U64:
            u = <uint64_t>v
            width = 8
        elif ti == T_I64:
            u = <uint64_t><int64_t>v
            width = 8
        else:
            return None
    except OverflowError:
        return None
    cdef Py_ssize_t hlen = 12 if a.flags & 0x80 else 8
    cdef Py_ssize_t length = hlen + width
    cdef bytes out = PyBytes_FromStringAndSize(NULL, length)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    _put32(p, a.code)
    _put32(p + 4, (<uint32_t>(a.flags & 0xFF) << 24) | <uint32_t>length)
    if hlen == 12:
        _put32(p + 8, a.vendor)
    if width == 4:
        _put32(p + hlen, <uint32_t>u)
    else:
        _put32(p + hlen, <uint32_t>(u >> 32))
        _put32(p + hlen + 4, <uint32_t>u)  # low 32 bits, in C
    return out


cdef bytes _join(list avps):
    """Concatenate the encodings of a list of AVPs in one allocation."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(avps), total = 0
    cdef list parts = []
    cdef bytes b
    for i in range(n):
        b = (<Avp>PyList_GET_ITEM(avps, i)).encode()
        total += PyBytes_GET_SIZE(b)
        parts.append(b)
    if n == 1:
        return parts[0]
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* p = PyBytes_AS_STRING(out)
    for b in parts:
        memcpy(p, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        p += PyBytes_GET_SIZE(b)
    return out


cdef inline object _find(object avps, object name_or_code, object vendor):
    cdef uint32_t code, ven
    cdef Avp a
    if type(name_or_code) is str:
        key = _KEYS[name_or_code]
        code = key[0]
        ven = key[1]
    else:
        code = name_or_code
        ven = vendor
    for a in avps:
        if a.code == code and a.vendor == ven:
            return a
    return None


cdef list _find_all(object avps, object name_or_code, object vendor):
    cdef uint32_t code, ven
    cdef Avp a
    if type(name_or_code) is str:
        key = _KEYS[name_or_code]
        code = key[0]
        ven = key[1]
    else:
        code = name_or_code
        ven = vendor
    return [a for a in avps if a.code == code and a.vendor == ven]


cpdef list walk(bytes buf, Py_ssize_t start, Py_ssize_t end):
    """Split buf[start:end] into AVPs (twin of diameter.avp._walk_py, same errors)."""
    cdef list out = []
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t off = start, length, hlen, nxt
    cdef uint32_t code, vendor, fl
    cdef int flags
    cdef Avp a
    if end > PyBytes_GET_SIZE(buf):
        end = PyBytes_GET_SIZE(buf)
    while off < end:
        if end - off < 8:
            raise _Error(5014, f"truncated AVP header at offset {off}", failed_avp=None)
        code = _u32(p + off)
        fl = _u32(p + off + 4)
        flags = fl >> 24
        length = fl & 0xFFFFFF
        if flags & 0x80:
            if end - off < 12:
                raise _Error(5014, f"truncated vendor AVP header at offset {off}",
                             failed_avp=_zero_filled(code, 0, flags & ~0x80))
            vendor = _u32(p + off + 8)
            hlen = 12
        else:
            vendor = 0
            hlen = 8
        if length < hlen or off + length > end:
            raise _Error(5014, f"AVP {code}/{vendor} length {length} invalid at offset {off}",
                         failed_avp=_zero_filled(code, vendor, flags))
        nxt = off + ((length + 3) & ~3)
        if nxt > end:
            nxt = end
        a = Avp.__new__(Avp)
        a.code = code
        a.flags = flags
        a.vendor = vendor
        a._type = None
        a._value = _UNSET
        a._buf = buf
        a._off = off
        a._hlen = hlen
        a._len = length
        a._end = nxt
        PyList_Append(out, a)
        off = nxt
    return out


@cython.freelist(16)
cdef class Message:
    """Compiled twin of diameter.message.MessagePy (see its docstring for the contract)."""

    # Attributes are declared in diameter_codec.pxd.

    def __init__(self, code, app_id=0, avps=(), *, flags=0, hop_by_hop=0, end_to_end=0,
                 version=1):
        self.version = version
        self.flags = flags
        self.code = code
        self.app_id = app_id
        self.hop_by_hop = hop_by_hop
        self.end_to_end = end_to_end
        self.avps = list(avps)

    @classmethod
    def request(cls, code, app_id, avps=(), *, proxiable=False, flags=None, hop_by_hop=0,
                end_to_end=0):
        f = (0x80 | (0x40 if proxiable else 0)) if flags is None else (flags | 0x80)
        return cls(code, app_id, avps, flags=f, hop_by_hop=hop_by_hop, end_to_end=end_to_end)

    def answer(self, avps=(), *, error=False):
        cdef Message m = Message.__new__(Message)
        m.version = 1
        m.flags = (self.flags & 0x40) | (0x20 if error else 0)
        m.code = self.code
        m.app_id = self.app_id
        m.hop_by_hop = self.hop_by_hop
        m.end_to_end = self.end_to_end
        m.avps = list(avps)
        return m

    @property
    def is_request(self):
        return bool(self.flags & 0x80)

    @property
    def is_proxiable(self):
        return bool(self.flags & 0x40)

    @property
    def is_error(self):
        return bool(self.flags & 0x20)

    @property
    def is_retransmit(self):
        return bool(self.flags & 0x10)

    @property
    def header(self):
        return (self.version, self.flags, self.code, self.app_id, self.hop_by_hop,
                self.end_to_end)

    def find(self, name_or_code, vendor=0):
        return _find(self.avps, name_or_code, vendor)

    def find_all(self, name_or_code, vendor=0):
        return _find_all(self.avps, name_or_code, vendor)

    def get(self, name_or_code, default=None):
        a = _find(self.avps, name_or_code, 0)
        return default if a is None else (<Avp>a).value

    def __getitem__(self, name_or_code):
        a = _find(self.avps, name_or_code, 0)
        if a is None:
            raise KeyError(name_or_code)
        return (<Avp>a).value

    def __contains__(self, name_or_code):
        return _find(self.avps, name_or_code, 0) is not None

    def __iter__(self):
        return iter(self.avps)

    def __len__(self):
        return len(self.avps)

    cpdef bytes encode(self):
        cdef list avps = self.avps
        cdef Py_ssize_t i, n = PyList_GET_SIZE(avps), total = 20
        cdef list parts = []
        cdef bytes b
        for i in range(n):
            b = (<Avp>PyList_GET_ITEM(avps, i)).encode()
            total += PyBytes_GET_SIZE(b)
            parts.append(b)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
        _put32(p, (<uint32_t>(self.version & 0xFF) << 24) | <uint32_t>total)
        _put32(p + 4, (<uint32_t>(self.flags & 0xFF) << 24) | (self.code & 0xFFFFFF))
        _put32(p + 8, self.app_id)
        _put32(p + 12, self.hop_by_hop)
        _put32(p + 16, self.end_to_end)
        p += 20
        for b in parts:
            memcpy(p, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            p += PyBytes_GET_SIZE(b)
        return out

    def __repr__(self):
        kind = "request" if self.flags & 0x80 else "answer"
        return (
            f"Message(code={self.code}, app={self.app_id}, {kind}, flags=0x{self.flags:02x}, "
            f"hbh=0x{self.hop_by_hop:08x}, e2e=0x{self.end_to_end:08x}, avps={self.avps!r})"
        )

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return self.encode() == (<Message>other).encode()

    __hash__ = None


def decode_message(data):
    """Twin of diameter.message.decode_message_py (same values, same errors)."""
    cdef bytes buf = data if type(data) is bytes else bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    if n < 20:
        raise _Error(5015, f"message of {n} octets is shorter than the header", fatal=True)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef uint32_t w0 = _u32(p), w1 = _u32(p + 4)
    cdef int version = w0 >> 24
    cdef Py_ssize_t length = w0 & 0xFFFFFF
    cdef Message msg = Message.__new__(Message)
    msg.version = version
    msg.flags = w1 >> 24
    msg.code = w1 & 0xFFFFFF
    msg.app_id = _u32(p + 8)
    msg.hop_by_hop = _u32(p + 12)
    msg.end_to_end = _u32(p + 16)
    header = (version, msg.flags, msg.code, msg.app_id, msg.hop_by_hop, msg.end_to_end)
    if version != 1:
        raise _Error(5011, f"version {version}", fatal=True, header=header)
    if length != n or length & 3:
        raise _Error(5015, f"Message Length {length} for {n} octets", fatal=True, header=header)
    try:
        msg.avps = walk(buf, 20, n)
    except _Error as exc:
        exc.header = header
        msg.avps = _partial(buf, 20, n)
        exc.partial = msg
        raise
    return msg


cdef list _partial(bytes buf, Py_ssize_t start, Py_ssize_t end):
    cdef list good = []
    cdef Py_ssize_t off = start, ln
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    while off < end:
        ln = 0
        if end - off >= 8:
            ln = (((<Py_ssize_t>p[off + 5] << 16) | (<Py_ssize_t>p[off + 6] << 8) | p[off + 7]) + 3) & ~3
        try:
            one = walk(buf, off, min(end, off + max(8, ln)))
        except _Error:
            break
        if not one:
            break
        good.append(one[0])
        off = (<Avp>one[0])._end
    return good



include "diameter_validate.pxi"
