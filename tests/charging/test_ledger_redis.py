"""The ledger over the Redis store: closing the gap between a Redis op and its journal record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from charging.journal import Journal, JournalReader
from charging.ledger import Ledger
from charging.ledger.audit import idem_counts, journal_balances
from charging.store.base import AccountKind, BalanceKind, BalanceSpec

T0 = 1_800_000_000.0
EUR = BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount=10_000_000)


@pytest.fixture
def url(redis_url: str) -> str:
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    return redis_url


async def open_ledger(d: Path, url: str) -> Ledger:
    from charging.store.redis_store import RedisStore

    journal = await Journal.open(d / "journal")
    return Ledger(RedisStore.from_url(url), journal)


async def shut(ledger: Ledger, *, clean: bool = True) -> None:
    if clean:
        await ledger.close()
    else:  # a crash: no confirmation flush, nothing more written
        await ledger.journal.flush()
    await ledger.journal.close()
    await ledger.store.close()


def test_op_applied_in_redis_but_never_journaled_is_recovered(tmp_path: Path, url: str) -> None:
    async def main() -> None:
        ledger = await open_ledger(tmp_path, url)
        await ledger.recover(now=T0)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.debit("k1", "a1", "EUR", 1_000_000, now=T0)
        # the process dies right after the Redis op, before the journal append:
        await ledger.store.debit("k2", "a1", "EUR", 2_500_000, now=T0)
        await shut(ledger, clean=False)

        ledger = await open_ledger(tmp_path, url)
        report = await ledger.recover(now=T0 + 1)
        assert report.pending_journaled == 1  # k2; k1 was in the journal already
        assert await ledger.store.pending_ops() == []
        view = await ledger.store.get("a1")
        assert view.balances[0].amount == 6_500_000
        assert journal_balances(tmp_path / "journal") == {("a1", "EUR"): 6_500_000}
        counts = idem_counts(tmp_path / "journal")
        assert counts["k1"] == 1 and counts["k2"] == 1
        rec = [r for _, r in JournalReader(tmp_path / "journal").iter_from()
               if r["idem"] == "k2"][0]
        assert rec["recovered"] is True and rec["balance_effects"][0]["amount"] == "-2.50"
        again = await ledger.debit("k2", "a1", "EUR", 2_500_000, now=T0 + 2)
        assert again.replayed
        await shut(ledger)
        assert idem_counts(tmp_path / "journal")["k2"] == 1

    asyncio.run(main())


def test_clean_close_confirms_everything(tmp_path: Path, url: str) -> None:
    async def main() -> None:
        ledger = await open_ledger(tmp_path, url)
        await ledger.recover(now=T0)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await asyncio.gather(*(ledger.debit(f"k{i}", "a1", "EUR", 1000, now=T0)
                               for i in range(50)))
        await ledger.reserve("r", "a1", "EUR", "s", 5000, ttl=5, now=T0)
        await shut(ledger)
        ledger = await open_ledger(tmp_path, url)
        assert await ledger.store.pending_ops() == []
        report = await ledger.recover(now=T0 + 10)
        assert report.expired == 1 and report.pending_journaled == 0
        await shut(ledger)
        assert journal_balances(tmp_path / "journal") == {("a1", "EUR"): 10_000_000 - 50_000}
        assert max(idem_counts(tmp_path / "journal").values()) == 1

    asyncio.run(main())
