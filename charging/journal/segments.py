"""Segment files: names, listing, recovery on open, quarantine, and the synchronous writer.

Layout of a journal directory::

    <dir>/000000000001.seg      closed segment (immutable; settlement reads these)
    <dir>/000000000002.open     the one segment being appended to
    <dir>/quarantine/...        segments that failed their checksums (moved here, never read)
    <dir>/next.prep             the next segment, preallocated ahead of need (prealloc.py)
    <dir>/writer.lock           flock'ed by the one writer (its pid inside; see lock_writer)

Names sort in write order (zero-padded segment number). A segment is closed by fsync,
truncation of its preallocated zero tail (if any), fsync, rename ``.open`` -> ``.seg`` and fsync
of the directory; a closed segment is never written again and never ends in zeros.

The open segment may be *preallocated*: created at its full size with real zeros so that every
group commit overwrites existing blocks (no metadata change, no jbd2 commit per sync). Its
records are followed by zeros; the first all-zero frame header after the last record is the
end of the data (framing.classify_stop tells it from corruption).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from charging import pidlock
from charging.journal.framing import (
    HEADER_LEN,
    SEGMENT_HEADER,
    check_header,
    classify_stop,
    data_end,
    scan_frames,
    torn_header,
)
from charging.journal.prealloc import Preallocator

OPEN_SUFFIX = ".open"
CLOSED_SUFFIX = ".seg"
QUARANTINE = "quarantine"
_NAME = re.compile(r"^(\d{12})\.(open|seg)$")
FIRST_FILL = 1 << 20  # first zero-fill of a segment created without preallocation


class Position(NamedTuple):
    """A point in the journal: ``(segment number, byte offset)``.

    The position of a record is the offset just *after* it, so it doubles as the checkpoint to
    resume from: ``JournalReader.iter_from(pos)`` yields the records written after ``pos``.
    ``Position(0, 0)`` is the very beginning. Positions order as tuples.
    """

    segment: int
    offset: int


START = Position(0, 0)


class JournalError(Exception):
    """The journal cannot be used (I/O failure, bad directory, a previous write failed)."""


class JournalCorruptError(JournalError):
    """A record failed its checksum (or a header is bad) in data that was once durable.

    ``path`` is the segment file (where it was found; it may have been moved to quarantine/
    since, see ``quarantined_to``), ``offset`` the byte offset of the bad frame.
    """

    def __init__(
        self, path: str, offset: int, problem: str, quarantined_to: str | None = None
    ) -> None:
        self.path = path
        self.offset = offset
        self.problem = problem
        self.quarantined_to = quarantined_to
        msg = f"{path}:{offset}: {problem}"
        if quarantined_to:
            msg += f" (segment quarantined to {quarantined_to}; operator action needed)"
        super().__init__(msg)


class JournalLocked(JournalError):
    """Another writer -- another process, usually a running ``icx serve`` -- has the journal
    open. Nothing was read or changed; stop that writer or use another journal."""

    def __init__(self, directory: str | Path, holder: str) -> None:
        self.directory = str(directory)
        self.holder = holder
        who = f" (pid {holder})" if holder else ""
        super().__init__(f"{directory}: the journal is in use by another writer{who}; a "
                         "journal has one writer at a time: stop it or use another --data-dir")


LOCK_NAME = "writer.lock"


def lock_writer(directory: str | Path) -> int:
    """Take the journal's writer lock (an exclusive ``flock`` on ``<dir>/writer.lock``, never
    waiting, charging/pidlock.py) and return its descriptor for :func:`unlock_writer`; the
    kernel releases it when the process dies, even by ``kill -9``. Raises
    :class:`JournalLocked` naming the holder's pid and command line.

    Recovery and appending both assume they are the only writer: a second one truncated the
    first one's unsynced tail, wrote over its records and sealed its open segment under it.
    A second writer in the same process is refused too; a forked child drops its copy."""
    d = Path(directory)
    try:
        return pidlock.acquire(d / LOCK_NAME)
    except pidlock.Held as exc:
        raise JournalLocked(d, exc.holder) from None


def unlock_writer(fd: int) -> None:
    """Release a lock from :func:`lock_writer`."""
    pidlock.release(fd)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    number: int
    path: Path
    closed: bool


def segment_name(number: int, *, closed: bool) -> str:
    return f"{number:012d}{CLOSED_SUFFIX if closed else OPEN_SUFFIX}"


_LIST_TRIES = 5


def list_segments(directory: str | Path) -> list[SegmentInfo]:
    """Every segment in ``directory`` in write order (quarantine/ excluded), each once.

    A rename racing ``os.listdir`` (sealing ``N.open`` -> ``N.seg``, a prepared file renamed
    in as the new ``.open``) may show an entry under both names or under neither (POSIX
    leaves readdir unspecified for entries changed meanwhile; seen on ext4 with a live
    writer). A reader that trusted such a listing yielded segment N twice, or skipped it and
    moved its checkpoint past it (settlement would bill records twice or never). So the
    ``.seg`` wins over an ``.open`` of the same number, a listing with a hole in the numbers
    is taken again, and a number still missing between two listed ones is looked up by name
    (a writer rotating every few ms can race every retry) -- a hole that stays, a quarantined
    or removed segment, is real.
    """
    out: list[SegmentInfo] = []
    for _ in range(_LIST_TRIES):
        out = _list_once(directory)
        if not out or out[-1].number - out[0].number + 1 == len(out):
            return out
    return _fill_holes(Path(directory), out)


def lookup_segment(directory: Path, number: int) -> SegmentInfo | None:
    """Segment ``number`` found by name, not by a listing: ``.open`` first, then ``.seg``.
    Sealing renames ``.open`` -> ``.seg`` atomically, so when the first lookup misses the
    second finds it; None only when the segment is really absent."""
    for closed in (False, True):
        path = directory / segment_name(number, closed=closed)
        if path.exists():
            return SegmentInfo(number, path, closed)
    return None


def _fill_holes(directory: Path, listed: list[SegmentInfo]) -> list[SegmentInfo]:
    out: list[SegmentInfo] = []
    for seg in listed:
        if out:
            for number in range(out[-1].number + 1, seg.number):
                found = lookup_segment(directory, number)
                if found is not None:
                    out.append(found)
        out.append(seg)
    return out


def _list_once(directory: str | Path) -> list[SegmentInfo]:
    found: dict[int, SegmentInfo] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        m = _NAME.match(name)
        if m:
            number, closed = int(m.group(1)), m.group(2) == "seg"
            seen = found.get(number)
            if seen is None or (closed and not seen.closed):
                found[number] = SegmentInfo(number, Path(directory) / name, closed)
    return [found[n] for n in sorted(found)]


def quarantined(directory: str | Path) -> list[Path]:
    """Files in ``directory``/quarantine (non-empty means an operator must look)."""
    q = Path(directory) / QUARANTINE
    return sorted(q.iterdir()) if q.is_dir() else []


def fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quarantine(directory: str | Path, path: Path) -> Path:
    """Move ``path`` into ``directory``/quarantine (durably) and return the new path."""
    qdir = Path(directory) / QUARANTINE
    qdir.mkdir(exist_ok=True)
    target = qdir / f"{path.name}.{int(time.time())}"
    os.replace(path, target)
    fsync_dir(directory)
    fsync_dir(qdir)
    return target


class Recovered(NamedTuple):
    """What :func:`recover` found: the segment to append to and its clean end."""

    segment: int
    offset: int
    truncated: int  # bytes of torn tail removed
    sealed: tuple[int, ...]  # stale .open segments that were closed


def recover(directory: str | Path, *, allow_quarantined: bool = False,
            keep_zero_tail: bool = False) -> Recovered:
    """Bring ``directory`` to a clean state before appending; return where to append.

    Every ``.open`` segment is scanned: a torn tail is truncated to its last complete record
    (those bytes were never fsynced, so nobody was answered for them); corruption moves the
    segment to quarantine/ and raises :class:`JournalCorruptError`. A stale ``.open`` segment
    that is not the newest is sealed (truncated to its data first). Refuses to start
    (JournalError) while quarantine/ holds files unless ``allow_quarantined`` -- a quarantined
    segment holds money records that the balances depend on, so silently going on would lose
    them.

    ``keep_zero_tail`` (a preallocating writer): the newest segment keeps its zero tail --
    the torn bytes before it are overwritten with zeros instead of truncated, and
    ``truncated`` counts only those (non-zero) bytes; the returned offset is the data end,
    not the file size. Without it (the old behaviour) the tail is truncated, zeros included.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if not allow_quarantined and quarantined(d):
        raise JournalError(
            f"{d / QUARANTINE}: holds quarantined segments "
            f"({', '.join(p.name for p in quarantined(d))}); inspect with `icx journal verify`"
        )
    segs = list_segments(d)
    truncated = 0
    sealed: list[int] = []
    last_no = segs[-1].number if segs else 0
    end = 0
    for seg in segs:
        if seg.closed:
            continue
        newest = seg.number == last_no
        data = seg.path.read_bytes()
        problem = check_header(data)
        if problem is not None:
            if torn_header(data):
                # Crash while creating the file: rewrite the header.
                _rewrite(seg.path, SEGMENT_HEADER)
                truncated += len(data)
                end = HEADER_LEN
                continue
            target = quarantine(d, seg.path)
            raise JournalCorruptError(str(seg.path), 0, problem, str(target))
        res = scan_frames(data, HEADER_LEN)
        end = res.good_end
        if res.problem is not None:
            if not classify_stop(data, res.good_end, res.problem):
                target = quarantine(d, seg.path)
                raise JournalCorruptError(str(seg.path), res.good_end, res.problem, str(target))
            nonzero_end = data_end(data, res.good_end)
            if keep_zero_tail and newest and nonzero_end < len(data):
                # Preallocated: zero the torn bytes, keep the zeros after them.
                truncated += nonzero_end - res.good_end
                if nonzero_end > res.good_end:
                    _zero(seg.path, res.good_end, nonzero_end - res.good_end)
            else:
                truncated += len(data) - res.good_end
                _truncate(seg.path, res.good_end)
        if not newest:
            _seal(d, seg.number)
            sealed.append(seg.number)
    segs = list_segments(d)
    if segs and not segs[-1].closed:
        return Recovered(segs[-1].number, end, truncated, tuple(sealed))
    return Recovered(last_no + 1, 0, truncated, tuple(sealed))


def _zero(path: Path, offset: int, length: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(length), offset)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rewrite(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal(directory: Path, number: int) -> None:
    os.replace(
        directory / segment_name(number, closed=False), directory / segment_name(number, closed=True)
    )
    fsync_dir(directory)


class SegmentWriter:
    """The synchronous writer: owns the open segment's file descriptor.

    Used from exactly one thread at a time (the async Journal's writer thread, or the caller
    of the sync API). :meth:`write` takes ``(segment, data)`` parts already framed by the
    caller, switching (rotating) segments when the number changes; :meth:`sync` makes
    everything written durable. Call :meth:`open` first (it runs :func:`recover`).

    ``preallocate``: the segment size to preallocate (0 = off, the file grows with each
    write). With it the open segment is zero-filled to that size in the background and the
    next one is prepared once the open one is half full (prealloc.py), so group commits
    overwrite initialised blocks. Data is written with ``pwrite`` at the tracked data end
    (never O_APPEND: a preallocated file's end is not the data end).
    """

    def __init__(self, directory: str | Path, *, fsync: bool = True, dsync: bool = False,
                 preallocate: int = 0) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        # O_DSYNC: each write() returns once its data is durable, so a group commit is ONE
        # syscall (no separate fdatasync). Only meaningful with fsync.
        self.dsync = dsync and fsync and hasattr(os, "O_DSYNC")
        self.segment = 0
        self._fd: int | None = None
        self._dirty = False
        self._end = 0  # data end of the open segment (the next write goes here)
        self._pre: Preallocator | None = (
            Preallocator(self.directory, preallocate, fsync=fsync) if preallocate > 0 else None)
        self._next_at = 1 << 62  # data end at which the next segment is prepared
        self._fill_to = 0  # zero-filled size requested for the open segment
        self._check_at = 1 << 62  # min(next_at, fill_to // 2): when write() has work to do
        self._lock: int | None = None  # the writer lock's descriptor (lock_writer)

    def open(self, *, allow_quarantined: bool = False) -> Recovered:
        """Take the writer lock (JournalLocked if another writer has it), recover, open the
        segment to append to. The lock is held until :meth:`close`."""
        self._lock = lock_writer(self.directory)
        try:
            rec = recover(self.directory, allow_quarantined=allow_quarantined,
                          keep_zero_tail=self._pre is not None)
            if self._pre is not None:
                self._pre.start()
            self._open_segment(rec.segment, rec.offset)
        except BaseException:
            self._unlock()
            raise
        return rec

    @property
    def offset(self) -> int:
        """Current data end of the open segment (after the header for a fresh one)."""
        assert self._fd is not None
        return self._end

    @property
    def preallocator(self) -> Preallocator | None:
        return self._pre

    def _open_segment(self, number: int, end: int = 0, prepared: Path | None = None) -> None:
        path = self.directory / segment_name(number, closed=False)
        if prepared is not None:
            os.replace(prepared, path)  # the caller fsyncs the directory
        flags = os.O_RDWR | os.O_CREAT | (os.O_DSYNC if self.dsync else 0)
        fd = os.open(path, flags, 0o644)
        size = os.fstat(fd).st_size
        if size == 0:
            _pwrite_all(fd, SEGMENT_HEADER, 0)
            if self.fsync:
                os.fsync(fd)
                fsync_dir(self.directory)
            size = HEADER_LEN
        self._fd = fd
        self.segment = number
        self._end = max(end, HEADER_LEN)
        pre = self._pre
        if pre is not None:
            self._fill_to = size
            self._next_at = max(self._end, pre.size // 2)
            self._check_at = self._next_at
            if size < pre.size:
                self._grow_fill(path)

    def _grow_fill(self, path: Path | None = None) -> None:
        """Ask for the open segment to be zero-filled further: to 4x its data end (at least
        FIRST_FILL; at most the segment size), so the zeros stay well ahead of the writer."""
        pre = self._pre
        assert pre is not None
        target = min(pre.size, max(FIRST_FILL, 4 * self._end, self._fill_to))
        if target > self._fill_to or path is not None:
            self._fill_to = target
            pre.fill_active(path or self.directory / segment_name(self.segment, closed=False),
                            target)
        grow_at = self._fill_to // 2 if self._fill_to < pre.size else 1 << 62
        self._check_at = min(self._next_at, grow_at)

    def rotate_to(self, number: int) -> None:
        """Seal the open segment (fsync, cut its zero tail, rename to .seg) and start segment
        ``number`` -- from the prepared file when there is one (no waiting for zeros)."""
        assert self._fd is not None and number > self.segment
        self._close_fd(seal=True)
        prepared = self._pre.take_next() if self._pre is not None else None
        os.replace(self.directory / segment_name(self.segment, closed=False),
                   self.directory / segment_name(self.segment, closed=True))
        self._open_segment(number, prepared=prepared)
        if prepared is not None and self.fsync:
            # One directory sync makes both renames durable before any record is written to
            # the new segment (a fresh file's creation synced the directory already).
            fsync_dir(self.directory)

    def _close_fd(self, *, seal: bool) -> None:
        """Stop the filler, sync and close the open segment; ``seal``: cut the zero tail."""
        fd = self._fd
        assert fd is not None
        if self._pre is not None:
            self._pre.cancel_active()
        if seal and os.fstat(fd).st_size > self._end:
            os.ftruncate(fd, self._end)  # a closed segment never ends in zeros
        if self.fsync:  # also with O_DSYNC: metadata (size) durable before the rename
            os.fsync(fd)
        os.close(fd)
        self._fd = None

    def write(self, parts: Sequence[tuple[int, bytes | bytearray]]) -> None:
        """Write framed bytes; a part for a higher segment number rotates first."""
        for number, data in parts:
            if number != self.segment:
                self.rotate_to(number)
            if data:
                assert self._fd is not None
                pre = self._pre
                if pre is None:
                    _pwrite_all(self._fd, data, self._end)
                else:
                    with pre.lock:  # the filler may be extending this file
                        _pwrite_all(self._fd, data, self._end)
                self._end += len(data)
                self._dirty = True
                if self._end >= self._check_at and pre is not None:
                    if self._end >= self._next_at:
                        self._next_at = 1 << 62
                        pre.prepare_next()
                    self._grow_fill()

    @property
    def fd(self) -> int:
        """The open segment's file descriptor (for :meth:`reserve`'s caller)."""
        assert self._fd is not None
        return self._fd

    def reserve(self, nbytes: int) -> int:
        """Claim ``nbytes`` at the data end for a write done elsewhere (the native writer
        threads, cython_ext/journal_io.pyx); return their offset, or -1 when this write must
        go through :meth:`write` instead: no segment open, the prealloc bookkeeping of
        :meth:`write` is due (next segment, further zero-fill), or the open segment is not
        filled to its size yet and the bytes would reach past what the filler has filled
        (there writes must hold its lock; below it the filler never writes: a journal just
        opened on a new or half-filled segment uses the native writer as soon as the first
        zeros are there, not only once the whole segment is). The caller must write exactly
        ``nbytes`` at the returned offset before anything else writes this segment, and must
        not call :meth:`write` while such a write is in flight."""
        if self._fd is None or self._end + nbytes >= self._check_at:
            return -1
        pre = self._pre
        if pre is not None and (self._fill_to < pre.size or pre.filling()) \
                and self._end + nbytes > pre.active_end:
            return -1
        off = self._end
        self._end = off + nbytes
        return off

    def unreserve(self, offset: int) -> None:
        """A write claimed by :meth:`reserve` at ``offset`` failed: the data end goes back
        there, as after a failed :meth:`write` (which never advances it), so a seal cuts the
        segment at the last good record. (The native writer writes nothing after a failed
        ``pwrite``; after a failed sync the later bytes may be in the file -- never
        acknowledged, cut by a seal, kept by recovery like any unacknowledged tail.)"""
        if self._fd is not None and HEADER_LEN <= offset < self._end:
            self._end = offset

    def sync(self) -> None:
        """fdatasync the open segment if anything was written since the last sync."""
        if self._dirty and self.fsync and not self.dsync and self._fd is not None:
            os.fdatasync(self._fd)
        self._dirty = False

    def write_and_sync(self, parts: Sequence[tuple[int, bytes | bytearray]]) -> None:
        """One group commit: write every part, then one fdatasync."""
        self.write(parts)
        self.sync()

    def wait_preallocated(self, timeout: float | None = None, *, full: bool = False) -> bool:
        """Block until the background zero-filling has nothing pending (True) or timeout.
        ``full``: first ask for the open segment to be filled to the whole segment size (the
        steady state of a running journal, whose segments are prepared ahead of need).
        Call from the thread that writes (or while no write is in flight)."""
        if self._pre is None:
            return True
        if full and self._fd is not None and self._fill_to < self._pre.size:
            self._fill_to = self._pre.size
            self._pre.fill_active(self.directory / segment_name(self.segment, closed=False))
            self._check_at = self._next_at
        return self._pre.wait_idle(timeout)

    def close(self, *, seal: bool = False) -> None:
        """Sync and close; with ``seal`` the open segment is closed for good (.seg). Without
        it a preallocated segment keeps its zero tail (the next open appends over it)."""
        try:
            if self._fd is not None:
                self._close_fd(seal=seal)
                if seal:
                    _seal(self.directory, self.segment)
            if self._pre is not None:
                self._pre.close()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            unlock_writer(self._lock)  # releases the flock
            self._lock = None


def _pwrite_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
