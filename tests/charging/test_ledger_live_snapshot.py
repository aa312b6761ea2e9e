"""The ledger's live snapshots (snapshot_mode "live", charging/store/live_dump.py): cut
while ops run on every account, published only once durable, and a restart from one gives
the balances the journal holds, each op applied once."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import pytest

from charging.ledger import Ledger
from charging.ledger import core as ledger_core
from charging.ledger.audit import idem_counts, journal_balances
from charging.store.base import AccountKind
from charging.store.memory import MemoryStore
from tests.charging.test_ledger import EUR, SECS, T0, open_ledger, store_amounts


def test_a_live_snapshot_cut_while_ops_run_restores_exactly(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr(ledger_core, "LIVE_STEP", 7)  # many steps: ops between them
    monkeypatch.setattr(ledger_core, "LIVE_PAUSE", 0.0)

    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path, snapshot_mode="live")
        accounts = [f"a{i}" for i in range(6)]
        for a in accounts:
            await ledger.create_account(a, AccountKind.PREPAID_SUBSCRIBER, [EUR, SECS], now=T0)
        rng = random.Random(5)
        n = 0
        debits: dict[str, str] = {}  # key -> account

        async def work(count: int) -> None:
            nonlocal n
            for _ in range(count):
                n += 1
                a = rng.choice(accounts)
                if n % 3 == 0:
                    await ledger.reserve(f"r{n}", a, "EUR", f"s{n % 7}", 10_000, ttl=600,
                                         now=T0 + n * 0.01)
                elif n % 3 == 1:
                    await ledger.commit(f"c{n}", a, "EUR", f"s{(n - 1) % 7}", 4_000,
                                        now=T0 + n * 0.01)
                else:
                    await ledger.debit(f"d{n}", a, "voice", 1, now=T0 + n * 0.01)
                    debits[f"d{n}"] = a
                await asyncio.sleep(0)  # let the dump's steps run in between

        await work(300)
        snap_task = asyncio.ensure_future(ledger.snapshot())
        await work(200)
        pos = await snap_task
        assert pos is not None and ledger.stats["snapshots"] == 1
        await work(100)
        before = await store_amounts(ledger)
        full = {a: await ledger.store.get(a) for a in accounts}
        await ledger.close()
        await journal.close()

        restarted, journal2 = await open_ledger(tmp_path, snapshot_mode="live")
        report_snapshot = sorted((tmp_path / "snapshots").iterdir())
        assert report_snapshot, "the live snapshot was published"
        assert {a: await restarted.store.get(a) for a in accounts} == full
        assert await store_amounts(restarted) == before
        assert journal_balances(tmp_path / "journal") == {
            (a, b.id): b.amount for a, v in full.items() for b in v.balances}
        assert max(idem_counts(tmp_path / "journal").values()) == 1
        # retries of debits made during the dump are still answered from the cache
        for key in ("d302", "d401", "d497"):
            again = await restarted.debit(key, debits[key], "voice", 1, now=T0 + 10)
            assert again.replayed
        await restarted.close()
        await journal2.close()

    asyncio.run(main())


def test_an_unknown_snapshot_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="snapshot_mode"):
        Ledger(MemoryStore(), None, snapshot_mode="cow")  # type: ignore[arg-type]


def test_close_drops_a_live_snapshot_still_being_written(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_core, "LIVE_STEP", 1)
    monkeypatch.setattr(ledger_core, "LIVE_PAUSE", 0.05)

    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path, snapshot_mode="live")
        for i in range(40):
            await ledger.create_account(f"a{i}", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.debit("d1", "a3", "EUR", 100_000, now=T0)
        ledger._snapshot_task = asyncio.ensure_future(ledger._snapshot_job())
        await asyncio.sleep(0.2)  # a few of the 40 accounts written
        assert ledger._snapshot_task is not None
        before = ledger.stats["snapshots"]
        await asyncio.wait_for(ledger.close(), 1.0)  # not the ~2 s the rest would take
        await journal.close()
        assert ledger.stats["snapshots"] == before and ledger.stats["snapshot_failures"] == 0
        assert not [p for p in (tmp_path / "snapshots").iterdir() if p.name.startswith(".")]
        restarted, journal2 = await open_ledger(tmp_path, snapshot_mode="live")
        view = await restarted.store.get("a3")
        assert view is not None and view.balances[0].amount == 10_000_000 - 100_000
        await restarted.close()
        await journal2.close()

    asyncio.run(main())


def test_a_live_snapshot_is_synced_a_piece_at_a_time(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger syncs the dump between steps (live_dump.SYNC_BYTES), in a worker thread,
    not all at the end: one big fsync held the journal's group commits behind it."""
    from charging.store import live_dump

    monkeypatch.setattr(ledger_core, "LIVE_STEP", 7)
    monkeypatch.setattr(ledger_core, "LIVE_PAUSE", 0.0)
    monkeypatch.setattr(live_dump, "SYNC_BYTES", 512)
    threads: list[bool] = []
    real_sync = live_dump.LiveDump.sync

    def sync(self: live_dump.LiveDump) -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        real_sync(self)

    monkeypatch.setattr(live_dump.LiveDump, "sync", sync)

    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path, snapshot_mode="live")
        for i in range(4):
            await ledger.create_account(f"a{i}", AccountKind.PREPAID_SUBSCRIBER, [EUR, SECS],
                                        now=T0)
        for n in range(400):
            await ledger.debit(f"d{n}", f"a{n % 4}", "voice", 1, now=T0 + n * 0.01)
        await ledger.snapshot()
        full = {f"a{i}": await ledger.store.get(f"a{i}") for i in range(4)}
        await ledger.close()
        await journal.close()
        assert len(threads) >= 3 and not any(threads), threads
        restarted, journal2 = await open_ledger(tmp_path, snapshot_mode="live")
        assert {f"a{i}": await restarted.store.get(f"a{i}") for i in range(4)} == full
        assert (await restarted.debit("d17", "a1", "voice", 1, now=T0 + 10)).replayed
        await restarted.close()
        await journal2.close()

    asyncio.run(main())
