"""The embedded balance store: plain dicts inside the server process (the default store).

Every operation runs to completion without an ``await`` between its read and its write, so
within one event loop it is atomic with no lock (invariant 4 holds under any number of
concurrent tasks). Durability comes from outside: the ledger journals each result's effects
and holds before answering (invariant 3); on start it calls :meth:`MemoryStore.restore` on the
newest snapshot and then :meth:`MemoryStore.apply_record` for every journal record after the
snapshot's position. :meth:`MemoryStore.snapshot` writes the state atomically.

Idempotency: results are cached per account by key, in two classes.

* Top-ups (keys a payment system or an operator gives, retried over hours) are kept
  ``retention`` seconds (default 48 h, common.DEFAULT_RETENTION), in the account's ``kept``
  dict with their expiry; they are rare, so their memory does not matter.
* Every other op (reserve, commit, release, debit, refund: the protocol front ends' keys, which
  their peers retry within seconds to minutes, RFC 4006 Tx, RFC 6733 5.5.4) is kept
  ``session_retention`` seconds (default 300 s, common.DEFAULT_SESSION_RETENTION) in two
  rotating epoch dicts of that length: remembered at least ``session_retention`` and at most
  twice that. These are ~1.5 ops per CCR at ~540 bytes each, so this window is what sizes the
  cache (measured: 48 h for every key meant 130-260 GB at 1,000 CCR/s).

Epochs are numbered one after the other, each ``session_retention`` long from the end of the
previous one, so a snapshot cut with another length restores and carries on. Rotation is O(1)
per op, and the cache holds only flat tuples of atoms, which keeps the cyclic GC's work small
(measured: GC passes over a per-op log and nested tuples cost half of the embedded
throughput).

Reservations live until released, committed or swept by :meth:`expire_reservations`; a commit
that arrives after the TTL but before the sweep still counts. The expiry heap keeps a stale
entry for every hold committed or released before its TTL; :meth:`compact_expiry_heap` drops
them once they dominate, a slice per loop turn (rebuilding it in one go stopped the loop
25-39 ms at 41k open holds, ~70 ms at 100k).

Hot path (cython_ext/store_ops.pyx, when built): ``reserve``/``commit`` are the compiled twins
of ``_reserve_py``/``_commit_py`` and answer with an already-complete awaitable instead of a
coroutine: the op runs at the call, ``await`` hands back the OpResult (awaiting it again gives
the same result, like a done Future). Callers only ever ``await`` them, so nothing changes for
them; the coroutine versions remain as ``reserve_coro``/``commit_coro`` (pure mode uses them).
All four (``reserve``, ``commit``, ``reserve_sync``, ``commit_sync``) are then C method
descriptors parsing the usual call shape themselves, and the results are the compiled result
classes base.py selects (cython_ext/store_results.pyx), built by that module's C constructors.
Measured with callgrind (benchmarks/_stores_embedded.py): 11.9k -> 9.2k instructions per
awaited reserve+commit pair, 11.3k -> 8.3k through the synchronous methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import heapq
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from charging.store import snapshot as snap
from charging.store.base import (
    MAX_AMOUNT,
    AccountKind,
    AccountView,
    BalanceKind,
    BalanceSpec,
    BalanceView,
    Effect,
    Hold,
    OpResult,
    OpStatus,
    to_us,
)
from charging.store.common import (
    DEFAULT_RETENTION,
    DEFAULT_SESSION_RETENTION,
    _units,
    check_account_id,
    check_amount,
    check_spec,
    decode_record,
    expire_key,
    spec_tuple,
)
from charging.store.graveyard import Graveyard
from charging.store.packing import LOW_EVENTS as _LOW_EVENTS
from charging.store.packing import pack as _pack
from charging.store.packing import unpack as _unpack
from cython_ext import load

_gcutil = load("gcutil")  # None without the extensions: the compacted heap stays tracked
# Expiry-heap entries a compaction moves per loop turn (0.5-2.5 ms of work between turns).
COMPACT_SLICE = 2048
# Accounts whose idempotency cache an epoch's end rotates per loop turn (~1-3 µs each).
PRUNE_SLICE = 1024

_OK = OpStatus.OK
_INSUFFICIENT = OpStatus.INSUFFICIENT
_STATUS_VALUES = frozenset(s.value for s in OpStatus)


class _Balance:
    __slots__ = ("id", "kind", "currency", "amount", "reserved", "credit_limit", "priority",
                 "exp_us", "low", "res")

    def __init__(self, spec: BalanceSpec) -> None:
        self.id = spec.id
        self.kind = spec.kind
        self.currency = spec.currency
        self.amount = spec.amount
        self.reserved = 0
        self.credit_limit = spec.credit_limit
        self.priority = spec.priority
        self.exp_us: int | None = None if spec.expires_at is None else to_us(spec.expires_at)
        self.low = spec.low_threshold
        # reservation id -> [amount, expiry in epoch µs]
        self.res: dict[str, list[int]] = {}

    def view(self) -> BalanceView:
        return BalanceView(self.id, self.kind, self.currency, self.amount, self.reserved,
                           self.credit_limit, self.priority,
                           None if self.exp_us is None else self.exp_us / 1_000_000)


class _Account:
    __slots__ = ("id", "kind", "balances", "identities", "specs", "ops", "old", "epoch", "kept")

    def __init__(self, account: str, kind: AccountKind, specs: list[BalanceSpec],
                 identities: list[str]) -> None:
        self.id = account
        self.kind = kind
        self.balances: dict[str, _Balance] = {s.id: _Balance(s) for s in specs}
        self.identities = tuple(identities)
        self.specs = tuple(spec_tuple(s) for s in specs)
        # Idempotency cache, per account like Redis: key -> _pack(result), in the current
        # retention epoch (ops) and the previous one (old); see MemoryStore._rotate.
        self.ops: dict[str, tuple[Any, ...]] = {}
        self.old: dict[str, tuple[Any, ...]] = {}
        self.epoch = -1
        # Top-up keys: key -> (expiry in op time, _pack(result)); dropped at a rotation after
        # their expiry (see MemoryStore._rotate).
        self.kept: dict[str, tuple[float, tuple[Any, ...]]] = {}


def _low(bal: _Balance, before: int, after: int) -> bool:
    """True when this op took ``available`` from at/above the threshold to below it."""
    low = bal.low
    return low is not None and before >= low > after


class MemoryStore:
    """In-process BalanceStore. Create one per event loop; never share across threads."""

    # Slots (the compiled twin reads the hot ones at their offsets); __dict__ stays available
    # for subclasses and tests.
    __slots__ = ("retention", "session_retention", "_accounts", "_ids", "_heap", "_epoch",
                 "_ep_end", "graveyard", "_compacting", "_heap_checked",
                 "_pruning", "__dict__")

    def __init__(self, *, retention: float = DEFAULT_RETENTION,
                 session_retention: float | None = None) -> None:
        """*retention*: how long a top-up key is remembered (s); *session_retention*: how long
        every other key is (s; default the shorter of 300 s and *retention*)."""
        if session_retention is None:
            session_retention = min(DEFAULT_SESSION_RETENTION, retention)
        if not 0 < session_retention <= retention:
            raise ValueError(f"session_retention must be in (0, retention={retention:g}], "
                             f"got {session_retention:g}")
        self.retention = retention
        self.session_retention = session_retention
        self._accounts: dict[str, _Account] = {}
        self._ids: dict[str, str] = {}
        # (expiry µs, account, balance, reservation); stale entries are skipped lazily and
        # dropped by compact_expiry_heap.
        self._heap: list[tuple[int, str, str, str]] = []
        self._compacting = False
        self._heap_checked = 0  # heap length below which compact_expiry_heap counts no holds
        self._pruning = False
        # Idempotency epochs: the current one (numbered from 0 upwards) ends at _ep_end (op time).
        self._epoch = -1
        self._ep_end = float("-inf")
        # Dropped epoch dicts, freed a slice at a time (reclaim()).
        self.graveyard = Graveyard()

    # ------------------------------------------------------------------ accounts
    async def create_account(self, account: str, kind: AccountKind,
                             balances: list[BalanceSpec], identities: list[str] = ()) -> None:  # type: ignore[assignment]
        self.create_account_sync(account, kind, balances, list(identities))

    def create_account_sync(self, account: str, kind: AccountKind,
                            balances: list[BalanceSpec], identities: list[str]) -> None:
        """Create an account; identical repeat is a no-op, a different one raises ValueError."""
        kind = AccountKind(kind)
        check_account_id(account)
        for spec in balances:
            check_spec(spec)
        if len({s.id for s in balances}) != len(balances):
            raise ValueError(f"account {account}: duplicate balance ids")
        existing = self._accounts.get(account)
        if existing is not None:
            same = (existing.kind is kind and existing.specs == tuple(map(spec_tuple, balances))
                    and set(existing.identities) == set(identities))
            if not same:
                raise ValueError(f"account {account} exists with a different definition")
            return
        for ident in identities:
            owner = self._ids.get(ident)
            if owner is not None and owner != account:
                raise ValueError(f"identity {ident} already belongs to {owner}")
        self._accounts[account] = _Account(account, kind, list(balances), list(identities))
        for ident in identities:
            self._ids[ident] = account

    async def resolve(self, identity: str) -> str | None:
        return self._ids.get(identity)

    async def get(self, account: str) -> AccountView | None:
        acct = self._accounts.get(account)
        if acct is None:
            return None
        return AccountView(acct.id, acct.kind, tuple(b.view() for b in acct.balances.values()),
                           acct.identities)

    # ------------------------------------------------------------------ helpers
    def _remember(self, acct: _Account, key: str, result: OpResult, now: float,
                  keep: bool = False) -> OpResult:
        """Cache *result* under *key*: a top-up (*keep*) for ``retention``, any other op for
        ``session_retention`` (module docstring)."""
        if acct.epoch != self._epoch or now >= self._ep_end:
            self._rotate(acct, now)
        if keep:
            acct.kept[key] = (now + self.retention, _pack(result))
        else:
            acct.ops[key] = _pack(result)
        return result

    def _rotate(self, acct: _Account, now: float) -> None:
        """Bring the epoch up to *now* and *acct*'s cache to it: the current dict becomes the
        previous one, the older one is dropped, and so are expired top-up keys (callers check
        before inserting a key)."""
        if now >= self._ep_end:
            length = self.session_retention
            if self._epoch < 0 or self._ep_end == float("-inf"):
                self._epoch += 1
                self._ep_end = now + length
            else:
                # the epochs that went by with no op count too: a key is never kept longer than
                # two epochs, however long the store was idle
                passed = 1 + int((now - self._ep_end) // length)
                self._epoch += passed
                self._ep_end += passed * length
        if acct.epoch != self._epoch:
            grave = self.graveyard
            grave.bury(acct.old)
            if acct.epoch == self._epoch - 1:
                acct.old = acct.ops
            else:
                grave.bury(acct.ops)
                acct.old = {}
            acct.ops = {}
            acct.epoch = self._epoch
            if acct.kept:
                acct.kept = {k: v for k, v in acct.kept.items() if v[0] > now}

    @staticmethod
    def _cached(acct: _Account, key: str) -> tuple[Any, ...] | None:
        done = acct.ops.get(key)
        if done is None and acct.old:
            done = acct.old.get(key)
        if done is None and acct.kept:
            kept = acct.kept.get(key)
            if kept is not None:
                done = kept[1]
        return done

    def _lookup(self, account: str, key: str, balance: str
                ) -> tuple[OpResult | None, _Account | None, _Balance | None]:
        acct = self._accounts.get(account)
        if acct is None:
            return OpResult(key, OpStatus.UNKNOWN_ACCOUNT), None, None
        done = self._cached(acct, key)
        if done is not None:
            return _unpack(key, account, done), acct, None
        return None, acct, acct.balances.get(balance)

    # ------------------------------------------------------------------ operations
    async def reserve(self, key: str, account: str, balance: str, reservation: str,
                      amount: int, *, ttl: float, now: float, partial: bool = False) -> OpResult:
        return self.reserve_sync(key, account, balance, reservation, amount, ttl, now, partial)

    def _reserve_py(self, key: str, account: str, balance: str, reservation: str,
                    amount: int, ttl: float, now: float, partial: bool = False) -> OpResult:
        """Synchronous reserve: the reference (cython_ext/store_ops.pyx is its twin)."""
        check_amount(amount)
        acct = self._accounts.get(account)
        if acct is None:
            return OpResult(key, OpStatus.UNKNOWN_ACCOUNT)
        done = self._cached(acct, key)
        if done is not None:
            return _unpack(key, account, done)
        bal = acct.balances.get(balance)
        if bal is None:
            return self._remember(acct, key, OpResult(key, OpStatus.UNKNOWN_BALANCE), now)
        now_us = round(now * 1_000_000)  # == to_us(now)
        if bal.exp_us is not None and bal.exp_us <= now_us:
            return self._remember(acct, key, _result(key, OpStatus.EXPIRED, bal), now)
        before = bal.amount - bal.reserved + bal.credit_limit
        grant = amount
        if amount > before:
            if not partial or before <= 0:
                return self._remember(acct, key, _result(key, _INSUFFICIENT, bal), now)
            grant = before
        exp_us = round((now + ttl) * 1_000_000)  # == to_us(), inlined (hot path)
        expires = exp_us / 1_000_000
        res = bal.res.get(reservation)
        if res is None:
            bal.res[reservation] = [grant, exp_us]
        else:
            res[0] += grant
            res[1] = exp_us
        bal.reserved += grant
        heapq.heappush(self._heap, (exp_us, account, balance, reservation))
        after = before - grant
        low = _low(bal, before, after)
        events = _LOW_EVENTS if low else ()
        if acct.epoch != self._epoch or now >= self._ep_end:
            self._rotate(acct, now)
        acct.ops[key] = ("ok", grant, bal.amount, after, low, balance, reservation, 0, grant,
                         expires, True)
        return OpResult(key, _OK, (), (Hold(account, balance, reservation, grant, expires),),
                        grant, bal.amount, after, False, low, events)

    async def commit(self, key: str, account: str, balance: str, reservation: str, used: int,
                     *, now: float, release_rest: bool = True) -> OpResult:
        return self.commit_sync(key, account, balance, reservation, used, now, release_rest)

    def _commit_py(self, key: str, account: str, balance: str, reservation: str, used: int,
                   now: float, release_rest: bool = True) -> OpResult:
        """Synchronous commit: the reference (cython_ext/store_ops.pyx is its twin)."""
        check_amount(used, "used")
        acct = self._accounts.get(account)
        if acct is None:
            return OpResult(key, OpStatus.UNKNOWN_ACCOUNT)
        done = self._cached(acct, key)
        if done is not None:
            return _unpack(key, account, done)
        bal = acct.balances.get(balance)
        if bal is None:
            return self._remember(acct, key, OpResult(key, OpStatus.UNKNOWN_BALANCE), now)
        res = bal.res.get(reservation)
        if res is None:
            return self._remember(acct, key, _result(key, OpStatus.UNKNOWN_RESERVATION, bal), now)
        held = res[0]
        before = bal.amount - bal.reserved + bal.credit_limit
        # What may be debited: the hold plus whatever else is available (credit limit).
        debit = used if used <= held + before else held + before
        if release_rest:
            freed = held
            del bal.res[reservation]
            hexp = None
        else:
            freed = debit if debit < held else held
            res[0] = held - freed
            hexp = res[1] / 1_000_000
        bal.reserved -= freed
        bal.amount -= debit
        after = before + freed - debit
        low = _low(bal, before, after)
        events = _LOW_EVENTS if low else ()
        has_hold = bool(freed or release_rest)
        if acct.epoch != self._epoch or now >= self._ep_end:
            self._rotate(acct, now)
        acct.ops[key] = ("ok", debit, bal.amount, after, low, balance, reservation, -debit,
                         -freed, hexp, has_hold)
        return OpResult(key, _OK, (Effect(account, balance, -debit),) if debit else (),
                        (Hold(account, balance, reservation, -freed, hexp),) if has_hold else (),
                        debit, bal.amount, after, False, low, events)

    # reserve_sync / commit_sync: the synchronous ops the coroutines wrap (benchmarks call them
    # too). They are the compiled twins when built, else the Python reference (selected below).
    reserve_sync = _reserve_py
    commit_sync = _commit_py
    # The coroutine methods as written above (when compiled, reserve/commit are replaced by
    # store_ops.reserve_ready/commit_ready, which return an already-complete awaitable).
    reserve_coro = reserve
    commit_coro = commit

    async def release(self, key: str, account: str, balance: str, reservation: str, *,
                      now: float) -> OpResult:
        done, acct, bal = self._lookup(account, key, balance)
        if done is not None:
            return done
        assert acct is not None
        if bal is None:
            return self._remember(acct, key, OpResult(key, OpStatus.UNKNOWN_BALANCE), now)
        res = bal.res.pop(reservation, None)
        if res is None:
            return self._remember(acct, key, _result(key, OpStatus.UNKNOWN_RESERVATION, bal), now)
        bal.reserved -= res[0]
        result = _result(key, _OK, bal, holds=(Hold(account, balance, reservation, -res[0], None),))
        return self._remember(acct, key, result, now)

    async def debit(self, key: str, account: str, balance: str, amount: int, *, now: float,
                    partial: bool = False) -> OpResult:
        check_amount(amount)
        done, acct, bal = self._lookup(account, key, balance)
        if done is not None:
            return done
        assert acct is not None
        if bal is None:
            return self._remember(acct, key, OpResult(key, OpStatus.UNKNOWN_BALANCE), now)
        if bal.exp_us is not None and bal.exp_us <= to_us(now):
            return self._remember(acct, key, _result(key, OpStatus.EXPIRED, bal), now)
        before = bal.amount - bal.reserved + bal.credit_limit
        take = amount
        if amount > before:
            if not partial or before <= 0:
                return self._remember(acct, key, _result(key, _INSUFFICIENT, bal), now)
            take = before
        bal.amount -= take
        low = _low(bal, before, before - take)
        effects = (Effect(account, balance, -take),) if take else ()
        return self._remember(acct, key, _result(key, _OK, bal, effects=effects, granted=take,
                                                 low=low), now)

    async def refund(self, key: str, account: str, balance: str, amount: int, *,
                     now: float) -> OpResult:
        return self._credit(key, account, balance, amount, now)

    async def topup(self, key: str, account: str, balance: str, amount: int, *,
                    now: float) -> OpResult:
        # a top-up's key comes from a payment system or an operator, which may retry for hours
        return self._credit(key, account, balance, amount, now, keep=True)

    def _credit(self, key: str, account: str, balance: str, amount: int, now: float,
                keep: bool = False) -> OpResult:
        check_amount(amount)
        done, acct, bal = self._lookup(account, key, balance)
        if done is not None:
            return done
        assert acct is not None
        if bal is None:
            return self._remember(acct, key, OpResult(key, OpStatus.UNKNOWN_BALANCE), now, keep)
        if bal.amount + amount + bal.credit_limit > MAX_AMOUNT:
            return self._remember(acct, key, _result(key, OpStatus.OUT_OF_RANGE, bal), now, keep)
        bal.amount += amount
        effects = (Effect(account, balance, amount),) if amount else ()
        return self._remember(acct, key, _result(key, _OK, bal, effects=effects, granted=amount),
                              now, keep)

    # ------------------------------------------------------------------ expiry
    async def expire_reservations(self, *, now: float, limit: int = 1000) -> list[OpResult]:
        """Release reservations whose expiry is <= now (at most *limit*); prune old keys.
        Never suspends: the ledger journals the releases in the same loop step. The heap's
        stale entries are dropped by :meth:`compact_expiry_heap` (the ledger calls it first)."""
        now_us = to_us(now)
        heap = self._heap
        out: list[OpResult] = []
        while heap and heap[0][0] <= now_us and len(out) < limit:
            exp_us, account, balance, reservation = heapq.heappop(heap)
            acct = self._accounts.get(account)
            bal = acct.balances.get(balance) if acct else None
            res = bal.res.get(reservation) if bal else None
            if acct is None or bal is None or res is None or res[1] != exp_us:
                continue  # stale: committed, released or refreshed since
            key = expire_key(balance, reservation, exp_us)
            del bal.res[reservation]
            bal.reserved -= res[0]
            result = _result(key, _OK, bal,
                             holds=(Hold(account, balance, reservation, -res[0], None),))
            out.append(self._remember(acct, key, result, now))
        self.prune(now)
        return out

    async def compact_expiry_heap(self) -> int:
        """Drop the expiry heap's stale entries once they dominate (more than 4x the open
        holds + 100k: memory stays proportional to the holds); return how many were dropped.

        A fresh heap takes the pushes at once; the live entries move to it from the old one's
        end (removing a heap's last entry keeps it a heap) ``COMPACT_SLICE`` at a time, with a
        loop turn between slices. It changes no balance or hold, so it may suspend; an entry
        due while it is still in the old heap expires at the next sweep. Call it outside the
        ledger's op accounting (a snapshot cut waits for ops in flight). Cancelled midway,
        the rest moves back at once."""
        old = self._heap
        if self._compacting or len(old) <= max(100_000, self._heap_checked):
            return 0
        # Counting the open holds walks every account (~0.2 s per million): only again once
        # the heap has grown by a quarter since the last count.
        self._heap_checked = len(old) + (len(old) >> 2)
        live = sum(len(b.res) for a in self._accounts.values() for b in a.balances.values())
        if len(old) <= 4 * live + 100_000:
            return 0
        self._compacting = True
        fresh: list[tuple[int, str, str, str]] = []
        # Out of the collector's sight (only tuples of atoms are ever pushed on it): a young
        # list of ~40k entries made the next young collection a 4 ms pause.
        if _gcutil is not None:
            _gcutil.untrack_atomic_rows(fresh)
        self._heap = fresh
        accounts = self._accounts
        push = heapq.heappush
        dropped = 0
        try:
            while old:
                for _ in range(min(COMPACT_SLICE, len(old))):
                    entry = old.pop()
                    acct = accounts.get(entry[1])
                    bal = acct.balances.get(entry[2]) if acct is not None else None
                    res = bal.res.get(entry[3]) if bal is not None else None
                    if res is not None and res[1] == entry[0]:
                        push(fresh, entry)
                    else:
                        dropped += 1  # freed here, a slice at a time
                if old:
                    await asyncio.sleep(0)
        finally:
            self._compacting = False
            self._heap_checked = 0
            if old:  # cancelled: nothing may be lost (a lost entry is a hold never expired)
                fresh.extend(old)
                heapq.heapify(fresh)
        return dropped

    def prune(self, now: float) -> int:
        """Advance the idempotency epoch to *now* and rotate every account's cache, forgetting
        keys older than 1-2 x ``session_retention`` and top-ups past ``retention``; return how
        many keys were dropped. All accounts in one go: the ledger's sweep runs
        :meth:`prune_in_slices` first, after which this finds nothing to do."""
        dropped = 0
        if now >= self._ep_end:
            for acct in self._accounts.values():
                dropped += self._rotate_counted(acct, now)
        return dropped

    def _rotate_counted(self, acct: _Account, now: float) -> int:
        before = len(acct.ops) + len(acct.old) + len(acct.kept)
        self._rotate(acct, now)
        return before - len(acct.ops) - len(acct.old) - len(acct.kept)

    async def prune_in_slices(self, now: float) -> int:
        """:meth:`prune`, ``PRUNE_SLICE`` accounts per loop turn (in one go it stopped the loop
        ~0.9-1.1 s per million accounts at each epoch's end). Other ops may run between slices:
        one on an account not rotated yet still finds its keys of two epochs ago, as an op between
        the epoch's end and the next sweep always did (keys are remembered for at least
        ``session_retention``; forgetting them a few loop turns later changes no answer a
        client may rely on). Call it outside the ledger's op accounting, like
        :meth:`compact_expiry_heap`."""
        if now < self._ep_end or self._pruning:
            return 0
        self._pruning = True
        try:
            dropped = 0
            accounts = iter(self._accounts.values())  # no copy: a list of a million took 50 ms
            while True:
                try:
                    batch = list(itertools.islice(accounts, PRUNE_SLICE))
                except RuntimeError:  # an account was created meanwhile: go over them again
                    accounts = iter(self._accounts.values())  # (rotated ones drop nothing)
                    continue
                for acct in batch:
                    dropped += self._rotate_counted(acct, now)
                if len(batch) < PRUNE_SLICE:
                    return dropped
                await asyncio.sleep(0)
        finally:
            self._pruning = False

    async def sweep_in_slices(self, now: float) -> None:
        """The sweep's work that may span loop turns (it changes no balance or hold): the
        epoch's rotation (:meth:`prune_in_slices`), then the expiry heap's compaction
        (:meth:`compact_expiry_heap`). The ledger runs it before :meth:`expire_reservations`,
        outside its op accounting (a snapshot cut waits for the ops in flight)."""
        await self.prune_in_slices(now)
        await self.compact_expiry_heap()

    async def pending_ops(self) -> list[OpResult]:
        """Ops applied but not journaled. Always empty: the embedded store dies with the process,
        so an op the ledger never journaled was never answered and is simply gone."""
        return []

    async def confirm_journaled(self, keys: list[tuple[str, str]]) -> None:
        """No-op (see :meth:`pending_ops`)."""

    # ------------------------------------------------------------------ recovery
    def apply_record(self, record: Mapping[str, Any]) -> bool:
        """Re-apply a journal record's ``balance_effects`` and ``holds`` (recovery replay).

        Idempotent by the record's ``idem`` key per account: an account that already has the key
        (the op happened after the snapshot was cut, or the record is replayed twice) is skipped.
        Returns True when anything was applied. Unknown accounts/balances raise KeyError: the
        journal and the snapshot disagree, which recovery must not paper over.
        """
        simple = self._apply_simple(record)
        if simple is not None:
            return simple
        ops = decode_record(record, self._kind_of)
        now = int(record.get("ts", 0)) / 1_000_000
        applied = False
        for account in sorted(set(ops.effects) | set(ops.holds)):
            acct = self._accounts.get(account)
            if acct is None:
                raise KeyError(f"journal names unknown account {account}")
            if self._cached(acct, ops.key) is not None:
                continue
            effects = tuple(ops.effects.get(account, ()))
            holds = tuple(ops.holds.get(account, ()))
            for e in effects:
                acct.balances[e.balance].amount += e.amount
            for h in holds:
                self._apply_hold(account, acct.balances[h.balance], h)
            granted = sum(-e.amount for e in effects) or sum(h.amount for h in holds
                                                              if h.amount > 0)
            status = OpStatus(ops.result) if ops.result in OpStatus._value2member_map_ else _OK
            self._remember(acct, ops.key, OpResult(ops.key, status, effects, holds, granted), now,
                           keep=record.get("type") == "topup")
            applied = True
        return applied

    def _apply_simple(self, record: Mapping[str, Any]) -> bool | None:
        """:meth:`apply_record` for the shape nearly every record has (one op on one balance:
        at most one effect and one hold, both there), without building a RecordOps: replay
        went at ~12 us per record. None: another shape or anything odd, which the general
        path handles (and refuses) before anything changed here. The cache entry is the one
        the general path makes (tests/charging/store/test_embedded.py compares them)."""
        key = record.get("idem")
        effs = record.get("balance_effects")
        hls = record.get("holds")
        if key.__class__ is not str or not key:
            return None
        e: dict[str, Any] | None = None
        h: dict[str, Any] | None = None
        if effs:
            if effs.__class__ is not list or len(effs) != 1 or effs[0].__class__ is not dict:
                return None
            e = effs[0]
        if hls:
            if hls.__class__ is not list or len(hls) != 1 or hls[0].__class__ is not dict:
                return None
            h = hls[0]
        first = e if e is not None else h
        if first is None:
            return None
        account: str = first.get("account")  # type: ignore[assignment]  # checked just below
        bid: str = first.get("balance")  # type: ignore[assignment]
        if account.__class__ is not str or bid.__class__ is not str or (
                e is not None and h is not None
                and (h.get("account") != account or h.get("balance") != bid)):
            return None
        acct = self._accounts.get(account)
        if acct is None:
            return None
        bal = acct.balances.get(bid)
        if bal is None or "amount" not in first or (h is not None and "reservation" not in h):
            return None
        if self._cached(acct, key) is not None:
            return False
        kind = bal.kind
        effect = _units(e["amount"], kind) if e is not None else 0
        hold = None
        if h is not None:
            rid = h["reservation"]
            exp = h.get("expires")
            hold = Hold(account, bid, rid if rid.__class__ is str else str(rid),
                        _units(h["amount"], kind), None if exp is None else int(exp) / 1_000_000)
        # every input is read: from here on the record is applied
        if e is not None:
            bal.amount += effect
        if hold is not None:
            self._apply_hold(account, bal, hold)
        granted = -effect or (hold.amount if hold is not None and hold.amount > 0 else 0)
        result = record.get("result", "ok")
        status = result if result in _STATUS_VALUES else "ok"
        now = int(record.get("ts", 0)) / 1_000_000
        if acct.epoch != self._epoch or now >= self._ep_end:
            self._rotate(acct, now)
        if e is not None and effect == 0:
            # an effect of 0 takes the general form (packing.pack)
            entry: tuple[Any, ...] = (
                "*", status, granted, None, None, False, ((bid, 0),),
                ((bid, hold.reservation, hold.amount, hold.expires_at),) if hold else ())
        else:
            entry = (status, granted, None, None, False, bid,
                     hold.reservation if hold else None, effect,
                     hold.amount if hold else 0, hold.expires_at if hold else None,
                     hold is not None)
        if record.get("type") == "topup":
            acct.kept[key] = (now + self.retention, entry)
        else:
            acct.ops[key] = entry
        return True

    def _apply_hold(self, account: str, bal: _Balance, h: Hold) -> None:
        res = bal.res.get(h.reservation)
        if h.amount > 0 or (res is None and h.expires_at is not None):
            exp_us = to_us(h.expires_at) if h.expires_at is not None else 0
            if res is None:
                res = bal.res[h.reservation] = [0, exp_us]
            res[0] += h.amount
            res[1] = exp_us
            bal.reserved += h.amount
            heapq.heappush(self._heap, (exp_us, account, bal.id, h.reservation))
            return
        if res is None:
            return  # already gone (released twice in the journal is harmless)
        take = min(-h.amount, res[0])
        res[0] -= take
        bal.reserved -= take
        if h.expires_at is None:
            bal.reserved -= res[0]
            del bal.res[h.reservation]
        elif to_us(h.expires_at) != res[1]:  # a zero-amount re-reserve refreshes the expiry
            res[1] = to_us(h.expires_at)
            heapq.heappush(self._heap, (res[1], account, bal.id, h.reservation))

    def _kind_of(self, account: str, balance: str) -> BalanceKind | None:
        acct = self._accounts.get(account)
        bal = acct.balances.get(balance) if acct else None
        return bal.kind if bal else None

    def snapshot(self, path: str | Path, position: Any) -> None:
        """Write the whole state atomically (temp file + fsync + rename + dir fsync).

        *position* is the journal position the state covers (any msgpack-able value, e.g.
        ``[segment, offset]``); :meth:`restore` returns it so the ledger replays from there.
        """
        snap.write(Path(path), snap.dump_state(self, position))

    def restore(self, path: str | Path) -> Any:
        """Replace the state with a snapshot's; return the journal position it covers."""
        # Millions of containers that hold no cycles: the cyclic GC's passes over them while
        # they were read and converted took 3.3 of 4.4 s (870k cached ops, a 93 MB snapshot).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return snap.load_state(self, snap.read(Path(path)))
        finally:
            if was_enabled:
                gc.enable()

    async def close(self) -> None:
        return None


def _result(key: str, status: OpStatus, bal: _Balance, *, effects: tuple[Effect, ...] = (),
            holds: tuple[Hold, ...] = (), granted: int = 0, low: bool = False) -> OpResult:
    return OpResult(key, status, effects, holds, granted, bal.amount,
                    bal.amount - bal.reserved + bal.credit_limit, False, low,
                    _LOW_EVENTS if low else ())


# The one selection point of the compiled twin (ICX_NO_EXTENSIONS=1 or not built -> None).
_ext = load("store_ops")
EXTENSION = _ext is not None
_FIELDS = {
    OpResult: ("key", "status", "effects", "holds", "granted", "balance_after",
               "available_after", "replayed", "low_balance", "events"),
    Hold: ("account", "balance", "reservation", "amount", "expires_at"),
    Effect: ("account", "balance", "amount"),
}
if _ext is not None:
    # base.py's result classes are cython_ext.store_results' when that is built: the twin
    # then builds results with that module's C constructors (its _C_API capsule).
    _results = load("store_results")
    _api = (_results._C_API if _results is not None and (OpResult, Hold, Effect)
            == (_results.OpResult, _results.Hold, _results.Effect) else None)
    # Else the twin fills the dataclasses slot by slot; only while they have exactly the
    # fields it knows (a field added to base.py falls back to calling the class).
    _fast_new = all(dataclasses.is_dataclass(c)
                    and tuple(f.name for f in dataclasses.fields(c)) == names
                    and getattr(c, "__slots__", None) == names for c, names in _FIELDS.items())
    # _Account/_Balance: the twin reads and writes their slots at the descriptors' offsets
    _ext.init(OpResult, Hold, Effect, _OK, _LOW_EVENTS, MemoryStore._reserve_py,
              MemoryStore._commit_py, _fast_new, _Account, _Balance, MemoryStore, _api)
    # The awaited methods: the compiled op answers with an already-complete awaitable instead
    # of a coroutine wrapping it (same result on await; see store_ops.reserve_ready). All four
    # are method descriptors that parse the usual call shape in C (store_ops.methods). The
    # coroutine versions stay reachable as reserve_coro / commit_coro (the reference).
    (MemoryStore.reserve, MemoryStore.commit,  # type: ignore[method-assign]
     MemoryStore.reserve_sync, MemoryStore.commit_sync) = _ext.methods(MemoryStore)
