"""A snapshot of the embedded store written from the event loop in small steps, with no fork.

Why: a forked dump (snapshot.fork_dump) stops the loop only for the fork itself, but then
every page the server writes first takes a copy-on-write fault. At 10k CCR/s that was
~250k faults in the second after the fork: the loop fell behind by 50-150 ms
(docs/balances-and-journal.md). A live dump instead spends ~0.7-1 us of loop time per
cached op, in steps of a bounded number of entries between requests.

Why it is correct without a frozen copy: each account is captured in ONE step -- its
balances, holds and all its idempotency keys at the same instant -- and recovery replays the
journal from the position where the dump BEGAN. A journaled op that an account's capture
already holds is in that account's key cache, and ``MemoryStore.apply_record`` skips it
(idempotent per account); one it does not hold is applied. The caller must make every op
in the file durable before publishing it: wait until the journal is durable up to its
position at the END of the dump (charging/ledger/core.py does).

File format: snapshot version 3 (charging/store/snapshot.py), a msgpack map written key by
key: ``ops`` first (streamed: each account's key dicts as lists of chunks of
``[key, result]`` pairs), then ``accounts``, ``v``, ``position``, ``retention``, and the
epoch clock as it stands at the end (an account captured before an epoch change then has the
previous epoch, which restores as "its keys are the old generation", as MemoryStore._rotate
would have made them).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgpack

from charging.store.snapshot import SnapshotError, account_row, kept_rows

if TYPE_CHECKING:
    from charging.store.memory import MemoryStore

__all__ = ["LiveDump", "VERSION"]

VERSION = 3
CHUNK = 1000  # [key, result] pairs per msgpack array (restored by flattening)
# Written bytes after which the caller should :meth:`LiveDump.sync` before the next step.
# Why: left to the end, the file's whole dirty tail (tens of MB at 10k CCR/s) goes to the disk
# in one fsync, and every journal group commit meanwhile waits behind it in the device's
# queue -- 15-140 ms stalls of every CCR in flight, measured. 1 MiB at a time kept the
# journal's syncs under 1 ms here.
SYNC_BYTES = 1 << 20
ACCOUNT_COST = 12  # an account's capture, in cache entries of step budget


class LiveDump:
    """Write *store*'s state to *tmp* a step at a time. Call :meth:`step` from the store's
    thread (the event loop) until it returns True, with the loop free to run requests in
    between; then :meth:`finish` (it blocks: run it in a worker thread) and publish *tmp* once
    the journal is durable up to its position at the end (see the module docstring). Call
    :meth:`abort` to drop it instead."""

    def __init__(self, store: MemoryStore, position: Any, tmp: Path) -> None:
        self.store = store
        self.position = position
        self.tmp = tmp
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] | None = open(tmp, "wb")  # noqa: SIM115 -- closed in finish/abort
        self._packer = msgpack.Packer(use_bin_type=True)
        self._todo = list(store._accounts.values())  # accounts created later: replayed
        self._next = 0
        self._rows: list[bytes] = []  # the accounts' packed rows (small), written last
        # what is still to be written, in order: packed bytes, or (pairs iterator, count)
        self._queue: list[bytes | tuple[Any, int]] = []
        self.entries = 0
        self._unsynced = 0  # bytes written since the last sync()
        # the cache entries to write (for the caller's pace: a dump must end within an epoch)
        self.total = sum(len(a.ops) + len(a.old) for a in self._todo)
        self._epoch0 = store._epoch
        self._retention = store.retention  # finish() runs in a worker thread
        pk = self._packer
        self._write(pk.pack_map_header(7) + pk.pack("ops") + pk.pack_array_header(len(self._todo)))

    def _write(self, data: bytes) -> None:
        assert self._fh is not None
        self._fh.write(data)
        self._unsynced += len(data)

    @property
    def sync_due(self) -> bool:
        """True when :data:`SYNC_BYTES` or more were written since the last :meth:`sync`."""
        return self._unsynced >= SYNC_BYTES

    def sync(self) -> None:
        """Flush what the steps wrote and fdatasync it, so the final fsync in :meth:`finish`
        has little left to write (see :data:`SYNC_BYTES`). Blocks: run it in a worker thread,
        and never while a :meth:`step` runs (await it between steps)."""
        assert self._fh is not None
        self._fh.flush()
        os.fdatasync(self._fh.fileno())
        self._unsynced = 0

    def step(self, budget: int) -> bool:
        """Write about *budget* more cache entries (at least one account's capture); return
        True when every account is written."""
        pk = self._packer
        left = budget
        while left > 0:
            if self._queue:
                item = self._queue[0]
                if isinstance(item, bytes):
                    self._write(item)
                    del self._queue[0]
                    continue
                pairs, count = item
                take = min(count, CHUNK)  # whole chunks: their number is already written
                self._write(pk.pack(list(itertools.islice(pairs, take))))
                left -= take
                if count == take:
                    del self._queue[0]
                else:
                    self._queue[0] = (pairs, count - take)
                continue
            if self._next >= len(self._todo):
                return True
            # an account's capture has a fixed cost of about ACCOUNT_COST entries (its row, the
            # dict copies, five small writes): 1,500 one-key accounts took 10.8 ms per step
            left -= self._capture(self._todo[self._next]) + ACCOUNT_COST
            self._next += 1
        return not self._queue and self._next >= len(self._todo)

    def _capture(self, a: Any) -> int:
        """One account, all at once: its row, and its key dicts as copies (C speed) that
        later steps write in chunks (the copies are never mutated, so their iterators stay
        valid while the loop runs on). Returns a cost in entries."""
        pk = self._packer
        row = account_row(a)
        self._rows.append(pk.pack(row))
        ops, old = a.ops.copy(), a.old.copy()
        kept = kept_rows(a)
        queue = self._queue
        queue.append(pk.pack_array_header(5) + pk.pack(a.id) + pk.pack(a.epoch))
        # each dict: an array of chunks, each chunk an array of [key, result] pairs
        for d in (ops, old):
            n = len(d)
            queue.append(pk.pack_array_header(-(-n // CHUNK)))
            if n:
                queue.append((iter(d.items()), n))
        queue.append(pk.pack(kept))
        self.entries += len(ops) + len(old) + len(kept)
        return len(row[4]) + len(kept)

    def finish(self, epoch: int, ep_end: float) -> None:
        """Write the rest (accounts, header values, the epoch clock as of now: pass the
        store's ``_epoch`` and ``_ep_end`` read on the loop at the end), flush and fsync.
        Blocks: run it in a worker thread. Raises SnapshotError (and drops the file) when the
        dump outlasted an idempotency epoch (see below).

        Why the limit: replay skips an op the file holds only while the op's key is still
        cached. A key lives one to two epochs, so an account captured two epochs before
        the end could restore with its keys already rotated out, and the ops made between the
        dump's start and its capture would be applied twice."""
        if epoch > max(self._epoch0, 0) + 1:
            self.abort()
            raise SnapshotError(f"live snapshot outlasted an idempotency epoch (epoch "
                                f"{self._epoch0} -> {epoch}): dropped")
        pk = self._packer
        tail = [pk.pack("accounts"), pk.pack_array_header(len(self._rows)), *self._rows,
                pk.pack("v"), pk.pack(VERSION), pk.pack("position"), pk.pack(self.position),
                pk.pack("retention"), pk.pack(self._retention),
                pk.pack("epoch"), pk.pack(epoch), pk.pack("ep_end"), pk.pack(ep_end)]
        assert self._fh is not None
        try:
            self._fh.write(b"".join(tail))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
            self._fh = None

    def abort(self) -> None:
        """Drop the half-written file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp.unlink(missing_ok=True)
