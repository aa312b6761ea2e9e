"""Segment files: names, listing, recovery on open, quarantine, and the synchronous writer.

Layout of a journal directory::

    <dir>/000000000001.seg      closed segment (immutable; settlement reads these)
    <dir>/000000000002.open     the one segment being appended to
    <dir>/quarantine/...        segments that failed their checksums (moved here, never read)

Names sort in write order (zero-padded segment number). A segment is closed by fsync + rename
``.open`` -> ``.seg`` + fsync of the directory; a closed segment is never written again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from charging.journal.framing import (
    HEADER_LEN,
    SEGMENT_HEADER,
    check_header,
    classify_stop,
    scan_frames,
    torn_header,
)

OPEN_SUFFIX = ".open"
CLOSED_SUFFIX = ".seg"
QUARANTINE = "quarantine"
_NAME = re.compile(r"^(\d{12})\.(open|seg)$")


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


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    number: int
    path: Path
    closed: bool


def segment_name(number: int, *, closed: bool) -> str:
    return f"{number:012d}{CLOSED_SUFFIX if closed else OPEN_SUFFIX}"


def list_segments(directory: str | Path) -> list[SegmentInfo]:
    """Every segment in ``directory`` in write order (quarantine/ excluded)."""
    out: list[SegmentInfo] = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        m = _NAME.match(name)
        if m:
            out.append(SegmentInfo(int(m.group(1)), Path(directory) / name, m.group(2) == "seg"))
    out.sort(key=lambda s: (s.number, not s.closed))
    return out


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


def recover(directory: str | Path, *, allow_quarantined: bool = False) -> Recovered:
    """Bring ``directory`` to a clean state before appending; return where to append.

    Every ``.open`` segment is scanned: a torn tail is truncated to its last complete record
    (those bytes were never fsynced, so nobody was answered for them); corruption moves the
    segment to quarantine/ and raises :class:`JournalCorruptError`. A stale ``.open`` segment
    that is not the newest is sealed. Refuses to start (JournalError) while quarantine/ holds
    files unless ``allow_quarantined`` -- a quarantined segment holds money records that the
    balances depend on, so silently going on would lose them.
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
    for seg in segs:
        if seg.closed:
            continue
        data = seg.path.read_bytes()
        problem = check_header(data)
        if problem is not None:
            if torn_header(data):
                # Crash while creating the file: rewrite the header.
                _rewrite(seg.path, SEGMENT_HEADER)
                truncated += len(data)
                continue
            target = quarantine(d, seg.path)
            raise JournalCorruptError(str(seg.path), 0, problem, str(target))
        res = scan_frames(data, HEADER_LEN)
        if res.problem is not None:
            if classify_stop(data, res.good_end, res.problem):
                truncated += len(data) - res.good_end
                _truncate(seg.path, res.good_end)
            else:
                target = quarantine(d, seg.path)
                raise JournalCorruptError(str(seg.path), res.good_end, res.problem, str(target))
        if seg.number != last_no:
            _seal(d, seg.number)
            sealed.append(seg.number)
    segs = list_segments(d)
    if segs and not segs[-1].closed:
        return Recovered(segs[-1].number, segs[-1].path.stat().st_size, truncated, tuple(sealed))
    return Recovered(last_no + 1, 0, truncated, tuple(sealed))


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
    """

    def __init__(self, directory: str | Path, *, fsync: bool = True, dsync: bool = False) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        # O_DSYNC: each write() returns once its data is durable, so a group commit is ONE
        # syscall (no separate fdatasync). Only meaningful with fsync.
        self.dsync = dsync and fsync and hasattr(os, "O_DSYNC")
        self.segment = 0
        self._fd: int | None = None
        self._dirty = False

    def open(self, *, allow_quarantined: bool = False) -> Recovered:
        rec = recover(self.directory, allow_quarantined=allow_quarantined)
        self._open_segment(rec.segment)
        return rec

    @property
    def offset(self) -> int:
        """Current end of the open segment (after the header for a fresh one)."""
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    def _open_segment(self, number: int) -> None:
        path = self.directory / segment_name(number, closed=False)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_DSYNC if self.dsync else 0)
        fd = os.open(path, flags, 0o644)
        if os.fstat(fd).st_size == 0:
            _write_all(fd, SEGMENT_HEADER)
            if self.fsync:
                os.fsync(fd)
                fsync_dir(self.directory)
        self._fd = fd
        self.segment = number

    def rotate_to(self, number: int) -> None:
        """Seal the open segment (fsync, rename to .seg) and start segment ``number``."""
        assert self._fd is not None and number > self.segment
        if self.fsync:  # also with O_DSYNC: metadata (size) durable before the rename
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        _seal(self.directory, self.segment)
        self._open_segment(number)

    def write(self, parts: Sequence[tuple[int, bytes | bytearray]]) -> None:
        """Write framed bytes; a part for a higher segment number rotates first."""
        for number, data in parts:
            if number != self.segment:
                self.rotate_to(number)
            if data:
                assert self._fd is not None
                _write_all(self._fd, data)
                self._dirty = True

    def sync(self) -> None:
        """fdatasync the open segment if anything was written since the last sync."""
        if self._dirty and self.fsync and not self.dsync and self._fd is not None:
            os.fdatasync(self._fd)
        self._dirty = False

    def write_and_sync(self, parts: Sequence[tuple[int, bytes | bytearray]]) -> None:
        """One group commit: write every part, then one fdatasync."""
        self.write(parts)
        self.sync()

    def close(self, *, seal: bool = False) -> None:
        """Sync and close; with ``seal`` the open segment is closed for good (.seg)."""
        if self._fd is None:
            return
        if self.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        if seal:
            _seal(self.directory, self.segment)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
