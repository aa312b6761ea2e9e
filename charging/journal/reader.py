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

Durability: records in the open segment may not be fsynced yet (a crash could still truncate
them). Batch consumers that must never see a record twice or lose one (settlement) read
closed segments only (``include_open=False``) or stop at ``Journal.durable`` in-process.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

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

    def __init__(self, directory: str | Path, *, include_open: bool = True) -> None:
        self.directory = Path(directory)
        self.include_open = include_open
        self._scan = _scanner()

    def segments(self) -> list[SegmentInfo]:
        segs = list_segments(self.directory)
        return segs if self.include_open else [s for s in segs if s.closed]

    def chunks(self, checkpoint: Position | None = None, *, raw: bool = False) -> Iterator[Chunk]:
        """Yield the records after ``checkpoint`` (default: the beginning), one chunk per
        segment. Raises JournalCorruptError on a bad frame in a closed segment."""
        cp = checkpoint or START
        for seg in self.segments():
            if seg.number < cp.segment:
                continue
            start = cp.offset if seg.number == cp.segment else 0
            chunk = self._read_segment(seg, max(start, HEADER_LEN), raw)
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

    def _read_segment(self, seg: SegmentInfo, start: int, raw: bool) -> Chunk | None:
        path = seg.path
        closed = seg.closed
        try:
            data = path.read_bytes()
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
            unpacker = msgpack.Unpacker(None, raw=False, max_buffer_size=len(data) + 1)
            unpacker.feed(mv[start:good_end])
            it = iter(unpacker)
            # Decoding creates millions of containers; the cyclic GC would rescan them again
            # and again (msgpack docs: disable it around bulk unpacking). Records hold no cycles.
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                records = [rec for _len, _crc, rec in zip(it, it, it, strict=False)]
            finally:
                if was_enabled:
                    gc.enable()
        return Chunk(seg.number, start, ends, records, closed)
