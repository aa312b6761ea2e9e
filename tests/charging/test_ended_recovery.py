"""The ended online sessions' record across a restart (charging/ended_recovery.py): a session
that ended (CCR-T, Tcc, operator kill, failed UPDATE) just before the server stopped is still
an ended session after it starts again, for the rest of ``[store] session_retention``: its
CCR-I retransmitted then is refused 5002 (OnlineCharging._refused_initial; RFC 6733 §7.1.5,
facts A6/B5) and charges nothing. Restart = a new ChargingService (build_charging) over the
same data dir; both paths (compiled / pure)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from charging.ended_recovery import recover_ended
from charging.requests import Outcome, Verb
from charging.sessions import EndedSessions
from icx.charging_app import ChargingApp, build_charging
from tests.charging.test_service import T0, demo_settings, money, voice
from tests.charging.test_service_session_ids import _end_by

SUB = "41790000001"


def run_at(settings: object, data: Path, monkeypatch: pytest.MonkeyPatch, at: float,
           body: Callable[[ChargingApp], object]) -> None:
    """Start the stack with the wall clock at *at* (its recovery reads time.time()), run
    *body*, stop it."""
    async def main() -> None:
        with monkeypatch.context() as m:
            m.setattr(time, "time", lambda: at)
            app = await build_charging(settings, data, admin=False)  # type: ignore[arg-type]
        try:
            await body(app)  # type: ignore[misc]
        finally:
            await app.close()

    asyncio.run(main())


@pytest.mark.parametrize("how", ["terminate", "tcc", "kill", "failed_update"])
def test_a_late_initial_after_a_restart_is_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Without the journal's record of the end, the restarted server had forgotten the
    session: the retransmitted CCR-I opened it again (its reserve replayed by key, or a new
    hold), a session around money already settled."""
    settings, data = demo_settings(tmp_path), tmp_path / "data"
    sid = f"restart-{how}"
    sub = "41790000100" if how == "failed_update" else SUB
    first = voice(Verb.INITIAL, 0, sid=sid, sub=sub, requested=60)
    ended = T0 + 30 + (1200 if how == "tcc" else 0)  # (Tcc: [ro] tcc_seconds 1200)
    seen: dict[str, object] = {}

    async def session(app: ChargingApp) -> None:
        assert app.service.config.tcc == 1200
        assert (await app.service.handle(first, now=T0)).ok
        await _end_by(how)(app, sid, T0 + 30)
        seen["after"] = await money(app, sub)
        assert seen["after"][1] == 0  # type: ignore[index]

    async def late(app: ChargingApp) -> None:
        svc = app.service
        for at in (ended + 60, ended + 299):
            r = await svc.handle(first, now=at)
            assert (r.outcome, len(svc.sessions), await money(app, sub)) == (
                Outcome.UNKNOWN_SESSION, 0, seen["after"])
        # past the window the id opens a session again (a new call reusing it), charged as
        # its own (after the failed UPDATE used the balance up: nothing left to grant)
        r = await svc.handle(first, now=ended + 301)
        if how == "failed_update":
            assert (r.outcome, len(svc.sessions)) == (Outcome.CREDIT_LIMIT_REACHED, 0)
        else:
            assert r.ok and len(svc.sessions) == 1

    run_at(settings, data, monkeypatch, T0, session)
    run_at(settings, data, monkeypatch, ended + 50, late)


def test_only_the_ends_within_the_retention_are_rebuilt(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """recover_ended keeps each end until end + retention, as if the server never stopped:
    an end older than the retention at the restart is not rebuilt; the rest expire on time."""
    settings, data = demo_settings(tmp_path), tmp_path / "data"

    async def sessions(app: ChargingApp) -> None:
        svc = app.service
        for i, at in enumerate((T0, T0 + 200)):
            sid = f"s{i}"
            assert (await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=60),
                                     now=at)).ok
            assert (await svc.handle(voice(Verb.TERMINATE, 1, sid=sid, used=10),
                                     now=at + 10)).ok

    run_at(settings, data, monkeypatch, T0, sessions)
    ended = EndedSessions()
    got = recover_ended(ended, data / "journal", now=T0 + 350, retention=300.0)
    assert got.ended == 1 and len(ended) == 1
    assert not ended.ended("s0", T0 + 350)  # ended at T0 + 10: 340 s before
    assert ended.ended("s1", T0 + 350) and ended.ended("s1", T0 + 509)
    assert not ended.ended("s1", T0 + 511)
    assert recover_ended(EndedSessions(), data / "journal", now=T0 + 350,
                         retention=0.0).ended == 0


def test_a_retransmitted_initial_of_a_session_open_at_the_stop_replays_its_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CCR-I answered, its answer lost, the server restarted, the CCR-I sent again: the
    restarted server had no session and drew a new tag, so the reserve was a new op and put a
    second hold on the same reservation (2 x 0.24 held until the commit). Now the open
    session's tag comes back from the journal: the reserve replays -- one hold, the same
    grant -- and the call is charged once, like a call with no restart."""
    settings, data = demo_settings(tmp_path), tmp_path / "data"
    sid, ref = "open-at-stop", "41790000002"
    seen: dict[str, object] = {}

    async def before(app: ChargingApp) -> None:
        svc = app.service
        r = await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=120), now=T0)
        assert r.ok and r.units[0].granted == 120
        seen["held"] = await money(app, SUB)
        assert seen["held"] == (50_000_000, 240_000)  # 2 min at 0.12
        # the same call on another account, no restart: what it must cost
        assert (await svc.handle(voice(Verb.INITIAL, 0, sid="ref", sub=ref, requested=120),
                                 now=T0)).ok
        assert (await svc.handle(voice(Verb.TERMINATE, 1, sid="ref", sub=ref, used=75),
                                 now=T0 + 75)).ok
        seen["ref"] = await money(app, ref)

    async def after(app: ChargingApp) -> None:
        svc = app.service
        r = await svc.handle(voice(Verb.INITIAL, 0, sid=sid, requested=120), now=T0 + 20)
        assert r.ok and r.units[0].granted == 120
        assert await money(app, SUB) == seen["held"]  # one hold, not two
        assert (await svc.handle(voice(Verb.TERMINATE, 1, sid=sid, used=75),
                                 now=T0 + 75)).ok
        assert await money(app, SUB) == seen["ref"]

    run_at(settings, data, monkeypatch, T0, before)
    run_at(settings, data, monkeypatch, T0 + 15, after)


def test_only_sessions_open_at_the_stop_hand_back_their_tags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recover_ended's open_tags: a session with a reserve and no end (until its hold
    expires), not one that ended, nor one whose id was reused by a session that ended; an
    open session whose hold expired before the restart gives nothing."""
    settings, data = demo_settings(tmp_path), tmp_path / "data"

    async def sessions(app: ChargingApp) -> None:
        svc = app.service
        assert (await svc.handle(voice(Verb.INITIAL, 0, sid="open", requested=60), now=T0)).ok
        assert (await svc.handle(voice(Verb.INITIAL, 0, sid="done", requested=60),
                                 now=T0)).ok
        assert (await svc.handle(voice(Verb.TERMINATE, 1, sid="done", used=10),
                                 now=T0 + 10)).ok
        opened = svc.sessions.get("open")
        assert opened is not None
        seen["tag"] = opened.tag

    seen: dict[str, object] = {}
    run_at(settings, data, monkeypatch, T0, sessions)
    tags: dict[str, tuple[str, float]] = {}
    got = recover_ended(EndedSessions(), data / "journal", now=T0 + 30, retention=300.0,
                        open_tags=tags)
    assert got.open_tags == 1 and list(tags) == ["open"]
    tag, until = tags["open"]
    assert tag == seen["tag"] and tag.startswith("~")
    assert until == pytest.approx(T0 + 300)  # retention 300 < the hold's Tcc + 60
    late: dict[str, tuple[str, float]] = {}
    assert recover_ended(EndedSessions(), data / "journal", now=until + 1, retention=300.0,
                         open_tags=late).open_tags == 0 and not late
    # a hold shorter than the retention (Tcc + 60 s < session_retention): its end bounds it
    short: dict[str, tuple[str, float]] = {}
    recover_ended(EndedSessions(), data / "journal", now=T0 + 30, retention=300.0,
                  open_tags=short, hold_ttl=100.0)
    assert short["open"][1] == pytest.approx(T0 + 100)
