"""The crash-safe journal: append-only, checksummed, group-committed msgpack records.

Public API (see docs/journal-schema.md for the records and README "Journal" for operations)::

    journal = await Journal.open(data_dir / "journal", segment_bytes=..., fsync=True)
    pos = await journal.append(record)            # durable when it returns
    await journal.close()

    for pos, rec in JournalReader(dir).iter_from(checkpoint): ...
    for chunk in JournalReader(dir).chunks(checkpoint): ...   # fast path, one per segment
"""

from charging.journal.reader import Chunk, JournalReader
from charging.journal.segments import (
    START,
    JournalCorruptError,
    JournalError,
    Position,
    list_segments,
    recover,
)
from charging.journal.writer import Journal, SyncJournal

__all__ = [
    "START",
    "Chunk",
    "Journal",
    "JournalCorruptError",
    "JournalError",
    "JournalReader",
    "Position",
    "SyncJournal",
    "list_segments",
    "recover",
]
