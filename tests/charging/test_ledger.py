"""The ledger over the embedded store and a real journal: exactly-once money, recovery."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from charging.journal import Journal, JournalReader
from charging.ledger import Ledger
from charging.ledger.audit import idem_counts, journal_balances
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore

T0 = 1_800_000_000.0
EUR = BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount=10_000_000, low_threshold=2_000_000)
SECS = BalanceSpec("voice", BalanceKind.SECONDS, None, amount=600)


async def open_ledger(d: Path, **kw: object) -> tuple[Ledger, Journal]:
    journal = await Journal.open(d / "journal")
    ledger = Ledger(MemoryStore(), journal, snapshot_dir=d / "snapshots", **kw)  # type: ignore[arg-type]
    await ledger.recover(now=T0)
    return ledger, journal


async def store_amounts(ledger: Ledger) -> dict[tuple[str, str], int]:
    out = {}
    for acct in ("a1", "a2"):
        view = await ledger.store.get(acct)
        if view is not None:
            for b in view.balances:
                out[(acct, b.id)] = b.amount
    return out


def test_ops_journal_and_replay(tmp_path: Path) -> None:
    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR, SECS], ["3161"],
                                    now=T0)
        r = await ledger.reserve("k1", "a1", "EUR", "s1", 3_000_000, ttl=30, now=T0,
                                 fields={"session": "s1", "service": "voice"})
        assert r.ok and r.granted == 3_000_000
        c = await ledger.commit("k2", "a1", "EUR", "s1", 1_250_000, now=T0 + 1,
                                fields={"price": "1.25", "currency": "EUR"})
        assert c.ok
        again = await ledger.commit("k2", "a1", "EUR", "s1", 1_250_000, now=T0 + 2)
        assert again.replayed and again.effects == c.effects
        await ledger.debit("k3", "a1", "voice", 60, now=T0 + 3)
        await ledger.topup("k4", "a1", "EUR", 500_000, now=T0 + 4)
        refused = await ledger.debit("k5", "a1", "EUR", 99_000_000, now=T0 + 5)
        assert not refused.ok
        await ledger.close()
        await journal.close()

        recs = [r for _, r in JournalReader(tmp_path / "journal").iter_from()]
        types = [(r["type"], r["idem"]) for r in recs]
        assert types == [("account", "account:a1"), ("hold", "k1"), ("rated", "k2"),
                         ("rated", "k3"), ("topup", "k4")]
        rated = recs[2]
        assert rated["balance_effects"] == [
            {"account": "a1", "balance": "EUR", "currency": "EUR", "amount": "-1.25"}]
        assert rated["holds"][0]["amount"] == "-3.00" and rated["holds"][0]["expires"] is None
        assert rated["price"] == "1.25" and rated["v"] == 1
        assert recs[3]["balance_effects"][0]["amount"] == "-60"
        assert recs[1]["holds"][0]["expires"] == int((T0 + 30) * 1_000_000)
        assert journal_balances(tmp_path / "journal") == {
            ("a1", "EUR"): 10_000_000 - 1_250_000 + 500_000, ("a1", "voice"): 540}
        assert max(idem_counts(tmp_path / "journal").values()) == 1

    asyncio.run(main())


@pytest.mark.parametrize("with_snapshot", [False, True])
def test_recovery_replays_journal(tmp_path: Path, with_snapshot: bool) -> None:
    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.create_account("a2", AccountKind.POSTPAID_PARTNER,
                                    [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 0,
                                                 credit_limit=5_000_000)], now=T0)
        for i in range(20):
            await ledger.debit(f"d{i}", "a1", "EUR", 100_000, now=T0 + i)
            if with_snapshot and i == 9:
                assert await ledger.snapshot() is not None
        await ledger.reserve("r1", "a2", "EUR", "s", 2_000_000, ttl=1000, now=T0)
        before = await store_amounts(ledger)
        await ledger.close()
        await journal.close()

        ledger2, journal2 = await open_ledger(tmp_path)
        assert await store_amounts(ledger2) == before == journal_balances(tmp_path / "journal")
        view = await ledger2.store.get("a2")
        assert view.balances[0].reserved == 2_000_000  # the hold survived the restart
        again = await ledger2.debit("d3", "a1", "EUR", 100_000, now=T0 + 50)
        assert again.replayed  # idempotency survives a restart
        assert (await store_amounts(ledger2)) == before
        await ledger2.close()
        await journal2.close()

    asyncio.run(main())


def test_expiry_across_restart(tmp_path: Path) -> None:
    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.reserve("r1", "a1", "EUR", "s1", 1_000_000, ttl=10, now=T0)
        await ledger.close()
        await journal.close()
        journal = await Journal.open(tmp_path / "journal")
        ledger = Ledger(MemoryStore(), journal, snapshot_dir=tmp_path / "snapshots")
        report = await ledger.recover(now=T0 + 11)
        assert report.expired == 1
        view = await ledger.store.get("a1")
        assert view.balances[0].reserved == 0
        await ledger.close()
        await journal.close()
        recs = [r for _, r in JournalReader(tmp_path / "journal").iter_from()]
        assert recs[-1]["type"] == "release" and recs[-1]["op"] == "expire"
        assert recs[-1]["holds"][0]["amount"] == "-1.00"

    asyncio.run(main())


def test_low_balance_event(tmp_path: Path) -> None:
    async def main() -> None:
        seen = []
        ledger, journal = await open_ledger(tmp_path)
        ledger.on_low_balance = seen.append
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.debit("d1", "a1", "EUR", 8_500_000, now=T0)
        assert seen and seen[0].account == "a1" and seen[0].balance == "EUR"
        assert ledger.events.qsize() == 1
        await ledger.close()
        await journal.close()

    asyncio.run(main())


def test_concurrent_ops_group_commit(tmp_path: Path) -> None:
    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path, snapshot_records=50)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER,
                                    [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", 10**12)],
                                    now=T0)
        await asyncio.gather(*(ledger.debit(f"d{i}", "a1", "EUR", 1000 + i, now=T0)
                               for i in range(300)))
        assert journal.groups < 300
        await ledger.close()
        assert ledger.stats["snapshots"] >= 1
        before = await store_amounts(ledger)
        await journal.close()
        ledger2, journal2 = await open_ledger(tmp_path)
        assert await store_amounts(ledger2) == before == journal_balances(tmp_path / "journal")
        await ledger2.close()
        await journal2.close()

    asyncio.run(main())


def test_damaged_snapshot_falls_back_to_replay(tmp_path: Path) -> None:
    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        await ledger.debit("d1", "a1", "EUR", 100_000, now=T0)
        await ledger.snapshot()
        await ledger.debit("d2", "a1", "EUR", 200_000, now=T0)
        await ledger.record({"type": "rated", "idem": "rf:x:1", "service": "data"}, now=T0)
        await ledger.close()
        await journal.close()
        snaps = sorted((tmp_path / "snapshots").iterdir())
        assert snaps
        snaps[-1].write_bytes(b"garbage")
        ledger2, journal2 = await open_ledger(tmp_path)
        view = await ledger2.store.get("a1")
        assert view.balances[0].amount == 10_000_000 - 300_000
        await ledger2.close()
        await journal2.close()
        recs = [r for _, r in JournalReader(tmp_path / "journal").iter_from()]
        assert recs[-1]["idem"] == "rf:x:1" and recs[-1]["balance_effects"] == []

    asyncio.run(main())


def test_journal_failure_stops_money_moving(tmp_path: Path) -> None:
    from charging.journal import JournalError

    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)

        def boom(parts: object) -> None:
            raise OSError(5, "Input/output error")

        journal._writer.write_and_sync = boom  # type: ignore[method-assign]
        # every group through write_and_sync (the Python writer), not the native writer
        journal._writer.reserve = lambda nbytes: -1  # type: ignore[method-assign]
        with pytest.raises(JournalError):
            await ledger.debit("d1", "a1", "EUR", 100_000, now=T0)
        before = (await ledger.store.get("a1")).balances[0].amount
        with pytest.raises(JournalError, match="refusing"):
            await ledger.debit("d2", "a1", "EUR", 100_000, now=T0)
        assert (await ledger.store.get("a1")).balances[0].amount == before  # untouched
        await journal.close()

    asyncio.run(main())


def test_long_replay_says_how_far_it_got(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    from charging.ledger import recovery

    async def main() -> None:
        ledger, journal = await open_ledger(tmp_path)
        await ledger.create_account("a1", AccountKind.PREPAID_SUBSCRIBER, [EUR], now=T0)
        for i in range(5):
            await ledger.debit(f"d{i}", "a1", "EUR", 1, now=T0)
        await journal.close()  # a crash: no snapshot after the ops
        monkeypatch.setattr(recovery, "PROGRESS_SECONDS", 0.0)
        caplog.set_level("INFO", logger="icx.ledger")
        journal = await Journal.open(tmp_path / "journal")
        ledger = Ledger(MemoryStore(), journal, snapshot_dir=tmp_path / "snapshots")
        report = await ledger.recover(now=T0)
        assert report.replayed == 6
        lines = [r.getMessage() for r in caplog.records if "replaying the journal" in r.message]
        assert lines and "6 records" in lines[-1]
        await ledger.close()
        await journal.close()

    asyncio.run(main())
