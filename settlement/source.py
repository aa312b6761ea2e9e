"""The journal as a settlement record source, resumable from a checkpoint.

:class:`JournalSource` reads ``charging.journal`` segments after a checkpoint (a
``[segment, offset]`` pair, JSON-friendly) and feeds an :class:`~settlement.aggregate.Aggregator`.
Two paths, same result (tests/settlement/test_fastagg_parity.py):

* compiled (``cython_ext.settle_agg`` via :mod:`settlement.fastagg`): walks the raw segment
  bytes, verifies every frame's CRC-32, and aggregates the common records without building
  Python objects; the uncommon ones (legs, refunds, prepaid accounts, out-of-period) are
  decoded with msgpack and given to the pure aggregator;
* pure: ``JournalReader.chunks()`` (one msgpack pass per segment) into the pure aggregator.

Safe next to a live server (no lock: readers never change the journal): closed segments are
immutable; the open segment is read up to its last complete, checksum-valid record (a group
commit still being written is no corruption there) and synced by the reader after it was read,
so the checkpoint never covers a record an OS crash could still take back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charging.journal import JournalReader, Position
from charging.journal.framing import file_data_end
from settlement.aggregate import Aggregator
from settlement.run import Progress


def _position(checkpoint: Any) -> Position | None:
    if not checkpoint:
        return None
    seg, off = checkpoint
    return Position(int(seg), int(off))


class JournalSource:
    """Records of the journal in *directory*; ``fast=None`` picks the compiled path if built."""

    def __init__(self, directory: str | Path, *, fast: bool | None = None) -> None:
        self.directory = Path(directory)
        from settlement import fastagg

        self.fast = fastagg.available() if fast is None else fast

    def read(self, checkpoint: Any, agg: Aggregator, progress: Progress | None) -> Any:
        """Feed every record after *checkpoint* into *agg*; return the new checkpoint.
        *progress* is called with the number of journal bytes consumed."""
        cp = _position(checkpoint)
        if self.fast:
            from settlement import fastagg

            new = fastagg.read_journal(self.directory, cp, agg, progress)
        else:
            new = cp
            for chunk in JournalReader(self.directory, sync_open=True).chunks(cp):
                agg.add_many(chunk.records)
                new = chunk.end
                if progress:
                    progress(chunk.ends[-1] - chunk.start)
        return [new.segment, new.offset] if new is not None else checkpoint

    def total_bytes(self, checkpoint: Any = None) -> int:
        """Bytes left to read after *checkpoint* (for a progress bar)."""
        cp = _position(checkpoint)
        total = 0
        for seg in JournalReader(self.directory).segments():
            if cp is not None and seg.number < cp.segment:
                continue
            # an open segment is preallocated with zeros: count only what it holds (a closed
            # one was cut to its data when sealed)
            size = file_data_end(seg.path) if not seg.closed else (
                seg.path.stat().st_size if seg.path.exists() else 0)
            total += size - (cp.offset if cp is not None and seg.number == cp.segment else 0)
        return max(total, 0)
