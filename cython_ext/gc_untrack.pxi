# Values kept for minutes out of the collector's sight (included by charging_slice.pyx and
# ro_lane.pyx).
#
# Why: the server keeps every answer for retransmits (RFC 4006 §5.1.2; RFC 6733 §5.3.1's
# duplicate detection): per CCR a ChargingResult, its UnitsResult and units tuple, and the
# duplicate cache's (host, end-to-end) key and (time, answer bytes) entry. They are values
# without reference cycles, yet each is a tracked container, so every young collection walked
# the ~35,000 of them allocated since the last one (20-65 ms pauses at 4-10k CCR/s) and moved
# them on to the old generations, whose full passes then took 50-155 ms: the paced p99 of
# benchmarks.ro. Untracking is what CPython itself does for tuples of atomic values
# (_PyTuple_MaybeUntrack) -- here done at the moment the value is kept instead of at its first
# collection. Contract: only objects that cannot take part in a reference cycle are untracked
# (atomic tuples; the plain result dataclasses, which callers never mutate once answered); an
# object untracked by mistake can only leak with its cycle, never be freed early.

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)
    bint PyObject_GC_IsTracked(object op)


cdef inline void untrack_atomic_tuple(object t) noexcept:
    """Untrack the tuple *t* when every item is an int, float, str, bytes or None."""
    cdef object x
    if type(t) is not tuple or not PyObject_GC_IsTracked(t):
        return
    for x in <tuple>t:
        if not (x is None or type(x) is int or type(x) is float or type(x) is str
                or type(x) is bytes):
            return
    PyObject_GC_UnTrack(<void *>t)


cdef inline void untrack_result(object result, object result_cls, object units_cls) noexcept:
    """Untrack a remembered answer: the result, its ``units`` tuple and each item, only when
    the result is exactly *result_cls* (charging.requests.ChargingResult) and every item
    exactly *units_cls* (UnitsResult): their fields hold enums, ints, strings and None, so
    they cannot close a cycle. Anything else stays tracked."""
    cdef object units, u
    if type(result) is not result_cls or not PyObject_GC_IsTracked(result):
        return
    try:
        units = result.units
    except AttributeError:
        return
    if type(units) is not tuple:
        return
    for u in <tuple>units:
        if type(u) is not units_cls:
            return
    for u in <tuple>units:
        PyObject_GC_UnTrack(<void *>u)
    PyObject_GC_UnTrack(<void *>units)
    PyObject_GC_UnTrack(<void *>result)
