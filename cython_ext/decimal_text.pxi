# The decimal text of a C integer, shared by the compiled twins that write ids and RESP
# arguments by hand (charging_slice.pyx, redis_codec.pyx): the same digits as str(int).


cdef inline Py_ssize_t _put_dec(char *p, long long v):
    """Decimal digits of *v* at *p* (as str(int)); returns how many chars (p has room for 21)."""
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, i
    cdef unsigned long long u
    cdef Py_ssize_t at = 0
    if v < 0:
        p[0] = 45  # '-'
        at = 1
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while True:
        tmp[n] = <char>(48 + u % 10)
        n += 1
        u //= 10
        if u == 0:
            break
    for i in range(n):
        p[at + i] = tmp[n - 1 - i]
    return at + n
