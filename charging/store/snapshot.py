"""Snapshots of the embedded store: one msgpack file, written atomically.

Format (version 2; version 3 is the live dump's, live_dump.py): a msgpack map ``{"v": 2,
"position": <journal position>, "retention": s, "epoch": n, "ep_end": t, "accounts": [...],
"ops": [[account, epoch, ops, old, kept], ...]}``.
The idempotency cache is part of the snapshot: without it a client's retry that arrives after a
restart would be charged a second time. Version 1 (no ``ep_end``, no ``kept``) still restores.

Atomic write: temp file in the same directory, fsync, rename over the target, fsync the
directory, so a crash leaves either the old or the new snapshot, never a torn one.

While serving, the state is dumped by the event loop in small steps (live_dump.py, the
default: the fork below costs the loop ~250k copy-on-write faults in the second after it at
10k CCR/s) or, with ``snapshot_mode = "fork"``, by a forked child (:func:`fork_dump`, as
Redis's BGSAVE does): copying the idempotency cache (every op key of the retention window,
~10^6 entries after a minute at 10k CCR/s) in the event loop stopped it for 200-660 ms and set off a storm of
young-generation collections over the copies. The child sees the state frozen at the fork
(copy-on-write); the parent only pays for the fork itself (~1 ms) and for the pages it
touches while the child runs.
"""

from __future__ import annotations

import gc
import itertools
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from charging.store.base import AccountKind, BalanceKind, BalanceSpec

if TYPE_CHECKING:
    from charging.store.memory import MemoryStore

VERSION = 2
# Version 1 (before top-up keys were kept apart) restores too: its accounts have no kept keys.
# Version 3 is version 2 written by a live dump (live_dump.py): each key dict is a list of
# chunks of [key, result] pairs.
READABLE = (1, 2, 3)
_seq = itertools.count()


class SnapshotError(Exception):
    """The snapshot file is missing, unreadable or of an unknown version."""


# os.fork exists (POSIX): snapshots are dumped by a child process (fork_dump).
CAN_FORK = hasattr(os, "fork")


def temp_path(path: Path) -> Path:
    """A temp file name next to *path*, unique per process, thread and call: two writers of the
    same snapshot (e.g. recovery's and a background job's) must not share a temp file (one
    rename would steal the other's). Names start with "." so listings never take them for
    snapshots."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{next(_seq)}")


def _write_synced(tmp: Path, data: bytes) -> None:
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def publish(tmp: Path, path: Path) -> None:
    """Rename the fsynced temp file *tmp* over *path* and fsync the directory (atomic: a crash
    leaves the old or the new snapshot). On failure *tmp* is removed and the error raised."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: Path, state: dict[str, Any]) -> None:
    """Write *state* to *path* atomically (see module docstring)."""
    data = msgpack.packb(state, use_bin_type=True)
    tmp = temp_path(path)
    try:
        _write_synced(tmp, data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, path)


def fork_dump(store: MemoryStore, position: Any, tmp: Path) -> tuple[int, int]:
    """Fork a child that writes *store*'s state (as of now) to *tmp*, fsynced, and exits 0
    (1 when it could not, its reason written to a pipe). Returns (the child's pid, the read end
    of that pipe): the caller MUST :func:`reap` both (off the event loop: it blocks), then
    :func:`publish` *tmp* only once the journal is durable up to *position* -- or unlink it.
    Call with the store quiet (no op half done): the child sees exactly the state at the
    fork. Only where :data:`CAN_FORK`."""
    err_r, err_w = os.pipe()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork() with threads running (the journal's writer threads,
            # executor threads). The child takes no lock those threads may hold: it touches
            # no logger, journal or loop, only the store's objects, msgpack and a new file.
            warnings.filterwarnings("ignore", ".*multi-threaded.*fork", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        os.close(err_r)
        os.close(err_w)
        raise
    if pid:
        os.close(err_w)
        return pid, err_r
    # The child: the only thread left is this one. Touch nothing of the parent's (its loop,
    # sockets, journal): close every inherited descriptor but the error pipe (the parent keeps
    # its own; a listening socket or a peer's connection must not outlive the parent), take
    # the default signal dispositions (a SIGTERM to the group must not reach the parent's
    # loop through the shared wakeup fd) and never collect (it would dirty every page).
    code = 1
    try:
        gc.disable()
        _yield_cpu()
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
        except ValueError:  # forked from a loop outside the main thread: no handlers there
            pass
        os.closerange(3, err_w)
        os.closerange(err_w + 1, os.sysconf("SC_OPEN_MAX"))
        # and the standard streams: a pipe the parent's supervisor reads must see EOF when
        # the parent dies, not when this child is done
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        try:
            _write_synced(tmp, msgpack.packb(dump_state(store, position), use_bin_type=True))
            code = 0
        except BaseException as exc:
            os.write(err_w, f"{type(exc).__name__}: {exc}"[:2000].encode(errors="replace"))
    finally:
        os._exit(code)  # no atexit, no buffered output of the parent's written twice


def _yield_cpu() -> None:
    """In the child: run only on CPU time the server leaves idle (SCHED_IDLE, else nice 19).
    A dump takes ~0.5-1.5 s of CPU per million cached op keys; at full priority it took that
    from the server on a 2-core host and answers queued for up to 0.5 s."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass


def reap(pid: int, err_fd: int, tmp: Path) -> None:
    """Wait for the :func:`fork_dump` child *pid* (blocks) and close *err_fd*; raise
    SnapshotError with the child's reason (and remove *tmp*) when it did not write the
    snapshot."""
    try:
        _pid, status = os.waitpid(pid, 0)
        reason = os.read(err_fd, 4096).decode(errors="replace")
    finally:
        os.close(err_fd)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"{tmp}: the snapshot child failed (exit {code})"
                            + (f": {reason}" if reason else ""))


def read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        state = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (OSError, ValueError, msgpack.UnpackException) as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc}") from exc
    if not isinstance(state, dict) or state.get("v") not in READABLE:
        raise SnapshotError(f"{path}: not a version-{VERSION} store snapshot")
    return state


def account_row(a: Any) -> list[Any]:
    """An account's row of ``accounts``: id, kind, identities, specs, balances with holds."""
    balances = [[b.id, b.kind.value, b.currency, b.amount, b.reserved, b.credit_limit,
                 b.priority, b.exp_us, b.low, [[k, r[0], r[1]] for k, r in b.res.items()]]
                for b in a.balances.values()]
    return [a.id, a.kind.value, list(a.identities), [list(s) for s in a.specs], balances]


def kept_rows(a: Any) -> list[list[Any]]:
    """An account's kept (top-up) keys as ``[key, expiry, result]`` rows."""
    return [[k, exp, packed] for k, (exp, packed) in a.kept.items()]


def dump_state(store: MemoryStore, position: Any) -> dict[str, Any]:
    """The store's whole state as plain msgpack-able data."""
    accounts = [account_row(a) for a in store._accounts.values()]
    ops = [[a.id, a.epoch, list(a.ops.items()), list(a.old.items()), kept_rows(a)]
           for a in store._accounts.values() if a.ops or a.old or a.kept]
    return {"v": VERSION, "position": position, "retention": store.retention,
            "epoch": store._epoch, "ep_end": store._ep_end,
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
    # The current epoch carries on to its end as cut; the next ones have this store's length
    # (MemoryStore._rotate). Version 1 numbered epochs as op time // its retention.
    store._epoch = state.get("epoch", -1)
    if store._epoch < 0:
        store._ep_end = float("-inf")
    elif "ep_end" in state:
        store._ep_end = float(state["ep_end"])
    else:
        store._ep_end = (store._epoch + 1) * float(state.get("retention", store.retention))
    chunked = state.get("v") == 3
    for account, epoch, ops, old, *kept in state["ops"]:
        if chunked:
            ops = itertools.chain.from_iterable(ops)
            old = itertools.chain.from_iterable(old)
        # msgpack gives lists back; the cache wants flat tuples (see packing.pack)
        acct = accounts[account]
        acct.epoch = epoch
        acct.ops = {k: _tuple(v) for k, v in ops}
        acct.old = {k: _tuple(v) for k, v in old}
        acct.kept = {k: (exp, _tuple(v)) for k, exp, v in (kept[0] if kept else ())}
    return state.get("position")


def _tuple(v: list[Any]) -> tuple[Any, ...]:
    if v and v[0] == "*":
        return (*v[:6], tuple(tuple(e) for e in v[6]), tuple(tuple(h) for h in v[7]))
    return tuple(v)
