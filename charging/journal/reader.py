"""Reading the journal from a checkpoint: :class:`JournalReader`.

Two speeds:

* :meth:`JournalReader.iter_from` yields ``(Position, record)`` one by one (simple);
* :meth:`JournalReader.chunks` yields one :class:`Chunk` per segment (or the part of it after
  the checkpoint): the records as a list decoded by a single ``msgpack.Unpacker`` pass (C
  speed) after the checksums were verified in bulk, plus every record's end offset. With
  ``raw=True`` the chunk carries the payload bytes (``memoryview``) instead of objects.
  Settlement streams millions of records through this and checkpoints per chunk.

Closed segments must check completely: a bad frame raises :class:`JournalCorruptError` (the
reader never skips a record). In the open segment the reader stops quietly at the first
incomplete frame: that is a group commit still being written.

The open segment may be preallocated (zeros after its records up to the segment size): it
is read in steps and the read stops once the frames have provably ended (the scan of what
was read stopped at a frame that is not cut by the read's end, and a whole zero block
followed), so a reader polling the open segment reads its data, not 64 MiB of zeros.

Durability: records in the open segment may not be fsynced yet (a crash could still truncate
them). Batch consumers that must never see a record twice or lose one (settlement) read
closed segments only (``include_open=False``), stop at ``Journal.durable`` in-process, or
read with ``sync_open=True``: the open segment is ``fdatasync``'ed after it was read, so
every record read is on disk before the caller's checkpoint covers it.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from charging.journal.fields import PICK_FRAMES
from charging.journal.framing import FRAME_HEAD_LEN, HEADER_LEN, check_header, scan_frames
from charging.journal.segments import (
    START,
    JournalCorruptError,
    Position,
    SegmentInfo,
    list_segments,
)


def _scanner() -> Any:
    """The frame scanner: the Cython twin when built and enabled, else the pure reference."""
    import cython_ext

    mod = cython_ext.load("journal_scan")
    return mod.scan_frames if mod is not None else scan_frames


@dataclass(slots=True)
class Chunk:
    """Records of one segment after a checkpoint.

    ``records[i]`` ends at ``ends[i]`` (its position is ``Position(segment, ends[i])``);
    ``end`` is the checkpoint after the whole chunk; ``closed`` tells whether the segment is
    closed (immutable).
    """

    segment: int
    start: int
    ends: list[int]
    records: list[Any]
    closed: bool

    @property
    def end(self) -> Position:
        return Position(self.segment, self.ends[-1] if self.ends else self.start)

    def positions(self) -> Iterator[Position]:
        seg = self.segment
        return (Position(seg, e) for e in self.ends)


class JournalReader:
    """Reads the journal in ``directory``. Cheap to create; holds no file open."""

    def __init__(self, directory: str | Path, *, include_open: bool = True,
                 sync_open: bool = False) -> None:
        self.directory = Path(directory)
        self.include_open = include_open
        self.sync_open = sync_open
        self._scan = _scanner()

    def segments(self) -> list[SegmentInfo]:
        segs = list_segments(self.directory)
        return segs if self.include_open else [s for s in segs if s.closed]

    def chunks(self, checkpoint: Position | None = None, *, raw: bool = False,
               fields: tuple[str, ...] | None = None) -> Iterator[Chunk]:
        """Yield the records after ``checkpoint`` (default: the beginning), one chunk per
        segment. Raises JournalCorruptError on a bad frame in a closed segment.

        *fields*: the caller reads only these top-level fields; records may then carry only
        them (the compiled reader decodes nothing else, charging/journal/fields.py)."""
        cp = checkpoint or START
        for seg in self.segments():
            if seg.number < cp.segment:
                continue
            start = cp.offset if seg.number == cp.segment else 0
            chunk = self._read_segment(seg, max(start, HEADER_LEN), raw, fields)
            if chunk is not None and chunk.ends:
                yield chunk

    def iter_from(self, checkpoint: Position | None = None) -> Iterator[tuple[Position, Any]]:
        """Yield ``(position, record)`` for every record after ``checkpoint``."""
        for chunk in self.chunks(checkpoint):
            seg = chunk.segment
            for end, rec in zip(chunk.ends, chunk.records, strict=True):
                yield Position(seg, end), rec

    def iter_raw(self, checkpoint: Position | None = None) -> Iterator[tuple[Position, memoryview]]:
        """Like iter_from but yields each record's msgpack payload without decoding it."""
        for chunk in self.chunks(checkpoint, raw=True):
            seg = chunk.segment
            for end, payload in zip(chunk.ends, chunk.records, strict=True):
                yield Position(seg, end), payload

    def _read_segment(self, seg: SegmentInfo, start: int, raw: bool,
                      fields: tuple[str, ...] | None = None) -> Chunk | None:
        path = seg.path
        closed = seg.closed
        try:
            data = (path.read_bytes() if closed
                    else read_open_segment(path, self._scan, sync=self.sync_open))
        except FileNotFoundError:
            if closed:
                raise
            # sealed (renamed) while we listed: read it under its closed name
            path = path.with_suffix(".seg")
            closed = True
            data = path.read_bytes()
        problem = check_header(data)
        if problem is not None:
            if not closed and len(data) < HEADER_LEN:
                return None  # being created
            raise JournalCorruptError(str(path), 0, problem)
        if start > len(data):
            raise ValueError(f"checkpoint {seg.number}:{start} is past the end of {path}")
        good_end, ends, problem = self._scan(data, start)
        if problem is not None and closed:
            raise JournalCorruptError(str(path), good_end, problem)
        if not ends:
            return Chunk(seg.number, start, [], [], closed)
        mv = memoryview(data)
        if raw:
            records: list[Any] = []
            prev = start
            for e in ends:
                records.append(mv[prev + FRAME_HEAD_LEN:e])
                prev = e
        else:
            # Decoding creates millions of containers; the cyclic GC would rescan them again
            # and again (msgpack docs: disable it around bulk unpacking). Records hold no cycles.
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                records = self._decode(mv, start, good_end, ends, fields)
            finally:
                if was_enabled:
                    gc.enable()
        return Chunk(seg.number, start, ends, records, closed)

    @staticmethod
    def _decode(mv: memoryview, start: int, good_end: int, ends: list[int],
                fields: tuple[str, ...] | None) -> list[Any]:
        if fields is not None and PICK_FRAMES is not None:
            try:
                return PICK_FRAMES(mv, ends, start, FRAME_HEAD_LEN, fields)
            except ValueError:
                pass  # something it does not read: msgpack decodes the whole chunk
        unpacker = msgpack.Unpacker(None, raw=False, max_buffer_size=len(mv) + 1)
        unpacker.feed(mv[start:good_end])
        it = iter(unpacker)
        return [rec for _len, _crc, rec in zip(it, it, it, strict=False)]


READ_STEP = 1 << 20
_TRUNCATED = ("truncated frame header", "truncated record")


def read_open_segment(path: Path, scan: Callable[[bytes, int], Any] | None = None, *,
                      sync: bool = False) -> bytes:
    """The bytes of an open segment a reader needs: all of it, minus a preallocated zero tail.

    Every reader of an open segment reads it through this (``JournalReader``, the compiled
    settlement and reconciliation paths); *scan* is a ``scan_frames`` (default: the compiled
    twin when built and enabled, else the pure reference).

    Reads :data:`READ_STEP` blocks; after a block that is all zeros, scans the frames read so
    far (resuming where the last scan stopped): if the scan stops at a frame that the read's
    end does not cut ("bad frame header" / "checksum mismatch": here, the first zero header),
    a scan of the whole file would stop at the very same place -- so the rest is never read.
    A frame cut by the read's end ("truncated ...": possibly a record with a long zero run)
    makes it read on. Exact for readers, which stop quietly at the first frame that does
    not check in the open segment; recovery and verify, which must look at everything after
    that frame, read the whole file.

    ``sync``: ``fdatasync`` the file once it was read, so all that was read is durable on
    return (the writer may not have synced its last group yet; Linux syncs every dirty page
    of the file, whoever wrote it).
    """
    with open(path, "rb") as fh:
        data = _read_open(fh, scan or _scanner())
        if sync:
            os.fdatasync(fh.fileno())
    return data


def _read_open(fh: BinaryIO, scan: Callable[[bytes, int], Any]) -> bytes:
    size = os.fstat(fh.fileno()).st_size
    first = fh.read(2 * READ_STEP)
    if len(first) >= size or len(first) < HEADER_LEN:
        return first + fh.read() if len(first) < size else first
    buf = bytearray(first)
    pos = HEADER_LEN
    while True:
        block = fh.read(READ_STEP)
        if not block:
            return bytes(buf)
        buf += block
        if block.count(0) == len(block):
            good_end, _ends, problem = scan(buf, pos)
            if problem is not None and problem not in _TRUNCATED:
                return bytes(buf)
            pos = good_end
