"""Ledger.commit_reserve over the Redis store: a CCR-UPDATE's commit and next reserve as one
store op. Its records must be the two ops' records (same fields, same order, consecutive ids)
and each must be journaled exactly once -- also when the pair's reply was lost and the retry
gets the store's replays (test_ledger_lost_reply.py for single ops)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from charging.ledger.audit import idem_counts, journal_balances
from charging.store.base import AccountKind, OpStatus
from tests.charging.test_ledger_redis import EUR, T0, open_ledger, shut, url  # noqa: F401


def _records(d: Path) -> list[dict[str, Any]]:
    return [r for _, r in JournalReader(d / "journal").iter_from() if r.get("type") != "account"]


async def _ready(d: Path, url: str) -> Any:  # noqa: F811
    ledger = await open_ledger(d, url)
    await ledger.recover(now=T0)
    await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
    return ledger


def test_the_pair_journals_the_commit_and_the_reserve_like_two_ops(
        tmp_path: Path, url: str) -> None:  # noqa: F811
    async def main() -> None:
        ledger = await _ready(tmp_path, url)
        assert ledger.pairs_ops
        await ledger.reserve("s:1:r", "a1", "EUR", "h1", 3_000_000, ttl=60, now=T0,
                             fields={"session": "s"}, wait=False)
        c, r = await ledger.commit_reserve(
            "s:2:c", "a1", "EUR", "h1", 1_200_000, {"session": "s", "usage": 60},
            "s:2:r", "h2", 2_000_000, ttl=60, now=T0 + 60, rfields={"session": "s"})
        assert c.status is OpStatus.OK and c.granted == 1_200_000
        assert r is not None and r.status is OpStatus.OK and r.granted == 2_000_000
        await ledger.wait_durable(ledger.position)
        recs = _records(tmp_path)
        assert [x["idem"] for x in recs] == ["s:1:r", "s:2:c", "s:2:r"]
        ids = [int(x["id"].rsplit("-", 1)[1]) for x in recs]
        assert ids[2] == ids[1] + 1  # consecutive: one call, in order
        commit, hold = recs[1], recs[2]
        assert (commit["type"], commit["op"], commit["usage"]) == ("rated", "commit", 60)
        assert commit["balance_effects"][0]["amount"] == "-1.20"
        assert commit["holds"][0] == {"account": "a1", "balance": "EUR", "reservation": "h1",
                                      "amount": "-3.00", "expires": None}
        assert (hold["type"], hold["op"], hold["session"]) == ("hold", "reserve", "s")
        assert hold["holds"][0] == {"account": "a1", "balance": "EUR", "reservation": "h2",
                                    "amount": "2.00", "expires": 1_800_000_120_000_000}
        # a pair whose commit finds no hold: (commit, None), nothing journaled, nothing held
        c2, r2 = await ledger.commit_reserve(
            "s:3:c", "a1", "EUR", "gone", 500_000, {"session": "s"}, "s:3:r", "h3",
            1_000_000, ttl=60, now=T0 + 61, rfields={"session": "s"})
        assert c2.status is OpStatus.UNKNOWN_RESERVATION and r2 is None
        await ledger.flush_confirmations()
        await ledger.journal.flush()
        await ledger.flush_confirmations()
        assert await ledger.store.pending_ops() == []  # both confirmed once durable
        await shut(ledger)
        assert "s:3:c" not in idem_counts(tmp_path / "journal")
        assert journal_balances(tmp_path / "journal") == {("a1", "EUR"): 8_800_000}

    asyncio.run(main())


class _LostPairReply:
    """The real store; the next armed commit_reserve runs in Redis, then its caller gets
    ConnectionError (the reply was lost with the connection). A class of its own that has
    the method, so the ledger pairs ops through it (SyncOps.store)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_reserve(self, *a: Any, **kw: Any) -> Any:
        result = await self._inner.commit_reserve(*a, **kw)
        if self.armed:
            self.armed = False
            raise ConnectionError("connection lost: reply not read")
        return result


def test_a_pair_whose_reply_was_lost_is_journaled_once_by_its_retry(
        tmp_path: Path, url: str) -> None:  # noqa: F811
    async def main() -> None:
        ledger = await _ready(tmp_path, url)
        store = _LostPairReply(ledger.store)
        ledger.store = store
        assert ledger.pairs_ops
        await ledger.reserve("s:1:r", "a1", "EUR", "h1", 3_000_000, ttl=60, now=T0,
                             wait=False)
        args = ("s:2:c", "a1", "EUR", "h1", 1_000_000, {"session": "s", "usage": 30},
                "s:2:r", "h2", 2_500_000)
        store.armed = True
        with pytest.raises(ConnectionError):
            await ledger.commit_reserve(*args, ttl=60, now=T0 + 30, rfields={"session": "s"})
        c, r = await ledger.commit_reserve(*args, ttl=60, now=T0 + 31,
                                           rfields={"session": "s"})
        assert c.replayed and r is not None and r.replayed
        await ledger.wait_durable(ledger.position)  # the retry's answer waits for this mark
        recs = {x["idem"]: x for x in _records(tmp_path)}
        assert recs["s:2:c"]["usage"] == 30  # journaled by the retry, with its fields
        assert recs["s:2:r"]["holds"][0]["reservation"] == "h2"
        # a third call is a plain replay: nothing more is written
        c3, r3 = await ledger.commit_reserve(*args, ttl=60, now=T0 + 32,
                                             rfields={"session": "s"})
        assert c3.replayed and r3 is not None and r3.replayed
        await ledger.journal.flush()
        await ledger.flush_confirmations()
        assert await store.pending_ops() == []
        await shut(ledger)
        counts = idem_counts(tmp_path / "journal")
        assert (counts["s:2:c"], counts["s:2:r"]) == (1, 1)
        assert journal_balances(tmp_path / "journal") == {("a1", "EUR"): 9_000_000}

    asyncio.run(main())
