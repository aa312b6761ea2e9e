"""The charging service over the Redis store (a suspending store): decide() keeps each
session's requests in order, answers wait for durability once, and the Redis ops are
confirmed journaled only after their group commit (exactly-once across a crash)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from charging.ledger.audit import journal_balances
from charging.requests import Verb
from icx.settings import AccountsSection, load_settings
from tests.charging.test_service import ACCOUNTS, ROOT, T0, voice


@pytest.fixture
def url(redis_url: str) -> str:
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    return redis_url


def test_sessions_over_redis_in_order_and_exactly_once(tmp_path: Path, url: str) -> None:
    from icx.charging_app import build_charging

    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = dataclasses.replace(load_settings(ROOT / "config" / "icx.toml"),
                                   accounts=AccountsSection(files=(str(accounts),)))

    async def main() -> None:
        app = await build_charging(settings, tmp_path / "data", admin=False, store_url=url)
        svc, ledger = app.service, app.ledger
        try:
            sids = [f"r{i}" for i in range(8)]
            subs = [f"4179000000{1 + i % 5}" for i in range(8)]
            first = await asyncio.gather(*(
                svc.handle(voice(Verb.INITIAL, 0, sid=s, sub=b, requested=60), now=T0)
                for s, b in zip(sids, subs, strict=True)))
            assert all(r.ok for r in first)
            # each session's UPDATE and TERMINATE arrive together (pipelined)
            rest = await asyncio.gather(*(
                coro for s, b in zip(sids, subs, strict=True) for coro in (
                    svc.handle(voice(Verb.UPDATE, 1, sid=s, sub=b, used=60, requested=60),
                               now=T0 + 60),
                    svc.handle(voice(Verb.TERMINATE, 2, sid=s, sub=b, used=30),
                               now=T0 + 90))))
            assert all(r.ok for r in rest)
            assert [r.cost for r in rest[1::2]] == [180_000] * 8  # 90 s at 0.12/min
            assert not svc._busy and len(svc.sessions) == 0
            # durable answers: every op is in the journal; confirmations follow the fsync
            assert ledger.journal.durable >= ledger.journal.position
            await ledger.flush_confirmations()
            assert await ledger.store.pending_ops() == []
            for b in set(subs):
                view = await ledger.store.get(b)
                assert view is not None
                n = subs.count(b)
                assert (view.balances[0].amount, view.balances[0].reserved) == (
                    50_000_000 - n * 180_000, 0)
        finally:
            await app.close()
        bal = journal_balances(tmp_path / "data" / "journal")
        for b in set(subs):
            assert bal[(b, "EUR")] == 50_000_000 - subs.count(b) * 180_000

    asyncio.run(main())
