# cython: language_level=3
"""Compiled twin of charging/store/redis_codec.py (the reference and the spec): RESP encoding
of an op's variable arguments, decoding of a fresh reserve / commit record into an OpResult.

Same results as the reference for every input (tests/charging/store/test_redis_codec.py,
hypothesis): numbers of up to 18 digits (optional '-') are parsed here, anything else goes to
``int()`` like the reference. The result classes come from :func:`bind` (cython_ext imports
nothing from charging: the dependency rule).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_AsUTF8String

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
from libc.string cimport memcpy

cdef object _OK = None
cdef object _LOW_EVENTS = ()
cdef object _OpResult = None
cdef object _Hold = None
cdef object _Effect = None
cdef tuple _EMPTY = ()


def bind(ok, low_events, op_result, hold, effect):
    """The status OK, the low-balance events tuple and the result classes to build."""
    global _OK, _LOW_EVENTS, _OpResult, _Hold, _Effect
    _OK, _LOW_EVENTS, _OpResult, _Hold, _Effect = ok, low_events, op_result, hold, effect


include "decimal_text.pxi"


cdef Py_ssize_t _put_args(char *buf, Py_ssize_t i, tuple args) except -2:
    """Write *args* as RESP bulk strings into ``buf`` (1024 bytes) from offset ``i``; return
    the new end, or -1 when they do not fit or an int is beyond 64 bits (the caller then
    takes :func:`_pack_general`). A str's UTF-8 is its own buffer when ASCII, an int's digits
    are made here: no object per argument. TypeError for anything else."""
    cdef char num[24]
    cdef Py_ssize_t n
    cdef const char *p
    cdef long long v
    cdef int overflow = 0
    cdef object a
    for a in args:
        if type(a) is bytes:
            p = PyBytes_AS_STRING(a)
            n = PyBytes_GET_SIZE(a)
        elif type(a) is str:
            p = PyUnicode_AsUTF8AndSize(a, &n)
        elif type(a) is int:
            v = PyLong_AsLongLongAndOverflow(a, &overflow)
            if overflow:
                return -1
            n = _put_dec(num, v)
            p = num
        else:
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        if i + n + 32 > 1024:
            return -1
        buf[i] = 36
        i += 1
        i += _put_dec(buf + i, n)
        buf[i] = 13
        buf[i + 1] = 10
        i += 2
        memcpy(buf + i, p, n)
        i += n
        buf[i] = 13
        buf[i + 1] = 10
        i += 2
    return i


def pack_args(tuple args):
    """RESP bulk strings of *args* (bytes, str as UTF-8, int as decimal), no array header.

    Written straight into one stack buffer (:func:`_put_args`). Past the buffer, or for an
    int beyond 64 bits, the general path below."""
    cdef char buf[1024]
    cdef Py_ssize_t i = _put_args(buf, 0, args)
    if i < 0:
        return _pack_general(args)
    return PyBytes_FromStringAndSize(buf, i)


cdef bytes _pack_general(tuple args):
    """pack_args for any size (one bytes object per argument, then one copy)."""
    cdef Py_ssize_t total = 0, n, i
    cdef object a, v
    cdef char num[24]
    cdef char *out
    cdef bytes res
    cdef list vals = []
    for a in args:
        if type(a) is bytes:
            v = a
        elif type(a) is str:
            v = PyUnicode_AsUTF8String(a)
        elif type(a) is int:
            v = b"%d" % a
        else:
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        vals.append(v)
        # "$" len "\r\n" v "\r\n"
        n = PyBytes_GET_SIZE(v)
        total += n + 5 + _put_dec(num, n)
    res = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(res)
    i = 0
    for v in vals:
        n = PyBytes_GET_SIZE(v)
        out[i] = 36
        i += 1
        i += _put_dec(out + i, n)
        out[i] = 13
        out[i + 1] = 10
        i += 2
        memcpy(out + i, PyBytes_AS_STRING(v), n)
        i += n
        out[i] = 13
        out[i + 1] = 10
        i += 2
    return res


cdef object _num(const char *s, Py_ssize_t a, Py_ssize_t b, bytes rec):
    """int() of rec[a:b]: parsed here when it is -?[0-9]{1,18}, else by int() (the
    reference's behaviour for anything else, errors included)."""
    cdef Py_ssize_t i = a
    cdef long long v = 0
    cdef bint neg = False
    if i < b and s[i] == 45:
        neg = True
        i += 1
    if i == b or b - i > 18:
        return int(rec[a:b])
    while i < b:
        if s[i] < 48 or s[i] > 57:
            return int(rec[a:b])
        v = v * 10 + (s[i] - 48)
        i += 1
    return -v if neg else v


cdef int _cuts(const char *s, Py_ssize_t n, Py_ssize_t *pos, int want):
    """Positions of the first *want* '|' in s[:n] into pos; how many were found."""
    cdef int k = 0
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] == 124:
            pos[k] = i
            k += 1
            if k == want:
                break
    return k


def reserve_ok(rec, key, account, balance, reservation, expires_at):
    """Twin of redis_codec.reserve_ok."""
    cdef Py_ssize_t pos[8]
    cdef const char *s
    cdef Py_ssize_t n
    if type(rec) is not bytes:
        return None
    s = PyBytes_AS_STRING(rec)
    n = PyBytes_GET_SIZE(rec)
    if _cuts(s, n, pos, 6) < 6:
        return None
    if pos[1] - pos[0] != 3 or s[pos[0] + 1] != 111 or s[pos[0] + 2] != 107:  # "ok"
        return None
    low = pos[5] - pos[4] == 2 and s[pos[4] + 1] == 49
    granted = _num(s, pos[1] + 1, pos[2], rec)
    return _OpResult(key, _OK, _EMPTY,
                     (_Hold(account, balance, reservation, granted, expires_at),),
                     granted, _num(s, pos[2] + 1, pos[3], rec), _num(s, pos[3] + 1, pos[4], rec),
                     False, low, _LOW_EVENTS if low else _EMPTY)


def commit_ok(rec, key, account, balance, reservation):
    """Twin of redis_codec.commit_ok."""
    cdef Py_ssize_t pos[8]
    cdef const char *s
    cdef Py_ssize_t n
    if type(rec) is not bytes:
        return None
    s = PyBytes_AS_STRING(rec)
    n = PyBytes_GET_SIZE(rec)
    if _cuts(s, n, pos, 8) < 8:
        return None
    if pos[1] - pos[0] != 3 or s[pos[0] + 1] != 111 or s[pos[0] + 2] != 107:  # "ok"
        return None
    low = pos[5] - pos[4] == 2 and s[pos[4] + 1] == 49
    eff = _num(s, pos[5] + 1, pos[6], rec)
    return _OpResult(key, _OK, (_Effect(account, balance, eff),) if eff else _EMPTY,
                     (_Hold(account, balance, reservation, _num(s, pos[6] + 1, pos[7], rec),
                            None),),
                     _num(s, pos[1] + 1, pos[2], rec), _num(s, pos[2] + 1, pos[3], rec),
                     _num(s, pos[3] + 1, pos[4], rec), False, low,
                     _LOW_EVENTS if low else _EMPTY)


cdef bytes _pack_after(bytes head, tuple args):
    """head + pack_args(args) as one bytes object (one stack buffer, one copy out)."""
    cdef char buf[1024]
    cdef Py_ssize_t i = PyBytes_GET_SIZE(head)
    if i > 512:
        return head + _pack_general(args)
    memcpy(buf, PyBytes_AS_STRING(head), i)
    i = _put_args(buf, i, args)
    if i < 0:
        return head + _pack_general(args)
    return PyBytes_FromStringAndSize(buf, i)


cdef bytes _bulk(bytes v):
    return b"$%d\r\n%s\r\n" % (len(v), v)


cdef class OpQueueCore:
    """Twin of charging/store/redis_codec.OpQueueCore (the reference: same attributes, same
    bytes out). Per op: its future, its pieces appended (the ARGV head and the var args as
    ONE bytes object here, two there: the same bytes once joined), no Python frame."""

    cdef public object _pipe, _loop, _ix, _ep
    cdef public Py_ssize_t _early, _nvar
    cdef public list _kparts, _aparts, _futs, _cut
    cdef public dict _acct, _ixseg

    def __init__(self, pipe, Py_ssize_t early_ops):
        self._pipe = pipe
        self._early = early_ops
        self._loop = None
        self._ix = None
        self._ep = -1
        self._kparts = []
        self._aparts = []
        self._futs = []
        self._nvar = 0
        self._cut = []
        self._acct = {}
        self._ixseg = {}

    def bop(self, bytes letter, tuple keys, str account, str balance, ep, tuple var):
        """Twin of the reference's bop."""
        cdef object loop = self._loop
        cdef object fut, ent, head, ix, pipe
        cdef tuple tent
        cdef dict heads
        cdef tuple hk
        if loop is None:
            import asyncio
            loop = self._loop = asyncio.get_running_loop()
        fut = loop.create_future()
        ent = self._acct.get(account)
        if ent is None:
            if len(self._acct) > 1_000_000:
                self._acct.clear()
            ix = _bulk((<str>keys[1]).encode()) + _bulk((<str>keys[2]).encode())
            ent = (self._ixseg.setdefault(ix, ix), _bulk((<str>keys[0]).encode()), {})
            self._acct[account] = ent
        tent = <tuple>ent
        heads = <dict>tent[2]
        hk = (letter, balance)
        head = heads.get(hk)
        if head is None:
            head = (_bulk(letter) + _bulk(account.encode())
                    + _bulk(balance.encode() + b"|"))  # the balance's field (lua/batch.lua)
            heads[hk] = head
        if tent[0] is not self._ix or (ep is not self._ep and ep != self._ep):
            if self._futs:  # other index keys (another slot) or epoch: the group so far first
                self._cut.append((self._ix, self._ep, self._kparts, self._aparts, self._futs,
                                  self._nvar))
                self._kparts, self._aparts, self._futs, self._nvar = [], [], [], 0
            self._ix, self._ep = tent[0], ep
        head = _pack_after(<bytes>head, var)  # (before any append, as the reference)
        self._kparts.append(tent[1])
        self._aparts.append(head)
        self._nvar += len(var)
        self._futs.append(fut)
        pipe = self._pipe
        if len(self._futs) >= self._early:
            pipe.flush_early()  # the server starts on these while we make the rest
            if not self._futs:
                return fut
        if not pipe._scheduled:
            pipe.kick()
        return fut
