# cython: language_level=3
"""Group-commit writer threads that never take the GIL (issue 4: p99 append-to-durable).

The pure-Python writer (charging/journal/writer.py, ``Journal`` without this module) runs the
write and sync on a Python thread: it needs the GIL to pick a group up and again to hand the
result back, and while the event loop is busy each of those waits up to the interpreter's
switch interval. Here the same job -- ``pwrite`` the group's bytes at its offset, then
``fdatasync`` -- runs on plain POSIX threads that hold no Python reference and never touch
the interpreter; completion is signalled through an ``eventfd`` that the event loop watches
with ``loop.add_reader``, so the loop wakes from its poll like for a socket (no GIL hand-off,
no ``call_soon_threadsafe``).

Two groups may be in flight (one per thread): group k+1's write and sync start while group
k's sync is still running, so a record that arrives during a sync no longer waits for that
whole sync and then its own. Order is kept where it matters:

* the ``pwrite`` calls happen strictly in submission order (group k+1's waits until group
  k's has returned), so the page cache -- what survives a kill -9 of the process -- always
  holds a prefix of the submitted groups, never a later group without an earlier one
  (recovery would take the hole for corruption). That holds after an error too: once a
  ``pwrite`` or ``fdatasync`` on an fd failed, every later job for that fd not yet written
  fails with ``ECANCELED`` without writing (a transient EIO must not leave a hole with later
  groups after it), until :meth:`GroupWriter.close` -- a caller reusing that fd number needs
  a new GroupWriter. (With two threads the next group's ``pwrite`` may already have run
  while the failed sync was in progress: its records are then in the page cache but failed
  like every group after the failed one -- never reported durable; a restart reads them
  back like any unanswered record, and the store's idempotency keys make a client's retry
  charge only once);
* :meth:`GroupWriter.reap` reports completions strictly in submission order: a group is
  reported only once it AND every group before it are done, so the caller releases waiters
  in order, and a failed group is reported before anything after it (the caller fails
  everything from there on).

The caller keeps each submitted buffer alive and unchanged until its completion is reaped
(the thread reads it through a raw pointer), and must not have more than ``RING - 1`` jobs
in flight.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport uint64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.types cimport off_t
from posix.unistd cimport close, fdatasync, pwrite, read, write

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_create(pthread_t*, void*, void* (*)(void*) noexcept nogil, void*)
    int pthread_join(pthread_t, void**)
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_destroy(pthread_mutex_t*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_cond_init(pthread_cond_t*, void*)
    int pthread_cond_destroy(pthread_cond_t*)
    int pthread_cond_wait(pthread_cond_t*, pthread_mutex_t*)
    int pthread_cond_broadcast(pthread_cond_t*)

cdef extern from "<errno.h>" nogil:
    int ECANCELED

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int, int)
    int EFD_NONBLOCK
    int EFD_CLOEXEC

DEF RING = 16
DEF MAX_THREADS = 4

cdef enum:
    FREE = 0
    QUEUED = 1
    RUNNING = 2
    DONE = 3


cdef struct Job:
    int state
    int fd
    int sync
    int err
    const char* data
    Py_ssize_t length
    off_t offset
    long long seq
    double t_start
    double t_end


cdef struct Shared:
    pthread_mutex_t mu
    pthread_cond_t cv
    Job jobs[RING]
    long long next_take  # next seq a thread picks up
    long long next_write  # seq whose pwrite may run now (pwrites in order)
    long long next_submit
    int stop
    int efd
    int failed_fd  # an fd whose pwrite failed (-1: none): later jobs for it are not written


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)  # the clock of Python's time.perf_counter on Linux
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef void* _thread_main(void* arg) noexcept nogil:
    cdef Shared* sh = <Shared*>arg
    cdef Job* job
    cdef long long seq
    cdef Py_ssize_t done
    cdef ssize_t n
    cdef int err
    cdef uint64_t one = 1
    pthread_mutex_lock(&sh.mu)
    while True:
        while not sh.stop and sh.next_take == sh.next_submit:
            pthread_cond_wait(&sh.cv, &sh.mu)
        if sh.stop and sh.next_take == sh.next_submit:
            break
        seq = sh.next_take
        sh.next_take += 1
        job = &sh.jobs[seq % RING]
        job.state = RUNNING
        # writes in submission order: wait until the previous job's pwrite has returned
        while sh.next_write != seq:
            pthread_cond_wait(&sh.cv, &sh.mu)
        # an earlier job's pwrite on this fd failed: writing this one would leave a hole
        # before it (the file must hold a prefix of the jobs)
        err = ECANCELED if sh.failed_fd >= 0 and job.fd == sh.failed_fd else 0
        pthread_mutex_unlock(&sh.mu)
        job.t_start = _now()
        done = 0
        while err == 0 and done < job.length:
            n = pwrite(job.fd, job.data + done, <size_t>(job.length - done),
                       job.offset + done)
            if n < 0:
                if errno == EINTR:
                    continue
                err = errno
                break
            done += n
        pthread_mutex_lock(&sh.mu)
        if err != 0 and job.fd >= 0:
            sh.failed_fd = job.fd
        sh.next_write += 1
        pthread_cond_broadcast(&sh.cv)
        pthread_mutex_unlock(&sh.mu)
        if err == 0 and job.sync:
            while fdatasync(job.fd) != 0:
                if errno != EINTR:
                    err = errno
                    break
        job.t_end = _now()
        pthread_mutex_lock(&sh.mu)
        if err != 0 and job.fd >= 0:
            # a failed sync too: after it the kernel may have dropped this group's dirty
            # pages (the "fsyncgate" semantics of Linux writeback errors), so a later group
            # written now could sit on disk after a hole; no job not yet written is written
            sh.failed_fd = job.fd
        job.err = err
        job.state = DONE
        pthread_mutex_unlock(&sh.mu)
        write(sh.efd, &one, 8)
        pthread_mutex_lock(&sh.mu)
    pthread_mutex_unlock(&sh.mu)
    return NULL


cdef class GroupWriter:
    """``threads`` POSIX writer threads (at most 4; 2 = two groups in flight) and the
    ``eventfd`` (:attr:`fd`) that becomes readable when a job completes. Call :meth:`close`
    when done (joins the threads; jobs already submitted are finished first)."""

    cdef Shared sh
    cdef pthread_t tids[MAX_THREADS]
    cdef int nthreads
    cdef long long next_reap
    cdef bint closed
    cdef list _keep  # the buffers of jobs in flight (the threads read them)

    def __cinit__(self, int threads=2):
        cdef int i
        if threads < 1 or threads > MAX_THREADS:
            raise ValueError(f"threads must be 1..{MAX_THREADS}")
        self.nthreads = 0
        self.closed = True
        pthread_mutex_init(&self.sh.mu, NULL)
        pthread_cond_init(&self.sh.cv, NULL)
        self.sh.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.sh.efd < 0:
            raise OSError(errno, "eventfd failed")
        self.sh.next_take = self.sh.next_write = self.sh.next_submit = 0
        self.sh.stop = 0
        self.sh.failed_fd = -1
        for i in range(RING):
            self.sh.jobs[i].state = FREE
        self.next_reap = 0
        self._keep = []
        self.closed = False
        for i in range(threads):
            if pthread_create(&self.tids[i], NULL, _thread_main, &self.sh) != 0:
                self.close()
                raise OSError("pthread_create failed")
            self.nthreads += 1

    @property
    def fd(self) -> int:
        """The eventfd to watch (``loop.add_reader``); :meth:`reap` clears it."""
        return self.sh.efd

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not reaped yet."""
        return <int>(self.sh.next_submit - self.next_reap)

    def submit(self, int fd, object data, off_t offset, bint sync) -> int:
        """Queue ``pwrite(fd, data, offset)`` (+ ``fdatasync(fd)`` when ``sync``); ``data``
        is a bytes or bytearray the caller must not change until the job is reaped (a
        reference is kept here meanwhile). Returns the job's sequence number."""
        cdef const char* p
        cdef Py_ssize_t n
        cdef Job* job
        cdef long long seq
        if self.closed:
            raise ValueError("GroupWriter is closed")
        if PyBytes_Check(data):
            p = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
        elif isinstance(data, bytearray):
            p = PyByteArray_AS_STRING(data)
            n = PyByteArray_GET_SIZE(data)
        else:
            raise TypeError("data must be bytes or bytearray")
        if self.sh.next_submit - self.next_reap >= RING - 1:
            raise RuntimeError("too many jobs in flight")
        self._keep.append(data)
        pthread_mutex_lock(&self.sh.mu)
        seq = self.sh.next_submit
        job = &self.sh.jobs[seq % RING]
        job.state = QUEUED
        job.fd = fd
        job.sync = sync
        job.err = 0
        job.data = p
        job.length = n
        job.offset = offset
        job.seq = seq
        job.t_start = job.t_end = 0.0
        self.sh.next_submit = seq + 1
        pthread_cond_broadcast(&self.sh.cv)
        pthread_mutex_unlock(&self.sh.mu)
        return seq

    def reap(self) -> list:
        """Clear the eventfd; return ``[(seq, errno, t_start, t_end), ...]`` for the jobs
        completed since the last call, in submission order, stopping at the first job not
        done yet (a later job done earlier is reported with it, on a later call). ``errno``
        is 0 on success; times are ``time.perf_counter()`` seconds."""
        cdef uint64_t buf
        cdef Job* job
        cdef list out = []
        with nogil:
            read(self.sh.efd, &buf, 8)  # nonblocking: EAGAIN when nothing new
        pthread_mutex_lock(&self.sh.mu)
        while self.next_reap < self.sh.next_submit:
            job = &self.sh.jobs[self.next_reap % RING]
            if job.state != DONE:
                break
            out.append((job.seq, job.err, job.t_start, job.t_end))
            job.state = FREE
            self.next_reap += 1
        pthread_mutex_unlock(&self.sh.mu)
        if out:
            del self._keep[:len(out)]
        return out

    def close(self) -> None:
        """Finish the submitted jobs, stop and join the threads, close the eventfd.
        Blocks (call it from an executor or once nothing is in flight)."""
        self._stop()

    cdef void _stop(self):
        """Once: let the threads finish the submitted jobs and exit, join them, close the
        eventfd (close() and __dealloc__ both end here)."""
        cdef int i
        if self.closed:
            return
        self.closed = True
        pthread_mutex_lock(&self.sh.mu)
        self.sh.stop = 1
        pthread_cond_broadcast(&self.sh.cv)
        pthread_mutex_unlock(&self.sh.mu)
        with nogil:
            for i in range(self.nthreads):
                pthread_join(self.tids[i], NULL)
        self.nthreads = 0
        if self.sh.efd >= 0:
            close(self.sh.efd)
        self.sh.efd = -1

    def __dealloc__(self):
        self._stop()
        pthread_mutex_destroy(&self.sh.mu)
        pthread_cond_destroy(&self.sh.cv)
