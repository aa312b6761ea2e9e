# Included by the compiled twins that read the fields of slots classes by offset
# (charging_slots.pxi, ro_cca.pyx).
#
# A class with __slots__ (or a cdef class with ``cdef readonly object`` fields) keeps every
# field at a fixed offset in the object. A Python-level ``obj.field`` from compiled code costs
# a type lookup, a descriptor call and a member read (~100-190 instructions, callgrind); a
# Layout reads the slot at its offset instead (a pointer load), AFTER checking that the
# object is exactly the class whose layout was read (``Py_TYPE(o) == L.tp``). Anything else
# -- another class, a slot never set (NULL), a layout that could not be read (``tp`` NULL)
# -- goes through getattr/setattr by name, so behaviour is the attribute access's in every
# case. The classes stay the spec: nothing here defines a field.

from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from cpython.ref cimport Py_INCREF, Py_XDECREF

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
    int T_OBJECT
    int T_OBJECT_EX
    int READONLY

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

DEF MAX_FIELDS = 24

cdef struct Layout:
    PyTypeObject *tp    # NULL: the layout is unknown (always by name)
    bint writable       # every field is a writable member
    bint complete       # the fields are ALL of the class's slots (a C constructor may fill it)
    Py_ssize_t off[MAX_FIELDS]


cdef int _layout(Layout *L, object cls, tuple names, object all_slots) except -1:
    """Read the member offsets of *names* on *cls* (exact class) into *L*."""
    cdef PyMemberDef *m
    cdef int i
    L.tp = NULL
    L.writable = True
    L.complete = False
    if len(names) > MAX_FIELDS:
        return 0
    for i, name in enumerate(names):
        d = cls.__dict__.get(name)
        if d is None or type(d).__name__ != "member_descriptor":
            return 0
        m = (<PyMemberDescrObject*><PyObject*>d).d_member
        if m.type != T_OBJECT_EX and m.type != T_OBJECT:
            return 0
        if m.flags & READONLY:
            L.writable = False
        L.off[i] = m.offset
    L.complete = all_slots is not None and tuple(all_slots) == names
    L.tp = <PyTypeObject*><PyObject*>cls
    return 0


cdef int _layout_probe(Layout *L, object cls, tuple names) except -1:
    """The layout of a cdef class whose fields are ``cdef readonly object`` (exposed as
    getset properties, not members: no offset to read): build one instance with a distinct
    sentinel per field (keywords) and find each sentinel's pointer in the object's memory
    -- exactly once, within tp_basicsize -- and check getattr agrees. Anything else leaves
    the layout unknown (by name)."""
    cdef Py_ssize_t size, off, found
    cdef int i
    cdef PyObject **words
    L.tp = NULL
    L.writable = False
    L.complete = False
    if not isinstance(cls, type) or len(names) > MAX_FIELDS:
        return 0
    marks = [object() for _ in names]
    try:
        inst = cls(**dict(zip(names, marks)))
    except Exception:
        return 0
    if type(inst) is not cls:
        return 0
    size = (<PyTypeObject*><PyObject*>cls).tp_basicsize
    words = <PyObject**><PyObject*>inst
    for i, name in enumerate(names):
        if getattr(inst, name, None) is not marks[i]:
            return 0
        found = -1
        for off in range(<Py_ssize_t>(sizeof(PyObject) // sizeof(PyObject*)),
                         size // <Py_ssize_t>sizeof(PyObject*)):
            if words[off] == <PyObject*>marks[i]:
                if found >= 0:
                    return 0
                found = off * <Py_ssize_t>sizeof(PyObject*)
        if found < 0:
            return 0
        L.off[i] = found
    L.tp = <PyTypeObject*><PyObject*>cls
    return 0


cdef object _by_name(object o, tuple names, int i):
    return getattr(o, <str>names[i])


cdef inline object _get(Layout *L, tuple names, object o, int i):
    cdef PyObject *v
    if <PyTypeObject*>Py_TYPE(o) == L.tp:
        v = (<PyObject**>((<char*><PyObject*>o) + L.off[i]))[0]
        if v is not NULL:
            return <object>v
    return _by_name(o, names, i)


cdef inline int _put(Layout *L, tuple names, object o, int i, object v) except -1:
    cdef PyObject **slot
    cdef PyObject *old
    if <PyTypeObject*>Py_TYPE(o) == L.tp and L.writable:
        slot = <PyObject**>((<char*><PyObject*>o) + L.off[i])
        old = slot[0]
        Py_INCREF(v)
        slot[0] = <PyObject*>v
        Py_XDECREF(old)
        return 0
    setattr(o, <str>names[i], v)
    return 0
