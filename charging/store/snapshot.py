"""Snapshots of the embedded store: one msgpack file, written atomically.

Format (version 1): a msgpack map ``{"v": 1, "position": <journal position>, "accounts": [...],
"ops": [...]}``. The idempotency cache is part of the snapshot: without it a client's retry that
arrives after a restart would be charged a second time.

Atomic write: temp file in the same directory, fsync, rename over the target, fsync the
directory, so a crash leaves either the old or the new snapshot, never a torn one.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from charging.store.base import AccountKind, BalanceKind, BalanceSpec

if TYPE_CHECKING:
    from charging.store.memory import MemoryStore

VERSION = 1
_seq = itertools.count()


class SnapshotError(Exception):
    """The snapshot file is missing, unreadable or of an unknown version."""


def write(path: Path, state: dict[str, Any]) -> None:
    """Write *state* to *path* atomically (see module docstring)."""
    data = msgpack.packb(state, use_bin_type=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per write: two writers of the same snapshot (e.g. recovery's and a background
    # job's, in executor threads) must not share a temp file (one rename would steal the other's)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{next(_seq)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        state = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (OSError, ValueError, msgpack.UnpackException) as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc}") from exc
    if not isinstance(state, dict) or state.get("v") != VERSION:
        raise SnapshotError(f"{path}: not a version-{VERSION} store snapshot")
    return state


def dump_state(store: MemoryStore, position: Any) -> dict[str, Any]:
    """The store's whole state as plain msgpack-able data."""
    accounts = []
    for a in store._accounts.values():
        balances = [[b.id, b.kind.value, b.currency, b.amount, b.reserved, b.credit_limit,
                     b.priority, b.exp_us, b.low, [[k, r[0], r[1]] for k, r in b.res.items()]]
                    for b in a.balances.values()]
        accounts.append([a.id, a.kind.value, list(a.identities), [list(s) for s in a.specs],
                         balances])
    ops = [[a.id, a.epoch, list(a.ops.items()), list(a.old.items())]
           for a in store._accounts.values() if a.ops or a.old]
    return {"v": VERSION, "position": position, "retention": store.retention,
            "epoch": store._epoch,
            "accounts": accounts, "ops": ops}


def load_state(store: MemoryStore, state: dict[str, Any]) -> Any:
    """Replace *store*'s state with *state*; return the journal position it covers."""
    import heapq

    from charging.store.memory import _Account, _Balance

    accounts: dict[str, _Account] = {}
    ids: dict[str, str] = {}
    heap: list[tuple[int, str, str, str]] = []
    for aid, kind, identities, specs, balances in state["accounts"]:
        acct = _Account(aid, AccountKind(kind), [], identities)
        acct.specs = tuple(tuple(s) for s in specs)
        for bid, bkind, cur, amount, reserved, cl, pri, exp_us, low, res in balances:
            bal = _Balance(BalanceSpec(bid, BalanceKind(bkind), cur, amount, cl, pri, None, low))
            bal.exp_us = exp_us
            bal.reserved = reserved
            for rid, ramount, rexp in res:
                bal.res[rid] = [ramount, rexp]
                heap.append((rexp, aid, bid, rid))
            acct.balances[bid] = bal
        accounts[aid] = acct
        for ident in identities:
            ids[ident] = aid
    heapq.heapify(heap)
    store._accounts = accounts
    store._ids = ids
    store._heap = heap
    # epochs are numbered in units of the retention they were cut with: keep that retention
    store.retention = state.get("retention", store.retention)
    store._epoch = state.get("epoch", -1)
    store._ep_end = (store._epoch + 1) * store.retention if store._epoch >= 0 else float("-inf")
    for account, epoch, ops, old in state["ops"]:
        # msgpack gives lists back; the cache wants flat tuples (see packing.pack)
        acct = accounts[account]
        acct.epoch = epoch
        acct.ops = {k: _tuple(v) for k, v in ops}
        acct.old = {k: _tuple(v) for k, v in old}
    return state.get("position")


def _tuple(v: list[Any]) -> tuple[Any, ...]:
    if v and v[0] == "*":
        return (*v[:6], tuple(tuple(e) for e in v[6]), tuple(tuple(h) for h in v[7]))
    return tuple(v)
