"""The ledger: the one place where money moves (invariants 2 and 3).

Every method runs ONE atomic idempotent store operation, appends its journal record (effects,
holds and the caller's rating ``fields``) into the current group commit, waits for that
group's fsync, and only then returns -- so an answer built from the result is never ahead of
the journal. A replay (same key) returns the store's first answer and writes nothing new.

Order matters for crash safety. The store op and the journal enqueue happen back to back;
with the embedded store nothing survives a crash except the journal (and snapshots cut only
at journal positions that are durable), so balances after restart = snapshot + journal tail.
With Redis the op survives in Redis even if the process dies before the journal append: the
store keeps every op in a per-account "unjournaled" list until the ledger confirms it
(``confirm_journaled``, batched after the fsync); :meth:`Ledger.recover` journals what is
missing on start.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charging.journal import Journal, JournalError, JournalReader, Position
from charging.journal.records import RecordIds, account_record, amount_text, op_record
from charging.ledger import recovery
from charging.ledger.sync_ops import SyncOps
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpResult, OpStatus

_OK = OpStatus.OK

# The embedded store's graveyard (charging/store/graveyard.py): entries freed per slice, and
# how often a slice runs while something waits (and while nothing does). 500 entries take
# ~0.1-0.5 ms (cold frees); 100k/s outruns the ~10k/s that 10k CCR/s buries.
RECLAIM_BUDGET = 500
RECLAIM_TICK = 0.005
RECLAIM_IDLE = 0.25

# A live snapshot (snapshot_mode "live", charging/store/live_dump.py): cache entries written
# per step and the pause between steps (the loop serves meanwhile). A CCR that arrives during
# a step waits for it: ~0.4 ms of loop time (1,500 took 1-1.5 ms, a visible share of the p99
# at 10k CCR/s while a dump of ~700k keys ran for seconds); the pause keeps ~125k entries/s.
LIVE_STEP = 500
LIVE_PAUSE = 0.004
SNAPSHOT_MODES = ("fork", "live")
_log = logging.getLogger("icx.ledger")
_Op = Coroutine[Any, Any, OpResult]


@dataclass(frozen=True, slots=True)
class LowBalance:
    """A balance went below its low threshold (for RAR / partner notification)."""

    account: str
    balance: str
    available: int | None
    key: str
    ts_us: int


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    snapshot: Position | None
    replayed: int
    pending_journaled: int
    pending_confirmed: int
    expired: int
    problems: tuple[str, ...]


class Ledger(SyncOps):
    """Create with ``Ledger(store, journal, ...)``, then ``await ledger.recover(now=...)``
    BEFORE serving, then ``ledger.start()`` for the background jobs (expiry sweep, snapshots,
    Redis confirmations); ``await ledger.close()`` at shutdown (closes neither store nor
    journal: the caller owns them).

    ``snapshot_dir``: where embedded-store snapshots go (None: no snapshots; recovery replays
    the whole journal). ``snapshot_records`` / ``snapshot_seconds``: cut one after that many
    records or that much time, whichever first. ``expiry_interval``: how often the TTL sweep
    runs. ``on_low_balance``: optional callback; events also go to :attr:`events` (a bounded
    queue; the oldest is dropped when nobody reads it).
    """

    # The fields the compiled fast path (cython_ext/charging_slice.pyx) reads on every request
    # are slots, read at their offsets; every other attribute lives in the instance dict.
    __slots__ = ("journal", "_failed", "_store", "_sync", "_pause", "_since_snapshot",
                 "_snapshot_every", "_snapshot_task", "_last_snapshot")

    def __init__(self, store: Any, journal: Journal, *, node: str = "icx",
                 snapshot_dir: str | Path | None = None, snapshot_records: int = 100_000,
                 snapshot_seconds: float = 300.0, expiry_interval: float = 1.0,
                 on_low_balance: Callable[[LowBalance], Any] | None = None,
                 events_max: int = 10_000, clock: Callable[[], float] = time.time,
                 snapshot_mode: str = "live") -> None:
        """*snapshot_mode* (embedded store): "live" dumps from the loop in small steps (it
        pays ~1 us per cached op, spread out), "fork" from a forked child (the loop pays the
        fork and the copy-on-write faults after it); docs/balances-and-journal.md."""
        if snapshot_mode not in SNAPSHOT_MODES:
            raise ValueError(f"snapshot_mode must be one of {SNAPSHOT_MODES}, got "
                             f"{snapshot_mode!r}")
        self.snapshot_mode = snapshot_mode
        self.journal = journal
        self.store = store  # (a property: see SyncOps.store)
        self.embedded = hasattr(store, "apply_record")
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.snapshot_records = snapshot_records
        self.snapshot_seconds = snapshot_seconds
        self.expiry_interval = expiry_interval
        self.on_low_balance = on_low_balance
        # Run in a worker thread after each forked snapshot's child is gone (icx serve: rebuild
        # the huge pages the fork's copy-on-write split, cython_ext/arena.pyx collapse()).
        self.after_fork_snapshot: Callable[[], Any] | None = None
        self.events: asyncio.Queue[LowBalance] = asyncio.Queue(maxsize=events_max)
        self.clock = clock
        self._ids = RecordIds(node)
        self._meta: dict[tuple[str, str], tuple[bool, str | None]] = {}
        self._failed: BaseException | None = None  # an op moved money but was not journaled
        self._inflight = 0  # ops between their store call and their journal enqueue
        self._pause: asyncio.Event | None = None  # set while a snapshot is being cut
        self._since_snapshot = 0
        # ops between snapshots: snapshot_records, then as many as all ops journaled so far
        # (see _maybe_snapshot)
        self._snapshot_every = snapshot_records
        self._last_snapshot = time.monotonic()
        self._snapshot_task: asyncio.Task[None] | None = None
        # Redis: ops journaled but not yet confirmed to the store. _enq holds (seq, position)
        # in journal order; the confirmed prefix gives the checkpoint recovery scans from.
        self._to_confirm: list[tuple[str, str, int]] = []
        self._seq = 0
        self._enq: collections.deque[tuple[int, Position]] = collections.deque()
        self._confirmed_seqs: set[int] = set()
        self._confirmed_upto: Position | None = None
        self._checkpoint_written = 0.0
        # Redis: op keys whose store call raised (the op may have run with its reply lost:
        # redis_fast/redis_batch say "retry with the same key") and keys enqueued here but not
        # yet confirmed to the store. A later replay of an unsure key that the store still
        # lists unjournaled and this ledger never enqueued is journaled then (see _run).
        self._unsure: dict[str, None] = {}
        self._unconfirmed: dict[str, None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.stats = {"ops": 0, "replayed": 0, "journaled": 0, "expired": 0, "snapshots": 0,
                      "snapshot_failures": 0, "snapshot_fork_us": 0, "snapshot_fork_us_max": 0}

    # ------------------------------------------------------------------ metadata
    def _meta_of(self, account: str, balance: str) -> tuple[bool, str | None]:
        return self._meta.get((account, balance), (True, None))

    async def _ensure_meta(self, account: str, balance: str) -> None:
        if (account, balance) in self._meta:
            return
        view = await self.store.get(account)
        if view is not None:
            for b in view.balances:
                self._meta[(account, b.id)] = (b.kind is BalanceKind.MONEY, b.currency)

    # ------------------------------------------------------------------ the op pipeline
    @property
    def failed(self) -> bool:
        """True once the journal failed or an op could not be journaled after the store
        moved money: the ledger refuses every further money op (fail closed); a restart's
        recovery resynchronises the store from the journal."""
        return self._failed is not None or self.journal.failed

    @property
    def position(self) -> Position:
        """Journal position after the last record enqueued (what an answer must wait for)."""
        return self.journal.position

    def position_reader(self) -> Callable[[], Position]:
        """A callable returning :attr:`position` without a Python frame per call when the
        journal offers one (:meth:`Journal.position_reader`); the journal is never replaced."""
        reader = getattr(self.journal, "position_reader", None)
        if reader is None or type(self).position is not Ledger.position:
            return functools.partial(getattr, self, "position")
        return reader()  # type: ignore[no-any-return]

    async def wait_durable(self, pos: Position) -> None:
        """Return once the journal is durable up to ``pos``; raises JournalError if the
        journal failed before that."""
        if pos <= self.journal.durable:
            return
        await self.journal.wait_durable(pos)

    def _refuse(self) -> None:
        if self._failed is not None:
            raise JournalError("ledger failed: an op could not be journaled; refusing money "
                               "operations until restart") from self._failed
        raise JournalError("journal failed: refusing money operations until restart")

    async def _run(self, op: str, account: str, balance: str,
                   call: Callable[[], Awaitable[OpResult]], now: float,
                   fields: dict[str, Any] | None, wait: bool = True,
                   key: str = "") -> OpResult:
        """One store op + its journal enqueue, back to back. *call* makes the store's
        awaitable and is called only after the checks below: the compiled embedded store runs
        the op when called, not when awaited. ``wait``: return only once the record is
        durable; ``wait=False``: return as soon as it is enqueued -- the CALLER must then wait
        for ``position`` to be durable before answering (invariant 3)."""
        journal = self.journal
        if self._pause is not None:
            await self._pause.wait()
        if self._failed is not None or journal.failed:
            # Never move money we cannot journal (the embedded store would diverge).
            self._refuse()
        if (account, balance) not in self._meta:  # cached after an account's first op
            await self._ensure_meta(account, balance)
        self._inflight += 1
        try:
            try:
                res = await call()
            except Exception:
                if not self.embedded and key:
                    self._note_unsure(key)
                raise
            replayed = res.replayed
            if replayed and self._unsure and res.key in self._unsure:
                replayed = await self._replay_of_lost_reply(res, account)
            if replayed:
                group = None
            elif res.status is _OK or res.effects or res.holds:
                try:
                    rec = op_record(op=op, result=res, record_id=self._ids.next(),
                                    ts_us=int(now * 1_000_000), meta=self._meta_of,
                                    fields=fields)
                    pos, group = journal.append_nowait(rec)
                except BaseException as exc:
                    # The store moved money the journal does not have: fail closed.
                    self._failed = exc
                    raise
                seq = 0 if self.embedded else self._track(pos, res.key)
            else:
                group = None  # refused, nothing moved: nothing to journal
        finally:
            self._inflight -= 1
        if group is None:
            if replayed:
                if wait:
                    # The original may still be in its group commit: never answer ahead.
                    await self.wait_durable(journal.position)
                self.stats["replayed"] += 1
            else:
                self.stats["ops"] += 1
            return res
        if wait:
            await group
            self._after(res, now, account, seq)
        elif self.embedded and not res.low_balance:
            # _after's embedded part inline (nothing in it depends on durability)
            stats = self.stats
            stats["ops"] += 1
            stats["journaled"] += 1
            self._since_snapshot += 1
            if self.snapshot_dir is not None and self._snapshot_task is None:
                self._maybe_snapshot()
        else:
            # Redis confirmations and low-balance events only once the record is durable.
            group.add_done_callback(functools.partial(self._after_group, res, now, account,
                                                      seq))
        return res

    def _track(self, pos: Position, key: str) -> int:
        if self.embedded:
            return 0
        self._seq += 1
        self._enq.append((self._seq, pos))
        self._unconfirmed[key] = None
        return self._seq

    def _note_unsure(self, key: str) -> None:
        unsure = self._unsure
        if len(unsure) >= 65_536:  # bounded: forget the oldest
            del unsure[next(iter(unsure))]
        unsure[key] = None

    async def _replay_of_lost_reply(self, res: OpResult, account: str) -> bool:
        """*res* replays an op whose earlier call raised. True: a plain replay (this ledger
        enqueued it, or the store no longer lists it unjournaled); False: the op ran but its
        reply was lost and nobody journaled it -- the caller journals it now, with its fields,
        before the answer (invariant 3) and confirms it after the fsync as usual."""
        key = res.key
        self._unsure.pop(key, None)
        if key in self._unconfirmed:
            return True
        for p in await self.store.pending_ops():
            if p.key == key and recovery.account_of(p) in (account, None):
                return False
        return True

    def _after(self, res: OpResult, now: float, account: str | None, seq: int) -> None:
        self.stats["ops"] += 1
        self.stats["journaled"] += 1
        if not self.embedded:
            acct = account or recovery.account_of(res) or ""
            self._to_confirm.append((acct, res.key, seq))
        if res.low_balance:
            first = res.effects[0] if res.effects else res.holds[0] if res.holds else None
            if first is not None:
                self._emit(LowBalance(first.account, first.balance, res.available_after,
                                      res.key, int(now * 1_000_000)))
        self._since_snapshot += 1
        if self.snapshot_dir is not None and self.embedded and self._snapshot_task is None:
            self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        """Start a snapshot job when one is due (by records or by time).

        By records: after ``snapshot_records`` ops, then after as many ops as were journaled
        in all (100k, 100k, 200k, 400k, ... until ``snapshot_seconds`` comes first). A
        snapshot holds the whole idempotency cache, which grows with every op for the
        retention (48 h), so a fixed count made the dump cost per op grow without bound (1.5 s
        of CPU and page copies every 4 s at 10k CCR/s); doubling keeps it constant per op.
        Replay after a crash stays bounded by ``snapshot_seconds`` of ops."""
        if self._failed is None and (
                self._since_snapshot >= self._snapshot_every
                or time.monotonic() - self._last_snapshot >= self.snapshot_seconds):
            self._snapshot_task = asyncio.ensure_future(self._snapshot_job())

    def _emit(self, event: LowBalance) -> None:
        if self.events.full():
            self.events.get_nowait()
        self.events.put_nowait(event)
        if self.on_low_balance is not None:
            self.on_low_balance(event)

    # ------------------------------------------------------------------ money operations
    # Plain methods returning the _run coroutine (one frame less per op on the hot path):
    # ``await ledger.reserve(...)`` as before; nothing runs until it is awaited.
    def reserve(self, key: str, account: str, balance: str, reservation: str, amount: int,
                *, ttl: float, now: float, partial: bool = False,
                fields: dict[str, Any] | None = None, wait: bool = True) -> _Op:
        """Hold ``amount``; journaled as a ``hold`` record. See BalanceStore.reserve.
        ``wait=False`` (every money op): see :meth:`_run` -- the caller waits for durability."""
        return self._run("reserve", account, balance, lambda: self.store.reserve(
            key, account, balance, reservation, amount, ttl=ttl, now=now, partial=partial),
            now, fields, wait, key)

    def commit(self, key: str, account: str, balance: str, reservation: str, used: int,
               *, now: float, release_rest: bool = True,
               fields: dict[str, Any] | None = None, wait: bool = True) -> _Op:
        """Debit ``used`` against a reservation; journaled as ``rated``."""
        return self._run("commit", account, balance, lambda: self.store.commit(
            key, account, balance, reservation, used, now=now, release_rest=release_rest),
            now, fields, wait, key)

    @property
    def pairs_ops(self) -> bool:
        """True when the store runs a commit and the next reserve as one op
        (:meth:`commit_reserve`: the Redis store)."""
        return self._pair is not None

    async def commit_reserve(self, ckey: str, account: str, balance: str, creservation: str,
                             used: int, cfields: dict[str, Any], rkey: str,
                             rreservation: str, amount: int, *, ttl: float, now: float,
                             rfields: dict[str, Any]) -> tuple[OpResult, OpResult | None]:
        """:meth:`SyncOps.commit_reserve_now` for a store that suspends (only when
        :attr:`pairs_ops`): the commit of ``used`` against ``creservation`` (rest released)
        and the reserve of ``amount`` as ``rreservation`` in ONE store op, both records
        enqueued in order in one call (``wait=False``: the CALLER waits for :attr:`position`
        to be durable before answering, invariant 3). ``(commit, None)``: the commit found no
        such reservation and nothing else ran; the caller debits instead. The dicts become
        the records. (:meth:`_run`'s steps for two results, kept inline like its own: this
        is the Redis path's per-request call.)"""
        pair = self._pair
        assert pair is not None
        journal = self.journal
        if self._pause is not None:
            await self._pause.wait()
        if self._failed is not None or journal.failed:
            self._refuse()
        if (account, balance) not in self._meta:
            await self._ensure_meta(account, balance)
        self._inflight += 1
        try:
            try:
                cres, rres = await pair(ckey, account, balance, creservation, used, rkey,
                                        rreservation, amount, ttl=ttl, now=now)
            except Exception:
                self._note_unsure(ckey)  # did either run? a retry replays both by key
                self._note_unsure(rkey)
                raise
            done = [(cres, "commit", cfields)]
            if rres is not None:
                done.append((rres, "reserve", rfields))
            recs, journaled = [], []
            ts = int(now * 1_000_000)
            for res, op, fields in done:
                replayed = res.replayed
                if replayed and self._unsure and res.key in self._unsure:
                    replayed = await self._replay_of_lost_reply(res, account)
                if replayed:
                    self.stats["replayed"] += 1
                elif res.status is _OK or res.effects or res.holds:
                    recs.append(op_record(op=op, result=res, record_id=self._ids.next(),
                                          ts_us=ts, meta=self._meta_of, fields=fields))
                    journaled.append(res)
                else:
                    self.stats["ops"] += 1  # refused, nothing moved: nothing to journal
            if recs:
                try:
                    positions, group = journal.append_many_nowait(recs)
                except BaseException as exc:
                    self._failed = exc  # the store moved money the journal does not have
                    raise
                assert group is not None
                for res, pos in zip(journaled, positions, strict=True):
                    seq = self._track(pos, res.key)
                    group.add_done_callback(
                        functools.partial(self._after_group, res, now, account, seq))
        finally:
            self._inflight -= 1
        return cres, rres

    def _after_group(self, res: OpResult, now: float, account: str | None, seq: int,
                     group: asyncio.Future[None]) -> None:
        """A group commit's done callback (``functools.partial`` of the op): :meth:`_after`
        once *group*, the record's group commit, succeeded (a failed one fails the ledger)."""
        if not group.cancelled() and group.exception() is None:
            self._after(res, now, account, seq)

    def release(self, key: str, account: str, balance: str, reservation: str, *,
                now: float, fields: dict[str, Any] | None = None,
                wait: bool = True) -> _Op:
        return self._run("release", account, balance, lambda: self.store.release(
            key, account, balance, reservation, now=now), now, fields, wait, key)

    def debit(self, key: str, account: str, balance: str, amount: int, *, now: float,
              partial: bool = False, fields: dict[str, Any] | None = None,
              wait: bool = True) -> _Op:
        return self._run("debit", account, balance, lambda: self.store.debit(
            key, account, balance, amount, now=now, partial=partial), now, fields, wait, key)

    def refund(self, key: str, account: str, balance: str, amount: int, *, now: float,
               fields: dict[str, Any] | None = None, wait: bool = True) -> _Op:
        return self._run("refund", account, balance, lambda: self.store.refund(
            key, account, balance, amount, now=now), now, fields, wait, key)

    def topup(self, key: str, account: str, balance: str, amount: int, *, now: float,
              fields: dict[str, Any] | None = None, wait: bool = True) -> _Op:
        return self._run("topup", account, balance, lambda: self.store.topup(
            key, account, balance, amount, now=now), now, fields, wait, key)

    async def record(self, fields: dict[str, Any], *, now: float, wait: bool = True) -> None:
        """Append a record that moves no money (offline rated record, note); durable on return
        (``wait=False``: enqueued; the caller waits for :attr:`position`).
        ``fields`` must not carry balance_effects/holds that did not happen in the store."""
        rec = dict(fields)
        rec.setdefault("type", "rated")
        rec.setdefault("balance_effects", [])
        rec.setdefault("holds", [])
        rec.update(v=1, id=self._ids.next(), ts=int(now * 1_000_000))
        rec.setdefault("idem", rec["id"])
        if wait:
            await self.journal.append(rec)
        else:
            self.journal.append_nowait(rec)

    def record_many_now(self, records: list[dict[str, Any]], *, now: float) -> None:
        """Enqueue records that move no money, in order, in ONE journal append (contiguous in
        the journal, in one group commit unless a rotation falls between them); return at
        once -- the caller waits for :attr:`position` to be durable before answering
        (invariant 3). The dicts become the records (``type`` defaults to ``rated``; ``v``,
        ``id``, ``ts`` are set; ``idem`` defaults to the id). Raises JournalError when the
        journal failed: nothing was enqueued."""
        ts = int(now * 1_000_000)
        ids = self._ids
        for rec in records:
            rec.setdefault("type", "rated")
            rec.setdefault("balance_effects", [])
            rec.setdefault("holds", [])
            rid = ids.next()
            rec["v"] = 1
            rec["id"] = rid
            rec["ts"] = ts
            rec.setdefault("idem", rid)
        self.journal.append_many_nowait(records, positions=False)

    async def create_account(self, account: str, kind: AccountKind, balances: list[BalanceSpec],
                             identities: list[str] | None = None, *, now: float | None = None,
                             key: str | None = None) -> bool:
        """Create an account and journal its opening balances (type ``account``); return
        False when it already existed (the store checks the definition is identical).

        The record is journaled BEFORE the store creates the account: after a crash in
        between, the next call journals it again (an identical repeat, which audits and
        replay treat as one) and creates it; never an account whose opening balance the
        journal lacks.
        """
        ids = list(identities or [])
        if await self.store.get(account) is not None:
            await self.store.create_account(account, kind, balances, ids)  # raises if different
            return False
        from charging.store.common import check_spec

        for b in balances:
            check_spec(b)  # refuse before journaling anything
        items = []
        for b in balances:
            money = b.kind is BalanceKind.MONEY
            items.append({"id": b.id, "kind": b.kind.value, "currency": b.currency,
                          "amount": amount_text(b.amount, money),
                          "credit_limit": amount_text(b.credit_limit, money),
                          "priority": b.priority,
                          "expires": None if b.expires_at is None
                          else int(round(b.expires_at * 1_000_000)),
                          "low_threshold": None if b.low_threshold is None
                          else amount_text(b.low_threshold, money)})
        t = self.clock() if now is None else now
        await self.journal.append(account_record(
            account=account, kind=AccountKind(kind).value, balances=items, identities=ids,
            record_id=self._ids.next(), ts_us=int(t * 1_000_000),
            idem=key or f"account:{account}"))
        await self.store.create_account(account, kind, balances, ids)
        for b in balances:
            self._meta[(account, b.id)] = (b.kind is BalanceKind.MONEY, b.currency)
        return True

    async def expire(self, now: float, *, limit: int = 1000) -> int:
        """Release every reservation whose TTL passed (journal ``release`` records with
        result ``ok`` and op ``expire``); return how many."""
        sweep = getattr(self.store, "sweep_in_slices", None)  # the embedded store's
        if sweep is not None and not self.failed:
            await sweep(now)  # before the op accounting below (see its docstring)
        if self._pause is not None:
            await self._pause.wait()
        if self.failed:
            return 0  # fail closed: move nothing more (the restart's recovery catches up)
        self._inflight += 1
        group = None
        seqs: list[int] = []
        try:
            results = await self.store.expire_reservations(now=now, limit=limit)
            for res in results:
                for h in res.holds:
                    await self._ensure_meta_sync_safe(h.account, h.balance)
                try:
                    rec = op_record(op="expire", result=res, record_id=self._ids.next(),
                                    ts_us=int(now * 1_000_000), meta=self._meta_of,
                                    fields={"type": "release", "reason": "ttl"})
                    pos, group = self.journal.append_nowait(rec)
                except BaseException as exc:
                    self._failed = exc  # the store released holds the journal lacks
                    raise
                seqs.append(self._track(pos, res.key))
        finally:
            self._inflight -= 1
        if group is not None:
            await group
            for res, seq in zip(results, seqs, strict=True):
                self._after(res, now, None, seq)
        self.stats["expired"] += len(results)
        return len(results)

    async def _ensure_meta_sync_safe(self, account: str, balance: str) -> None:
        # Holds carry amounts whose formatting needs the balance kind. Called between the
        # store op and the enqueue only when the metadata is unknown; with the embedded store
        # ``get`` never suspends, so the op and its enqueue stay in one loop step.
        if (account, balance) not in self._meta:
            await self._ensure_meta(account, balance)

    # ------------------------------------------------------------------ snapshots
    async def snapshot(self) -> Position | None:
        """Cut a snapshot of the embedded store now; return the journal position it covers.

        New ops wait (microseconds) while ops already past their store call reach the
        journal; the state at journal position P is dumped by a forked child
        (``snapshot.fork_dump``: the loop only pays for the fork) into a temp file, which is
        renamed into place only once P is durable, so a snapshot never holds an op the
        journal could lose.
        """
        if self.snapshot_dir is None or not self.embedded or self._failed is not None:
            return None  # (after a failed enqueue the store holds money the journal lacks)
        from charging.store import snapshot as snap

        if self.snapshot_mode == "live":
            return await self._live_snapshot()
        pid = err_fd = 0
        state: dict[str, Any] = {}
        pos = await self._quiet_position()
        # Nothing yields from here to the fork (or the in-loop dump): the ops that waited for
        # the pause run only after it, so the state dumped is the state at pos.
        where = [pos.segment, pos.offset]
        path = recovery.snapshot_path(self.snapshot_dir, pos)
        tmp = snap.temp_path(path)
        if snap.CAN_FORK:
            # the loop stalls for the fork itself (it copies the page tables): measured,
            # as it grows with RSS (docs/balances-and-journal.md)
            t0 = time.perf_counter()
            pid, err_fd = snap.fork_dump(self.store, where, tmp)
            fork_us = round((time.perf_counter() - t0) * 1e6)
            self.stats["snapshot_fork_us"] = fork_us
            self.stats["snapshot_fork_us_max"] = max(fork_us,
                                                     self.stats["snapshot_fork_us_max"])
        else:
            state = snap.dump_state(self.store, where)
        loop = asyncio.get_running_loop()
        if pid:
            # the child first (always reaped, even when the journal fails), then durability
            try:
                await loop.run_in_executor(None, snap.reap, pid, err_fd, tmp)
            finally:
                if self.after_fork_snapshot is not None:
                    await loop.run_in_executor(None, self.after_fork_snapshot)
            try:
                await self.journal.wait_durable(pos)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            await loop.run_in_executor(None, snap.publish, tmp, path)
        else:
            await self.journal.wait_durable(pos)
            await loop.run_in_executor(None, snap.write, path, state)
        await self._snapshot_done()
        return pos

    async def _snapshot_done(self) -> None:
        assert self.snapshot_dir is not None
        await asyncio.get_running_loop().run_in_executor(None, recovery.prune_snapshots,
                                                         self.snapshot_dir)
        self._since_snapshot = 0
        self._snapshot_every = max(self.snapshot_records, self.stats["journaled"])
        self._last_snapshot = time.monotonic()
        self.stats["snapshots"] += 1

    async def _quiet_position(self) -> Position:
        """The journal position once no op is between its store call and its journal
        enqueue (new ops wait meanwhile, microseconds): every op the store holds is then
        enqueued at or before it."""
        pause = self._pause = asyncio.Event()
        try:
            while self._inflight:
                await asyncio.sleep(0)
            return self.journal.position
        finally:
            self._pause = None
            pause.set()

    async def _live_snapshot(self) -> Position:
        """snapshot() without a fork (charging/store/live_dump.py): capture the accounts one
        step at a time between requests; publish once everything the file holds is durable.
        Recovery replays from where the dump began; ops the file already holds are skipped
        by their keys (idempotent per account)."""
        from charging.store import snapshot as snap
        from charging.store.live_dump import LiveDump

        assert self.snapshot_dir is not None
        store = self.store
        pos = await self._quiet_position()
        path = recovery.snapshot_path(self.snapshot_dir, pos)
        tmp = snap.temp_path(path)
        loop = asyncio.get_running_loop()
        dump = LiveDump(store, [pos.segment, pos.offset], tmp)
        # A dump must end within an idempotency epoch (LiveDump.finish): aim at a quarter of
        # one, with bigger steps when the cache is big (27M keys, 300 s: ~1,450 per step)
        step = max(LIVE_STEP,
                   int(dump.total * LIVE_PAUSE / (0.25 * store.session_retention)) + 1)
        try:
            while not dump.step(step):
                if dump.sync_due:  # the disk takes the file a MiB at a time (live_dump.SYNC_BYTES)
                    await loop.run_in_executor(None, dump.sync)
                await asyncio.sleep(LIVE_PAUSE)
                if self._closing:  # a prompt shutdown: the journal holds everything
                    raise snap.SnapshotError("live snapshot dropped: the ledger is closing")
            end = await self._quiet_position()
            await loop.run_in_executor(None, dump.finish, store._epoch, store._ep_end)
            await self.journal.wait_durable(end)
            await loop.run_in_executor(None, snap.publish, tmp, path)
        except BaseException:
            dump.abort()
            raise
        await self._snapshot_done()
        return pos

    async def _snapshot_job(self) -> None:
        try:
            await self.snapshot()
        except Exception as exc:
            if self._closing:
                _log.info("ledger snapshot dropped at shutdown: %s", exc)
                return
            # A full disk or a failed child: keep serving (the journal holds everything), say
            # so, and try again only after another full spacing (no fork storm).
            self.stats["snapshot_failures"] += 1
            self._since_snapshot = 0
            self._last_snapshot = time.monotonic()
            _log.warning("ledger snapshot failed (serving on; recovery replays more): %s: %s",
                         type(exc).__name__, exc)
        finally:
            self._snapshot_task = None

    # ------------------------------------------------------------------ recovery
    async def recover(self, *, now: float | None = None) -> RecoveryReport:
        """Bring the store in line with the journal; call once, before serving.

        Embedded: restore the newest snapshot, replay the journal after it. Redis: journal the
        pending (unconfirmed) ops the journal lacks, confirm them. Both: expire reservations
        whose TTL passed (so none outlives it across a restart).
        """
        reader = JournalReader(self.journal.directory)
        snap_pos: Position | None = None
        replayed = journaled = confirmed = 0
        problems: list[str] = []
        t = self.clock() if now is None else now
        if self.embedded:
            if self.snapshot_dir is not None:
                snap_pos, problems = recovery.restore_newest(self.store, self.snapshot_dir)
            replayed, _end = recovery.replay(self.store, reader, snap_pos)
        else:
            pending = await self.store.pending_ops()
            if pending:
                known = recovery.keys_after(reader, self._read_checkpoint())
                for res in pending:
                    if res.key in known:
                        continue
                    acct = recovery.account_of(res)
                    bal = (res.effects or res.holds)[0].balance if (res.effects or res.holds) else ""
                    if acct is not None:
                        await self._ensure_meta(acct, bal)
                    rec = op_record(op=recovery.op_name_of(res), result=res,
                                    record_id=self._ids.next(), ts_us=int(t * 1_000_000),
                                    meta=self._meta_of, fields={"recovered": True})
                    self.journal.append_nowait(rec)
                    journaled += 1
                await self.journal.flush()
                pairs = recovery.pending_pairs(pending)
                await self.store.confirm_journaled(pairs)
                confirmed = len(pairs)
            self._write_checkpoint(self.journal.position)  # everything before is confirmed
        expired = 0
        while True:
            n = await self.expire(t)
            expired += n
            if n == 0:
                break
        await self.journal.flush()
        if self.embedded and self.snapshot_dir is not None and replayed:
            # Cut one so the next start need not replay this again, but in the background: the
            # store is ready, and a forked dump of it took ~4.5 s before serving after 600k
            # records. A crash before it is published only means the same replay again.
            self._snapshot_task = asyncio.ensure_future(self._snapshot_job())
        return RecoveryReport(snap_pos, replayed, journaled, confirmed, expired, tuple(problems))

    # ------------------------------------------------------------------ background jobs
    def start(self) -> None:
        """Start the TTL sweep and (Redis) the confirmation flusher."""
        self._tasks.append(asyncio.ensure_future(self._expiry_loop()))
        graveyard = getattr(self.store, "graveyard", None)
        if graveyard is not None:
            self._tasks.append(asyncio.ensure_future(self._reclaim_loop(graveyard)))
        if not self.embedded:
            self._tasks.append(asyncio.ensure_future(self._confirm_loop()))

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_interval)
            await self.expire(self.clock())

    @staticmethod
    async def _reclaim_loop(graveyard: Any) -> None:
        """Free what the embedded store dropped (old idempotency epochs, compacted expiry
        heaps) a slice at a time between requests, instead of in one long loop stall."""
        while True:
            await asyncio.sleep(RECLAIM_TICK if graveyard else RECLAIM_IDLE)
            graveyard.reclaim(RECLAIM_BUDGET)

    async def _confirm_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self.flush_confirmations()

    async def flush_confirmations(self) -> None:
        """Tell the Redis store which ops are journaled (durable) now, and advance the
        confirmed checkpoint (recovery only scans the journal after it)."""
        if self._to_confirm:
            batch, self._to_confirm = self._to_confirm, []
            await self.store.confirm_journaled([(a, k) for a, k, _n in batch if a])
            unconfirmed = self._unconfirmed
            for _a, k, _n in batch:
                unconfirmed.pop(k, None)
            self._confirmed_seqs.update(n for _a, _k, n in batch)
            enq, done = self._enq, self._confirmed_seqs
            while enq and enq[0][0] in done:
                n, pos = enq.popleft()
                done.discard(n)
                self._confirmed_upto = pos
        if (self._confirmed_upto is not None
                and time.monotonic() - self._checkpoint_written >= 1.0):
            self._write_checkpoint(self._confirmed_upto)

    def _checkpoint_path(self) -> Path:
        return self.journal.directory / "redis-confirmed.json"

    def _write_checkpoint(self, pos: Position) -> None:
        # Never fsynced: a stale or missing checkpoint only makes recovery scan more; it is
        # never ahead of the truth because it is only advanced after confirm_journaled.
        path = self._checkpoint_path()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps([pos.segment, pos.offset]))
        os.replace(tmp, path)
        self._checkpoint_written = time.monotonic()

    def _read_checkpoint(self) -> Position | None:
        try:
            seg, off = json.loads(self._checkpoint_path().read_text())
            return Position(int(seg), int(off))
        except (OSError, ValueError, TypeError):
            return None

    async def close(self) -> None:
        """Stop background jobs, flush confirmations and the journal (owners close those).
        A live snapshot still being stepped is dropped (the previous one and the journal
        restore the same state); a forked one, or a live one already writing its end, is
        awaited."""
        self._closing = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        if self._snapshot_task is not None:
            await self._snapshot_task
        await self.journal.flush()
        if not self.embedded:
            await self.flush_confirmations()
