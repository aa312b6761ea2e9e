"""A Session-Id reused for a new session after the first one ended and was forgotten
(``[store] session_retention``): the new session is granted and charged as its own. RFC 6733
§8.8 wants Session-Ids unique for ever, but clients do reuse them (a counter that restarted,
a fixed id per subscriber); the duplicate key of a credit-control request is Session-Id +
CC-Request-Number (RFC 4006 §5.1, facts A9/B5), which a reused id repeats. Each session's op
keys carry its own tag (Session.tag), and a remembered answer is one for retransmissions
only within ``session_retention`` -- a retransmission within it is still answered from the
cache and charged once. The real stack (rating engine + embedded store + journal + ledger),
time driven by ``now``; both paths (compiled / pure)."""

from __future__ import annotations

import re

from charging.journal import JournalReader
from charging.requests import Outcome, Verb
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack, voice

__all__ = ["stack"]  # (the fixture, imported)

SUB = "41790000001"  # 50.00 EUR
START = 50_000_000
CALL = 180_000  # 90 s at 0.12 EUR/min, 60/1


async def call(app: ChargingApp, sid: str, at: float) -> list[object]:
    """One voice call I/U/T of 90 s on *sid* from *at*: its three answers."""
    svc = app.service
    return [await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=60), now=at),
            await svc.handle(voice(Verb.UPDATE, 1, sid=sid, used=60, requested=60),
                             now=at + 60),
            await svc.handle(voice(Verb.TERMINATE, 2, sid=sid, used=30), now=at + 90)]


async def keys_of(app: ChargingApp, sid: str) -> list[str]:
    await app.journal.flush()
    return [str(rec["idem"]) for _, rec in JournalReader(app.journal.directory).iter_from(None)
            if rec.get("session") == sid]


def test_a_session_id_reused_past_the_retention_is_charged_as_a_new_session(
        stack: Runner) -> None:
    """The second call on the same Session-Id, 1,000 s after the first ended (its answers
    still in the 20,000-entry answer cache): every request was answered with the first
    call's answer and nothing was charged (49.82 EUR left after two calls of 0.18)."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        first = await call(app, "reused", T0)
        assert [r.outcome for r in first] == [Outcome.SUCCESS] * 3  # type: ignore[attr-defined]
        assert await money(app, SUB) == (START - CALL, 0)
        second = await call(app, "reused", T0 + 90 + 1000)
        assert [r.outcome for r in second] == [Outcome.SUCCESS] * 3  # type: ignore[attr-defined]
        assert all(a is not b for a, b in zip(first, second, strict=True))
        assert second[2].cost == CALL  # type: ignore[attr-defined]
        assert await money(app, SUB) == (START - 2 * CALL, 0)
        assert svc.counters.get("retransmit", 0) == 0
        # every op key of a session carries its own tag: two sessions, two tags
        keys = await keys_of(app, "reused")
        tags = [re.fullmatch(r"ro:reused:(?:\d+|end):\d+(?::(?:rel:)?-?\d+)?(~[0-9a-f]+)(?::\w+)?",
                             k) for k in keys]
        assert all(tags), keys
        assert len({m[1] for m in tags if m}) == 2, keys

    stack(body)


def test_a_session_id_reused_while_the_store_remembers_its_keys_is_charged(
        stack: Runner) -> None:
    """Reused just past the ended sessions' window (300 s), its answers gone from the cache:
    the embedded store still remembers the first call's op keys (1-2 x session_retention),
    so the new call's reserve and commits were replayed from the first call's records --
    granted, nothing held, nothing debited."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        await call(app, "again", T0)
        assert await money(app, SUB) == (START - CALL, 0)
        svc._answers.clear()  # (an answer cache of another size: the store answers)
        svc._answer_order.clear()
        svc._answer_until.clear()
        r = await svc.handle(voice(Verb.INITIAL, 0, sid="again", requested=60), now=T0 + 391)
        assert r.ok and await money(app, SUB) == (START - CALL, 120_000)  # a new hold
        second = [r,
                  await svc.handle(voice(Verb.UPDATE, 1, sid="again", used=60, requested=60),
                                   now=T0 + 451),
                  await svc.handle(voice(Verb.TERMINATE, 2, sid="again", used=30),
                                   now=T0 + 481)]
        assert [a.ok for a in second] == [True] * 3 and second[2].cost == CALL
        assert await money(app, SUB) == (START - 2 * CALL, 0)

    stack(body)


def test_a_retransmission_within_the_retention_is_answered_again_and_not_charged(
        stack: Runner) -> None:
    """The other side of the window: a request resent within ``session_retention`` of its
    answer -- during its session or after it ended -- gets the same answer from the cache
    and moves no money; past the window its answer is forgotten (supervise)."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        sid = "resent"
        i = voice(Verb.INITIAL, 0, sid=sid, requested=60)
        u = voice(Verb.UPDATE, 1, sid=sid, used=60, requested=60)
        t = voice(Verb.TERMINATE, 2, sid=sid, used=30)
        ri = await svc.handle(i, now=T0)
        ru = await svc.handle(u, now=T0 + 60)
        assert await svc.handle(i, now=T0 + 61) is ri  # (in the cache, session open)
        rt = await svc.handle(t, now=T0 + 90)
        assert await money(app, SUB) == (START - CALL, 0)
        for at in (T0 + 91, T0 + 200, T0 + 359):  # within 300 s of each answer
            assert [await svc.handle(q, now=at) for q in (i, u, t)] == [ri, ru, rt]
            assert await money(app, SUB) == (START - CALL, 0)
        # the CCR-I's answer was kept from T0 + 60 (when the CCR-U's replaced it), the
        # others' from the end (T0 + 90): at T0 + 389 only theirs are left; the CCR-I is
        # refused by the ended session's record (5002), as once its answer left the cache
        assert [await svc.handle(q, now=T0 + 389) for q in (u, t)] == [ru, rt]
        assert (await svc.handle(i, now=T0 + 389)).outcome is Outcome.UNKNOWN_SESSION
        assert svc.counters["retransmit"] == 12
        assert await money(app, SUB) == (START - CALL, 0)
        await svc.supervise(T0 + 90 + 300)
        assert not any(k.startswith("ro:resent:") for k in svc._answers)
        assert len(svc._answers) == len(svc._answer_order) == len(svc._answer_until)

    stack(body)
