"""`icx settle`'s progress bar counts the bytes left to read: an open segment is preallocated
(records, then zeros up to ``segment_bytes``), so its file size said 64 MiB for a journal
holding a few KB, and the bar stood still at a few per cent until the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from settlement.source import JournalSource
from tests.settlement.test_open_segment_tail import _preallocated_journal


def test_the_bytes_left_to_settle_count_the_open_segment_without_its_zeros(tmp_path: Path
                                                                           ) -> None:
    """`icx settle`'s progress bar total (JournalSource.total_bytes): the records, not the
    48 MiB file; from a checkpoint inside the segment, what follows it."""
    seg = _preallocated_journal(tmp_path)
    data = seg.read_bytes().rstrip(b"\0")
    src = JournalSource(tmp_path)
    assert src.total_bytes() == len(data)
    assert src.total_bytes([1, 1000]) == len(data) - 1000


@pytest.mark.parametrize(("body", "zeros"), [
    (b"", 0), (b"", 3 << 20), (b"\x01", 0), (b"abc\0\0x", (1 << 20) + 5),
    (b"y" * ((1 << 20) + 7), 2 << 20), (b"z\0" * 700_000, 1 << 20)])
def test_file_data_end_is_the_size_without_the_zero_tail(tmp_path: Path, body: bytes,
                                                        zeros: int) -> None:
    from charging.journal.framing import data_end, file_data_end

    f = tmp_path / "seg"
    f.write_bytes(body + bytes(zeros))
    assert file_data_end(f) == len(body.rstrip(b"\0")) == data_end(f.read_bytes(), 0)
    assert file_data_end(tmp_path / "missing") == 0
