"""Redis-store specifics: slots, scripts, NOSCRIPT, exactness in Lua, unjournaled-op recovery."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from charging.store import redis_lua as lua
from charging.store.base import MAX_AMOUNT, AccountKind, BalanceKind, BalanceSpec, OpStatus
from charging.store.redis_keys import (
    STANDALONE_TAG,
    account_key,
    account_tag,
    key_slot,
    prefix,
    slot_tag,
    state_of,
)
from tests.charging.store.conftest import Harness

NOW = 1_800_000_000.0
LUA_DIR = Path(__file__).resolve().parents[3] / "charging" / "store" / "lua"


def eur(amount: int, credit_limit: int = 0) -> list[BalanceSpec]:
    return [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount, credit_limit)]


def test_every_script_has_a_keys_argv_header() -> None:
    for path in sorted(LUA_DIR.glob("*.lua")):
        head = path.read_text().split("\n\n")[0] if path.name != "_prelude.lua" else \
            path.read_text()[:1500]
        assert head.startswith("--"), path.name
        assert "KEYS" in head and "ARGV" in head, path.name
    assert {s.name for s in lua.ALL} == ({p.stem for p in LUA_DIR.glob("*.lua")} - {"_prelude"}
                                         - lua.BATCH_ONLY)


def test_key_slot_and_slot_tags() -> None:
    rng = random.Random(7)
    for _ in range(200):
        account = "".join(rng.choice("abcdefXYZ0123456789:+-_@.") for _ in range(rng.randint(1, 20)))
        slot = key_slot(prefix(account))
        assert key_slot(prefix(account) + ":b:EUR") == slot
        assert key_slot("{" + account_tag(account) + "}:ix:x") == slot
    assert all(key_slot(slot_tag(s)) == s for s in range(0, 16384, 97))


def test_all_keys_of_an_account_share_a_slot(rh: Harness) -> None:
    async def body(store: Any) -> None:
        for acct in ("alpha", "beta", "+4917012345"):
            await store.create_account(acct, AccountKind.PREPAID_PARTNER, [
                *eur(10_000), BalanceSpec("sms", BalanceKind.EVENTS, None, 50)], [f"id-{acct}"])
            await store.reserve("k1", acct, "EUR", "s1", 10, ttl=5, now=NOW)
            await store.debit("k2", acct, "sms", 1, now=NOW)
            await store.expire_reservations(now=NOW + 10)
            await store.reserve("k3", acct, "EUR", "s2", 10, ttl=500, now=NOW)
        r = store._r
        keys: list[str] = []
        if rh.kind == "cluster":
            for node in r.get_primaries():
                keys += [k.decode() async for k in r.scan_iter(target_nodes=node, count=1000)]
        else:
            keys = [k.decode() async for k in r.scan_iter(count=1000)]
        if rh.kind != "cluster":
            # standalone: every account's indexes under the one shared tag (redis_keys)
            assert {"{ix}:ix:x", "{ix}:unj"} <= set(keys), keys
            assert STANDALONE_TAG == "ix" and not any(
                k.startswith("{" + account_tag(a) + "}")
                for a in ("alpha", "beta", "+4917012345") for k in keys)
        for acct in ("alpha", "beta", "+4917012345"):
            mine = [k for k in keys if k.startswith(prefix(acct))]
            if rh.kind != "cluster":
                assert mine == [account_key(acct)]
                continue
            mine += [k for k in keys if k.startswith("{" + account_tag(acct) + "}")]
            # the account hash and its slot's two indexes (layout: redis_keys)
            assert {account_key(acct), "{" + account_tag(acct) + "}:ix:x",
                    "{" + account_tag(acct) + "}:unj"} <= set(mine), mine
            slots = {await r.execute_command("CLUSTER KEYSLOT", k) for k in mine}
            assert slots == {key_slot(prefix(acct))}, (acct, mine)

    rh.run(body)


def test_noscript_is_reloaded(rh: Harness) -> None:
    async def body(store: Any) -> None:
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER, eur(100))
        assert (await store.debit("k1", "a", "EUR", 1, now=NOW)).ok
        if rh.kind == "cluster":
            for node in store._r.get_primaries():
                await store._r.execute_command("SCRIPT", "FLUSH", target_nodes=node)
        else:
            await store._r.script_flush()
        assert (await store.debit("k2", "a", "EUR", 1, now=NOW)).ok
        assert (await store.debit("k2", "a", "EUR", 1, now=NOW)).replayed
        view = await store.get("a")
        assert view.balances[0].amount == 98

    rh.run(body)


def test_lua_rejects_what_doubles_cannot_hold(rh: Harness) -> None:
    """Bypass the Python checks: the scripts themselves keep amounts exact or refuse."""

    async def body(store: Any) -> None:
        await store.create_account("big", AccountKind.PREPAID_PARTNER, eur(MAX_AMOUNT - 1))
        keys = list(store._op_keys("big"))
        epoch = store._epoch(NOW)
        out = await store._eval(lua.CREDIT, keys, ["big", "EUR", epoch, 1, "raw1", 2])
        assert out.split(b"|")[1] == b"out_of_range"  # the fresh record
        out = await store._eval(lua.CREDIT, keys, ["big", "EUR", epoch, 1, "raw2", str(2**60)])
        assert out.split(b"|")[1] == b"out_of_range"  # the fresh record
        assert (await store.topup("k3", "big", "EUR", 1, now=NOW)).balance_after == MAX_AMOUNT
        # stored exactly: the binary state (lua/_prelude.lua) holds the amount as a double
        # (exact below 2^53) and as integer text, not "9.007199254741e+15"
        raw = await store._r.hget(account_key("big"), "EUR|")
        assert state_of(raw) == (MAX_AMOUNT, 0, 0, None, None)
        assert raw[41:] == str(MAX_AMOUNT).encode()
        r = await store.reserve("k4", "big", "EUR", "s", MAX_AMOUNT, ttl=5, now=NOW)
        assert r.ok and r.available_after == 0
        c = await store.commit("k5", "big", "EUR", "s", MAX_AMOUNT - 12345, now=NOW)
        assert c.ok and c.balance_after == 12345
        assert (await store.get("big")).balances[0].amount == 12345

    rh.run(body)


def test_pending_ops_and_confirm(rh: Harness) -> None:
    async def body(store: Any) -> None:
        accts = [f"acct{i}" for i in range(12)]  # spread over several slots / nodes
        for a in accts:
            await store.create_account(a, AccountKind.PREPAID_SUBSCRIBER, eur(1000))
        assert await store.pending_ops() == []
        done = {}
        for i, a in enumerate(accts):
            done[(a, f"r{i}")] = await store.reserve(f"r{i}", a, "EUR", "s", 100, ttl=5, now=NOW)
            done[(a, f"d{i}")] = await store.debit(f"d{i}", a, "EUR", 7, now=NOW)
            # failures change nothing and are not pending
            await store.debit(f"x{i}", a, "EUR", 10**6, now=NOW)
        expired = await store.expire_reservations(now=NOW + 6)
        assert len(expired) == 12
        for r in expired:
            done[(r.holds[0].account, r.key)] = r
        pending = await store.pending_ops()
        got = {(p.holds[0].account if p.holds else p.effects[0].account, p.key): p
               for p in pending}
        assert set(got) == set(done)
        for k, want in done.items():
            assert (got[k].status, got[k].effects, got[k].holds, got[k].granted) == \
                (want.status, want.effects, want.holds, want.granted)
        half = sorted(done)[: len(done) // 2]
        await store.confirm_journaled(half)
        left = {(p.holds[0].account if p.holds else p.effects[0].account, p.key)
                for p in await store.pending_ops()}
        assert left == set(done) - set(half)
        await store.confirm_journaled(sorted(left))
        assert await store.pending_ops() == []

    rh.run(body)


def test_expire_across_slots_and_limit(rh: Harness) -> None:
    async def body(store: Any) -> None:
        for i in range(30):
            await store.create_account(f"u{i}", AccountKind.PREPAID_SUBSCRIBER, eur(100))
            await store.reserve(f"k{i}", f"u{i}", "EUR", "s", 10, ttl=1 + i % 3, now=NOW)
        tags = {account_tag(f"u{i}") for i in range(30)}
        assert len(tags) > 10
        first = await store.expire_reservations(now=NOW + 10, limit=7)
        assert len(first) == 7
        rest = await store.expire_reservations(now=NOW + 10)
        assert len(rest) == 23
        assert {r.holds[0].account for r in first + rest} == {f"u{i}" for i in range(30)}
        for r in first + rest:
            assert re.fullmatch(r"expire:EUR:s:\d+", r.key)
            assert r.status is OpStatus.OK and r.available_after == 100

    rh.run(body)


def test_packers_agree() -> None:
    from charging.store.redis_batch import pack, pack_py

    cmds = [("EVALSHA", "abc", 2, "{acct:ü}:b:EUR", b"raw\r\n", 9007199254740991, -5, "")]
    assert pack(cmds) == pack_py(cmds)
    assert pack_py(cmds).startswith(b"*8\r\n$7\r\nEVALSHA\r\n")


def test_idempotency_retention_epochs_and_pruning(rh: Harness) -> None:
    """Records live in the account hash tagged with their epoch: remembered at least one
    retention, forgotten after two, and pruned from the hash by the ops that follow."""

    async def body(store: Any) -> None:
        store.retention = 3600.0
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER, eur(10_000))
        for i in range(150):  # past the listpack size: HSCAN then pages with a cursor
            assert (await store.debit(f"old{i}", "a", "EUR", 1, now=NOW)).ok
        await store.debit("new", "a", "EUR", 1, now=NOW + 3000)
        # a later epoch (NOW + 3599 may be in the next one): both still remembered
        assert (await store.debit("new", "a", "EUR", 1, now=NOW + 3000 + 3599)).replayed
        assert (await store.debit("old0", "a", "EUR", 1, now=NOW + 3599)).replayed
        # two epochs on: forgotten, the op acts again
        later = NOW + 3 * 3600
        again = await store.debit("old1", "a", "EUR", 1, now=later)
        assert again.ok and not again.replayed
        for i in range(10):  # the ops after the epoch change prune the stale records
            await store.debit(f"x{i}", "a", "EUR", 1, now=later)
        fields = [_s(f) async for f, _ in store._r.hscan_iter(account_key("a"), match="|*")]
        assert not [f for f in fields if f.startswith("|old") and f != "|old1"], fields
        assert "|old1" in fields and "|x9" in fields
        assert await store._r.hget(account_key("a"), "pc") is None  # pruning finished
        view = await store.get("a")
        assert view.balances[0].amount == 10_000 - 150 - 1 - 1 - 10

    rh.run(body)


def test_a_key_replays_across_balances_of_its_account(rh: Harness) -> None:
    async def body(store: Any) -> None:
        await store.create_account("a", AccountKind.PREPAID_PARTNER, [
            *eur(100), BalanceSpec("o", BalanceKind.EVENTS, None, 5)])
        first = await store.debit("k", "a", "EUR", 7, now=NOW)
        again = await store.debit("k", "a", "o", 1, now=NOW)  # a balance named like a prefix
        assert again.replayed and again.effects == first.effects
        miss = await store.debit("u", "a", "nope", 1, now=NOW)
        assert miss.status is OpStatus.UNKNOWN_BALANCE and not miss.replayed
        assert (await store.debit("u", "a", "nope", 1, now=NOW)).replayed
        r = await store.reserve("r|1", "a", "o", "res|with|bars", 2, ttl=5, now=NOW)
        rr = await store.reserve("r|1", "a", "o", "res|with|bars", 2, ttl=5, now=NOW)
        assert rr.replayed and (rr.holds, rr.granted) == (r.holds, r.granted)
        assert await store.reservations("a", "o") == {"res|with|bars": (2, 1_800_000_005_000_000)}
        assert [b.amount for b in (await store.get("a")).balances] == [93, 5]

    rh.run(body)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def test_confirm_more_than_one_srem_chunk(rh: Harness) -> None:
    """Confirms of one slot index past _CONFIRM_CHUNK members go out as several SREMs."""
    from charging.store.redis_store import _CONFIRM_CHUNK

    async def body(store: Any) -> None:
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER, eur(10**9))
        await store.create_account("b", AccountKind.PREPAID_SUBSCRIBER, eur(10**9))
        n = _CONFIRM_CHUNK + 7
        done = []
        for i in range(n):
            for a in ("a", "b"):
                r = await store.debit(f"d{i}", a, "EUR", 1, now=NOW)
                assert r.ok
                done.append((a, f"d{i}"))
        assert len(await store.pending_ops()) == 2 * n
        await store.confirm_journaled(done[:-2])
        assert sorted((r.key, r.balance_after) for r in await store.pending_ops()) == \
            [(f"d{n - 1}", 10**9 - n)] * 2
        await store.confirm_journaled(done[-2:])
        assert await store.pending_ops() == []

    rh.run(body)


def test_account_hash_is_a_hashtable_from_creation(rh: Harness) -> None:
    """Short op records (event debits) must not keep the account hash a listpack, where every
    field access is a linear scan (lua/create.lua: the 'enc' filler)."""
    async def body(store: Any) -> None:
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER,
                                   [BalanceSpec("sms", BalanceKind.EVENTS, None, 100)])
        for i in range(3):
            assert (await store.debit(f"d{i}", "a", "sms", 1, now=NOW)).ok
        node = store._r.get_node_from_key(account_key("a")) if hasattr(
            store._r, "get_node_from_key") else None
        enc = await (store._r.object("encoding", account_key("a")) if node is None else
                     store._r.execute_command("OBJECT", "ENCODING", account_key("a"),
                                              target_nodes=node))
        assert enc in (b"hashtable", "hashtable")
        assert (await store.get("a")).balances[0].amount == 97
        # and its reservation index a skiplist (lua/create.lua), which expiry never returns
        ix = store._op_keys("a")[1]
        assert (await store.reserve("r1", "a", "sms", "s1", 1, ttl=5, now=NOW)).ok
        enc = await (store._r.object("encoding", ix) if node is None else
                     store._r.execute_command("OBJECT", "ENCODING", ix, target_nodes=node))
        assert enc in (b"skiplist", "skiplist")
        assert (await store.commit("c1", "a", "sms", "s1", 1, now=NOW)).ok
        assert await store.expire_reservations(now=NOW + 10**9) == []

    rh.run(body)


def test_a_text_state_from_an_older_version_is_read_and_rewritten(rh: Harness) -> None:
    """Accounts written before the binary balance state hold "a:r:c:x:l" text: every script
    reads it (ops, get, the TTL sweep) and the next op that writes the state stores it in the
    binary layout (lua/_prelude.lua), same figures."""

    async def body(store: Any) -> None:
        spec = [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 1000, 50, low_threshold=900,
                            expires_at=NOW + 10_000)]
        await store.create_account("old", AccountKind.PREPAID_PARTNER, spec)
        key = account_key("old")
        x_us = int((NOW + 10_000) * 1_000_000)
        binary = await store._r.hget(key, "EUR|")
        assert state_of(binary) == (1000, 0, 50, x_us, 900)
        await store._r.hset(key, "EUR|", f"1000:0:50:{x_us}:900")  # the older text layout
        assert state_of(await store._r.hget(key, "EUR|")) == (1000, 0, 50, x_us, 900)
        assert (await store.get("old")).balances[0].amount == 1000
        r = await store.reserve("k1", "old", "EUR", "s1", 200, ttl=5, now=NOW)
        assert r.ok and r.available_after == 850 and r.low_balance
        assert state_of(await store._r.hget(key, "EUR|")) == (1000, 200, 50, x_us, 900)
        assert (await store._r.hget(key, "EUR|"))[0] == 0  # rewritten: binary
        await store._r.hset(key, "EUR|", f"1000:200:50:{x_us}:900")  # text again
        swept = await store.expire_reservations(now=NOW + 6)
        assert [(e.status, e.available_after) for e in swept] == [(OpStatus.OK, 1050)]
        assert state_of(await store._r.hget(key, "EUR|")) == (1000, 0, 50, x_us, 900)
        await store._r.hset(key, "EUR|", "1000:0:50::")  # no expiry, no threshold
        d = await store.debit("k2", "old", "EUR", 1040, now=NOW + 10_001)
        assert d.ok and d.balance_after == -40 and not d.low_balance
        view = (await store.get("old")).balances[0]
        assert (view.amount, view.reserved, view.credit_limit, view.expires_at) == (-40, 0, 50,
                                                                                   None)

    rh.run(body)


def test_state_of_reads_both_layouts() -> None:
    import struct

    inf = float("inf")
    raw = struct.pack("<Bddddd", 0, 2**53 - 1, 7, 0, inf, -inf) + str(2**53 - 1).encode()
    assert state_of(raw) == (2**53 - 1, 7, 0, None, None)
    raw = struct.pack("<Bddddd", 0, -5, 0, 10, 1.8e15, 3) + b"-5"
    assert state_of(raw) == (-5, 0, 10, 1_800_000_000_000_000, 3)
    assert state_of(b"12:3:0::") == (12, 3, 0, None, None)
    assert state_of(b"12:3:0:99:-4") == (12, 3, 0, 99, -4)


def test_released_holds_are_marked_then_pruned(rh: Harness) -> None:
    """Commit (releasing the rest) and release mark the hold field '' in the HSET they write
    anyway (no HDEL call): a marked hold is no hold for every reader, a new reserve of that
    reservation starts afresh, and the ops after an epoch change prune the marks."""

    async def body(store: Any) -> None:
        store.retention = 3600.0
        await store.create_account("a", AccountKind.PREPAID_SUBSCRIBER, eur(10_000))
        key = account_key("a")
        for i in range(80):
            assert (await store.reserve(f"r{i}", "a", "EUR", f"s{i}", 10, ttl=60, now=NOW)).ok
            if i % 2:
                assert (await store.commit(f"c{i}", "a", "EUR", f"s{i}", 4, now=NOW)).ok
            else:
                assert (await store.release(f"l{i}", "a", "EUR", f"s{i}", now=NOW)).ok
        assert await store._r.hget(key, "EUR|h|s0") == b"" == await store._r.hget(key,
                                                                                 "EUR|h|s1")
        assert await store.reservations("a", "EUR") == {}
        gone = await store.commit("c1b", "a", "EUR", "s1", 1, now=NOW)
        assert gone.status is OpStatus.UNKNOWN_RESERVATION
        assert (await store.release("l0b", "a", "EUR", "s0", now=NOW)).status \
            is OpStatus.UNKNOWN_RESERVATION
        again = await store.reserve("r1b", "a", "EUR", "s1", 7, ttl=60, now=NOW)
        assert again.ok and again.holds[0].amount == 7  # afresh, not on top of a ghost
        assert await store.reservations("a", "EUR") == {"s1": (7, int((NOW + 60) * 1e6))}
        assert (await store.expire_reservations(now=NOW + 61))[0].holds[0].amount == -7
        later = NOW + 3 * 3600
        for i in range(10):  # after an epoch change the ops prune a page at a time
            await store.debit(f"x{i}", "a", "EUR", 1, now=later)
        marks = [_s(f) async for f, v in store._r.hscan_iter(key, match="EUR|h|*")]
        assert marks == [], marks
        view = (await store.get("a")).balances[0]
        assert (view.amount, view.reserved) == (10_000 - 40 * 4 - 10, 0)

    rh.run(body)
