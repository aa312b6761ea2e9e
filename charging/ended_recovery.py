"""Rebuild the ended online sessions' record (sessions.EndedSessions) from the journal at start.

The record says which Session-Ids ended within ``[store] session_retention``: a CCR-I for one
of them is a late one of a session that no longer exists (5002,
OnlineCharging._refused_initial), not a new session. It lives in memory; without this, a CCR-I
retransmitted across a restart for a session that ended just before it opened a NEW session
and charged again. Every end of an online session (CCR-T, failed UPDATE, Tcc, operator kill,
RAA 5002, an unencodable answer) journals an ``ro_end`` record with the Session-Id
(ServiceCore._ended_at, enqueued with the request's own records, so it is durable before the
answer leaves: invariant 3); this module reads the ones written within the retention before
*now* and adds them back, each kept until its end + retention (as if the server had never
stopped).

The same pass finds the online sessions that were still OPEN when the server stopped (a
``hold`` record journaled within the retention, no ``ro_end`` of that session after it) and hands back
each one's tag (Session.tag, read from its op keys ``ro:<Session-Id>:<n>:<slice>~<tag>:<op>``)
until its hold expires: a CCR-I of one retransmitted after the restart (its answer was lost)
then draws that tag again (ServiceCore._new_tag, both twins), so its reserve has the
original's key and replays it -- one hold, the original grant -- instead of placing a second
hold on the same reservation until the session's commit. A CCR-U or CCR-T of such a session
still gets 5002 (its state was in memory only).

Only the tail of the journal is read: the segments from the newest one whose first record is
not newer than ``now - retention`` (records are appended in time order), and of each record
only the fields of :data:`ENDED_FIELDS` (charging/journal/fields.py). Call once, before serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from charging.journal import JournalReader, Position
from charging.journal.framing import FRAME_HEAD_LEN, HEADER_LEN
from charging.sessions import EndedSessions

#: The record type an ended online session writes (docs/journal-schema.md).
END_TYPE = "ro_end"
# (not ``holds``: a list of maps, it more than doubled the read time per record)
ENDED_FIELDS = ("type", "ts", "session", "idem")


@dataclass(frozen=True, slots=True)
class EndedRecovery:
    """What :func:`recover_ended` did: where it started, records read, ids kept."""

    start: Position | None
    records: int
    ended: int
    open_tags: int = 0  # sessions open at the stop whose tags were handed back


def recover_ended(ended: EndedSessions, journal_dir: str | Path, *, now: float,
                  retention: float,
                  open_tags: dict[str, tuple[str, float]] | None = None,
                  hold_ttl: float = float("inf")) -> EndedRecovery:
    """Add to *ended* every online session that ended within *retention* seconds before
    *now*, by the ``ro_end`` records of the journal in *journal_dir*; each is kept until its
    end + *retention*. Nothing is read when *retention* <= 0 (not remembered).

    *open_tags* (ServiceCore._retry_tags): gets ``Session-Id -> (tag, until)`` for each
    session still open at the stop (a ``hold`` record with its tag, no ``ro_end`` of that tag
    after it), *until* being its last hold + the lesser of *retention* (the store forgets the
    key) and *hold_ttl* (ServiceConfig.hold_ttl: the hold expires); only those not past it
    at *now*."""
    if retention <= 0:
        return EndedRecovery(None, 0, 0)
    since_us = int((now - retention) * 1_000_000)
    reader = JournalReader(journal_dir)
    start = _start(reader, since_us)
    found: dict[str, int] = {}  # Session-Id -> its last end (µs), in end order
    live: dict[str, tuple[str, int]] = {}  # Session-Id -> (tag, until µs): held, not ended
    keep_us = int(min(retention, hold_ttl) * 1_000_000)
    records = 0
    for chunk in reader.chunks(start, fields=ENDED_FIELDS):
        for rec in chunk.records:
            records += 1
            kind = rec.get("type")
            if kind != END_TYPE and kind != "hold":
                continue
            ts = rec.get("ts")
            sid = rec.get("session")
            if not isinstance(ts, int) or ts < since_us or not isinstance(sid, str):
                continue
            tag = _tag_of(rec.get("idem"), sid)
            if kind == END_TYPE:
                found.pop(sid, None)  # (ended again: to the end, end order)
                found[sid] = ts
                if sid in live and (tag is None or live[sid][0] == tag):
                    del live[sid]
            elif tag is not None:
                live[sid] = (tag, ts + keep_us)
    for sid, ts in found.items():
        ended.add(sid, ts / 1_000_000 + retention)
    ended.forget(now)
    kept = 0
    if open_tags is not None:
        for sid, (tag, until_us) in live.items():
            if until_us / 1_000_000 > now:
                open_tags[sid] = (tag, until_us / 1_000_000)
                kept += 1
    return EndedRecovery(start, records, len(ended), kept)


def _tag_of(idem: Any, sid: str) -> str | None:
    """The session tag (``~`` + hex) in an online session's op key or ``ro_end`` key
    (``ro:<sid>:<n>:<slice>~<tag>:<op>``, ``…:rel:<grant>~<tag>``, ``ro:<sid>:end:<n>~<tag>``;
    docs/journal-schema.md), None for a key without one (an EVENT's slice)."""
    prefix = f"ro:{sid}:"
    if not isinstance(idem, str) or not idem.startswith(prefix):
        return None
    rest = idem[len(prefix):]
    if "~" not in rest:
        return None
    tag = rest.rsplit("~", 1)[1].split(":", 1)[0]
    return f"~{tag}" if tag else None


def _start(reader: JournalReader, since_us: int) -> Position | None:
    """Where to read from: the start of the newest segment whose first record was written
    at or before *since_us* (every older segment ends before it), None: the journal's start."""
    for seg in reversed(reader.segments()):
        ts = _first_ts(seg.path)
        if ts is not None and ts <= since_us:
            return Position(seg.number, HEADER_LEN)
    return None


def _first_ts(path: Path) -> int | None:
    """``ts`` of the segment's first record; None when it cannot be read (empty, being
    created, sealed meanwhile, damaged: the caller reads on, the reader checks it)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_LEN + FRAME_HEAD_LEN)
            if len(head) < HEADER_LEN + FRAME_HEAD_LEN or head[HEADER_LEN] != 0xCE:
                return None
            size = int.from_bytes(head[HEADER_LEN + 1:HEADER_LEN + 5], "big")
            if size > 16 * 1024 * 1024:
                return None
            payload = fh.read(size)
        rec: Any = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return None
    ts = rec.get("ts") if isinstance(rec, dict) else None
    return ts if isinstance(ts, int) else None
