# cython: language_level=3
"""Remembered answers out of the cyclic collector's sight, for the Python paths.

The compiled fast path (charging_slice.pyx) untracks the answers it remembers itself; this
module gives the pure-Python service path (charging/service.py ``_remember``: events, the
Redis store, everything the fast path hands back) the same. There is no pure-Python twin:
Python cannot untrack an object, and without this module the answers simply stay tracked
(correct, only slower). See gc_untrack.pxi for why and for the contract.
"""

include "gc_untrack.pxi"

ABI = 1


cdef class ResultUntracker:
    """``untracker(result)`` untracks *result* when it is exactly ``result_cls`` holding a
    tuple of exactly ``units_cls`` (see gc_untrack.pxi's ``untrack_result``); otherwise it
    does nothing. Never raises."""

    cdef object result_cls, units_cls

    def __init__(self, result_cls: type, units_cls: type) -> None:
        self.result_cls = result_cls
        self.units_cls = units_cls

    def __call__(self, result: object) -> None:
        untrack_result(result, self.result_cls, self.units_cls)


def untrack_atomic_rows(list rows) -> bool:
    """Untrack the list *rows* and its tuples when every item is a tuple of atoms (int,
    float, str, bytes, None): such a list cannot close a reference cycle. Returns False and
    untracks nothing otherwise. The caller MUST only add tuples of atoms to *rows* afterwards
    (the list stays untracked; a container added later would be hidden from the collector
    with its cycles, which can then leak, never be freed early)."""
    cdef object t, x
    for t in rows:
        if type(t) is not tuple:
            return False
        for x in <tuple>t:
            if not (x is None or type(x) is int or type(x) is float or type(x) is str
                    or type(x) is bytes):
                return False
    for t in rows:
        untrack_atomic_tuple(t)
    if PyObject_GC_IsTracked(rows):
        PyObject_GC_UnTrack(<void *>rows)
    return True
