"""The ledger fails closed when a record cannot be enqueued after the store moved money
(op_record / append_nowait raising): it refuses every further money op, cuts no snapshot, and a
restart's recovery resynchronises the store from the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from charging.journal import JournalError
from charging.store.base import AccountKind
from tests.charging.test_ledger import EUR, T0, open_ledger


def test_an_op_the_journal_cannot_take_fails_the_ledger_closed(tmp_path: Path) -> None:
    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.debit("d1", "a1", "EUR", 100_000, now=T0)
        # A field msgpack cannot encode: the store debits, then the enqueue raises.
        with pytest.raises(TypeError):
            await ledger.debit("d2", "a1", "EUR", 200_000, now=T0, fields={"bad": object()},
                               wait=False)
        assert ledger.failed
        view = await ledger.store.get("a1")
        assert view is not None and view.balances[0].amount == 10_000_000 - 300_000  # diverged
        for call in (lambda: ledger.debit("d3", "a1", "EUR", 1, now=T0),
                     lambda: ledger.reserve("r1", "a1", "EUR", "s", 1, ttl=10, now=T0),
                     lambda: ledger.topup("t1", "a1", "EUR", 1, now=T0, wait=False)):
            with pytest.raises(JournalError):
                await call()
        view = await ledger.store.get("a1")  # refused before the store was touched
        assert view is not None and view.balances[0].amount == 10_000_000 - 300_000
        assert view.balances[0].reserved == 0
        assert await ledger.snapshot() is None  # never a snapshot of the diverged store
        assert await ledger.expire(T0 + 10_000) == 0
        await ledger.close()
        await journal.close()

        # Restart: the journal is the truth -- d2 never happened.
        ledger2, journal2 = await open_ledger(tmp_path)
        assert not ledger2.failed
        view = await ledger2.store.get("a1")
        assert view is not None and view.balances[0].amount == 10_000_000 - 100_000
        r = await ledger2.debit("d2", "a1", "EUR", 200_000, now=T0)
        assert r.ok and not r.replayed
        await ledger2.close()
        await journal2.close()

    asyncio.run(main())
