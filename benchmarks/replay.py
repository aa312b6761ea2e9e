"""Crash-recovery benchmark: how fast the embedded store replays the journal after a crash.

Prints ONE JSON line. ``value`` is journal records/s that ``recovery.replay`` (what ``icx
serve`` runs on start after a crash: read every record after the newest snapshot and
re-apply it to the store) gets through. The journal holds the records an Ro load writes, in
the shapes and fields ``icx serve`` writes for I/U/U/T voice sessions (a reservation is a
``hold`` record, a commit a ``rated`` one with its effect and the hold's release), over 999
accounts, ``--records`` of them (default 300,000; at 10k CCR/s ``snapshot_seconds`` = 300
leaves up to ~4.5 M to replay).

Measured in the same run, on the same journal:

* ``baseline``: the replay as it was before round 9: every record through the general
  ``decode_record`` path and its Decimal/Fraction amount parsing, with the cyclic GC running
  over the growing idempotency cache;
* ``read_only``: records/s just reading the journal: ``full`` decodes whole records
  (msgpack, what the baseline read), ``fields`` only the fields recovery reads
  (``charging/journal/fields.py``, compiled when built; what the replay reads).

``python -m benchmarks.replay [--records N] [--reps 3]``; medians of ``--reps``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from charging.journal import Journal, JournalReader
from charging.journal import fields as fields_mod
from charging.journal.fields import REPLAY_FIELDS
from charging.ledger import recovery
from charging.money import MICROS
from charging.store import common
from charging.store.memory import MemoryStore

T0_US = 1_800_000_000_000_000
ACCOUNTS = 999


def account_record(i: int) -> dict[str, Any]:
    acct = f"4179{i:07d}"
    return {"v": 1, "type": "account", "id": f"acct-{i}", "ts": T0_US,
            "idem": f"account:{acct}", "op": "account", "account": acct,
            "kind": "prepaid_subscriber", "identities": [acct], "result": "ok",
            "balances": [{"id": "EUR", "kind": "money", "currency": "EUR",
                          "amount": "1000000.00", "credit_limit": "0.00", "priority": 0,
                          "expires": None, "low_threshold": None}],
            "balance_effects": [], "holds": []}


def session_records(n: int) -> Any:
    """The records of an I/U/U/T voice load as ``icx serve`` journals them (same fields): I
    reserves (``hold``), each U commits (``rated``: the effect and the hold's release) and
    reserves again, T commits; 6 records per session, 1.5 per CCR."""
    for session in range(n):
        acct = f"4179{session % ACCOUNTS:07d}"
        sid = f"pgw.example.net;0;{session}"
        ts = T0_US + session * 400
        for step in range(4):
            base = {"session": sid, "request": str(step), "service": "voice", "price": "0.12",
                    "v": 1, "ts": ts + step * 100, "result": "ok", "granted": 120_000}
            if step:
                yield {**base, "unit": "s", "a": acct, "b": "41794889205", "account": acct,
                       "deck": "retail", "currency": "EUR", "start": ts, "usage": 60,
                       "end": ts + step * 100, "deck_version": "1", "prefix": "41",
                       "destination": "Switzerland", "type": "rated",
                       "id": f"ocs-{session}-{step}c", "idem": f"ro:{sid}:{step}:0:0:c",
                       "op": "commit",
                       "balance_effects": [{"account": acct, "balance": "EUR",
                                            "currency": "EUR", "amount": "-0.12"}],
                       "holds": [{"account": acct, "balance": "EUR",
                                  "reservation": f"{sid}|100|{step - 1}", "amount": "-0.12",
                                  "expires": None}]}
            if step < 3:
                yield {**base, "type": "hold", "id": f"ocs-{session}-{step}r",
                       "idem": f"ro:{sid}:{step}:0:0:r", "op": "reserve",
                       "balance_effects": [],
                       "holds": [{"account": acct, "balance": "EUR",
                                  "reservation": f"{sid}|100|{step}", "amount": "0.12",
                                  "expires": ts + step * 100 + 1_260_000_000}]}


async def write_journal(directory: Path, n: int) -> None:
    journal = await Journal.open(directory, fsync=False, preallocate=False)
    for i in range(ACCOUNTS):
        journal.append_nowait(account_record(i))
    for i, rec in enumerate(session_records(n // 6)):
        journal.append_nowait(rec)
        if i % 10_000 == 0:
            await journal.flush()
    await journal.close(seal=True)


class _Before(MemoryStore):
    """The replay before round 9: no common-shape path, Decimal/Fraction amounts."""

    def _apply_simple(self, record: Any) -> None:
        return None


def _parse_before(text: Any, *, rounding: Any = None) -> int:
    # charging.money.parse_amount before its plain-text fast path (same result, general path)
    if isinstance(text, int):
        return text * MICROS
    frac = Fraction(Decimal(str(text).strip())) * MICROS
    if frac.denominator != 1:
        raise ValueError(f"more than 6 decimals: {text!r}")
    return int(frac)


def timed_replay(directory: Path, store: MemoryStore, *, gc_on: bool) -> tuple[float, int]:
    reader = JournalReader(directory)
    gc.collect()
    t0 = time.perf_counter()
    if gc_on:
        # what replay() did before: the collector ran while the cache grew
        applied = 0
        for chunk in reader.chunks(None):
            for rec in chunk.records:
                if rec.get("type") == "account":
                    recovery.apply_account_record(store, rec)
                elif store.apply_record(rec):
                    applied += 1
    else:
        applied, _end = recovery.replay(store, reader, None)
    return time.perf_counter() - t0, applied


def read_only(directory: Path, fields: tuple[str, ...] | None) -> tuple[float, int]:
    reader = JournalReader(directory)
    t0 = time.perf_counter()
    n = sum(len(chunk.records) for chunk in reader.chunks(None, fields=fields))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="icx-replay-"))
    try:
        directory = tmp / "journal"
        asyncio.run(write_journal(directory, args.records))
        total = args.records // 6 * 6 + ACCOUNTS
        now, before, reads, picks = [], [], [], []
        applied = 0
        for _ in range(args.reps):
            secs, applied = timed_replay(directory, MemoryStore(), gc_on=False)
            now.append(total / secs)
            parse = common.parse_amount
            common.parse_amount = _parse_before  # type: ignore[assignment]
            try:
                secs, _ = timed_replay(directory, _Before(), gc_on=True)
            finally:
                common.parse_amount = parse
            before.append(total / secs)
            secs, _ = read_only(directory, None)
            reads.append(total / secs)
            secs, _ = read_only(directory, REPLAY_FIELDS)
            picks.append(total / secs)
        value = statistics.median(now)
        base = statistics.median(before)
        print(json.dumps({
            "bench": "replay", "unit": "records/s", "records": total, "applied": applied,
            "value": round(value, 1),
            "us_per_record": round(1e6 / value, 2),
            "baseline": {"name": "replay before round 9 (general decode, Fraction amounts, "
                                 "GC on)", "value": round(base, 1),
                         "us_per_record": round(1e6 / base, 2)},
            "ratio": round(value / base, 2),
            "read_only": {"full_us_per_record": round(1e6 / statistics.median(reads), 2),
                          "fields_us_per_record": round(1e6 / statistics.median(picks), 2),
                          "fields_compiled": fields_mod.PICK_FRAMES is not None},
            "replay_s_for_4_5M_records": round(4_500_000 / value, 1),
            "load_average": round(os.getloadavg()[0], 2),
        }))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
