"""Review finding: an op that ran in Redis but whose reply was lost (the connection dropped:
redis_fast/redis_batch fail the caller with ConnectionError and say "retry with the same key")
must be journaled when the retry gets the store's replay -- with the caller's rating fields,
before the retry's answer, and confirmed to the store afterwards. The ledger took every replay
for "already journaled": the op stayed out of the journal until a restart's recovery (which
journals it without the rating fields), and the retry was answered with no record of it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from charging.ledger.audit import idem_counts, journal_balances
from charging.store.base import AccountKind
from tests.charging.test_ledger_redis import EUR, T0, open_ledger, shut, url  # noqa: F401


class _LostReply:
    """The real store; the next armed op runs in Redis, then its caller gets ConnectionError
    (the reply was lost with the connection)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in ("reserve", "commit", "release", "debit", "refund", "topup"):
            return attr

        async def op(*a: Any, **kw: Any) -> Any:
            result = await attr(*a, **kw)
            if self.armed:
                self.armed = False
                raise ConnectionError("connection lost: reply not read")
            return result

        return op


def test_a_retried_op_whose_reply_was_lost_is_journaled_with_its_fields(
        tmp_path: Path, url: str) -> None:  # noqa: F811
    async def main() -> None:
        ledger = await open_ledger(tmp_path, url)
        await ledger.recover(now=T0)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        store = _LostReply(ledger.store)
        ledger.store = store
        fields = {"session": "s1", "usage": 60, "price": "2.50"}
        store.armed = True
        with pytest.raises(ConnectionError):
            await ledger.debit("k1", "a1", "EUR", 2_500_000, now=T0, fields=fields, wait=False)
        again = await ledger.debit("k1", "a1", "EUR", 2_500_000, now=T0 + 1, fields=fields,
                                   wait=False)
        assert again.ok and again.replayed
        # the retry's answer waits for this mark: the op's record must be inside it
        await ledger.wait_durable(ledger.position)
        recs = [r for _, r in JournalReader(tmp_path / "journal").iter_from()
                if r.get("idem") == "k1"]
        assert len(recs) == 1
        assert recs[0]["session"] == "s1" and recs[0]["usage"] == 60
        assert recs[0]["balance_effects"][0]["amount"] == "-2.50"
        # a third call is a plain replay: nothing more is written
        third = await ledger.debit("k1", "a1", "EUR", 2_500_000, now=T0 + 2, fields=fields)
        assert third.replayed
        await ledger.flush_confirmations()
        assert await store.pending_ops() == []  # confirmed once durable
        await shut(ledger)
        assert idem_counts(tmp_path / "journal")["k1"] == 1
        assert journal_balances(tmp_path / "journal") == {("a1", "EUR"): 7_500_000}

    asyncio.run(main())


def test_a_retry_after_a_journaled_op_and_a_failed_call_is_not_journaled_twice(
        tmp_path: Path, url: str) -> None:  # noqa: F811
    async def main() -> None:
        ledger = await open_ledger(tmp_path, url)
        await ledger.recover(now=T0)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        store = _LostReply(ledger.store)
        ledger.store = store
        first = await ledger.debit("k1", "a1", "EUR", 1_000_000, now=T0, wait=False)
        assert first.ok and not first.replayed
        # the same key again (a 5012 retry of its request) and its reply is lost ...
        store.armed = True
        with pytest.raises(ConnectionError):
            await ledger.debit("k1", "a1", "EUR", 1_000_000, now=T0 + 1, wait=False)
        # ... before (k1 enqueued, unconfirmed) and after the confirmation alike
        assert (await ledger.debit("k1", "a1", "EUR", 1_000_000, now=T0 + 2)).replayed
        store.armed = True
        with pytest.raises(ConnectionError):
            await ledger.debit("k1", "a1", "EUR", 1_000_000, now=T0 + 3, wait=False)
        await ledger.journal.flush()
        await ledger.flush_confirmations()
        assert (await ledger.debit("k1", "a1", "EUR", 1_000_000, now=T0 + 4)).replayed
        await shut(ledger)
        assert idem_counts(tmp_path / "journal")["k1"] == 1
        assert journal_balances(tmp_path / "journal") == {("a1", "EUR"): 9_000_000}

    asyncio.run(main())
