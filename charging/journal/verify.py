"""Whole-journal checks and statistics (``icx journal verify`` / ``stats``).

:func:`verify_segment` checks one segment completely: header, every frame's length and
checksum, and that every payload decodes to a schema map (``v``, ``type``, ``idem``). A closed
segment must check to its last byte. The open segment may end in a torn tail (a crash during
a group commit): reported as a note, because the next open truncates it and nobody was
answered for those bytes. The open segment may also be preallocated: its records are followed
by zeros up to the segment size, which is free space, not a finding (``size`` counts the data,
``allocated`` the file). A closed segment never ends in zeros: there they are a problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from charging.journal.framing import HEADER_LEN, check_header, classify_stop, data_end
from charging.journal.segments import SegmentInfo, list_segments, quarantined


@dataclass(slots=True)
class SegmentReport:
    path: Path
    number: int
    closed: bool
    size: int = 0  # bytes of data (header + frames; a torn tail counts, a zero tail does not)
    allocated: int = 0  # the file's size
    records: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    types: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # "file:offset: what"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_segment(seg: SegmentInfo) -> SegmentReport:
    rep = SegmentReport(seg.path, seg.number, seg.closed)
    try:
        data = seg.path.read_bytes()
    except FileNotFoundError:
        if seg.closed:
            rep.problems.append(f"{seg.path}:0: segment vanished while verifying")
        return rep  # the open segment was sealed meanwhile; its .seg is listed next time
    rep.size = rep.allocated = len(data)
    problem = check_header(data)
    if problem is not None:
        rep.problems.append(f"{seg.path}:0: {problem}")
        return rep
    good_end, ends, problem = _scan()(data, HEADER_LEN)
    if problem is not None:
        torn = classify_stop(data, good_end, problem)
        if torn and not seg.closed:
            rep.size = end = data_end(data, good_end)
            if end > good_end:
                rep.notes.append(f"{seg.path}:{good_end}: torn tail ({end - good_end} bytes, "
                                 f"{problem}); removed when the journal is next opened")
        else:
            rep.problems.append(f"{seg.path}:{good_end}: {problem}")
    mv = memoryview(data)
    prev = HEADER_LEN
    for end in ends:
        start = prev + 10
        prev = end
        try:
            rec = msgpack.unpackb(mv[start:end], raw=False)
        except Exception as exc:  # noqa: BLE001 -- any decode failure is a finding
            rep.problems.append(f"{seg.path}:{start - 10}: record does not decode: {exc}")
            continue
        what = _schema_problem(rec)
        if what:
            rep.problems.append(f"{seg.path}:{start - 10}: {what}")
            continue
        rep.records += 1
        rep.types[str(rec["type"])] += 1
        ts = rec.get("ts")
        if isinstance(ts, int):
            rep.first_ts = ts if rep.first_ts is None else min(rep.first_ts, ts)
            rep.last_ts = ts if rep.last_ts is None else max(rep.last_ts, ts)
    return rep


def _scan() -> Any:
    from charging.journal.reader import _scanner

    return _scanner()


def _schema_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"record is a {type(rec).__name__}, not a map"
    if not isinstance(rec.get("v"), int):
        return "record without integer schema version 'v'"
    if rec["v"] > 1:
        return f"record schema version {rec['v']} is newer than this reader (1)"
    if not isinstance(rec.get("type"), str):
        return "record without 'type'"
    if not isinstance(rec.get("idem"), str):
        return "record without 'idem' key"
    return None


def verify_journal(directory: str | Path) -> Iterator[SegmentReport | str]:
    """Yield a report per segment, then a str for each journal-level problem (quarantined
    files, gaps in the segment numbering, a closed segment after an open one)."""
    d = Path(directory)
    segs = list_segments(d)
    for seg in segs:
        yield verify_segment(seg)
    for q in quarantined(d):
        yield f"{q}:0: quarantined segment (its records are not in the journal)"
    numbers = [s.number for s in segs]
    for a, b in zip(numbers, numbers[1:], strict=False):
        if b > a + 1:
            yield f"{d}:0: segments {a + 1}..{b - 1} are missing"
    opened = [s for s in segs if not s.closed]
    if len(opened) > 1 or (opened and opened[-1].number != numbers[-1]):
        yield f"{d}:0: an open segment is not the newest (sealed on next open)"
