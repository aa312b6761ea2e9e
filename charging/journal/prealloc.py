"""Preallocated, zero-filled segments: the background thread that prepares them.

Why (issue 4, the p99 of append-to-durable): an O_DSYNC write / fdatasync that EXTENDS a file
changes its size and block map, so ext4 must commit a jbd2 transaction on every group commit
(a few ms on a busy disk). Writing into blocks that already exist and hold real zeros is a
pure data overwrite: the sync is one data write + a cache flush, no metadata commit. This is
the classic WAL trick (PostgreSQL ``wal_init_zero``, etcd's preallocated WAL, Kafka's
``preallocate``). ``fallocate`` is NOT enough: it leaves *unwritten* extents whose conversion
on first write is itself a metadata change -- so the zeros are really written, once.

What this module does, on one daemon thread, ahead of need:

* :meth:`Preallocator.fill_active`: extend the segment being appended to with zeros up to a
  target (used when the segment was created without preallocation: at first open of a new or
  old-layout journal, or when rotation found no prepared file). The writer asks for a target
  that grows with its data (1 MiB, then 4x the data end, up to the segment size): a fresh
  journal that holds a few records does not zero 64 MiB first, and the few extensions happen
  while the segment is young. The writer keeps writing meanwhile: both sides hold
  :attr:`Preallocator.lock` around their writes and the filler only ever writes at the file's
  current end, so zeros never land on data.
* :meth:`Preallocator.prepare_next`: build the NEXT segment as ``next.prep`` -- the 16-byte
  segment header + zeros up to the segment size, fsynced, renamed from ``next.prep.tmp`` and
  the directory fsynced -- so the file exists complete and durable before rotation needs it.
  A segment header carries no number, so the same file serves whichever segment comes next.
  :meth:`take_next` hands it over (never waits: if it is not ready the writer creates a plain
  segment and asks for :meth:`fill_active` instead).

The zero tail is the end of the data for every reader (framing.classify_stop / data_end,
recovery, JournalReader, settle_agg, verify); a closed segment is truncated to its data when it
is sealed, so only the open segment ever has one (docs/journal-schema.md).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from charging.journal.framing import HEADER_LEN, SEGMENT_HEADER, check_header

PREP_NAME = "next.prep"
_TMP_NAME = PREP_NAME + ".tmp"
CHUNK = 1 << 20  # zero bytes per write (the lock is held for one chunk at a time)
# fdatasync the file being filled this often: bounded bursts of dirty pages. The group
# commits' fdatasync waits for the device's queue, so a burst is a stall of every CCR in
# flight: on this VM's disk an 8 MiB burst held journal syncs up to ~4 ms, 1 MiB < 1 ms.
SYNC_EVERY = 1 << 20
_ZEROS = bytes(CHUNK)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Preallocator:
    """Zero-fills journal segment files on its own thread (see the module docstring).

    ``size``: the preallocated size of a segment (the journal's ``segment_bytes``).
    ``fsync``: sync what it writes (False only for tests/benchmarks without fsync).
    Call :meth:`close` when done (it abandons any unfinished work; a half-built
    ``next.prep.tmp`` is deleted by the next :meth:`start`).
    """

    def __init__(self, directory: str | Path, size: int, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.size = max(int(size), HEADER_LEN)
        self.fsync = fsync
        # Held by the writer around every write to the active segment, and by the filler
        # around every chunk it adds to that file: the filler reads the file's end and writes
        # there atomically with respect to the writer.
        self.lock = threading.Lock()
        self._cond = threading.Condition()
        self._active: tuple[Path, int, int] | None = None  # (path, generation, target size)
        self._active_gen = 0
        self._want_next = False
        self._closed = False
        self._busy_active = False
        self._thread: threading.Thread | None = None
        self.filled_bytes = 0  # zero bytes written so far (metrics/tests)
        # The open segment's size as the filler last saw or made it (0 until it has looked;
        # back to 0 by cancel_active). It only grows, and the filler writes only at the file's
        # end, so a write that ends at or below this never meets its zeros: the writer may
        # do it without :attr:`lock` (SegmentWriter.reserve, the native writer).
        self.active_end = 0

    # -- control (writer thread) ----------------------------------------------------------

    def start(self) -> None:
        """Clean up a half-built prepared file and start the thread."""
        tmp = self.directory / _TMP_NAME
        if tmp.exists():
            tmp.unlink()
        prep = self.directory / PREP_NAME
        if prep.exists() and not self._prepared_ok(prep):
            prep.unlink()
        self._thread = threading.Thread(target=self._main, name="icx-journal-prealloc",
                                        daemon=True)
        self._thread.start()

    def _prepared_ok(self, prep: Path) -> bool:
        try:
            with prep.open("rb") as fh:
                head = fh.read(HEADER_LEN)
                size = os.fstat(fh.fileno()).st_size
        except OSError:
            return False
        return check_header(head) is None and size == self.size

    def fill_active(self, path: Path, target: int | None = None) -> None:
        """Zero-fill ``path`` (the open segment) up to ``target`` bytes (default and at most
        :attr:`size`), in the background. A new request replaces the previous one."""
        target = self.size if target is None else min(target, self.size)
        with self._cond:
            self._active_gen += 1
            self._active = (path, self._active_gen, target)
            self._cond.notify()

    def cancel_active(self) -> None:
        """Stop filling the open segment and wait until the filler has let go of it (call
        before truncating, renaming or closing it)."""
        with self._cond:
            self._active_gen += 1
            self._active = None
            while self._busy_active:
                self._cond.wait()
            self.active_end = 0  # the next file is another one

    def filling(self) -> bool:
        """True while a :meth:`fill_active` job is pending or running. Only the writer side
        starts such jobs, so a writer that sees False may write the open segment without
        :attr:`lock` until it next calls :meth:`fill_active` (the native writer's fast path);
        while it is True, only below :attr:`active_end`."""
        return self._active is not None or self._busy_active

    def prepare_next(self) -> None:
        """Build ``next.prep`` in the background unless it exists already."""
        with self._cond:
            self._want_next = True
            self._cond.notify()

    def take_next(self) -> Path | None:
        """The prepared file when it is complete and durable (the caller renames it; it is
        then no longer this object's), else None. Never waits."""
        prep = self.directory / PREP_NAME
        with self._cond:
            if self._want_next and not prep.exists():
                return None  # still being built
            return prep if prep.exists() else None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no work is pending (tests, benchmarks: a steady state to measure)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._closed or (self._active is None and not self._busy_active
                                         and not self._want_next), timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._active = None
            self._active_gen += 1
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- the thread -----------------------------------------------------------------------

    def _main(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._active is None and not self._want_next:
                    self._cond.wait()
                if self._closed:
                    self._cond.notify_all()
                    return
                job = self._active
                if job is not None:
                    self._busy_active = True
            try:
                if job is not None:
                    self._fill(*job)
                else:
                    self._build_next()
            except OSError:
                # Preallocation is an optimisation: on failure the writer just extends files
                # as before (slower syncs, same durability). Stop trying this job.
                pass
            finally:
                with self._cond:
                    if job is not None:
                        self._busy_active = False
                        if self._active is not None and self._active[1] == job[1]:
                            self._active = None
                    else:
                        self._want_next = False
                    self._cond.notify_all()

    def _current(self, gen: int) -> bool:
        return not self._closed and self._active_gen == gen

    def _fill(self, path: Path, gen: int, target: int) -> None:
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return  # sealed meanwhile
        try:
            since_sync = 0
            while self._current(gen):
                with self.lock:
                    if not self._current(gen):
                        break
                    end = os.fstat(fd).st_size  # >= the writer's data end: zeros never on data
                    if end >= target:
                        self.active_end = max(self.active_end, end)
                        break
                    n = os.pwrite(fd, _ZEROS[:min(CHUNK, target - end)], end)
                    self.active_end = max(self.active_end, end + n)
                self.filled_bytes += n
                since_sync += n
                if self.fsync and since_sync >= SYNC_EVERY:
                    os.fdatasync(fd)
                    since_sync = 0
            if self.fsync and self._current(gen):
                os.fsync(fd)  # the new size too: after a crash the zeros are still there
        finally:
            os.close(fd)

    def _build_next(self) -> None:
        prep = self.directory / PREP_NAME
        if prep.exists():
            return
        tmp = self.directory / _TMP_NAME
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, SEGMENT_HEADER)
            end = HEADER_LEN
            since_sync = 0
            while end < self.size:
                if self._closed:
                    return
                n = os.pwrite(fd, _ZEROS[:min(CHUNK, self.size - end)], end)
                end += n
                self.filled_bytes += n
                since_sync += n
                if self.fsync and since_sync >= SYNC_EVERY:
                    os.fdatasync(fd)
                    since_sync = 0
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, prep)
        if self.fsync:
            _fsync_dir(self.directory)
