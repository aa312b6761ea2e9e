"""Checkpoints of the offline (Rf) accounting state: files ``<dir>/rf-SSSSSSSSSSSS-OOOOOOOOOOOO.msgpack``.

The journal holds everything (each ACR's ``acct`` record carries the accounting session's
state after it, docs/journal-schema.md), so a restart could rebuild the Rf state by reading
the whole journal. A checkpoint bounds that read: the service's Rf state as it was at one
journal position, taken in one event-loop step (the service changes that state only in the
same step as it enqueues the records saying so), so the state at position P + the ``acct``
records after P = the state now. Recovery (``ChargingService.recover_offline``) loads the
newest readable checkpoint and reads the journal after its position.

Independent of the ledger's store snapshots: those hold balances and the idempotency cache
(the Rf state is not money and never in the store), are cut at their own positions, and
do not exist with the Redis store. A store snapshot taken while an Rf session is open loses
nothing: the Rf state comes from here and from the journal, never from it.

Format: one msgpack map ``{"v": 2, "position": [segment, offset], "open": [row, ...],
"closed": [[Session-Id, closed record], ...], "events": [[idem key, forget at], ...]}``;
``open`` in the session table's order (least recently active first), a row is
:func:`captured_row`; ``closed`` in the order they closed, each the service's own compact
record of it (:func:`pack_closed`, bytes, written as they are). Version 1 (``closed`` as rows
too) is still read. Written like the store's snapshots: temp file, fsync, rename once the
journal is durable up to ``position``, fsync the directory. The two newest are kept.

A closed session is kept ``[store] session_retention`` after its last record (300 s: ~300,000
of them at 1,000 calls/s) for what duplicate and late-record detection need: the record
numbers it saw, and what prices a late record (parties, deck, start, totals, account). Not
as a :class:`Session` (~1.3 KB with its Grant, seen set and strings, key and table entry
included) but as :func:`pack_closed` bytes (~0.4 KB in all), unpacked only when a record of
it arrives (:func:`closed_session`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

from charging.journal import Position
from charging.ledger.recovery import list_snapshots, prune_snapshots, snapshot_path
from charging.requests import SERVICE_UNIT, ServiceKind
from charging.sessions import Grant, Session
from charging.store.snapshot import publish, temp_path

VERSION = 2
_READS = (1, 2)  # versions read
KEEP = 2
_VALUE = {k: k.value for k in ServiceKind}  # (Enum.value is a slow descriptor: once per ACR)


class CheckpointError(Exception):
    """A checkpoint file that cannot be read (recovery falls back to an older one)."""


def session_row(s: Session) -> dict[str, Any]:
    """The state of an Rf session as an ``acct`` record's ``rf`` map carries it (plus what
    the caller adds): what rebuilding the session needs. Times are the service's epoch
    seconds as floats (msgpack float64: exact, so a rebuilt call is rated at exactly the same
    start)."""
    row: dict[str, Any] = {
        "id": s.id, "svc": _VALUE[s.service], "sub": s.subscriber, "a": s.origin,
        "b": s.destination, "host": s.peer_host, "realm": s.peer_realm, "deck": s.deck,
        "ctx": s.context, "started": s.started, "last": s.last_number,
        "tot": [[g.svc, g.used_total] for g in s.grants]}
    if s.account is not None:
        row["acct"] = s.account
    if s.counters is not None:
        row["ctr"] = s.counters
    return row


def session_of(row: dict[str, Any], currency: str | None) -> Session:
    """A session rebuilt from a :func:`session_row` (its ``seen`` / ``exp`` when present)."""
    s = Session(session_id=row["id"], account=row.get("acct"), balance=None, currency=currency,
                service=ServiceKind(row["svc"]), subscriber=row.get("sub"),
                destination=row.get("b"), origin=row.get("a"), peer_host=row.get("host") or "",
                peer_realm=row.get("realm") or "", deck=row["deck"], started=row["started"],
                expires=row.get("exp", 0.0), offline=True, context=row.get("ctx") or "")
    set_totals(s, row)
    s.last_number = row.get("last", 0)
    seen = row.get("seen")
    if seen and s.seen is not None:
        s.seen.update(seen)
    return s


def set_totals(s: Session, row: dict[str, Any]) -> None:
    """The session's usage counters (one per service, in order) and its RFC 7155 octet
    counters' state (``ctr``: absent in rows written before it was kept) as *row* says."""
    ctr = row.get("ctr")
    s.counters = None if ctr is None else list(ctr)
    grants = []
    for i, (svc, total) in enumerate(row.get("tot") or ()):
        service = ServiceKind(svc)
        g = Grant(-1 - i, service, SERVICE_UNIT[service])
        g.used_total = total
        grants.append(g)
    s.grants = grants


# A closed session's record: its "forget at" (little-endian float64: the table's expiry scan
# reads it without unpacking), then one msgpack array of _CLOSED_FIELDS ("a" None when it is
# the subscriber; "upto": every record number 0..upto was seen, -1 for none; "extra": the
# others seen, ascending -- a call numbered 0, 1, 2... keeps one int, not a set).
_FORGET = struct.Struct("<d")
_CLOSED_FIELDS = ("svc", "sub", "a", "b", "host", "realm", "deck", "ctx", "started", "last",
                  "tot", "acct", "upto", "extra", "ctr")  # ("ctr": not in older records)
_pack = msgpack.Packer(use_bin_type=True).pack


def pack_closed(s: Session) -> bytes:
    """The compact record of closed session *s* (forgotten at ``s.expires``)."""
    seen = s.seen or set()
    top = max(seen, default=-1)
    extra: list[int] = []
    if len(seen) == top + 1:  # 0..top, all of them (the usual call)
        upto = top
    else:
        upto = -1
        while upto + 1 in seen:
            upto += 1
        extra = sorted(n for n in seen if n > upto)
    sub = s.subscriber
    return _FORGET.pack(s.expires) + _pack([
        _VALUE[s.service], sub, None if s.origin == sub else s.origin, s.destination,
        s.peer_host, s.peer_realm, s.deck, s.context, s.started, s.last_number,
        [[g.svc, g.used_total] for g in s.grants], s.account, upto, extra, s.counters])


def closed_forget_at(record: bytes) -> float:
    """When the closed session of *record* is forgotten (epoch seconds)."""
    return _FORGET.unpack_from(record)[0]  # type: ignore[no-any-return]


def _closed_fields(record: bytes) -> list[Any]:
    return msgpack.unpackb(memoryview(record)[_FORGET.size:], raw=False)  # type: ignore[no-any-return]


def closed_saw(record: bytes, n: int) -> bool:
    """Did the closed session of *record* see record number *n*?"""
    f = _closed_fields(record)
    return 0 <= n <= f[12] or n in f[13]


def closed_row(sid: str, record: bytes) -> dict[str, Any]:
    """The :func:`captured_row` of the closed session *record* describes."""
    fields = _closed_fields(record)
    row = dict(zip(_CLOSED_FIELDS, fields, strict=False))
    if len(fields) < len(_CLOSED_FIELDS) - 1:
        raise ValueError(f"closed session record of {len(fields)} fields")
    upto, extra = row.pop("upto"), row.pop("extra")
    if row.get("ctr") is None:
        row.pop("ctr", None)
    if row["a"] is None:
        row["a"] = row["sub"]
    if row["acct"] is None:
        del row["acct"]
    row.update(id=sid, seen=[*range(upto + 1), *extra], exp=closed_forget_at(record))
    return row


def closed_session(sid: str, record: bytes, currency: str | None) -> Session:
    """The closed session *record* describes, as a :class:`Session` (a copy: changing it
    changes nothing until it is packed again)."""
    return session_of(closed_row(sid, record), currency)


def pack_closed_rows(rows: Iterable[dict[str, Any]],
                     currency: str | None) -> list[tuple[str, bytes]]:
    """(Session-Id, :func:`pack_closed`) of version-1 checkpoint rows."""
    return [(r["id"], pack_closed(session_of(r, currency))) for r in rows]


def path_for(directory: Path, pos: Position) -> Path:
    return snapshot_path(directory, pos, "rf")


def list_checkpoints(directory: Path) -> list[tuple[Position, Path]]:
    """Checkpoints in *directory*, newest first."""
    return list_snapshots(directory, "rf")


def captured_row(s: Session) -> dict[str, Any]:
    """A checkpoint's row of *s* as it is now: :func:`session_row` plus its record numbers
    and expiry."""
    row = session_row(s)
    row["seen"] = sorted(s.seen or ())
    row["exp"] = s.expires
    return row


class CheckpointWriter:
    """Writes a checkpoint of the sessions as they were at *pos* into a temp file, a few rows
    at a time (:meth:`step`, on the event loop between requests), then :meth:`finish` (fsync;
    off the loop) and :func:`publish_checkpoint` once the journal is durable up to *pos*, or
    :meth:`abort`.

    Copy-on-write: the writer takes only the lists of session objects at *pos* (C-speed
    copies); the service MUST call :meth:`preserve` before it changes a session while the
    writer runs, which keeps that session's row as it was at *pos* (copying every session
    at once held the loop ~1.3 us per session, 134 ms at 100k; one msgpack call over the
    whole state ~250 ms more)."""

    def __init__(self, directory: Path, pos: Position, open_: list[Session],
                 closed: list[tuple[str, bytes]], events: list[tuple[str, float]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.pos = pos
        self.tmp = temp_path(path_for(directory, pos))
        self._fh = open(self.tmp, "wb")  # noqa: SIM115 -- closed by finish()/abort()
        # the sessions (by id(): the writer holds them, so no id is reused) not written yet
        # and not changed since pos; rows kept by preserve() for those changed meanwhile
        self._untouched = set(map(id, open_))  # (closed records are bytes: immutable)
        self._kept: dict[int, dict[str, Any]] = {}
        self._parts = self._encode(msgpack.Packer(use_bin_type=True), open_, closed, events)

    def preserve(self, s: Session) -> None:
        """*s* is about to change: keep its row as it was at the checkpoint's position."""
        k = id(s)
        if k in self._untouched:
            self._untouched.discard(k)
            self._kept[k] = captured_row(s)

    def _row(self, s: Session) -> dict[str, Any]:
        k = id(s)
        if k in self._untouched:
            self._untouched.discard(k)
            return captured_row(s)
        return self._kept.pop(k)

    def _encode(self, pk: msgpack.Packer, open_: list[Session],
                closed: list[tuple[str, bytes]], events: list[tuple[str, float]]) -> Any:
        yield (pk.pack_map_header(5) + pk.pack("v") + pk.pack(VERSION) + pk.pack("position")
               + pk.pack([self.pos.segment, self.pos.offset]))
        yield pk.pack("events") + pk.pack_array_header(len(events))
        for k, t in events:
            yield pk.pack([k, t])
        yield pk.pack("open") + pk.pack_array_header(len(open_))
        for s in open_:
            yield pk.pack(self._row(s))
        yield pk.pack("closed") + pk.pack_array_header(len(closed))
        for sid, record in closed:
            yield pk.pack([sid, record])

    def step(self, n: int) -> bool:
        """Encode and write up to *n* more rows; True once everything is written."""
        out = []
        for part in self._parts:
            out.append(part)
            if len(out) >= n:
                self._fh.write(b"".join(out))
                return False
        self._fh.write(b"".join(out))
        return True

    def finish(self) -> None:
        """Flush and fsync the temp file (blocking: run it off the loop)."""
        fh = self._fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()

    def abort(self) -> None:
        self._fh.close()
        self.tmp.unlink(missing_ok=True)


def publish_checkpoint(tmp: Path, directory: Path, pos: Position) -> None:
    """Rename *tmp* into place (atomic, directory fsynced) and keep the :data:`KEEP` newest."""
    publish(tmp, path_for(directory, pos))
    prune_snapshots(directory, KEEP, "rf")  # also the temp files a crash left


def read(path: Path) -> dict[str, Any]:
    try:
        state = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    except (OSError, ValueError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{path}: cannot read Rf checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("v") not in _READS:
        raise CheckpointError(f"{path}: not a version-{VERSION} Rf checkpoint")
    return state


def closed_of(state: dict[str, Any], currency: str | None) -> list[tuple[str, bytes]]:
    """A checkpoint's closed sessions as (Session-Id, :func:`pack_closed`), in closing order."""
    closed = state.get("closed") or ()
    if state.get("v") == 1:
        return pack_closed_rows(closed, currency)
    return [(sid, bytes(record)) for sid, record in closed]


def read_newest(directory: Path) -> tuple[Position | None, dict[str, Any] | None, list[str]]:
    """(position, state) of the newest checkpoint that reads cleanly, or (None, None): read
    the whole journal; plus the problems met with newer ones."""
    problems: list[str] = []
    for pos, path in list_checkpoints(directory):
        try:
            return pos, read(path), problems
        except CheckpointError as exc:
            problems.append(str(exc))
    return None, None, problems
