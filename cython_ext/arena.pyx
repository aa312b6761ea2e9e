# cython: language_level=3
"""Python's small-object arenas carved out of one huge-page region (``install``).

Why: the embedded store's snapshot forks (charging/store/snapshot.py), and fork copies the
parent's page tables: ~20 ms per GB of RSS on this VM, a stall of the event loop at every
snapshot. Python's allocator (obmalloc) maps its 1 MiB arenas one by one; here they come from a
single reserved region advised ``MADV_HUGEPAGE``, so the kernel backs it with 2 MiB pages and a
fork copies 512x fewer entries (measured on a 2 GB heap: 40 ms -> 2 ms; see
docs/balances-and-journal.md).

Contract (``PyObject_SetArenaAllocator``): called with the GIL held; arenas given out before
``install`` are freed through the allocator that made them. A freed arena of the region is
kept for the next one (not returned to the kernel: that would split its huge page), so RSS
does not shrink after a peak. When the region is full, or the size is not the arena size,
the previous allocator serves. No Python twin: without it the default allocator runs.

First touch (``populate_ahead``): the first write to a page of the region makes the kernel
find and zero it; on this VM that costs ~1 ms per MiB (the host backs guest memory on
demand), 2-7 ms per huge page, paid by whichever thread holds the GIL -- the event loop --
four or five times a second while the heap grows at 10k CCR/s. A native thread keeps the
next few MiB past the arenas in use populated (``MADV_POPULATE_WRITE``, Linux 5.14+: it
faults pages in without writing to them, so it is safe on memory obmalloc may be using), and
the loop finds them ready.
"""

from libc.errno cimport errno
from libc.stdint cimport uintptr_t

cdef extern from "Python.h":
    ctypedef struct PyObjectArenaAllocator:
        void *ctx
        void *(*alloc)(void *ctx, size_t size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil
    void PyObject_GetArenaAllocator(PyObjectArenaAllocator *allocator)
    void PyObject_SetArenaAllocator(PyObjectArenaAllocator *allocator)

cdef extern from "sys/mman.h" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    int madvise(void *addr, size_t length, int advice)
    int PROT_READ
    int PROT_WRITE
    int MAP_PRIVATE
    int MAP_ANONYMOUS
    int MAP_NORESERVE
    int MADV_HUGEPAGE
    void *MAP_FAILED

cdef extern from "pthread.h" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_attr_t:
        pass
    int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                       void *(*start)(void *) noexcept nogil, void *arg)
    int pthread_detach(pthread_t thread)

cdef extern from "time.h" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int nanosleep(const timespec *req, timespec *rem)

cdef extern from *:
    """
    /* _used is written by the thread holding the GIL, read by the populator: relaxed
       atomics (a stale value only delays the next populate by one poll). */
    #define ICX_LOAD(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
    #define ICX_STORE(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)
    """
    size_t ICX_LOAD(size_t v) nogil
    void ICX_STORE(size_t v, size_t x) nogil

cdef enum:
    HUGE = 2 * 1024 * 1024
    MADV_POPULATE_WRITE = 23  # asm-generic/mman-common.h, Linux 5.14
    POLL_NS = 10 * 1000 * 1000  # the populator checks the frontier every 10 ms
    MAX_FREE = 1 << 17

cdef PyObjectArenaAllocator _previous
cdef char *_base = NULL
cdef size_t _cap = 0
cdef size_t _used = 0
cdef size_t _arena = 0
cdef size_t _free[MAX_FREE]
cdef size_t _nfree = 0
cdef size_t _served = 0
cdef size_t _ahead = 0  # keep this many bytes past _used populated (0: populate nothing)
cdef size_t _populated = 0  # the region is populated up to here (the populator's own)
cdef int _populate_errno = 0  # the madvise error that stopped the populator (0: none)
cdef int _populator_running = 0  # set once the thread is started (it never exits)


cdef void *_alloc(void *ctx, size_t size) noexcept nogil:
    global _used, _arena, _nfree, _served
    cdef void *p
    if _arena == 0:
        _arena = size
    if size == _arena:
        if _nfree:
            _nfree -= 1
            _served += 1
            return _base + _free[_nfree]
        if _used + size <= _cap:
            p = _base + _used
            ICX_STORE(_used, _used + size)
            _served += 1
            return p
    return _previous.alloc(_previous.ctx, size)


cdef void _release(void *ctx, void *ptr, size_t size) noexcept nogil:
    global _nfree, _served
    cdef uintptr_t at = <uintptr_t>ptr
    cdef uintptr_t lo = <uintptr_t>_base
    if _base != NULL and lo <= at < lo + _cap and size == _arena and _nfree < MAX_FREE:
        _free[_nfree] = at - lo
        _nfree += 1
        _served -= 1
        return
    if _base != NULL and lo <= at < lo + _cap:
        return  # the free list is full: the arena stays reserved, unused (never seen in use)
    _previous.free(_previous.ctx, ptr, size)


def install(size_t reserve_bytes=64 * 1024 * 1024 * 1024):
    """Serve obmalloc's arenas from a *reserve_bytes* region advised for huge pages (address
    space only: pages are taken when touched). Returns False when the region cannot be
    mapped (the default allocator stays) and True when installed or already installed."""
    global _base, _cap
    cdef PyObjectArenaAllocator mine
    cdef void *p
    cdef uintptr_t aligned
    if _base != NULL:
        return True
    p = mmap(NULL, reserve_bytes + HUGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if p == MAP_FAILED:
        return False
    # huge pages need 2 MiB alignment
    aligned = (<uintptr_t>p + HUGE - 1) & ~(<uintptr_t>HUGE - 1)
    madvise(<void *>aligned, reserve_bytes, MADV_HUGEPAGE)  # advisory: fine if refused
    _base = <char *>aligned
    _cap = reserve_bytes
    PyObject_GetArenaAllocator(&_previous)
    mine.ctx = NULL
    mine.alloc = _alloc
    mine.free = _release
    PyObject_SetArenaAllocator(&mine)
    return True


def collapse():
    """Ask the kernel to rebuild the region's huge pages now (``MADV_COLLAPSE``, Linux 6.1+).
    A fork's copy-on-write splits every huge page the parent writes to while the child runs,
    so after a snapshot the next fork would copy 4 KiB entries again. Blocks while the kernel
    copies (call it off the event loop: the GIL is released). Returns 0, or the errno (e.g.
    EINVAL on an older kernel, EAGAIN when no huge page was free): advisory either way."""
    cdef size_t length = (_used + HUGE - 1) & ~(<size_t>HUGE - 1)
    cdef int rc
    if _base == NULL or length == 0:
        return 0
    with nogil:
        rc = madvise(<void *>_base, length, 25)  # MADV_COLLAPSE (asm-generic/mman-common.h)
        if rc != 0:
            rc = errno
    return rc


def stats():
    """(bytes of the region handed out so far, arenas in use from it, arena size)."""
    return _used, _served, _arena


def region():
    """(start address, size) of the region; (0, 0) before :func:`install`."""
    return <uintptr_t>_base, _cap


cdef void *_populator(void *arg) noexcept nogil:
    # Runs for the rest of the process once started (stopping it would race a restart);
    # with _ahead == 0 it only wakes every POLL_NS.
    global _populate_errno
    cdef timespec pause
    cdef size_t want, used, top = ICX_LOAD(_populated)
    pause.tv_sec = 0
    pause.tv_nsec = POLL_NS
    while True:
        used = ICX_LOAD(_used)
        want = used + ICX_LOAD(_ahead)
        if want > _cap:
            want = _cap
        if top < used:
            # The heap outran us (a burst): jump past the huge page it is filling rather
            # than fault the same pages it does (both would wait on each other).
            top = ((used + HUGE - 1) & ~(<size_t>HUGE - 1)) + HUGE
        while top < want and _populate_errno == 0:
            if madvise(<void *>(_base + top), HUGE, MADV_POPULATE_WRITE) != 0:
                _populate_errno = errno
                ICX_STORE(_ahead, 0)
                break
            top += HUGE
            ICX_STORE(_populated, top)
        nanosleep(&pause, NULL)
    return NULL


def populate_ahead(size_t nbytes):
    """Keep the *nbytes* of the region past the arenas in use populated, by a native thread
    that never takes the GIL (see the module docstring); 0 stops it. Call after
    :func:`install`. Returns False when the region is not installed, the thread cannot be
    started, or an earlier populate failed (e.g. EINVAL: a kernel before 5.14); see
    :func:`populated`. The populated bytes count in RSS before they hold objects."""
    global _populated, _populator_running
    cdef pthread_t thread
    if _base == NULL or _populate_errno != 0:
        return False
    ICX_STORE(_ahead, (nbytes + HUGE - 1) & ~(<size_t>HUGE - 1))
    if nbytes == 0 or _populator_running:
        return True
    _populated = _used & ~(<size_t>HUGE - 1)
    if pthread_create(&thread, NULL, _populator, NULL) != 0:
        ICX_STORE(_ahead, 0)
        return False
    pthread_detach(thread)
    _populator_running = 1
    return True


def populated():
    """(offset in the region up to which the populator has populated, the errno that stopped
    it or 0, whether its thread was started)."""
    return ICX_LOAD(_populated), _populate_errno, bool(_populator_running)
