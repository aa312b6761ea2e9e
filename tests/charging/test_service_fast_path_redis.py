"""The compiled fast path on a store that suspends (Redis): what the parity test with the
Python path cannot reach -- a reply lost after the op ran in Redis, two requests of one
session in flight at once, an ASR answered while a CCR-T waits for Redis.

Real stack: build_charging on a private redis-server (tests/redis_servers.py), the real
journal; the fault injector wraps the real RedisStore and loses one reply *after* the op ran
(what redis_fast / redis_batch report when the connection drops: ConnectionError, "retry with
the same key").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

import cython_ext
from charging.journal import JournalReader
from charging.ledger.audit import idem_counts, journal_balances
from charging.requests import ChargingResult, Verb
from icx.charging_app import ChargingApp, build_charging
from tests.charging.test_service import T0, demo_settings, money, voice

pytestmark = pytest.mark.skipif(cython_ext.load("charging_slice") is None,
                                reason="cython_ext.charging_slice not built (or disabled)")

SUB = "41790000001"


class _LostReply:
    """The real RedisStore; the next armed op (``reserve``, ``commit`` or ``commit_reserve``:
    the ones the fast path awaits) runs in Redis, then its caller gets ConnectionError. The
    methods are the class's own, so the ledger pairs ops through it (SyncOps.store)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.armed = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _lose(self, name: str, *a: Any, **kw: Any) -> Any:
        result = await getattr(self._inner, name)(*a, **kw)
        if self.armed == name:
            self.armed = ""
            raise ConnectionError("connection lost: reply not read")
        return result

    async def reserve(self, *a: Any, **kw: Any) -> Any:
        return await self._lose("reserve", *a, **kw)

    async def commit(self, *a: Any, **kw: Any) -> Any:
        return await self._lose("commit", *a, **kw)

    async def commit_reserve(self, *a: Any, **kw: Any) -> Any:
        return await self._lose("commit_reserve", *a, **kw)


def _run(tmp_path: Path, url: str,
         body: Callable[[ChargingApp, _LostReply, list[Any]], Awaitable[None]]) -> None:
    """*body(app, store, taken)* on a fresh Redis; ``taken``: what the twin returned per
    request (a coroutine: it took the request; None: the Python path did)."""
    redis.Redis.from_url(url).flushall()
    cfg = demo_settings(tmp_path)

    async def main() -> None:
        app = await build_charging(cfg, tmp_path / "data", admin=False, store_url=url)
        try:
            store = _LostReply(app.ledger.store)
            app.ledger.store = store
            assert app.ledger.pairs_ops
            fast = app.service._fast
            taken: list[Any] = []

            def spy(svc: Any, req: Any, now: float) -> Any:
                out = fast(svc, req, now)
                taken.append(None if out is None else type(out).__name__)
                return out

            app.service._fast = spy
            await body(app, store, taken)
            await app.service.wait_durable(app.service.durable_mark())
            await app.journal.flush()
            await asyncio.sleep(0)
            await app.ledger.flush_confirmations()
            # every op the journal holds was confirmed; no turn, no op left in flight
            assert await app.store.pending_ops() == []
            assert app.service._busy == {} and app.ledger._inflight == 0
            # the store and the journal agree, and no op was journaled twice
            view = await app.store.get(SUB)
            assert view is not None
            assert journal_balances(app.journal.directory)[(SUB, "EUR")] == \
                view.balances[0].amount
            assert max(idem_counts(app.journal.directory).values()) == 1
        finally:
            await app.close()

    asyncio.run(main())


def _records(app: ChargingApp, prefix: str) -> list[tuple[str, str]]:
    return [(r["idem"], r["type"]) for _p, r in JournalReader(app.journal.directory).iter_from()
            if str(r.get("idem", "")).startswith(prefix)]


async def _opened(app: ChargingApp) -> None:
    """The account's first request goes the Python way (its lookup, the balance's kind)."""
    res = await app.service.handle(voice(Verb.INITIAL, 0, sid="warm", requested=60), now=T0)
    assert res.ok
    res = await app.service.handle(voice(Verb.TERMINATE, 1, sid="warm", used=0), now=T0)
    assert res.ok


@pytest.mark.parametrize("lost", ["commit_reserve", "reserve", "commit"])
def test_a_lost_reply_fails_the_request_and_its_retry_is_charged_once(
        tmp_path: Path, redis_url: str, lost: str) -> None:
    """The twin's op ran in Redis but its reply was lost: the request fails (the agent
    answers 5012), its session's turn is free, and the retry with the same CC-Request-Number
    is answered 2001 and charged once -- its records journaled once, with their fields."""
    async def body(app: ChargingApp, store: _LostReply, taken: list[Any]) -> None:
        svc = app.service
        await _opened(app)
        before = await money(app, SUB)
        reqs = [voice(Verb.INITIAL, 0, requested=60),
                voice(Verb.UPDATE, 1, requested=60, used=60),
                voice(Verb.TERMINATE, 2, used=30)]
        step = {"reserve": 0, "commit_reserve": 1, "commit": 2}[lost]
        for i, req in enumerate(reqs):
            now = T0 + 60 * i
            if i == step:
                store.armed = lost
                taken.clear()
                with pytest.raises(ConnectionError):
                    await svc.handle(req, now=now)
                assert taken == ["coroutine"]  # the twin ran the op that lost its reply
                assert svc._busy == {}
                now += 1
            res = await svc.handle(req, now=now)
            assert isinstance(res, ChargingResult) and res.ok, res
        # 60 s then 30 s of a call to 41 at 0.12 EUR/min, 60/1: 0.12 + 0.06 EUR
        assert await money(app, SUB) == (before[0] - 180_000, 0)
        recs = _records(app, "ro:s1:")
        # (one session: every key carries its tag, Session.tag)
        assert len({re.search(r"~[0-9a-f]+", k)[0] for k, _t in recs}) == 1, recs
        recs = [(re.sub(r"~[0-9a-f]+", "", k), t) for k, t in recs]
        assert sorted(recs) == sorted([("ro:s1:0:0:r", "hold"), ("ro:s1:1:0:c", "rated"),
                                       ("ro:s1:1:0:r", "hold"), ("ro:s1:2:0:c", "rated"),
                                       ("ro:s1:end:2", "ro_end")])  # (its CCR-T ended it)
        rated = [r for _p, r in JournalReader(app.journal.directory).iter_from()
                 if re.fullmatch(r"ro:s1:1:0~[0-9a-f]+:c", str(r.get("idem")))]
        assert rated[0]["usage"] == 60 and rated[0]["price"] == "0.12"

    _run(tmp_path, redis_url, body)


def test_requests_of_one_session_in_flight_together_are_decided_in_turn(
        tmp_path: Path, redis_url: str) -> None:
    """An UPDATE and its retransmit, then the TERMINATE, all in flight at once: the twin
    takes the first and holds the session's turn across its Redis op; the others wait for
    it, the retransmit gets the same answer and nothing is charged twice."""
    async def body(app: ChargingApp, store: _LostReply, taken: list[Any]) -> None:
        svc = app.service
        await _opened(app)
        before = await money(app, SUB)
        assert (await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)).ok
        u = voice(Verb.UPDATE, 1, requested=60, used=60)
        taken.clear()
        first, again, end = await asyncio.gather(
            svc.handle(u, now=T0 + 60), svc.handle(u, now=T0 + 61),
            svc.handle(voice(Verb.TERMINATE, 2, used=10), now=T0 + 62))
        assert taken[0] == "coroutine"
        assert first.ok and again == first and end.ok
        assert svc.counters.get("retransmit") == 1
        # 60 s then 10 s at 0.12 EUR/min, 60/1: 0.12 + 0.02 EUR
        assert await money(app, SUB) == (before[0] - 140_000, 0)

    _run(tmp_path, redis_url, body)


def test_an_asr_answered_while_the_terminate_waits_for_redis_ends_the_kill(
        tmp_path: Path, redis_url: str) -> None:
    """ASA 2001 marks the session killed while its CCR-T waits for Redis: the CCR-T ends the
    session and nothing is left for the kill's grace timer (its Python path's ``_end``)."""
    async def body(app: ChargingApp, store: _LostReply, taken: list[Any]) -> None:
        svc = app.service
        await _opened(app)
        assert (await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)).ok
        taken.clear()
        t = asyncio.ensure_future(svc.handle(voice(Verb.TERMINATE, 1, used=20), now=T0 + 20))
        await asyncio.sleep(0)  # the twin took it and waits for the store
        assert taken == ["coroutine"] and "s1" in svc._busy
        assert await svc.kill("s1", now=T0 + 20, asa_result_code=2001)
        assert "s1" in svc._killed
        assert (await t).ok
        assert "s1" not in svc._killed and svc.sessions.get("s1") is None
        assert await svc.supervise(T0 + 10_000) == []

    _run(tmp_path, redis_url, body)


def test_the_responder_answers_the_twins_decisions_on_redis_as_the_spec(
        tmp_path: Path, redis_url: str) -> None:
    """A non-eager agent (Redis) through the compiled Responder: the twin's coroutine runs in
    a Task and its answer goes out through the Responder -- a lost store reply answered
    5012, its retry 2001 -- with the same answer bytes and metrics as the Python spec
    (respond_py), each sent only once the journal is durable past the request's records."""
    from diameter.message import decode_message
    from icx.diameter_client import A, mscc
    from mediation.agent import _LANE, ChargingAgent
    from tests.e2e.test_agent_respond import Peer, answer_each, ccr

    if _LANE is None:
        pytest.skip("cython_ext.ro_lane not built (or disabled)")

    def requests() -> list[Any]:
        return [ccr("r;7", 1, 0, A("Multiple-Services-Indicator", 1),
                    mscc(100, rsu=("CC-Time", 60))),
                ccr("r;7", 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
                ccr("r;7", 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
                ccr("r;7", 2, 2, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
                ccr("r;7", 2, 2, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
                ccr("r;7", 3, 3, mscc(100, usu=("CC-Time", 20), reason=2)),
                ccr("r;8", 2, 5, mscc(100, rsu=("CC-Time", 60)))]

    def run(d: Path, use_spec: bool) -> tuple[list[bytes], Any, list[Any]]:
        out: list[Any] = []

        async def body(app: ChargingApp, store: _LostReply, taken: list[Any]) -> None:
            base = app.agent
            agent = ChargingAgent(base.service, base.smap, origin_host=base.origin_host,
                                  origin_realm=base.origin_realm,
                                  when_durable=app.journal.call_when_durable, eager=False)
            respond = agent.respond_py if use_spec else agent.respond
            if not use_spec:
                assert isinstance(respond, _LANE.Responder)
            peer = Peer(app)

            def arm(n: int) -> None:
                if n == 3:
                    store.armed = "commit_reserve"  # the op runs, its reply is lost

            await answer_each(app, agent, respond, peer, requests(), arm)
            out.extend(([a.encode() for _, a, _ in peer.replies], agent.metrics.requests,
                        list(taken)))

        d.mkdir()
        _run(d, redis_url, body)
        return out[0], out[1], out[2]

    got, got_metrics, taken = run(tmp_path / "a", False)
    want, want_metrics, _ = run(tmp_path / "b", True)
    assert [decode_message(a).get("Result-Code") for a in got] == [2001, 2001, 2001, 5012,
                                                                  2001, 2001, 5002]
    assert "coroutine" in taken  # the twin decided on Redis (its first U at least)
    assert got == want and got_metrics == want_metrics
