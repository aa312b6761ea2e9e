"""The ledger's synchronous per-op path for the embedded store (the Ro hot path).

The embedded store's ops never suspend: the awaited path (:meth:`Ledger._run`) pays a
coroutine, a lambda and an awaitable per op for nothing. :class:`SyncOps` runs the same steps
-- ONE store op (the store's ``reserve_sync`` / ``commit_sync``), then its journal record
(:func:`~charging.journal.records.op_record_into`, same bytes as :func:`op_record`) enqueued in
the current group commit -- in one plain call, with the ``wait=False`` contract: the CALLER
waits for :attr:`Ledger.position` to be durable before answering (invariant 3).

:meth:`commit_reserve_now` is the CCR-UPDATE step: the commit of the used units and the
reserve of the next grant, both records in ONE ``append_many_nowait`` (same records, same
order, same ids as two calls would write).

Callers check :meth:`sync_ready` first (False: use the awaited methods). Why no snapshot
pause check: the pause only holds back ops that could suspend between their store call and
their journal enqueue; these cannot, so the snapshot's state copy (taken in one loop step at
``journal.position``) either sees an op and its record or neither.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from charging.journal import Journal
from charging.journal.records import RecordIds, op_record_into
from charging.store.base import OpResult, OpStatus

_OK = OpStatus.OK
_UNKNOWN_RES = OpStatus.UNKNOWN_RESERVATION


class SyncOps:
    """Mixin of :class:`charging.ledger.core.Ledger` (the attributes below are its own)."""

    journal: Journal
    embedded: bool
    stats: dict[str, int]
    snapshot_dir: Any
    _ids: RecordIds
    _meta: dict[tuple[str, str], tuple[bool, str | None]]
    _failed: BaseException | None
    _since_snapshot: int
    _snapshot_every: int
    _snapshot_task: Any
    _store: Any
    _sync: bool
    _pair: Callable[..., Any] | None

    _meta_of: Callable[[str, str], tuple[bool, str | None]]
    _maybe_snapshot: Callable[[], None]
    _after: Callable[[OpResult, float, str | None, int], None]
    _after_group: Callable[..., None]

    @property
    def store(self) -> Any:
        return self._store

    @store.setter
    def store(self, store: Any) -> None:
        # The synchronous ops are the store CLASS's own (a wrapper object -- a test's fault
        # injector, say -- that merely forwards attributes keeps the awaited path).
        self._store = store
        cls = type(store)
        self._sync = (hasattr(store, "apply_record") and getattr(cls, "reserve_sync", None)
                      is not None and getattr(cls, "commit_sync", None) is not None)
        # a store that runs a commit and the next reserve as one op (Redis: Ledger.commit_reserve)
        self._pair = (store.commit_reserve if getattr(cls, "commit_reserve", None) is not None
                      else None)

    def sync_ready(self, account: str, balance: str) -> bool:
        """True when the ``*_now`` methods may run an op on this balance: embedded store with
        synchronous ops, ledger and journal healthy, the balance's kind known. False: use the
        awaited methods (they also raise the fail-closed JournalError)."""
        return (self._sync and self._failed is None and (account, balance) in self._meta
                and not self.journal.failed)

    def reserve_now(self, key: str, account: str, balance: str, reservation: str,
                    amount: int, *, ttl: float, now: float,
                    fields: dict[str, Any] | None = None) -> OpResult:
        """:meth:`Ledger.reserve` with ``wait=False``, synchronously (see :meth:`sync_ready`).
        ``fields`` becomes the record: pass a fresh dict, never reuse it."""
        res: OpResult = self._store.reserve_sync(key, account, balance, reservation, amount,
                                                 ttl, now, False)
        self._journal_now(res, "reserve", now, fields, account)
        return res

    def commit_now(self, key: str, account: str, balance: str, reservation: str, used: int,
                   *, now: float, fields: dict[str, Any] | None = None) -> OpResult:
        """:meth:`Ledger.commit` (release_rest) with ``wait=False``, synchronously.
        ``fields`` becomes the record: pass a fresh dict, never reuse it."""
        res: OpResult = self._store.commit_sync(key, account, balance, reservation, used, now,
                                                True)
        self._journal_now(res, "commit", now, fields, account)
        return res

    def commit_reserve_now(self, ckey: str, account: str, balance: str, creservation: str,
                           used: int, cfields: dict[str, Any], rkey: str, rreservation: str,
                           amount: int, *, ttl: float, now: float,
                           rfields: dict[str, Any]) -> tuple[OpResult, OpResult | None]:
        """Commit ``used`` against ``creservation`` (rest released), then -- unless the commit
        found no such reservation (UNKNOWN_RESERVATION: returns ``(commit, None)``, nothing
        journaled; the caller debits instead) -- reserve ``amount`` as ``rreservation``. Both
        records go into the journal in order in one call. The dicts become the records."""
        store = self._store
        cres: OpResult = store.commit_sync(ckey, account, balance, creservation, used, now, True)
        if cres.status is _UNKNOWN_RES and not cres.effects and not cres.holds:
            self._count_plain(cres)  # moved nothing: no record
            return cres, None
        try:
            rres: OpResult = store.reserve_sync(rkey, account, balance, rreservation, amount,
                                                ttl, now, False)
        except BaseException:
            self._journal_now(cres, "commit", now, cfields, account)  # it moved money
            raise
        recs = []
        ts = int(now * 1_000_000)
        meta = self._meta_of
        ids = self._ids
        if not cres.replayed and (cres.status is _OK or cres.effects or cres.holds):
            recs.append(op_record_into(cfields, "commit", cres, ids.next(), ts, meta))
        if not rres.replayed and (rres.status is _OK or rres.effects or rres.holds):
            recs.append(op_record_into(rfields, "reserve", rres, ids.next(), ts, meta))
        if recs:
            try:
                _pos, group = self.journal.append_many_nowait(recs, positions=False)
            except BaseException as exc:
                self._failed = exc  # the store moved money the journal does not have
                raise
            self._journaled(cres, now, account, group)
            if len(recs) == 2:
                self._journaled(rres, now, account, group)
        if len(recs) < 2:  # (the stats of an op that wrote no record)
            self._count_plain(cres)
            self._count_plain(rres)
        return cres, rres

    # ------------------------------------------------------------------ helpers
    def _journal_now(self, res: OpResult, op: str, now: float, fields: dict[str, Any] | None,
                     account: str) -> None:
        """Enqueue *res*'s record (what :meth:`Ledger._run` does after the store op)."""
        if res.replayed:
            self.stats["replayed"] += 1
        elif res.status is _OK or res.effects or res.holds:
            try:
                rec = op_record_into({} if fields is None else fields, op, res,
                                     self._ids.next(), int(now * 1_000_000), self._meta_of)
                _pos, group = self.journal.append_nowait(rec)
            except BaseException as exc:
                self._failed = exc  # the store moved money the journal does not have
                raise
            self._journaled(res, now, account, group)
        else:
            self.stats["ops"] += 1  # refused, nothing moved: nothing to journal

    def _count_plain(self, res: OpResult) -> None:
        # the stats of an op that wrote no record (replayed, or refused)
        if res.replayed:
            self.stats["replayed"] += 1
        elif not (res.status is _OK or res.effects or res.holds):
            self.stats["ops"] += 1

    def _journaled(self, res: OpResult, now: float, account: str, group: Any) -> None:
        """Bookkeeping of one enqueued op (the embedded part of :meth:`Ledger._after`)."""
        if res.low_balance:
            # low-balance events only once the record is durable
            group.add_done_callback(functools.partial(self._after_group, res, now, account, 0))
            return
        stats = self.stats
        stats["ops"] += 1
        stats["journaled"] += 1
        self._since_snapshot += 1
        if self.snapshot_dir is not None and self._snapshot_task is None:
            self._maybe_snapshot()
