"""Embedded store only: restart durability via snapshot + journal replay (apply_record)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from charging.money import format_amount
from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpResult, to_us
from charging.store.memory import MemoryStore
from charging.store.snapshot import SnapshotError

NOW = 1_800_000_000.0


def record_of(r: OpResult, kinds: dict[str, BalanceKind]) -> dict[str, Any]:
    """What the ledger journals for an op (docs/journal-schema.md)."""

    def amt(balance: str, units: int) -> str:
        return format_amount(units) if kinds[balance] is BalanceKind.MONEY else str(units)

    return {
        "v": 1, "type": "rated", "idem": r.key, "ts": to_us(NOW),
        "balance_effects": [{"account": e.account, "balance": e.balance, "currency": None,
                             "amount": amt(e.balance, e.amount)} for e in r.effects],
        "holds": [{"account": h.account, "balance": h.balance, "reservation": h.reservation,
                   "amount": amt(h.balance, h.amount),
                   "expires": None if h.expires_at is None else to_us(h.expires_at)}
                  for h in r.holds],
        "result": r.status.value,
    }


SPECS = [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 5_000_000, 1_000_000, low_threshold=10),
         BalanceSpec("sec", BalanceKind.SECONDS, None, 3600)]
KINDS = {s.id: s.kind for s in SPECS}


async def random_ops(store: MemoryStore, rng: random.Random, n: int, tag: str) -> list[OpResult]:
    out: list[OpResult] = []
    for i in range(n):
        acct = f"a{rng.randrange(3)}"
        bal = rng.choice(["EUR", "sec"])
        res = f"r{rng.randrange(6)}"
        key = f"{tag}{i}"
        op = rng.randrange(7)
        now = NOW + i
        if op < 2:
            r = await store.reserve(key, acct, bal, res, rng.randrange(0, 400_000), ttl=rng.choice(
                [5, 50, 500]), now=now, partial=rng.random() < 0.5)
        elif op == 2:
            r = await store.commit(key, acct, bal, res, rng.randrange(0, 500_000), now=now,
                                   release_rest=rng.random() < 0.7)
        elif op == 3:
            r = await store.release(key, acct, bal, res, now=now)
        elif op == 4:
            r = await store.debit(key, acct, bal, rng.randrange(0, 200_000), now=now)
        elif op == 5:
            r = await store.topup(key, acct, bal, rng.randrange(0, 100_000), now=now)
        else:
            out.extend(await store.expire_reservations(now=now))
            continue
        out.append(r)
    return out


async def fresh(cls: type[MemoryStore] = MemoryStore) -> MemoryStore:
    s = cls()
    for i in range(3):
        await s.create_account(f"a{i}", AccountKind.PREPAID_PARTNER, SPECS, [f"+4930{i}"])
    return s


@pytest.mark.parametrize("seed", range(5))
def test_snapshot_plus_replay_rebuilds_state(tmp_path: Path, seed: int) -> None:
    async def body() -> None:
        rng = random.Random(seed)
        live = await fresh()
        before = await random_ops(live, rng, 150, "x")
        live.snapshot(tmp_path / "snap", {"segment": 3, "offset": 42})
        after = await random_ops(live, rng, 150, "y")
        # a crash: a new process restores the snapshot and replays the journal tail. The tail
        # overlaps the snapshot on purpose (replay is idempotent by key).
        restored = MemoryStore()
        assert restored.restore(tmp_path / "snap") == {"segment": 3, "offset": 42}
        for r in before[-20:] + after:
            if r.effects or r.holds:
                restored.apply_record(record_of(r, KINDS))
        # replays of answered keys do not act again, on both sides of the snapshot
        await assert_restored_like(restored, live, before[:5] + after[-5:], NOW)

    asyncio.run(body())


async def assert_restored_like(restored: MemoryStore, live: MemoryStore,
                               answered: list[OpResult], now: float) -> None:
    """*restored* (a snapshot + journal replay) is *live*: the same balances and identities,
    the *answered* reserves replay their first answer, and the expiry sweep releases the
    same reservations."""
    for i in range(3):
        assert await restored.get(f"a{i}") == await live.get(f"a{i}")
        assert await restored.resolve(f"+4930{i}") == f"a{i}"
    for r in answered:
        if r.holds and r.holds[0].amount > 0:
            again = await restored.reserve(r.key, r.holds[0].account, r.holds[0].balance,
                                           "zz", 1, ttl=1, now=now)
            assert again.replayed and again.holds == r.holds
    a = await live.expire_reservations(now=NOW + 10_000)
    b = await restored.expire_reservations(now=NOW + 10_000)
    assert sorted((r.key, r.holds) for r in a) == sorted((r.key, r.holds) for r in b)


def test_apply_record_is_idempotent(tmp_path: Path) -> None:
    async def body() -> None:
        s = await fresh()
        rec = {"idem": "admin:1", "balance_effects": [
            {"account": "a0", "balance": "EUR", "currency": "EUR", "amount": "-1.5"},
            {"account": "a1", "balance": "sec", "currency": None, "amount": "60"}]}
        assert s.apply_record(rec) is True
        assert s.apply_record(rec) is False
        v0, v1 = await s.get("a0"), await s.get("a1")
        assert v0 is not None and v1 is not None
        assert v0.balances[0].amount == 5_000_000 - 1_500_000
        assert v1.balances[1].amount == 3660
        with pytest.raises(KeyError):
            s.apply_record({"idem": "z", "balance_effects": [
                {"account": "ghost", "balance": "EUR", "amount": "1"}]})

    asyncio.run(body())


def test_snapshot_is_atomic_and_checked(tmp_path: Path) -> None:
    async def body() -> None:
        s = await fresh()
        s.snapshot(tmp_path / "snap", 1)
        await s.debit("k", "a0", "EUR", 5, now=NOW)
        s.snapshot(tmp_path / "snap", 2)
        assert [p.name for p in tmp_path.iterdir()] == ["snap"]  # no temp file left behind
        t = MemoryStore()
        assert t.restore(tmp_path / "snap") == 2
        (tmp_path / "bad").write_bytes(b"\x93garbage")
        with pytest.raises(SnapshotError):
            t.restore(tmp_path / "bad")
        with pytest.raises(SnapshotError):
            t.restore(tmp_path / "missing")

    asyncio.run(body())


def test_idempotency_retention_is_bounded() -> None:
    async def body() -> None:
        s = MemoryStore(retention=3600, session_retention=3600)
        await s.create_account("a", AccountKind.PREPAID_SUBSCRIBER, SPECS)
        await s.create_account("b", AccountKind.PREPAID_SUBSCRIBER, SPECS)
        await s.debit("old", "a", "EUR", 1, now=NOW)
        await s.debit("new", "a", "EUR", 1, now=NOW + 3000)
        await s.debit("quiet", "b", "EUR", 1, now=NOW + 3000)
        # remembered for at least the retention...
        await s.debit("x1", "a", "EUR", 1, now=NOW + 3000 + 3599)
        assert (await s.debit("new", "a", "EUR", 1, now=NOW + 3000 + 3599)).replayed
        assert (await s.debit("old", "a", "EUR", 1, now=NOW + 3599)).replayed
        assert (await s.debit("quiet", "b", "EUR", 1, now=NOW + 3599)).replayed
        # ...and forgotten after at most twice the retention (then a replay acts again)
        assert s.prune(NOW + 2 * 3600 + 1) >= 3
        assert not (await s.debit("old", "a", "EUR", 1, now=NOW + 7201)).replayed
        assert not (await s.debit("new", "a", "EUR", 1, now=NOW + 7201)).replayed
        assert not (await s.debit("quiet", "b", "EUR", 1, now=NOW + 7201)).replayed
        assert (await s.debit("x1", "a", "EUR", 1, now=NOW + 7201)).replayed

    asyncio.run(body())


def test_top_up_keys_outlive_session_keys(tmp_path: Path) -> None:
    async def body() -> None:
        s = MemoryStore(retention=7200, session_retention=300)
        await s.create_account("a", AccountKind.PREPAID_SUBSCRIBER, SPECS)
        assert (await s.topup("pay-1", "a", "EUR", 5, now=NOW)).ok
        assert (await s.reserve("ro:x:0", "a", "EUR", "r", 7, ttl=60, now=NOW)).ok
        assert (await s.topup("pay-1", "a", "EUR", 5, now=NOW + 299)).replayed
        assert (await s.reserve("ro:x:0", "a", "EUR", "r", 7, ttl=60, now=NOW + 299)).replayed
        # a top-up key used again by another op is still that top-up (compiled path included)
        again = await s.reserve("pay-1", "a", "EUR", "r2", 7, ttl=60, now=NOW + 299)
        assert again.replayed and again.effects[0].amount == 5 and not again.holds
        # a restart keeps both classes and the epoch clock
        s.snapshot(tmp_path / "snap", 1)
        t = MemoryStore(retention=7200, session_retention=300)
        t.restore(tmp_path / "snap")
        # past two session epochs the reservation's key is gone, the top-up's is not
        for store in (s, t):
            assert store.prune(NOW + 601) == 1
            assert not (await store.reserve("ro:x:0", "a", "EUR", "r", 7, ttl=60,
                                            now=NOW + 601)).replayed
            assert (await store.topup("pay-1", "a", "EUR", 5, now=NOW + 7199)).replayed
            # and past its own retention (at the next rotation) the top-up's key goes too
            store.prune(NOW + 7201)
            assert not (await store.topup("pay-1", "a", "EUR", 5, now=NOW + 7201)).replayed
        assert await s.get("a") == await t.get("a")

    asyncio.run(body())


def test_epochs_run_on_after_an_idle_spell() -> None:
    async def body() -> None:
        s = MemoryStore(retention=3600, session_retention=300)
        await s.create_account("a", AccountKind.PREPAID_SUBSCRIBER, SPECS)
        await s.debit("k1", "a", "EUR", 1, now=NOW)
        # a day with no op: the epochs that went by count, so the key is not kept on
        assert s.prune(NOW + 86_400) == 1
        await s.debit("k2", "a", "EUR", 1, now=NOW + 86_400)
        assert (await s.debit("k2", "a", "EUR", 1, now=NOW + 86_400 + 299)).replayed

    asyncio.run(body())


def test_version_1_snapshot_restores(tmp_path: Path) -> None:
    # written before top-up keys were kept apart: epochs numbered as op time // retention
    import msgpack

    async def body() -> None:
        s = await fresh()
        r = await s.debit("old-key", "a0", "EUR", 1, now=NOW)
        from charging.store import snapshot as snap

        state = snap.dump_state(s, 7)
        epoch = int(NOW // 172800)
        state.update(v=1, retention=172800.0, epoch=epoch)
        del state["ep_end"]
        state["ops"] = [row[:4] for row in state["ops"]]
        for row in state["ops"]:
            row[1] = epoch
        (tmp_path / "v1").write_bytes(msgpack.packb(state, use_bin_type=True))
        t = MemoryStore()
        assert t.restore(tmp_path / "v1") == 7
        assert await t.get("a0") == await s.get("a0")
        again = await t.debit("old-key", "a0", "EUR", 1, now=NOW + 60)
        assert again.replayed and again.effects == r.effects
        # that epoch runs to its end as cut; the next ones are the store's own length
        assert t._ep_end == (epoch + 1) * 172800.0

    asyncio.run(body())


@pytest.mark.parametrize(("balance", "amount"), [("EUR", 0.5), ("EUR", True), ("sec", 1.5),
                                                  ("sec", "1.5")])
def test_apply_record_refuses_inexact_amounts(balance: str, amount: Any) -> None:
    # journal amounts are ints or decimal strings (docs/journal-schema.md): a float is not an
    # exact decimal and a fractional unit count is no bucket amount; neither is guessed at
    store = asyncio.run(fresh())
    before = asyncio.run(store.get("a1"))
    rec = {"v": 1, "type": "rated", "idem": "k-bad", "ts": to_us(NOW), "result": "ok",
           "balance_effects": [{"account": "a1", "balance": balance, "amount": amount}],
           "holds": []}
    with pytest.raises(ValueError):
        store.apply_record(rec)
    assert asyncio.run(store.get("a1")) == before
    rec["balance_effects"][0]["amount"] = "-0.5" if balance == "EUR" else "-2"
    assert store.apply_record(rec)


class _GeneralOnly(MemoryStore):
    """Replays every record through decode_record (no common-shape fast path)."""

    def _apply_simple(self, record: Any) -> None:
        return None


def _state(s: MemoryStore) -> Any:
    return ({a.id: ({b.id: (b.amount, b.reserved, dict(b.res)) for b in a.balances.values()},
                    a.ops, a.old, a.kept) for a in s._accounts.values()}, sorted(s._heap))


@pytest.mark.parametrize("seed", range(4))
def test_replay_fast_path_builds_the_general_paths_state(seed: int) -> None:
    async def body() -> None:
        rng = random.Random(seed)
        live = await fresh()
        records = [record_of(r, KINDS) for r in await random_ops(live, rng, 300, "k")
                   if r.effects or r.holds]
        # shapes the fast path must leave to the general one, or build the same entry for
        extra = [
            {"idem": "zero", "ts": to_us(NOW), "result": "ok", "holds": [],
             "balance_effects": [{"account": "a0", "balance": "EUR", "amount": "0"}]},
            {"idem": "two", "ts": to_us(NOW), "balance_effects": [
                {"account": "a0", "balance": "EUR", "amount": "-1"},
                {"account": "a1", "balance": "sec", "amount": "5"}]},
            {"idem": "odd-status", "result": "whatever", "type": "topup",
             "balance_effects": [{"account": "a2", "balance": "EUR", "amount": 7}]},
            {"idem": "hold-other-bal", "ts": to_us(NOW), "holds": [
                {"account": "a1", "balance": "sec", "reservation": 5, "amount": "3",
                 "expires": to_us(NOW + 9)}],
             "balance_effects": [{"account": "a1", "balance": "EUR", "amount": "-0.5"}]},
        ]
        records += extra
        rng.shuffle(records)
        fast, general = await fresh(), await fresh(_GeneralOnly)
        for rec in records + records[:50]:  # and some replayed twice
            assert fast.apply_record(rec) == general.apply_record(rec)
        assert _state(fast) == _state(general)
        for bad in ({"idem": "x", "balance_effects": [{"account": "ghost", "balance": "EUR",
                                                        "amount": "1"}]},
                    {"idem": "y", "balance_effects": [{"account": "a0", "balance": "EUR",
                                                        "amount": 1.5}]}):
            for store in (fast, general):
                with pytest.raises((KeyError, ValueError)):
                    store.apply_record(bad)
        assert _state(fast) == _state(general)

    asyncio.run(body())
