"""The charging service decides alike over the embedded store and over Redis.

The embedded store runs the compiled fast path (when built) with synchronous ledger ops; Redis
runs the Python path with awaited, auto-batched Lua ops. The same seeded script of Ro traffic
-- interleaved voice and data sessions on rich, poor (FUI, then 4012), empty and unknown
subscribers, retransmits, SMS events -- is decided one request at a time on both, and every
answer, every final balance and every journal record (type, key, money moved, price) must be
the same. Prices: config/decks/retail.csv (see tests/charging/test_service.py).

A second script walks what ends sessions and moves holds (``session_script``): multi-MSCC
sessions whose rating groups fail one by one or all at once, grants asked for with no usage
(the hold replaced), Tcc supervision, operator kills (ASA 2001, 5002, none), the TTL sweep,
top-ups, Session-Ids used again, events with several MSCCs -- on one clock, on Redis and on a
Redis Cluster, the answers and the retransmits' answers taken from the store when the answer
cache is down to one.
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
from tests.charging.journal_view import same_tags
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
    """Every journal record, all of it but its id and write time (the ops' times are the
    script's; the accounts' records are written at the wall clock's): type, key, effects,
    holds, the other fields (the order of fields is the writer's own). The account records
    first, sorted (provisioning creates them concurrently), then the ops in journal order --
    but the releases of one TTL sweep sorted (a Redis Cluster sweeps slot by slot)."""
    out = []
    for _pos, rec in JournalReader(journal_dir).iter_from():
        out.append((rec.get("type"), rec.get("idem"),
                    tuple((e["account"], e["balance"], e["amount"])
                          for e in rec.get("balance_effects") or ()),
                    tuple((h["account"], h["balance"], h["reservation"], h["amount"],
                           h["expires"]) for h in rec.get("holds") or ()),
                    tuple(sorted((k, repr(v)) for k, v in rec.items() if k not in (
                        "id", "ts", "balance_effects", "holds")))))
    ops: list[tuple[Any, ...]] = []
    sweep: list[tuple[Any, ...]] = []
    for r in out:
        if r[0] == "account":
            continue
        if r[1].startswith("expire:"):
            sweep.append(r)
            continue
        ops += sorted(sweep)
        sweep = []
        ops.append(r)
    return sorted(r for r in out if r[0] == "account") + ops + sorted(sweep)


def _settings(tmp_path: Path, accounts: str, **ro: Any) -> Any:
    """The shipped config with *accounts*, *ro* replacing [ro] settings. The TTL sweep of the
    wall clock never runs (the scripts' clock is months behind it: it would expire every
    hold whenever a run passes its interval); a script sweeps at its own clock."""
    path = tmp_path / "accounts.toml"
    path.write_text(accounts)
    settings = load_settings(ROOT / "config" / "icx.toml")
    return dataclasses.replace(
        settings, accounts=AccountsSection(files=(str(path),)),
        journal=dataclasses.replace(settings.journal, expiry_interval=3600),
        ro=dataclasses.replace(settings.ro, **ro))


def _on(kind: str, settings: Any, request: pytest.FixtureRequest) -> tuple[Any, str | None]:
    """(*settings*, store URL) on a fresh store of *kind*: "redis" or "redis-cluster"."""
    import redis

    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as r:
            r.flushall()
        return settings, url
    nodes = request.getfixturevalue("redis_cluster_nodes")
    for host, port in nodes:
        with redis.Redis(host=host, port=port) as r:
            r.flushall()
    return dataclasses.replace(settings, store=dataclasses.replace(
        settings.store, backend="redis-cluster",
        cluster_nodes=tuple(f"{h}:{p}" for h, p in nodes))), None


async def _do(app: Any, at: float, step: Any) -> Any:
    """One step of a script: a request, or ("supervise",) / ("expire",) / ("kill", Session-Id,
    ASA Result-Code or None) / ("topup", account, micros, key)."""
    if isinstance(step, ChargingRequest):
        return await app.service.handle(step, now=at)
    if step[0] == "supervise":
        return sorted(await app.service.supervise(at))
    if step[0] == "expire":
        return await app.ledger.expire(at)
    if step[0] == "kill":
        return await app.service.kill(step[1], now=at, asa_result_code=step[2])
    res = await app.ledger.topup(step[3], step[1], "EUR", step[2], now=at)
    return res.status, res.granted


async def _run(settings: Any, data: Path, store_url: str | None, traffic: list[tuple[float, Any]],
               accounts: tuple[str, ...] = (*RICH, POOR, EMPTY), answer_cache: int | None = None
               ) -> tuple[list[Any], dict[str, tuple[int, int]]]:
    from icx.charging_app import build_charging

    app = await build_charging(settings, data, admin=False, store_url=store_url)
    same_tags(app.service)
    if answer_cache is not None:
        app.service.config = dataclasses.replace(app.service.config,
                                                 answer_cache_size=answer_cache)
    try:
        answers = [await _do(app, at, step) for at, step in traffic]
        balances = {}
        for sub in accounts:
            view = await app.store.get(sub)
            assert view is not None
            balances[sub] = (view.balances[0].amount, view.balances[0].reserved)
    finally:
        await app.close()
    return answers, balances


def _alike(tmp_path: Path, traffic: list[tuple[float, Any]], embedded: Any,
           other: Any) -> list[tuple[Any, ...]]:
    """Assert the two runs (embedded, other store) answered, left balances and journaled
    alike; return the embedded run's journal."""
    for (at, step), a, b in zip(traffic, embedded[0], other[0], strict=True):
        assert a == b, (at, step)
    assert embedded[1] == other[1]
    journal_e = _records(tmp_path / "embedded" / "journal")
    assert journal_e == _records(tmp_path / "other" / "journal")
    return journal_e


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_redis_and_embedded_decide_alike(tmp_path: Path, request: pytest.FixtureRequest,
                                         seed: int) -> None:
    settings = _settings(tmp_path, ACCOUNTS)
    traffic = script(seed)
    embedded = asyncio.run(_run(settings, tmp_path / "embedded", None, traffic))
    settings, url = _on("redis", settings, request)
    journal_e = _alike(tmp_path, traffic, embedded,
                       asyncio.run(_run(settings, tmp_path / "other", url, traffic)))
    # the script reaches the cases it is about
    outcomes = {a.outcome.name for a in embedded[0]}
    assert {"SUCCESS", "USER_UNKNOWN", "CREDIT_LIMIT_REACHED"} <= outcomes, outcomes
    assert any(u.final_unit for a in embedded[0] for u in a.units)
    assert any(t == "rated" for t, *_ in journal_e)


# Small balances, so that grants run dry (FUI, 4012 per MSCC and for whole requests) and
# top-ups matter.
SESSION_ACCOUNTS = """
[[range]]
first = "41790000001"
last = "41790000004"
amount = "5.00"

[[account]]
id = "41790000000"
amount = "0.00"

[[account]]
id = "41790000100"
amount = "0.30"

[[account]]
id = "41790000101"
amount = "0.61"
"""
SESSION_SUBS = ("41790000001", "41790000002", "41790000003", "41790000004", "41790000000",
                "41790000100", "41790000101")
# How far apart steps are (s): Tcc is 600 s in session_script's runs, holds live Tcc + 60 s.
STEPS = (0, 1, 5, 30, 60, 200, 400)


def session_script(seed: int) -> list[tuple[float, Any]]:
    """(time, step) pairs (steps: see :func:`_do`): MSI sessions over rating groups 100-102
    -- an UPDATE's MSCC reports usage and asks again, asks with no usage (the hold replaced)
    or only reports --, some requests sent twice, Tcc supervision, kills, TTL sweeps, top-ups
    and SMS/MMS events with 0-2 MSCCs (money units too); then a supervision and a sweep long
    after. A Session-Id is used again only within 250 s of its first use: the embedded store
    remembers the keys of session ops 300-600 s, the Redis stores 48 h (``[store]
    idempotency_retention``), so a later reuse is answered from their records on Redis only."""
    rnd = random.Random(seed)
    clock = T0
    out: list[tuple[float, Any]] = []
    live: dict[str, list[Any]] = {}  # Session-Id -> [subscriber, destination, number]
    first: dict[str, float] = {}
    groups = (100, 101, 102)

    def su(rg: int, rsu: int | None, usu: int | None = None) -> ServiceUnits:
        return ServiceUnits(rating_group=rg, requested=rsu, used=usu or 0,
                            used_present=usu is not None)

    def ccr(verb: Verb, sid: str, units: list[ServiceUnits]) -> ChargingRequest:
        sub, dest, n = live[sid]
        return ChargingRequest(verb=verb, session_id=sid, request_number=n,
                               service=ServiceKind.VOICE, subscriber=sub, destination=dest,
                               units=tuple(units), multiple_services=True,
                               idem_key=f"ro:{sid}:{n}", peer_host="pgw.test")

    for step in range(rnd.randrange(30, 80)):
        clock += rnd.choice(STEPS)
        r = rnd.random()
        if r < 0.2 or not live:
            sid = f"s{seed}-{step}"
            again = [s for s in first if s not in live and clock - first[s] < 250]
            if again and rnd.random() < 0.3:
                sid = rnd.choice(again)
            first.setdefault(sid, clock)
            live[sid] = [rnd.choice(SESSION_SUBS), rnd.choice(DESTINATIONS), 0]
            out.append((clock, ccr(Verb.INITIAL, sid, [
                su(g, rnd.choice([0, 30, 60, 300]))
                for g in rnd.sample(groups, rnd.randrange(0, 4))])))
        elif r < 0.6:
            sid = rnd.choice(list(live))
            live[sid][2] += 1
            units = []
            for g in rnd.sample(groups, rnd.randrange(1, 4)):
                how = rnd.random()
                units.append(su(g, rnd.choice([0, 60, 300])) if how < 0.3 else  # replace
                             su(g, 60, rnd.randrange(120)) if how < 0.7 else
                             su(g, None, rnd.randrange(120)))
            out.append((clock, ccr(Verb.UPDATE, sid, units)))
            if rnd.random() < 0.1:
                out.append((clock + 1, out[-1][1]))  # a retransmit
        elif r < 0.75:
            sid = rnd.choice(list(live))
            live[sid][2] += 1
            out.append((clock, ccr(Verb.TERMINATE, sid, [
                su(g, None, rnd.randrange(120)) for g in rnd.sample(groups, rnd.randrange(3))])))
            del live[sid]
        elif r < 0.82:
            out.append((clock, ("supervise",)))
        elif r < 0.88:
            out.append((clock, ("expire",)))
        elif r < 0.94:
            out.append((clock, ("kill", rnd.choice(list(live)), rnd.choice([2001, 5002, None]))))
        elif r < 0.97:
            money = rnd.random() < 0.3
            n = rnd.randrange(3)
            units = [ServiceUnits(rating_group=g, requested=rnd.choice(
                [None, 1, 2, 200_000] if money else [None, 1, 3]), money=money)
                for g in rnd.sample((1, 2, 3), n)]
            out.append((clock, ChargingRequest(
                verb=Verb.EVENT, session_id=f"e{seed}-{step}", request_number=0,
                service=rnd.choice([ServiceKind.SMS, ServiceKind.MMS]),
                subscriber=rnd.choice(SESSION_SUBS), destination=rnd.choice(DESTINATIONS),
                action=rnd.choice(list(EventAction)), units=tuple(units),
                multiple_services=n > 1 or rnd.random() < 0.5, idem_key=f"ro:e{seed}-{step}:0",
                peer_host="pgw.test")))
            if rnd.random() < 0.2:
                out.append((clock + 1, out[-1][1]))
        else:
            out.append((clock, ("topup", rnd.choice(SESSION_SUBS), rnd.choice([100_000, 250_000]),
                                f"t{seed}-{step}")))
    return out + [(clock + 10_000, ("supervise",)), (clock + 20_000, ("expire",))]


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
@pytest.mark.parametrize(("seed", "answer_cache"), [(5, None), (6, 1), (10, None), (13, 1)])
def test_sessions_end_alike_on_every_store(tmp_path: Path, request: pytest.FixtureRequest,
                                           kind: str, seed: int,
                                           answer_cache: int | None) -> None:
    """The ends of sessions and the moves of holds (``session_script``) over the embedded
    store and over *kind*: the same answers (with an answer cache of one, the retransmits' and
    a reused Session-Id's too come from the store's records), the same balances, the same
    journal."""
    settings = _settings(tmp_path, SESSION_ACCOUNTS, tcc_seconds=600.0)
    traffic = session_script(seed)
    embedded = asyncio.run(_run(settings, tmp_path / "embedded", None, traffic,
                                SESSION_SUBS, answer_cache))
    settings, url = _on(kind, settings, request)
    journal = _alike(tmp_path, traffic, embedded, asyncio.run(_run(
        settings, tmp_path / "other", url, traffic, SESSION_SUBS, answer_cache)))
    # the script reaches the cases it is about
    reasons = {dict(fields).get("reason") for *_, fields in journal}
    assert {"'replaced'", "'tcc_expired'", "'killed'", "'terminated'", "'ttl'"} <= reasons, (
        reasons)
    assert any(u.outcome.name == "CREDIT_LIMIT_REACHED" for a in embedded[0]
               if isinstance(a, ChargingResult) for u in a.units)
