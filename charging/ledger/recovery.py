"""Ledger recovery: snapshots of the embedded store, journal replay, Redis pending ops.

Embedded store (the journal is its write-ahead log):
    newest readable snapshot -> ``store.restore`` -> every journal record after the snapshot's
    position re-applied with ``store.apply_record`` (idempotent by idem key) or, for
    ``account`` records, ``store.create_account_sync``.

Redis store (the op runs in Redis *before* the journal append):
    ``store.pending_ops()`` lists ops Redis applied whose journaling was never confirmed; the
    ones the journal lacks (by idem key, searched after the confirmed checkpoint that the
    ledger keeps in <journal>/redis-confirmed.json) are journaled now,
    then all are confirmed with ``store.confirm_journaled``.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from charging.journal import JournalReader, Position
from charging.journal.fields import REPLAY_FIELDS
from charging.money import parse_amount
from charging.store.base import AccountKind, BalanceKind, BalanceSpec

_log = logging.getLogger("icx.ledger")

SNAPSHOT_RE = re.compile(r"^snapshot-(\d{12})-(\d{12})\.msgpack$")
KEEP_SNAPSHOTS = 2
# a snapshot temp file this old belongs to a write that will never finish
STALE_TEMP_SECONDS = 3600.0


def snapshot_path(directory: Path, pos: Position, kind: str = "snapshot") -> Path:
    """The file of the *kind* snapshot taken at journal position *pos* (``kind``: "snapshot"
    for the store's, "rf" for the open accounting sessions' checkpoints)."""
    return directory / f"{kind}-{pos.segment:012d}-{pos.offset:012d}.msgpack"


def list_snapshots(directory: Path, kind: str = "snapshot") -> list[tuple[Position, Path]]:
    """*kind* snapshots in ``directory``, newest first."""
    pattern = SNAPSHOT_RE if kind == "snapshot" else re.compile(
        rf"^{re.escape(kind)}-(\d{{12}})-(\d{{12}})\.msgpack$")
    out = []
    if directory.is_dir():
        for name in os.listdir(directory):
            m = pattern.match(name)
            if m:
                out.append((Position(int(m.group(1)), int(m.group(2))), directory / name))
    out.sort(reverse=True)
    return out


def prune_snapshots(directory: Path, keep: int = KEEP_SNAPSHOTS, kind: str = "snapshot") -> None:
    """Keep the *keep* newest *kind* snapshots; also remove temp files an interrupted write
    left (a process killed while its snapshot child was writing) once they are an hour old."""
    for _pos, path in list_snapshots(directory, kind)[keep:]:
        path.unlink(missing_ok=True)
    stale = time.time() - STALE_TEMP_SECONDS
    for tmp in directory.glob(f".{kind}-*.tmp-*"):
        try:
            if tmp.stat().st_mtime < stale:
                tmp.unlink(missing_ok=True)
        except OSError:
            pass


def restore_newest(store: Any, directory: Path) -> tuple[Position | None, list[str]]:
    """Restore the newest snapshot that reads cleanly; return its position (None: none) and
    the problems met with newer ones (a damaged snapshot falls back to the previous one, or to
    a full replay -- the journal is complete, so nothing is lost, it only takes longer)."""
    problems = []
    for pos, path in list_snapshots(directory):
        try:
            got = store.restore(path)
        except Exception as exc:  # noqa: BLE001 -- any unreadable snapshot: fall back
            problems.append(f"{path}: {exc}")
            continue
        if isinstance(got, list | tuple) and len(got) == 2:
            return Position(int(got[0]), int(got[1])), problems
        return pos, problems
    return None, problems


def spec_from_record(b: dict[str, Any]) -> BalanceSpec:
    kind = BalanceKind(b["kind"])
    money = kind is BalanceKind.MONEY

    def units(v: Any) -> int:
        if v is None:
            return 0
        return parse_amount(v) if money else int(v)

    exp = b.get("expires")
    low = b.get("low_threshold")
    return BalanceSpec(id=b["id"], kind=kind, currency=b.get("currency"),
                       amount=units(b.get("amount")), credit_limit=units(b.get("credit_limit")),
                       priority=int(b.get("priority", 0)),
                       expires_at=None if exp is None else exp / 1_000_000,
                       low_threshold=None if low is None else units(low))


def apply_account_record(store: Any, rec: dict[str, Any]) -> None:
    specs = [spec_from_record(b) for b in rec.get("balances", [])]
    store.create_account_sync(rec["account"], AccountKind(rec["kind"]), specs,
                              list(rec.get("identities", [])))


PROGRESS_SECONDS = 2.0


def replay(store: Any, reader: JournalReader, after: Position | None) -> tuple[int, Position]:
    """Re-apply every record after ``after`` to the embedded store; return (applied, end).

    A long replay (minutes of traffic since the last snapshot) says how far it got every
    ``PROGRESS_SECONDS`` on the ``icx.ledger`` logger, so a starting server is not taken for a
    hung one."""
    applied = seen = 0
    end = after or Position(0, 0)
    t0 = last = time.monotonic()
    # Replay builds the idempotency cache: millions of long-lived tuples the cyclic GC would
    # scan again and again (measured: 23 -> 14 us per record replayed). They hold no cycles,
    # so the collector is paused until the journal is read.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in reader.chunks(after, fields=REPLAY_FIELDS):
            for rec in chunk.records:
                if rec.get("type") == "account":
                    apply_account_record(store, rec)
                    applied += 1
                elif rec.get("balance_effects") or rec.get("holds"):
                    if store.apply_record(rec):
                        applied += 1
            end = chunk.end
            seen += len(chunk.records)
            now = time.monotonic()
            if now - last >= PROGRESS_SECONDS:
                last = now
                _log.info("replaying the journal: %d records in %.1f s (%.0f/s), at %s",
                          seen, now - t0, seen / (now - t0), end)
    finally:
        if was_enabled:
            gc.enable()
    return applied, end


def keys_after(reader: JournalReader, checkpoint: Position | None) -> set[str]:
    """Idem keys of the records after ``checkpoint`` (Redis recovery: every op journaled
    before the ledger's confirmed checkpoint was confirmed, so an unconfirmed op that the
    journal has lies after it; None scans the whole journal)."""
    keys: set[str] = set()
    for chunk in reader.chunks(checkpoint):
        keys.update(str(r.get("idem")) for r in chunk.records if isinstance(r, dict))
    return keys


def op_name_of(result: Any) -> str:
    """Best guess of the op that produced a pending result (it is journaled with it)."""
    if any(h.amount > 0 for h in result.holds):
        return "reserve"
    if any(e.amount < 0 for e in result.effects):
        return "debit" if not result.holds else "commit"
    if result.effects:
        return "topup"
    return "release"


def account_of(result: Any) -> str | None:
    for item in (*result.effects, *result.holds):
        return str(item.account)
    return None


def pending_pairs(results: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for r in results:
        acct = account_of(r)
        if acct is not None:
            out.append((acct, r.key))
    return out
