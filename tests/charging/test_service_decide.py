"""decide() / durable_mark(): a request awaits durability once, and the embedded path never
suspends (the edge drives it with coro.send(None)). Real stack: engine + MemoryStore + journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from charging.requests import ChargingResult, Outcome, Verb
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack, voice  # noqa: F401


def run_eagerly(coro: Coroutine[Any, Any, ChargingResult]) -> ChargingResult:
    """Drive *coro* one step; it must finish without suspending (StopIteration)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("decide() suspended on the embedded path")


def test_decide_completes_without_suspending_and_the_mark_covers_its_records(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc, journal = app.service, app.journal
        await journal.flush()
        before = journal.position
        r = run_eagerly(svc.decide(voice(Verb.INITIAL, 0, requested=120), now=T0))
        mark = svc.durable_mark()
        assert r.ok and r.units[0].granted == 120
        assert mark > before  # the hold was enqueued ...
        assert journal.durable < mark  # ... and not yet durable: the caller must wait
        await svc.wait_durable(mark)
        assert journal.durable >= mark
        r = run_eagerly(svc.decide(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 60))
        assert r.ok and r.units[0].used_cost == 120_000
        r = run_eagerly(svc.decide(voice(Verb.TERMINATE, 2, used=30), now=T0 + 90))
        assert r.ok and r.cost == 180_000
        await svc.wait_durable(svc.durable_mark())
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)

    stack(body)


def test_handle_returns_only_once_durable(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc, journal = app.service, app.journal
        r = await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)
        assert r.ok and journal.durable >= journal.position

    stack(body)


def test_a_retransmit_decided_before_the_original_is_durable_waits_for_it(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc, journal = app.service, app.journal
        await journal.flush()
        first = run_eagerly(svc.decide(voice(Verb.INITIAL, 0, requested=60), now=T0))
        end_of_original = journal.position
        again = run_eagerly(svc.decide(voice(Verb.INITIAL, 0, requested=60), now=T0))
        assert again is first
        assert svc.durable_mark() >= end_of_original > journal.durable

    stack(body)


def test_failures_decided_eagerly_too(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        r = run_eagerly(svc.decide(voice(Verb.UPDATE, 5, sid="nope", used=1), now=T0))
        assert r.outcome is Outcome.UNKNOWN_SESSION
        r = run_eagerly(svc.decide(voice(Verb.INITIAL, 0, sid="u", sub="49000"), now=T0))
        assert r.outcome is Outcome.USER_UNKNOWN
        r = run_eagerly(svc.decide(voice(Verb.INITIAL, 0, sid="poor", sub="41790000000",
                                         requested=60), now=T0))
        assert r.outcome is Outcome.CREDIT_LIMIT_REACHED

    stack(body)


class _Yielding:
    """A real MemoryStore whose money ops suspend once before running (like a Redis round
    trip), to exercise the service's per-session ordering on a suspending store."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in ("reserve", "commit", "release", "debit", "refund", "topup"):
            return attr

        async def op(*a: Any, **kw: Any) -> Any:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return await attr(*a, **kw)

        return op


def test_requests_of_one_session_run_in_order_when_the_store_suspends(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        svc.ledger.store = _Yielding(app.store)
        r = await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)
        assert r.ok
        # UPDATE and TERMINATE arrive together (pipelined client): the TERMINATE must see the
        # UPDATE's commit and new hold, and a second session runs alongside.
        u, t, other = await asyncio.gather(
            svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 60),
            svc.handle(voice(Verb.TERMINATE, 2, used=30), now=T0 + 90),
            svc.handle(voice(Verb.INITIAL, 0, sid="s2", sub="41790000002", requested=60),
                       now=T0 + 1))
        assert u.ok and u.units[0].granted == 60
        assert t.ok and t.cost == 180_000
        assert other.ok
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)
        assert not svc._busy  # no session left holding a turn

    stack(body)


def test_a_cancelled_waiter_passes_the_turn_on(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        svc.ledger.store = _Yielding(app.store)
        await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)
        first = asyncio.ensure_future(
            svc.handle(voice(Verb.UPDATE, 1, used=10, requested=60), now=T0 + 10))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(
            svc.handle(voice(Verb.UPDATE, 2, used=10, requested=60), now=T0 + 20))
        await asyncio.sleep(0)
        second.cancel()
        assert (await first).ok
        r = await svc.handle(voice(Verb.TERMINATE, 3, used=10), now=T0 + 30)
        assert r.ok
        assert not svc._busy

    stack(body)


def test_kill_after_asa_2001_keeps_the_hold_and_the_ccr_t_debits_the_usage(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        await svc.handle(voice(Verb.INITIAL, 0, requested=300), now=T0)
        assert await money(app, "41790000001") == (50_000_000, 600_000)
        assert await svc.kill("s1", now=T0 + 80, asa_result_code=2001)
        # protocol-facts D: the ASR is not a CCR-T -- the hold stays until the client's
        assert await money(app, "41790000001") == (50_000_000, 600_000)
        assert svc.sessions.get("s1") is not None and svc.sessions.get("s1").as_dict()["killed"]
        u = await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=300), now=T0 + 85)
        assert u.ok and u.units[0].granted is None  # usage committed, no new grant
        assert await svc.supervise(T0 + 90) == []  # within kill_grace: still waiting
        t = await svc.handle(voice(Verb.TERMINATE, 2, used=30), now=T0 + 90)
        assert t.ok and t.cost == 180_000  # 90 s at 0.12/min
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)
        assert svc.sessions.get("s1") is None and not svc._killed
        assert await svc.supervise(T0 + 10_000) == []

    stack(body)


def test_kill_after_asa_2001_without_a_ccr_t_releases_after_the_grace(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        await svc.handle(voice(Verb.INITIAL, 0, requested=300), now=T0)
        await svc.kill("s1", now=T0 + 10, asa_result_code=2001)
        grace = svc.config.kill_grace
        assert await svc.supervise(T0 + 10 + grace - 1) == []
        assert await svc.supervise(T0 + 10 + grace) == ["s1"]
        assert await money(app, "41790000001") == (50_000_000, 0)
        r = await svc.handle(voice(Verb.TERMINATE, 1, used=30), now=T0 + 20 + grace)
        assert r.outcome is Outcome.UNKNOWN_SESSION

    stack(body)


def test_kill_without_a_2001_asa_releases_at_once(stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        for n, asa in enumerate((None, 5002, 5012)):
            sid = f"k{n}"
            await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=300), now=T0)
            assert await money(app, "41790000001") == (50_000_000, 600_000)
            assert await svc.kill(sid, now=T0 + 1, asa_result_code=asa)
            assert await money(app, "41790000001") == (50_000_000, 0)
            assert svc.sessions.get(sid) is None
        assert not await svc.kill("nope", now=T0)

    stack(body)


class _ReserveFailsOnce:
    """A real store whose next reserve raises once armed (a Redis round trip timing out)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != "reserve":
            return attr

        def reserve(*a: Any, **kw: Any) -> Any:
            if self.armed:
                self.armed = False
                raise ConnectionError("store timed out")
            return attr(*a, **kw)

        return reserve


def test_a_failed_update_not_retried_still_charges_the_whole_call_once(
        stack: Runner) -> None:  # noqa: F811
    import pytest

    async def body(app: ChargingApp) -> None:
        svc = app.service
        store = _ReserveFailsOnce(app.store)
        svc.ledger.store = store
        assert (await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)).ok
        store.armed = True  # the UPDATE's commit lands, its next reserve fails (5012)
        with pytest.raises(ConnectionError):
            await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 60)
        # no retry: the client ends the call with 30 s more
        t = await svc.handle(voice(Verb.TERMINATE, 2, used=30), now=T0 + 90)
        assert t.ok and t.cost == 180_000  # 90 s at 0.12/min, each second once
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)

    stack(body)
