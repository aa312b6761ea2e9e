"""Journal contents in a form two runs of the same traffic can be compared by (the
fast-path/Python-path and sync/awaited parity tests)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import msgpack

from charging.journal import JournalReader


def records_without_ids(directory: Path) -> list[bytes]:
    """Every record in the journal at *directory* except account records, msgpack-encoded with
    its ``id`` blanked (ids are per-node sequence numbers: the rest must be byte-equal)."""
    out = []
    for _pos, rec in JournalReader(directory).iter_from(None):
        rec = dict(rec)
        if rec.get("type") == "account":
            continue
        rec["id"] = ""
        out.append(msgpack.packb(rec))
    return out


def same_tags(svc: Any, start: int = 0x1000) -> None:
    """Make *svc* tag its online sessions (Session.tag, in every op key of a session) from
    the counter value *start* on, so two runs of the same traffic build the same keys (a
    service counts from the clock at start: unique across restarts). Call before its first
    request; the compiled twin reads the counter again (its config is a new object)."""
    svc._tags = itertools.count(start)
    svc.config = dataclasses.replace(svc.config)
