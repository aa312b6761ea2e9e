"""The Redis balance store: one Lua script per operation, cluster-safe key layout.

Every money operation is ONE server-side script (charging/store/lua/, KEYS/ARGV documented in
each file) called with EVALSHA: atomic, no read-modify-write from Python, no lock. An account
is one hash ``{acct:ID}:a`` (layout: charging/store/redis_keys.py), so an op is one HMGET (its
balance, hold and idempotency record), one HSET (a hold that goes is marked released), and its index
updates (the hold's expiry in ``{T}:ix:x``, the unjournaled marker in ``{T}:unj``), which the
scripts defer and apply once per script call: one ZADD/ZREM/SADD for a whole batch. All of an
op's keys share one hash slot, so the same scripts run on a standalone server and on Redis
Cluster (``RedisStore.from_cluster``).

Idempotency: a script keeps its result as the field ``|<key>`` of the account hash, tagged with
the epoch ``floor(now / retention)`` (default 48 h): it is replayed (``replayed=True``) for at
least ``retention`` and at most twice that, like the embedded store. Each script that changed
state also adds "<account>|<key>" to its index tag's ``{T}:unj`` set (redis_keys: one tag per
hash slot on a cluster, one for all accounts on a standalone server); the ledger lists those
with :meth:`RedisStore.pending_ops` after a crash and clears them with
:meth:`RedisStore.confirm_journaled` (plain SREMs) once journaled.

Throughput: the ops issued in the same loop tick are auto-batched (redis_opbatch): grouped by
index keys (a standalone server: one group; a cluster: one per hash slot) and each group sent
as ONE EVALSHA of the batch script (lua/batch.lua: the same op code, one reply per op: the
fresh op record, a string). On a standalone server the calls are pipelined on one connection
(redis_fast.FastPipe: raw protocol + hiredis reader, ops joining the next write while batches
are held, and written early in chunks of redis_fast.EARLY_OPS while a batch slot is free, so
client and server work at the same time; redis_batch.Batcher for TLS/unix URLs); an op's
arguments are RESP-encoded and its fresh reserve/commit record decoded by redis_codec
(compiled twin cython_ext/redis_codec.pyx). Confirms (SREMs) go out packed by the codec (hiredis without the twin) behind
one future (FastPipe.call_many). On a cluster, redis-py's RedisCluster routes each group's
call by slot (MOVED/ASK handled there). Exactness: amounts stay within +/-(2**53-1)
(base.MAX_AMOUNT), checked in Python before the call and again in the scripts.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, cast

from hiredis import pack_command
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, Connection, ConnectionPool
from redis.exceptions import NoScriptError

from charging.store import redis_lua as lua
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
    check_account_id,
    check_amount,
    check_spec,
    spec_tuple,
)
from charging.store.redis_batch import Batcher
from charging.store.redis_codec import pack_args as _pack_tail_py
from charging.store.redis_codec import select as _select_codec
from charging.store.redis_fast import FastPipe
from charging.store.redis_keys import (
    REGISTRY,
    STANDALONE_TAG,
    account_key,
    account_tag,
    identity_key,
)
from charging.store.redis_opbatch import PipeOps, SlotOps

_STATUS = {s.value.encode(): s for s in OpStatus} | {s.value: s for s in OpStatus}
_UNKNOWN_BALANCE = OpStatus.UNKNOWN_BALANCE
_OK = OpStatus.OK
_LOW_EVENTS = ("low_balance",)
_CONFIRM_CHUNK = 1000
_EVALSHA = b"EVALSHA"
# the ops' letters in the batch script (lua/batch.lua)
_RESERVE, _RESERVE_PARTIAL, _COMMIT_RELEASE, _COMMIT_KEEP = b"r", b"R", b"c", b"k"
_SREM = b"SREM"
_pack_tail, _reserve_ok, _commit_ok = _select_codec()
if _pack_tail is _pack_tail_py:  # one command, RESP (C): hiredis, when the twin is not built
    _pack = cast(Callable[[tuple[Any, ...]], bytes], pack_command)
else:
    def _pack(args: tuple[Any, ...]) -> bytes:
        """One command, RESP, by the codec's compiled twin (same bytes as hiredis's
        pack_command, tests/charging/store/test_redis_codec.py): a third of hiredis's
        instructions per confirmed key (callgrind: ~1.3k per SREM member)."""
        return b"*%d\r\n" % len(args) + _pack_tail(args)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _fast_pipe(pool: ConnectionPool) -> FastPipe | None:
    """A FastPipe to the pool's server when it is plain TCP (no TLS, no unix socket)."""
    if pool.connection_class is not Connection:
        return None
    kw = pool.connection_kwargs
    if kw.get("decode_responses") or set(kw) - {
            "host", "port", "db", "username", "password", "socket_connect_timeout",
            "decode_responses"}:
        return None
    return FastPipe(kw.get("host", "localhost"), int(kw.get("port", 6379)),
                    db=int(kw.get("db", 0) or 0), username=kw.get("username"),
                    password=kw.get("password"),
                    connect_timeout=kw.get("socket_connect_timeout") or 10.0)


class RedisStore:
    """BalanceStore on Redis. Build with :meth:`from_url` or :meth:`from_cluster`."""

    def __init__(self, client: Any, *, pool: ConnectionPool | None = None,
                 retention: float = DEFAULT_RETENTION) -> None:
        self._r = client
        self._pool = pool
        self._cluster = isinstance(client, RedisCluster)
        self._batcher: Batcher | FastPipe | None = None
        if pool is not None:
            self._batcher = _fast_pipe(pool) or Batcher(pool)
        # queue one command, get a future (None: through redis-py)
        self._send = self._batcher.call if self._batcher is not None else None
        # the ops' auto-batcher (redis_opbatch): ops of one tick -> one call per hash slot
        self._ops: PipeOps | SlotOps
        if isinstance(self._batcher, FastPipe):
            self._ops = PipeOps(self._batcher)
        elif self._send is not None:
            send = self._send
            self._ops = SlotOps(lambda *a: send(_EVALSHA, *a), self._r.eval, by_slot=False)
        else:
            self._ops = SlotOps(self._r.evalsha, self._r.eval, by_slot=self._cluster)
        self.retention = retention
        self._keys_cache: dict[str, tuple[str, str, str]] = {}
        # the FastPipe, when there is one (confirms go through its call_many)
        self._pipe = self._batcher if isinstance(self._batcher, FastPipe) else None

    @classmethod
    def from_url(cls, url: str, *, retention: float = DEFAULT_RETENTION,
                 max_connections: int = 64) -> RedisStore:
        """A store on one Redis server (``redis://host:port/db``)."""
        # Blocking: a burst of more batches than connections waits for one instead of failing.
        pool = BlockingConnectionPool.from_url(url, decode_responses=False,
                                               max_connections=max_connections, timeout=30)
        return cls(Redis(connection_pool=pool), pool=pool, retention=retention)

    @classmethod
    def from_cluster(cls, nodes: Iterable[tuple[str, int]], *,
                     retention: float = DEFAULT_RETENTION) -> RedisStore:
        """A store on a Redis Cluster, given some of its nodes as (host, port)."""
        client = RedisCluster(  # type: ignore[abstract]
            startup_nodes=[ClusterNode(h, p) for h, p in nodes], decode_responses=False)
        return cls(client, retention=retention)

    # ------------------------------------------------------------------ script calls
    async def _eval(self, script: lua.Script, keys: list[str], args: list[Any]) -> Any:
        try:
            if self._send is not None:
                return await self._send("EVALSHA", script.sha, len(keys), *keys, *args)
            return await self._r.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # Not cached on that server (restart, new cluster node): EVAL runs and caches it.
            return await self._r.eval(script.source, len(keys), *keys, *args)

    def _op(self, letter: bytes, account: str, balance: str, now: float,
            var: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue a single-balance op on the auto-batcher in the batch script's layout (its
        letter, then *var*: "|<key>" and its own ARGV: lua/batch.lua); the future resolves to
        its reply (NOSCRIPT handled there)."""
        return self._ops.bop(letter, self._keys_cache.get(account) or self._op_keys(account),
                             account, balance, int(now // self.retention), var)

    def _op_keys(self, account: str) -> tuple[str, str, str]:
        """KEYS of the single-balance scripts (see lua/_prelude.lua), cached per account."""
        ks = self._keys_cache.get(account)
        if ks is None:
            if len(self._keys_cache) > 1_000_000:
                self._keys_cache.clear()
            t = "{" + self._tag(account) + "}"
            ks = self._keys_cache[account] = (account_key(account), t + ":ix:x", t + ":unj")
        return ks

    def _tag(self, account: str) -> str:
        """The index tag of *account*: its slot's on a cluster, the one shared tag on a
        standalone server (redis_keys)."""
        return account_tag(account) if self._cluster else STANDALONE_TAG

    def _epoch(self, now: float) -> int:
        """The idempotency epoch of *now* (the embedded store computes it the same way)."""
        return int(now // self.retention)

    # ------------------------------------------------------------------ accounts
    async def create_account(self, account: str, kind: AccountKind, balances: list[BalanceSpec],
                             identities: list[str] = ()) -> None:  # type: ignore[assignment]
        """Create an account; identical repeat is a no-op, a different one raises ValueError.

        The identity keys live in other slots, so they are written after the account script
        (not atomically with it); a conflicting identity raises ValueError.
        """
        kind = AccountKind(kind)
        check_account_id(account)
        for spec in balances:
            check_spec(spec)
        if len({s.id for s in balances}) != len(balances):
            raise ValueError(f"account {account}: duplicate balance ids")
        ids = sorted(set(identities))
        for ident in ids:
            owner = await self._r.get(identity_key(ident))
            if owner is not None and _s(owner) != account:
                raise ValueError(f"identity {ident} already belongs to {_s(owner)}")
        await self._r.sadd(REGISTRY, self._tag(account))
        argv: list[Any] = [kind.value,
                           json.dumps([list(spec_tuple(s)) for s in balances], separators=(",", ":")),
                           json.dumps(ids, separators=(",", ":")),
                           "|".join(s.id for s in balances)]
        for s in balances:
            argv += [s.id, s.kind.value, s.currency or "", str(s.amount), str(s.credit_limit),
                     str(s.priority), "" if s.expires_at is None else str(to_us(s.expires_at)),
                     "" if s.low_threshold is None else str(s.low_threshold)]
        out = await self._eval(lua.CREATE, [account_key(account), self._op_keys(account)[1]],
                               argv)
        if _s(out) == "different":
            raise ValueError(f"account {account} exists with a different definition")
        for ident in ids:
            if not await self._r.set(identity_key(ident), account, nx=True):
                owner = await self._r.get(identity_key(ident))
                if owner is not None and _s(owner) != account:
                    raise ValueError(f"identity {ident} already belongs to {_s(owner)}")

    async def resolve(self, identity: str) -> str | None:
        v = await self._r.get(identity_key(identity))
        return None if v is None else _s(v)

    async def get(self, account: str) -> AccountView | None:
        out = await self._eval(lua.GET, [account_key(account)], [])
        if not out:
            return None
        balances = []
        for i in range(2, len(out), 8):
            bid, kind, cur, amt, rsv, cl, pri, exp = (_s(v) for v in out[i:i + 8])
            balances.append(BalanceView(bid, BalanceKind(kind), cur or None, int(amt), int(rsv),
                                        int(cl), int(pri), int(exp) / 1_000_000 if exp else None))
        return AccountView(account, AccountKind(_s(out[0])), tuple(balances),
                           tuple(json.loads(_s(out[1]))))

    async def reservations(self, account: str, balance: str) -> dict[str, tuple[int, int]]:
        """The holds of one balance: reservation -> (amount, expiry epoch us). For audits and
        tests (the crash test compares them with the journal); not a hot path."""
        prefix = balance + "|h|"
        out: dict[str, tuple[int, int]] = {}
        async for f, v in self._r.hscan_iter(account_key(account), match=prefix + "*"):
            if not v:  # released (lua/_prelude.lua: marked '', pruned later)
                continue
            amount, exp = _s(v).split(":")
            out[_s(f)[len(prefix):]] = (int(amount), int(exp))
        return out

    # ------------------------------------------------------------------ operations
    # Each op: check its amount, queue it on the auto-batcher (one script call per tick and
    # hash slot), decode the reply; reserve/commit decode the common reply inline.
    async def reserve(self, key: str, account: str, balance: str, reservation: str,
                      amount: int, *, ttl: float, now: float, partial: bool = False) -> OpResult:
        if amount.__class__ is not int or not 0 <= amount <= MAX_AMOUNT:
            check_amount(amount)
        exp_us = round((now + ttl) * 1_000_000)
        reply = await self._ops.bop(
            _RESERVE_PARTIAL if partial else _RESERVE,
            self._keys_cache.get(account) or self._op_keys(account), account, balance,
            int(now // self.retention),
            ("|" + key, reservation, amount, exp_us, round(now * 1_000_000)))  # (self._op inlined)
        # a fresh ok record, the common case (redis_codec; compiled twin when built)
        res = _reserve_ok(reply, key, account, balance, reservation, exp_us / 1_000_000)
        if res is not None:
            return res
        return _result(key, account, balance, reservation, reply)

    async def commit(self, key: str, account: str, balance: str, reservation: str, used: int,
                     *, now: float, release_rest: bool = True) -> OpResult:
        if used.__class__ is not int or not 0 <= used <= MAX_AMOUNT:
            check_amount(used, "used")
        reply = await self._ops.bop(
            _COMMIT_RELEASE if release_rest else _COMMIT_KEEP,
            self._keys_cache.get(account) or self._op_keys(account), account, balance,
            int(now // self.retention), ("|" + key, reservation, used))  # (self._op inlined)
        if release_rest:  # a fresh ok record, the common case (redis_codec)
            res = _commit_ok(reply, key, account, balance, reservation)
            if res is not None:
                return res
        return _result(key, account, balance, reservation, reply)

    async def commit_reserve(self, ckey: str, account: str, balance: str, creservation: str,
                             used: int, rkey: str, rreservation: str, amount: int, *,
                             ttl: float, now: float) -> tuple[OpResult, OpResult | None]:
        """A CCR-UPDATE's commit (``release_rest``) and next reserve as ONE script op
        (lua/commit_reserve.lua): the same two results, records and state as :meth:`commit`
        then :meth:`reserve` -- except that when the commit finds no such reservation
        (UNKNOWN_RESERVATION) no reserve runs and the second result is None (the caller
        debits, then reserves: the ledger's ``commit_reserve_now`` contract). One op on the
        wire and one suspension of the caller instead of two. A failed call (lost connection)
        leaves the caller unsure of BOTH keys: retry with the same ones."""
        if used.__class__ is not int or not 0 <= used <= MAX_AMOUNT:
            check_amount(used, "used")
        if amount.__class__ is not int or not 0 <= amount <= MAX_AMOUNT:
            check_amount(amount)
        exp_us = round((now + ttl) * 1_000_000)
        reply = await self._ops.bop(
            b"u", self._keys_cache.get(account) or self._op_keys(account), account, balance,
            int(now // self.retention),
            ("|" + ckey, creservation, used, "|" + rkey, rreservation, amount, exp_us,
             round(now * 1_000_000)))
        if reply.__class__ is not list or not 1 <= len(reply) <= 2:
            raise RuntimeError(f"commit_reserve script: unexpected reply {reply!r:.200}")
        c = reply[0]
        cres = (_commit_ok(c, ckey, account, balance, creservation)
                or _result(ckey, account, balance, creservation, c))
        if len(reply) == 1:
            return cres, None
        r = reply[1]
        rres = (_reserve_ok(r, rkey, account, balance, rreservation, exp_us / 1_000_000)
                or _result(rkey, account, balance, rreservation, r))
        return cres, rres

    async def release(self, key: str, account: str, balance: str, reservation: str, *,
                      now: float) -> OpResult:
        reply = await self._op(b"l", account, balance, now, ("|" + key, reservation))
        return _result(key, account, balance, reservation, reply)

    async def debit(self, key: str, account: str, balance: str, amount: int, *, now: float,
                    partial: bool = False) -> OpResult:
        check_amount(amount)
        reply = await self._op(b"D" if partial else b"d", account, balance, now,
                               ("|" + key, amount, round(now * 1_000_000)))
        return _result(key, account, balance, "", reply)

    async def refund(self, key: str, account: str, balance: str, amount: int, *,
                     now: float) -> OpResult:
        return await self._credit(key, account, balance, amount, now)

    async def topup(self, key: str, account: str, balance: str, amount: int, *,
                    now: float) -> OpResult:
        return await self._credit(key, account, balance, amount, now)

    async def _credit(self, key: str, account: str, balance: str, amount: int,
                      now: float) -> OpResult:
        check_amount(amount)
        reply = await self._op(b"t", account, balance, now, ("|" + key, amount))
        return _result(key, account, balance, "", reply)

    # ------------------------------------------------------------------ sweeps
    async def _tags(self) -> list[str]:
        """Slot tags in use (see redis_keys): where the slot indexes may hold anything."""
        return sorted(_s(t) for t in await self._r.smembers(REGISTRY))

    async def _per_tag(self, cmd: str, tags: list[str], *args: Any) -> list[Any]:
        """Run one read command on every slot-index key, pipelined (per node on a cluster)."""
        pipe = self._r.pipeline(transaction=False)
        for t in tags:
            getattr(pipe, cmd)("{" + t + "}" + args[0], *args[1:])
        return list(await pipe.execute())

    async def expire_reservations(self, *, now: float, limit: int = 1000) -> list[OpResult]:
        """Release reservations whose expiry <= now: one script per hash slot that has any."""
        now_us = to_us(now)
        tags = await self._tags()
        if not tags:
            return []
        counts = await self._per_tag("zcount", tags, ":ix:x", "-inf", now_us)
        out: list[OpResult] = []
        for tag, n in zip(tags, counts, strict=True):
            if not n:
                continue
            if len(out) >= limit:
                break
            t = "{" + tag + "}"
            rows = await self._eval(lua.EXPIRE, [t + ":ix:x", t + ":unj"],
                                    [now_us, limit - len(out), self._epoch(now)])
            for row in rows:
                out.append(_fresh(_s(row[1]), _s(row[0]), _s(row[11]), _s(row[12]), row[2:11]))
        return out

    async def pending_ops(self) -> list[OpResult]:
        """Ops that changed Redis state and were never confirmed journaled (crash recovery)."""
        tags = await self._tags()
        if not tags:
            return []
        # "<account>|<key>" (account ids hold no '|'; keys may)
        pairs = sorted(tuple(_s(m).split("|", 1))
                       for members in await self._per_tag("smembers", tags, ":unj")
                       for m in members)
        if not pairs:
            return []
        pipe = self._r.pipeline(transaction=False)
        for account, k in pairs:
            pipe.hget(account_key(account), "|" + k)
        out: list[OpResult] = []
        for (account, k), raw in zip(pairs, await pipe.execute(), strict=True):
            if raw is not None:  # pruned (older than the retention): nothing left to recover
                out.append(_record(k, account, raw, False))
        return out

    async def confirm_journaled(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget (account, op key) pairs the ledger has journaled durably: one plain SREM per
        slot index (and per 1000 members), issued together (one pipeline on a standalone
        server, concurrent per node on a cluster); the first error is raised after all end."""
        if self._pipe is not None:
            await self._pipe.call_many(self._srem_commands(keys))
            return
        by_slot: dict[str, list[str]] = defaultdict(list)
        for account, key in keys:
            by_slot[self._op_keys(account)[2]].append(account + "|" + key)
        calls = []
        for unj, members in by_slot.items():
            for i in range(0, len(members), _CONFIRM_CHUNK):
                chunk = members[i:i + _CONFIRM_CHUNK]
                calls.append(self._send("SREM", unj, *chunk) if self._send is not None
                             else self._r.srem(unj, *chunk))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def _srem_commands(self, keys: Iterable[tuple[str, str]]) -> list[bytes]:
        """The confirms as RESP-encoded SREMs, one per slot index (and per 1000 members),
        packed by hiredis in C; sent behind one future (FastPipe.call_many)."""
        if not self._cluster:  # one unj set for every account (redis_keys.STANDALONE_TAG)
            unj = "{" + STANDALONE_TAG + "}:unj"
            flat = [account + "|" + key for account, key in keys]
            return [_pack((_SREM, unj, *flat[i:i + _CONFIRM_CHUNK]))
                    for i in range(0, len(flat), _CONFIRM_CHUNK)]
        by_slot: dict[str, list[str | bytes]] = {}
        cache = self._keys_cache
        for account, key in keys:
            unj = (cache.get(account) or self._op_keys(account))[2]
            members = by_slot.get(unj)
            if members is None:
                members = by_slot[unj] = [_SREM, unj]
            members.append(account + "|" + key)
        out = []
        for cmd in by_slot.values():
            if len(cmd) <= _CONFIRM_CHUNK + 2:
                out.append(_pack(tuple(cmd)))
                continue
            for i in range(2, len(cmd), _CONFIRM_CHUNK):
                out.append(_pack((_SREM, cmd[1], *cmd[i:i + _CONFIRM_CHUNK])))
        return out

    # ------------------------------------------------------------------ admin
    async def flush_all_for_tests(self) -> None:
        """FLUSHALL every (primary) node. Tests only."""
        if self._cluster:
            await self._r.flushall(target_nodes=RedisCluster.PRIMARIES)
        else:
            await self._r.flushall()

    async def close(self) -> None:
        if isinstance(self._ops, SlotOps):
            await self._ops.drain()
        if isinstance(self._batcher, FastPipe):
            await self._batcher.close()
        elif self._batcher is not None:
            await self._batcher.drain()
        await self._r.aclose()
        if self._pool is not None:
            await self._pool.disconnect()


def _result(key: str, account: str, balance: str, reservation: str, reply: Any) -> OpResult:
    """An op script's reply (lua/_prelude.lua) -> OpResult: a fresh record, a replayed record
    in an array of one, or {'unknown_account'} (not cached)."""
    if reply.__class__ is bytes:
        return _record(key, account, reply, False)
    if reply.__class__ is list and len(reply) == 1:
        if reply[0] == b"unknown_account":
            return OpResult(key, OpStatus.UNKNOWN_ACCOUNT)
        return _record(key, account, reply[0], True)
    raise RuntimeError(f"op script: unexpected reply {reply!r:.200}")


def _fresh(key: str, account: str, balance: str, reservation: str, r: list[Any]) -> OpResult:
    """A fresh result array {status, granted, amount, available, low, effect, hold, hold_exp
    (an int, or its decimal bytes), has_hold} -> OpResult (the caller's balance/reservation: the script acted on those)."""
    status = _STATUS[r[0]]
    if status is _UNKNOWN_BALANCE:
        return OpResult(key, status)
    _, granted, amount, avail, low, eff, hold, hexp, has_hold = r
    if hexp.__class__ is bytes:  # copied from ARGV / the hold field by the script
        hexp = int(hexp)
    return OpResult(
        key, status, (Effect(account, balance, eff),) if eff else (),
        (Hold(account, balance, reservation, hold, None if hexp == -1 else hexp / 1_000_000),)
        if has_hold else (),
        granted, amount, avail, False, low == 1, _LOW_EVENTS if low == 1 else ())


def _record(key: str, account: str, raw: bytes | str, replayed: bool) -> OpResult:
    """A cached record "<epoch>|<status>|<granted>|<amount>|<available>|<low>|<effect>|<hold>|
    <hold_exp>|<has_hold>|<balance>|<reservation>" -> OpResult (the reservation is last: it
    may itself hold '|')."""
    f = _s(raw).split("|", 11)
    status = _STATUS[f[1]]
    if status is _UNKNOWN_BALANCE:
        return OpResult(key, status, replayed=replayed)
    granted, amount, avail, low, eff, hold, hexp, has_hold = (int(x) for x in f[2:10])
    balance, reservation = f[10], f[11]
    return OpResult(
        key, status, (Effect(account, balance, eff),) if eff else (),
        (Hold(account, balance, reservation, hold, None if hexp == -1 else hexp / 1_000_000),)
        if has_hold else (),
        granted, amount, avail, replayed, low == 1, _LOW_EVENTS if low == 1 else ())
