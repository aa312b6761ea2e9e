"""Online sessions and their Session-Id over its whole life (RFC 4006 §7 server state machine,
facts B5; duplicates, facts A9): a Session-Id seen again -- reused by the client, or a late
request of a session that already ended -- must never leave a hold the session table does not
know, nor open a session around a hold already given back. The real stack (rating engine +
embedded store + journal + ledger), time driven by ``now``; both paths (compiled / pure)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from charging.journal import JournalReader
from charging.requests import ChargingRequest, Outcome, ServiceKind, ServiceUnits, Verb
from charging.sessions import ENDED_KEY_MASK, EndedSessions
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack, voice

__all__ = ["stack"]  # (the fixture, imported)

SUB = "41790000001"


def ccr(sid: str, verb: Verb, n: int, *units: ServiceUnits) -> ChargingRequest:
    """A CCR with Multiple-Services-Indicator 1 and the MSCCs *units* (none: MSI alone)."""
    return ChargingRequest(verb=verb, session_id=sid, request_number=n,
                           service=ServiceKind.VOICE, subscriber=SUB,
                           destination="41791234567", units=units, multiple_services=True,
                           idem_key=f"ro:{sid}:{n}", peer_host="pgw.test")


def rg(group: int, requested: int | None = None) -> ServiceUnits:
    return ServiceUnits(rating_group=group, requested=requested)


async def forget_answers(app: ChargingApp, now: float) -> None:
    """Push every remembered answer out of the bounded answer cache (one entry left: the
    answer to a request of a session nobody opened)."""
    svc = app.service
    svc.config = dataclasses.replace(svc.config, answer_cache_size=1)
    r = await svc.handle(voice(Verb.UPDATE, 1, sid="nobody", used=1), now=now)
    assert r.outcome is Outcome.UNKNOWN_SESSION


async def releases(app: ChargingApp, sid: str) -> list[tuple[str, str]]:
    await app.journal.flush()
    reader = JournalReader(app.journal._writer.directory)
    return [(rec["reason"], rec["holds"][0]["amount"]) for _, rec in reader.iter_from(None)
            if rec["op"] == "release" and rec.get("session") == sid]


def test_the_release_of_a_reused_session_ids_hold_is_not_the_first_sessions(
        stack: Runner) -> None:
    """A hold released by the server (Tcc, operator kill) was keyed by Session-Id, rating
    group and the number of the request that placed it. A client reusing a Session-Id whose
    new session asks for the same rating group with a request of the same number -- at
    another MSCC position, so the reserve is a new op and places a new hold -- had that hold's
    release answered from the store's record of the first session's: nothing released, the
    hold kept (no session knows it) until its TTL. The release is keyed by the reserve op
    that placed the hold."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        sid = "reused"
        # session 1: MSI alone, then RG 1 asked at MSCC position 1 (RG 2 asks nothing)
        assert (await svc.handle(ccr(sid, Verb.INITIAL, 0), now=T0)).ok
        r = await svc.handle(ccr(sid, Verb.UPDATE, 1, rg(2), rg(1, 60)), now=T0 + 1)
        assert r.ok and await money(app, SUB) == (50_000_000, 120_000)  # 60 s at 0.12/min
        assert await svc.kill(sid, now=T0 + 2)  # no ASA 2001: released at once
        assert await money(app, SUB) == (50_000_000, 0)
        # the client reuses the id well after (past the ended sessions' window, its answers
        # gone from the cache): RG 1 asked at position 0 by request 1 again
        await forget_answers(app, T0 + 400)
        assert (await svc.handle(ccr(sid, Verb.INITIAL, 0), now=T0 + 401)).ok
        r = await svc.handle(ccr(sid, Verb.UPDATE, 1, rg(1, 60)), now=T0 + 402)
        assert r.ok and await money(app, SUB) == (50_000_000, 120_000)
        assert await svc.kill(sid, now=T0 + 403)
        assert (len(svc.sessions), await money(app, SUB)) == (0, (50_000_000, 0))
        assert await releases(app, sid) == [("killed", "-0.12"), ("killed", "-0.12")]

    stack(body)


def test_a_second_initial_of_an_open_session_is_refused_and_changes_nothing(
        stack: Runner) -> None:
    """A CCR-I for a Session-Id whose session is open was taken as an UPDATE of it: its usage
    committed, its grant replaced (the hold released, another placed), the session's Tcc
    restarted. RFC 4006 §7 has no INITIAL event in the Open state, and an INITIAL is the
    session's request 0 (§8.2, facts B5): one numbered otherwise is answered 5004
    INVALID_AVP_VALUE with Failed-AVP CC-Request-Number. A number-0 INITIAL whose answer has
    left the cache is a late duplicate of the one that opened the session (facts A9: it must
    change nothing): 5012. Either way nothing is charged, the session and its holds stay as
    they were, and its next request is answered as if the INITIAL never came."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        sid = "twice"
        first = await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=60), now=T0)
        assert first.ok and await money(app, SUB) == (50_000_000, 120_000)
        session = svc.sessions.get(sid)
        assert session is not None
        expires = session.expires
        r = await svc.handle(voice(Verb.INITIAL, 1, sid=sid, requested=120, used=30),
                             now=T0 + 30)
        assert (r.outcome, r.failed_field) == (Outcome.INVALID_VALUE, "CC-Request-Number")
        assert await money(app, SUB) == (50_000_000, 120_000)
        g = session.grants[0]
        assert (svc.sessions.get(sid) is session, session.expires, session.last_number,
                session.answer, g.held, g.held_n, g.used_total) == (
                    True, expires, 0, first, 120_000, 0, 0)
        # the session goes on: its UPDATE 1 is answered, not the refusal again
        r = await svc.handle(voice(Verb.UPDATE, 1, sid=sid, used=60, requested=60),
                             now=T0 + 60)
        assert r.ok and await money(app, SUB) == (50_000_000 - 120_000, 120_000)
        # the INITIAL 0 again, its answer gone from the cache: a late duplicate
        await forget_answers(app, T0 + 61)
        r = await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=60), now=T0 + 62)
        assert r.outcome is Outcome.UNABLE_TO_COMPLY
        assert (await money(app, SUB), g.held, g.held_n) == (
            (50_000_000 - 120_000, 120_000), 120_000, 1)
        r = await svc.handle(voice(Verb.TERMINATE, 2, sid=sid, used=30), now=T0 + 90)
        assert r.ok and r.cost == 180_000  # 90 s at 0.12/min, 60/1
        assert (len(svc.sessions), await money(app, SUB)) == (0, (50_000_000 - 180_000, 0))
        assert await releases(app, sid) == []  # no hold was ever replaced

    stack(body)


def _end_by(how: str) -> Any:
    """How the test's session ends: its CCR-T, Tcc, an operator kill, a failed UPDATE."""

    async def end(app: ChargingApp, sid: str, at: float) -> None:
        svc = app.service
        if how == "terminate":
            assert (await svc.handle(voice(Verb.TERMINATE, 1, sid=sid, used=30), now=at)).ok
        elif how == "tcc":
            assert await svc.supervise(at + svc.config.tcc) == [sid]
        elif how == "kill":
            assert await svc.kill(sid, now=at)
        else:  # an UPDATE that uses the balance up (0.30: 150 s), no new grant: 4012, ended
            r = await svc.handle(voice(Verb.UPDATE, 1, sid=sid, sub="41790000100", used=150,
                                       requested=60), now=at)
            assert r.outcome is Outcome.CREDIT_LIMIT_REACHED

    return end


@pytest.mark.parametrize("how", ["terminate", "tcc", "kill", "failed_update"])
def test_a_late_initial_of_an_ended_session_is_answered_5002(stack: Runner, how: str) -> None:
    """A CCR-I retransmitted after its session ended and after its answer left the bounded
    answer cache opened the session again: its reserve replayed by key (the store's record of
    the hold given back), so the session table claimed a hold the balance no longer had, until
    the session closed. Ended sessions are remembered [store] session_retention (300 s): a CCR-I
    for one of them within that is a request of a session that no longer exists, 5002
    DIAMETER_UNKNOWN_SESSION_ID (facts A6, as a CCR-U/T after the session was cleared), and
    changes nothing. Past that window the Session-Id opens a session again."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        sid = f"late-{how}"
        sub = "41790000100" if how == "failed_update" else SUB  # (holds 0.30)
        first = voice(Verb.INITIAL, 0, sid=sid, sub=sub, requested=60)
        assert (await svc.handle(first, now=T0)).ok
        await _end_by(how)(app, sid, T0 + 30)
        ended = T0 + 30 + (svc.config.tcc if how == "tcc" else 0)
        after = await money(app, sub)
        assert (len(svc.sessions), after[1]) == (0, 0)
        await forget_answers(app, ended + 1)
        for at in (ended + 2, ended + 299):
            r = await svc.handle(first, now=at)
            assert (r.outcome, len(svc.sessions), svc.sessions.reserved_total(),
                    await money(app, sub)) == (Outcome.UNKNOWN_SESSION, 0, 0, after)
        # past the window: the id opens a session again (a new call reusing it), charged
        # as its own -- the failed UPDATE used the balance up: nothing left to grant (its
        # reserve is a new op, not the first session's replayed)
        r = await svc.handle(voice(Verb.INITIAL, 0, sid=sid, sub=sub, requested=60),
                             now=ended + 302)
        if how == "failed_update":
            assert (r.outcome, len(svc.sessions)) == (Outcome.CREDIT_LIMIT_REACHED, 0)
            return
        assert r.ok and len(svc.sessions) == 1
        assert (await svc.handle(voice(Verb.TERMINATE, 1, sid=sid, sub=sub, used=0),
                                 now=ended + 303)).ok

    stack(body)


def test_ended_sessions_are_kept_their_window_in_end_order_and_bounded() -> None:
    """sessions.EndedSessions: an id is remembered until the whole second at or after the
    time given (the entries of one second share one float), in end order (an id ending again
    moves to the end) so forget() stops at the first one still kept, and never more than
    ``limit`` ids (past it the oldest go, an eighth of the limit at a time)."""
    e = EndedSessions(limit=16)
    e.add("a", T0 + 300.2)
    e.add("b", T0 + 300.9)
    e.add("c", T0 + 301.5)
    assert [e.ended(s, T0 + 300.5) for s in "abcd"] == [True, True, True, False]
    assert e.until[hash("a") & ENDED_KEY_MASK] is e.until[hash("b") & ENDED_KEY_MASK]
    assert not e.ended("a", T0 + 301) and e.ended("c", T0 + 301)
    e.add("a", T0 + 302)  # ended again: kept anew, now the youngest
    assert e.forget(T0 + 301) == 1 and len(e) == 2  # b went; a is behind c now
    assert e.forget(T0 + 302) == 2 and len(e) == 0
    for i in range(17):
        e.add(f"s{i}", T0 + i)
    assert len(e) == 14 and not e.ended("s2", T0) and e.ended("s3", T0)  # 3 oldest dropped


def test_the_fast_path_keys_ended_sessions_as_the_python_path() -> None:
    """The compiled twin adds to the same dict by the same key (hash(sid) & mask)."""
    import cython_ext
    slice_ = cython_ext.load("charging_slice")
    if slice_ is None:
        pytest.skip("cython_ext.charging_slice not built (or disabled)")
    for sid in ("", "a", "pgw.example.com;1876543210;523", "é;ü", "x" * 300):
        assert slice_.ended_key(sid) == hash(sid) & ENDED_KEY_MASK
