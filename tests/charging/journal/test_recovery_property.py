"""Recovery after a crash at any byte: what survives is exactly a prefix of what was written."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from charging.journal import JournalReader, SyncJournal, list_segments


def _write(d: Path, n: int) -> list[bytes]:
    j = SyncJournal(d, fsync=False)
    recs = [{"v": 1, "type": "rated", "idem": f"k{i}", "pad": "x" * (i % 17)} for i in range(n)]
    j.append_many(recs)
    j.close()
    return [r["idem"] for r in recs]  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=25), st.data())
def test_any_truncation_recovers_a_prefix(n: int, data: st.DataObject) -> None:
    d = Path(tempfile.mkdtemp())
    try:
        keys = _write(d, n)
        seg = list_segments(d)[-1].path
        size = seg.stat().st_size
        cut = data.draw(st.integers(min_value=0, max_value=size), label="cut")
        zeros = data.draw(st.integers(min_value=0, max_value=64), label="zero tail")
        with open(seg, "r+b") as fh:  # a crash: the unsynced tail is lost or zero-filled
            fh.truncate(cut)
            fh.seek(cut)
            fh.write(bytes(zeros))
        j = SyncJournal(d, fsync=False)  # recovery must not raise: this is a torn tail
        got = [r["idem"] for _, r in JournalReader(d).iter_from()]
        assert got == keys[: len(got)]
        j.append({"v": 1, "type": "rated", "idem": "after"})
        j.close()
        got2 = [r["idem"] for _, r in JournalReader(d).iter_from()]
        assert got2 == got + ["after"]
    finally:
        shutil.rmtree(d, ignore_errors=True)
