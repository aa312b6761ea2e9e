"""The charging service decides alike over the embedded store and over Redis.

The embedded store runs the compiled fast path (when built) with synchronous ledger ops; Redis
runs the Python path with awaited, auto-batched Lua ops. The same seeded script of Ro traffic
-- interleaved voice and data sessions on rich, poor (FUI, then 4012), empty and unknown
subscribers, retransmits, SMS events -- is decided one request at a time on both, and every
answer, every final balance and every journal record (type, key, money moved, price) must be
the same. Prices: config/decks/retail.csv (see tests/charging/test_service.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from charging.requests import (
    ChargingRequest,
    ChargingResult,
    EventAction,
    ServiceKind,
    ServiceUnits,
    Verb,
)
from icx.settings import AccountsSection, load_settings
from tests.charging.test_service import ACCOUNTS, ROOT, T0

RICH = [f"4179000000{i}" for i in range(1, 6)]  # 50.00 EUR each
POOR = "41790000100"  # 0.30 EUR: a final grant (FUI), then 4012
EMPTY = "41790000000"  # 0.00 EUR: 4012 at once
UNKNOWN = "41799999999"  # no such subscriber: 5030
# 41: 0.12/min 60/1; 44: 0.20/min 1/1; elsewhere 0.50/min 60/60
DESTINATIONS = ["41791234567", "442071234567", "33123456789"]


def _ccr(kind: str, verb: Verb, n: int, sid: str, sub: str, dest: str,
         requested: int | None, used: int | None) -> ChargingRequest:
    units = ServiceUnits(rating_group=1 if kind == "voice" else 10, requested=requested,
                         used=used or 0, used_present=used is not None)
    return ChargingRequest(verb=verb, session_id=sid, request_number=n,
                           service=ServiceKind.VOICE if kind == "voice" else ServiceKind.DATA,
                           subscriber=sub, destination=dest if kind == "voice" else None,
                           units=(units,), multiple_services=True,
                           idem_key=f"ro:{sid}:{n}", peer_host="pgw.test")


def _sms(sid: str, sub: str, dest: str, action: EventAction, n: int) -> ChargingRequest:
    return ChargingRequest(verb=Verb.EVENT, session_id=sid, request_number=0,
                           service=ServiceKind.SMS, subscriber=sub, destination=dest,
                           action=action, units=(ServiceUnits(requested=n),),
                           idem_key=f"ro:{sid}:0", peer_host="pgw.test")


def script(seed: int) -> list[tuple[float, ChargingRequest]]:
    """(time, request) pairs: sessions I, U x 0-3, T interleaved at random, some requests sent
    twice (a retransmit), SMS events in between."""
    rnd = random.Random(seed)
    subs = RICH * 3 + [POOR, POOR, EMPTY, UNKNOWN]
    pending: list[list[tuple[float, ChargingRequest]]] = []
    for i in range(24):
        kind = rnd.choice(["voice", "voice", "data"])
        sub, dest, sid = rnd.choice(subs), rnd.choice(DESTINATIONS), f"p{seed}-{i}"
        start = T0 + rnd.randrange(600)
        quota = 60 if kind == "voice" else 2_000_000
        steps = [(start, _ccr(kind, Verb.INITIAL, 0, sid, sub, dest, quota, None))]
        at = start
        updates = rnd.randrange(4)
        for n in range(1, updates + 2):
            at += rnd.randrange(5, 90)
            used = rnd.randrange(0, quota * 3 // 2)
            verb = Verb.TERMINATE if n == updates + 1 else Verb.UPDATE
            steps.append((at, _ccr(kind, verb, n, sid, sub, dest,
                                   quota if verb is Verb.UPDATE else None, used)))
        pending.append(steps)
    # and one that surely runs dry: 0.30 EUR at 0.20/min (1/1) -> a final 30 s grant, 4012
    sid = f"p{seed}-dry"
    pending.append([(T0, _ccr("voice", Verb.INITIAL, 0, sid, POOR, DESTINATIONS[1], 60, None))]
                   + [(T0 + 60 * n, _ccr("voice", Verb.UPDATE, n, sid, POOR, DESTINATIONS[1],
                                         60, 60)) for n in (1, 2, 3)]
                   + [(T0 + 240, _ccr("voice", Verb.TERMINATE, 4, sid, POOR, DESTINATIONS[1],
                                      None, 10))])
    pending.append([(T0 + 1, _ccr("voice", Verb.INITIAL, 0, f"p{seed}-who", UNKNOWN,
                                  DESTINATIONS[0], 60, None))])
    for i in range(8):
        action = rnd.choice([EventAction.DIRECT_DEBITING, EventAction.DIRECT_DEBITING,
                             EventAction.REFUND, EventAction.CHECK_BALANCE,
                             EventAction.PRICE_ENQUIRY])
        pending.append([(T0 + rnd.randrange(600), _sms(f"e{seed}-{i}", rnd.choice(subs),
                                                       rnd.choice(DESTINATIONS), action,
                                                       rnd.randrange(1, 4)))])
    out: list[tuple[float, ChargingRequest]] = []
    clock = T0
    while pending:
        steps = rnd.choice(pending)
        at, req = steps.pop(0)
        clock = max(clock, at)  # one clock: requests of a session keep their order
        out.append((clock, req))
        if rnd.random() < 0.15:
            out.append((clock + 1, req))  # a retransmit of the same request
        if not steps:
            pending.remove(steps)
    return out


def _records(journal_dir: Path) -> list[tuple[Any, ...]]:
    """What each journal record moved: type, key, effects, holds and price (ids and the
    order of fields are the writer's own)."""
    out = []
    for _pos, rec in JournalReader(journal_dir).iter_from():
        out.append((rec.get("type"), rec.get("idem"),
                    tuple((e["account"], e["balance"], e["amount"])
                          for e in rec.get("balance_effects") or ()),
                    tuple((h["account"], h["balance"], h["amount"])
                          for h in rec.get("holds") or ()),
                    rec.get("price")))
    return out


async def _run(settings: Any, data: Path, store_url: str | None,
               traffic: list[tuple[float, ChargingRequest]]
               ) -> tuple[list[ChargingResult], dict[str, tuple[int, int]]]:
    from icx.charging_app import build_charging

    app = await build_charging(settings, data, admin=False, store_url=store_url)
    try:
        answers = [await app.service.handle(req, now=at) for at, req in traffic]
        balances = {}
        for sub in [*RICH, POOR, EMPTY]:
            view = await app.store.get(sub)
            assert view is not None
            balances[sub] = (view.balances[0].amount, view.balances[0].reserved)
    finally:
        await app.close()
    return answers, balances


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_redis_and_embedded_decide_alike(tmp_path: Path, redis_url: str, seed: int) -> None:
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = dataclasses.replace(load_settings(ROOT / "config" / "icx.toml"),
                                   accounts=AccountsSection(files=(str(accounts),)))
    traffic = script(seed)
    embedded = asyncio.run(_run(settings, tmp_path / "embedded", None, traffic))
    over_redis = asyncio.run(_run(settings, tmp_path / "redis", redis_url, traffic))
    for (at, req), a, b in zip(traffic, embedded[0], over_redis[0], strict=True):
        assert a == b, (at, req)
    assert embedded[1] == over_redis[1]
    journal_e = _records(tmp_path / "embedded" / "journal")
    journal_r = _records(tmp_path / "redis" / "journal")
    assert journal_e == journal_r
    # the script reaches the cases it is about
    outcomes = {a.outcome.name for a in embedded[0]}
    assert {"SUCCESS", "USER_UNKNOWN", "CREDIT_LIMIT_REACHED"} <= outcomes, outcomes
    assert any(u.final_unit for a in embedded[0] for u in a.units)
    assert any(t == "rated" for t, *_ in journal_e)
