# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of charging.journal.writer._JournalHot (the spec): the journal's
per-request methods -- append_nowait, append_many_nowait, call_when_durable -- as the base
class of ``Journal``, with the state they touch in the object's own slots.

The charging fast path calls one append and the answer path one call_when_durable per
charged request; as Python methods they were two interpreter frames per request. The
bodies are the spec's line for line; the rare steps (a new group's future, the refusal and
failure errors, scheduling and dispatching a group) are the Python methods of Journal /
_JournalHot, so this module imports nothing from the project.
"""

cimport cython


cdef class JournalHot:
    """See charging.journal.writer._JournalHot. Journal's constructor sets every attribute."""

    cdef public object _alloc, _group, _loop, _failed, _callbacks, _durable
    cdef public bint _closed, _busy, _scheduled
    cdef public long long _eager, records

    def append_nowait(self, record):
        """Enqueue ``record``; return its position and the future of its group commit."""
        if self._failed is not None or self._closed:
            raise self._refusal() from self._failed
        alloc = self._alloc
        pos = alloc.add(record)
        self.records += 1
        group = self._group
        if group is None:
            group = self._group = self._new_group()
            if not self._busy and not self._scheduled:
                self._schedule()
        if len(alloc.buf) >= self._eager and not self._busy:
            self._dispatch()
        return pos, group

    def append_many_nowait(self, records, *, bint positions=True):
        """Enqueue ``records`` in order; return their positions and the group future (None
        when ``records`` is empty)."""
        if self._failed is not None or self._closed:
            raise self._refusal() from self._failed
        recs = records if isinstance(records, list) else list(records)
        if not recs:
            return [], None
        alloc = self._alloc
        group = self._group
        if group is None:  # first: should add_many raise midway, what it enqueued gets written
            group = self._group = self._new_group()
            if not self._busy and not self._scheduled:
                self._schedule()
        out = alloc.add_many(recs, positions)
        self.records += len(recs)
        if len(alloc.buf) >= self._eager and not self._busy:
            self._dispatch()
        return out, group

    def call_when_durable(self, pos, callback):
        """Call ``callback(None)`` on the loop once everything up to ``pos`` is durable, or
        ``callback(exc)`` if the group commit failed (the spec's docstring says the rest)."""
        if pos <= self._durable and not self._callbacks:
            self._loop.call_soon(callback, None)
            return
        if self._failed is not None:
            self._loop.call_soon(callback, self._failure())
            return
        last = self._alloc.last
        if pos > last:
            pos = last
        self._callbacks.append((pos, callback))
