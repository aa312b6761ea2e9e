"""Review findings (hot path): a request whose decision failed half-way (the store or the
journal raised after an earlier op of the same request went through, answered 5012) must be
charged exactly once when the client retries it -- with the same CC-Request-Number, as RFC
4006 §5.1.2 / facts B5 ask. Real stack (engine + MemoryStore + journal); the store wrapper
raises once on a reserve, like a Redis round trip that times out after the commit landed.
"""

from __future__ import annotations

from typing import Any

import pytest

from charging.requests import Verb
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack, voice  # noqa: F401


class _FailOnce:
    """A real store whose next ``reserve`` raises (a transient store error) once armed."""

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


def test_an_update_retried_after_a_failure_between_commit_and_reserve_charges_once(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        store = _FailOnce(app.store)
        svc.ledger.store = store
        r = await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)
        assert r.ok and r.units[0].granted == 60
        # The UPDATE's commit (60 s = 0.12) goes through, then the next reserve fails: 5012.
        store.armed = True
        with pytest.raises(ConnectionError):
            await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 60)
        # The client retries the same request (same Session-Id + CC-Request-Number).
        u = await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 61)
        assert u.ok and u.units[0].used_cost == 120_000 and u.units[0].granted == 60
        t = await svc.handle(voice(Verb.TERMINATE, 2, used=30), now=T0 + 90)
        assert t.ok and t.cost == 180_000  # 90 s at 0.12/min, not 150 s
        await svc.wait_durable(svc.durable_mark())
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)

    stack(body)


def test_the_last_update_retransmitted_after_the_terminate_gets_its_own_answer(
        stack: Runner) -> None:  # noqa: F811
    async def body(app: ChargingApp) -> None:
        svc = app.service
        assert (await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)).ok
        u = await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 60)
        assert u.ok
        # pipelined client: the CCR-T ends the session, then the UPDATE's answer is found lost
        t = await svc.handle(voice(Verb.TERMINATE, 2, used=30), now=T0 + 90)
        assert t.ok
        again = await svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + 91)
        assert again is u  # facts B5: (Session-Id, CC-Request-Number) gets the same answer
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)

    stack(body)


def test_supervise_leaves_a_session_whose_request_is_in_progress(
        stack: Runner) -> None:  # noqa: F811
    import asyncio

    from tests.charging.test_service_decide import _Yielding

    async def body(app: ChargingApp) -> None:
        svc = app.service
        svc.ledger.store = _Yielding(app.store)
        tcc = svc.config.tcc
        assert (await svc.handle(voice(Verb.INITIAL, 0, requested=60), now=T0)).ok
        # the client's CCR-U arrives right at the Tcc edge and waits on the (suspending) store
        update = asyncio.ensure_future(
            svc.handle(voice(Verb.UPDATE, 1, used=60, requested=60), now=T0 + tcc))
        await asyncio.sleep(0)
        assert "s1" in svc._busy
        assert await svc.supervise(T0 + tcc) == []  # not closed under the request's feet
        u = await update
        assert u.ok and u.units[0].granted == 60
        t = await svc.handle(voice(Verb.TERMINATE, 2, used=30), now=T0 + tcc + 30)
        assert t.ok and t.cost == 180_000  # the granted quota's usage is billed
        assert await money(app, "41790000001") == (50_000_000 - 180_000, 0)

    stack(body)


def test_an_acr_stop_retried_after_a_failure_before_its_record_is_written_is_recorded(
        stack: Runner) -> None:  # noqa: F811
    from charging.journal import JournalReader
    from charging.requests import ChargingRequest, ServiceKind

    class _ResolveFailsOnce:
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.armed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        async def resolve(self, subscriber: str) -> Any:
            if self.armed:
                self.armed = False
                raise ConnectionError("store timed out")
            return await self._inner.resolve(subscriber)

    def acr(verb: Verb, n: int, at: float) -> ChargingRequest:
        return ChargingRequest(verb=verb, session_id="rf1", request_number=n,
                               service=ServiceKind.VOICE, subscriber="41790000003",
                               destination="447700900123", idem_key=f"rf:rf1:{n}",
                               offline=True, at=at)

    async def body(app: ChargingApp) -> None:
        svc = app.service
        accounts = _ResolveFailsOnce(svc.accounts)
        svc.accounts = accounts
        assert (await svc.handle(acr(Verb.INITIAL, 0, T0), now=T0)).ok
        accounts.armed = True  # the STOP fails before its rated record is enqueued (4002)
        with pytest.raises(ConnectionError):
            await svc.handle(acr(Verb.TERMINATE, 1, T0 + 95), now=T0 + 95)
        # the CTF retries the same ACR: it must be recorded now, not dropped as a duplicate
        assert (await svc.handle(acr(Verb.TERMINATE, 1, T0 + 95), now=T0 + 96)).ok
        await app.journal.flush()
        recs = [r for _, r in JournalReader(app.journal._writer.directory).iter_from(None)
                if r.get("session") == "rf1" and r["type"] == "rated"]
        assert len(recs) == 1 and recs[0]["usage"] == 95

    stack(body)
