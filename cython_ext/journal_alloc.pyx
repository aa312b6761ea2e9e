# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of charging.journal.writer._Allocator (the spec): positions, segment rotation
and the framed bytes of the next group commit.

The journal calls ``add`` / ``add_many`` once or twice per charged request; as Python methods
they were four interpreter frames per request (add_many, _frame, _due, add). Same attributes
(public, so the Journal and the tests read and set them as on the spec), same methods, same
results and the same all-or-nothing behaviour when a record cannot be packed.

This module imports nothing from the project: the writer hands over the Position class, the
segment header length, the packers and the buffer reserve.
"""

cimport cython
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC


cdef inline double _monotonic() noexcept nogil:
    # time.monotonic() on Linux: CLOCK_MONOTONIC (the spec's clock for ``started``)
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef object _tuple_new = tuple.__new__


@cython.final
cdef class Allocator:
    """See charging.journal.writer._Allocator. Construct with the header length, the Position
    class (a tuple subclass), ``record_packers()``, ``frame_packer()`` and
    ``buffer_reserve()`` (charging/journal/framing.py)."""

    cdef public long long segment
    cdef public Py_ssize_t offset
    cdef public Py_ssize_t segment_bytes
    cdef public double rotate_seconds
    cdef public double started
    cdef public list parts
    cdef public bytearray buf
    cdef public object last
    cdef public Py_ssize_t _room
    cdef public object _pack, _fallback, _frames, _reserve
    cdef object position_cls
    cdef Py_ssize_t header_len

    def __init__(self, long long segment, Py_ssize_t offset, Py_ssize_t segment_bytes,
                 double rotate_seconds, *, Py_ssize_t header_len, position, pack, fallback,
                 frames, reserve):
        self.header_len = header_len
        self.position_cls = position
        self.segment = segment
        self.offset = max(offset, header_len)
        self.segment_bytes = segment_bytes
        self.rotate_seconds = rotate_seconds
        self.started = _monotonic()
        self.parts = []
        self.buf = bytearray()
        self.last = position(segment, self.offset)
        self._pack = pack
        self._fallback = fallback
        self._frames = frames
        self._reserve = reserve
        self._room = 0

    cdef inline object _position(self):
        return _tuple_new(self.position_cls, (self.segment, self.offset))

    cpdef bint _due(self):
        # checked once per call, not per record (a group spans milliseconds)
        return (self.offset > self.header_len and self.rotate_seconds > 0
                and _monotonic() - self.started >= self.rotate_seconds)

    cpdef Py_ssize_t _frame(self, list records, Py_ssize_t start, list ends) except -1:
        """Frame ``records[start:]`` into this segment's buffer; return the index reached
        (the spec's all-or-nothing on a packing error)."""
        cdef bytearray buf = self.buf
        cdef Py_ssize_t before = len(buf)
        cdef Py_ssize_t had = len(ends) if ends is not None else 0
        try:
            i, offset = self._frames(self._pack, records, start, buf, self.offset,
                                     self.segment_bytes, ends, self._fallback,
                                     self.position_cls, self.segment, True)
        except BaseException:
            del buf[before:]
            if ends is not None:
                del ends[had:]
            raise
        self.offset = offset
        return i

    def add(self, record):
        """Frame one record; return its position (nothing is enqueued if it raises)."""
        if self.rotate_seconds and self._due():
            self.rotate()
        cdef bytearray buf = self.buf
        cdef Py_ssize_t before = len(buf)
        try:
            i, offset = self._frames(self._pack, [record], 0, buf, self.offset,
                                     self.segment_bytes, None, self._fallback, None, 0, True)
        except BaseException:
            del buf[before:]
            raise
        self.offset = offset
        if not i:
            self.rotate()
            self._frame([record], 0, None)
        pos = self.last = self._position()
        return pos

    def add_many(self, list records, bint positions=True):
        """Frame ``records`` in order; return their positions (``[]`` unless
        ``positions``); see the spec for a record that cannot be packed."""
        if self.rotate_seconds and self._due():
            self.rotate()
        cdef list out = []
        cdef list ends = out if positions else None
        cdef Py_ssize_t n = len(records)
        cdef Py_ssize_t i = 0
        try:
            while True:
                i = self._frame(records, i, ends)
                if i >= n:
                    break
                self.rotate()
        finally:
            if n:
                self.last = self._position()
        return out

    cpdef bytearray renew(self):
        """Start a new buffer for the next group's bytes; return the old one (with room for
        the largest recent group, decaying by 1/64 per group: see the spec)."""
        cdef bytearray old = self.buf
        self.buf = bytearray()
        cdef Py_ssize_t room = max(len(old), self._room - (self._room >> 6))
        self._room = room
        if room >= 4096:
            self._reserve(self.buf, min(room + (room >> 2), 16 << 20))
        return old

    cpdef rotate(self):
        """Start a new segment for the next record (the writer seals the current one)."""
        if self.buf:
            self.parts.append((self.segment, self.renew()))
        self.segment += 1
        self.offset = self.header_len
        self.started = _monotonic()
        self.parts.append((self.segment, bytearray()))

    def take(self):
        """The group's parts, in order (a rotation with no record is a part with no bytes)."""
        cdef list parts = self.parts
        self.parts = []
        if self.buf:
            parts.append((self.segment, self.renew()))
        return parts
