# Declarations of the compiled codec's classes, so other twins (cython_ext/ro_request.pyx)
# read a received AVP's header and buffer position at C speed (cimport, no attribute lookup).
from libc.stdint cimport uint32_t


cdef class Avp:
    cdef public uint32_t code
    cdef public int flags
    cdef public uint32_t vendor
    cdef public object _type
    cdef public object _value
    cdef public object _buf
    cdef public Py_ssize_t _off
    cdef public Py_ssize_t _hlen
    cdef public Py_ssize_t _len
    cdef public Py_ssize_t _end

    cdef object _decode(self)
    cdef bytes _encode_data(self)
    cpdef bytes encode(self)


cdef class Message:
    cdef public int version
    cdef public int flags
    cdef public uint32_t code
    cdef public uint32_t app_id
    cdef public uint32_t hop_by_hop
    cdef public uint32_t end_to_end
    cdef public list avps

    cpdef bytes encode(self)
