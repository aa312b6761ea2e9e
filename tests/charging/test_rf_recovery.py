"""Rf accounting sessions across a restart, through the charging service as `icx serve`
builds it (rating engine + embedded store + journal + ledger; no Diameter: tests/e2e does the
wire). An ACR is journaled (an ``acct`` record) before it is answered, and a restart rebuilds
the open sessions -- their usage, record numbers and expiry -- from the Rf checkpoint and the
journal after it, or from the journal alone: the STOP after the restart is rated exactly as
without it, duplicates after it are still dropped, sessions still time out from their last
record, and a STOP whose rated record the crash cut off is completed by recovery."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from charging.requests import ChargingRequest, ServiceKind, ServiceUnits, Verb
from icx.charging_app import ChargingApp, build_charging
from tests.charging.test_service import demo_settings

SUB = "41790000003"
DEST = "41791234567"  # 0.12 EUR/min, 60/1
START, INTERIM, STOP, EVENT = Verb.INITIAL, Verb.UPDATE, Verb.TERMINATE, Verb.EVENT
NOT_COMPARED = ("id", "ts", "idem", "session")


def acr(verb: Verb, n: int, sid: str, at: float, used: int | None = None,
        service: ServiceKind = ServiceKind.VOICE, dest: str = DEST) -> ChargingRequest:
    units = () if used is None else (ServiceUnits(used=used, used_present=True),)
    return ChargingRequest(verb=verb, session_id=sid, request_number=n, service=service,
                           subscriber=SUB, destination=dest, origin=SUB, units=units,
                           idem_key=f"rf:{sid}:{n}", offline=True, at=at,
                           peer_host="ctf.icx.test", peer_realm="icx.test")


class Restarts:
    """Run async bodies one after the other against the same data dir, each on a freshly
    built (recovered) stack; ``crash=True`` closes without the Rf checkpoint of a clean stop
    (what a kill -9 leaves: the journal alone)."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = demo_settings(tmp_path)
        self.data = tmp_path / "data"

    def run(self, body: Callable[[ChargingApp], Awaitable[Any]], *, crash: bool = False) -> Any:
        async def main() -> Any:
            app = await build_charging(self.settings, self.data, admin=False)
            try:
                return await body(app)
            finally:
                if crash:
                    app.rf_dir = None
                await app.close()

        return asyncio.run(main())

    def journal(self) -> list[dict[str, Any]]:
        return [r for _, r in JournalReader(self.data / "journal").iter_from(None)]

    def rated(self, sid: str) -> list[dict[str, Any]]:
        return [r for r in self.journal() if r["type"] == "rated" and r.get("session") == sid]


async def send(app: ChargingApp, *reqs: ChargingRequest, now: float) -> None:
    for r in reqs:
        result = await app.service.handle(r, now=now)
        assert result.ok, result


def same_call(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two rated records of the same call (other Session-Ids): equal but for id/ts/idem."""
    assert {k: v for k, v in a.items() if k not in NOT_COMPARED} == {
        k: v for k, v in b.items() if k not in NOT_COMPARED}


@pytest.mark.parametrize("how", ["clean", "crash_journal_only", "crash_after_checkpoint",
                                 "store_snapshot"])
def test_the_stop_after_a_restart_is_rated_as_without_it(tmp_path: Path, how: str) -> None:
    """START + INTERIM 60 s + INTERIM 45 s, restart, STOP 30 s: one rated record of 135 s
    (0.27 EUR at 0.12/min, 60/1), field for field the record of the same call made without a
    restart. Restarted after a clean stop (Rf checkpoint at the end), after a crash with no
    checkpoint (the journal alone), after a crash with a checkpoint taken mid-call and an
    INTERIM after it, and after a store snapshot taken while the call was open."""
    rs = Restarts(tmp_path)
    t = time.time()
    first = [(START, 0, t, None), (INTERIM, 1, t + 60, 60), (INTERIM, 2, t + 105, 45)]

    async def before(app: ChargingApp) -> None:
        for sid in ("ref", "rs"):
            for verb, n, at, used in first:
                if how == "crash_after_checkpoint" and n == 2:
                    await app.service.checkpoint_offline(tmp_path / "data" / "rf")
                await send(app, acr(verb, n, sid, at, used), now=at)
        await send(app, acr(STOP, 3, "ref", t + 135, 30), now=t + 135)
        if how == "store_snapshot":
            assert await app.ledger.snapshot() is not None
            # Ro traffic after it, so recovery replays from the snapshot's position
            from tests.charging.test_service import voice
            await app.service.handle(voice(Verb.INITIAL, 0, sid="ro", requested=60), now=t)

    rs.run(before, crash=how != "clean")
    if how in ("crash_journal_only", "store_snapshot"):
        shutil.rmtree(tmp_path / "data" / "rf", ignore_errors=True)

    async def after(app: ChargingApp) -> None:
        session = app.service.offline.get("rs")
        assert session is not None and session.seen == {0, 1, 2}
        assert [g.used_total for g in session.grants] == [105]
        await send(app, acr(STOP, 3, "rs", t + 135, 30), now=t + 136)

    rs.run(after)
    (ref,) = rs.rated("ref")
    (rec,) = rs.rated("rs")
    assert (rec["usage"], rec["price"], rec["result"], rec["request"]) == (135, "0.27", "ok", "3")
    same_call(ref, rec)
    if how == "store_snapshot":
        assert list((tmp_path / "data" / "snapshots").glob("snapshot-*"))


def test_duplicates_after_a_restart_are_dropped(tmp_path: Path) -> None:
    """A retransmitted START/INTERIM after a restart (kill -9 or clean) adds nothing; the STOP
    and a late INTERIM again after another restart write nothing; an EVENT_RECORD again after
    a restart is not rated twice."""
    rs = Restarts(tmp_path)
    t = time.time()

    async def one(app: ChargingApp) -> None:
        await send(app, acr(START, 0, "d", t), acr(INTERIM, 1, "d", t + 60, 60), now=t + 60)
        await send(app, acr(EVENT, 0, "ev", t, 1, service=ServiceKind.SMS), now=t)

    async def two(app: ChargingApp) -> None:
        await send(app, acr(INTERIM, 1, "d", t + 60, 60), acr(START, 0, "d", t), now=t + 70)
        await send(app, acr(EVENT, 0, "ev", t, 1, service=ServiceKind.SMS), now=t + 70)
        await send(app, acr(STOP, 3, "d", t + 90, 30), now=t + 90)
        await send(app, acr(INTERIM, 2, "d", t + 80, 20), now=t + 91)  # late: 20 s more

    async def three(app: ChargingApp) -> None:
        await send(app, acr(STOP, 3, "d", t + 90, 30), acr(INTERIM, 2, "d", t + 80, 20),
                   acr(INTERIM, 1, "d", t + 60, 60), now=t + 100)
        await send(app, acr(EVENT, 0, "ev", t, 1, service=ServiceKind.SMS), now=t + 100)

    rs.run(one, crash=True)
    rs.run(two)
    rs.run(three, crash=True)
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("d")] == [
        (90, "0.18", "ok"), (20, "0.04", "late")]
    assert [(r["usage"], r["price"]) for r in rs.rated("ev")] == [(1, "0.05")]
    accts = [(r["session"], r["request"]) for r in rs.journal() if r["type"] == "acct"]
    assert sorted(accts) == [("d", "0"), ("d", "1"), ("d", "2"), ("d", "3"), ("ev", "0")]


def test_a_duplicate_is_remembered_for_the_retention_then_forgotten(tmp_path: Path) -> None:
    """Closed sessions (and EVENT keys) are remembered [store] session_retention (300 s)
    after their last record, across restarts; past it the same record counts again."""
    rs = Restarts(tmp_path)
    t = time.time() - 400  # closed 400 s ago: past the 300 s retention at the restart
    rs.run(lambda app: send(app, acr(START, 0, "old", t), acr(STOP, 1, "old", t + 60, 60),
                            now=t + 60), crash=True)

    async def later(app: ChargingApp) -> None:
        assert app.service.config.offline_retention == 300
        assert app.service._closed_offline.get("old") is None
        await send(app, acr(STOP, 1, "old", t + 60, 60), now=time.time())

    rs.run(later)
    assert [r["usage"] for r in rs.rated("old")] == [60, 60]


def test_an_open_session_times_out_from_its_last_record_across_a_restart(
        tmp_path: Path) -> None:
    """[rf] session_timeout (7200 s) counts from the session's last record, not from the
    restart: closed with the usage seen (tcc_expired) once it has passed."""
    rs = Restarts(tmp_path)
    t = time.time()
    rs.run(lambda app: send(app, acr(START, 0, "q", t), acr(INTERIM, 1, "q", t + 60, 60),
                            now=t + 60), crash=True)

    async def after(app: ChargingApp) -> None:
        svc = app.service
        timeout = svc.config.offline_timeout
        assert timeout == 7200 and svc.offline.get("q") is not None
        assert svc.offline.get("q").expires == pytest.approx(t + 60 + timeout)  # type: ignore[union-attr]
        assert await svc.supervise(t + 60 + timeout - 1) == []
        assert await svc.supervise(t + 60 + timeout + 1) == ["q"]

    rs.run(after)
    (rec,) = rs.rated("q")
    assert (rec["usage"], rec["price"], rec["result"]) == (60, "0.12", "tcc_expired")


def test_a_stop_whose_rated_record_the_crash_cut_off_is_completed(tmp_path: Path) -> None:
    """The crash cut the STOP's append after its acct record (its ACA was never sent): the
    restart writes the rated record it announced -- the same one -- and a retransmitted STOP
    is then a duplicate (one rated record, not zero, not two)."""
    rs = Restarts(tmp_path)
    t = time.time()
    rs.run(lambda app: send(app, acr(START, 0, "c", t), acr(INTERIM, 1, "c", t + 60, 60),
                            acr(STOP, 2, "c", t + 100, 40), now=t + 100), crash=True)
    (full,) = rs.rated("c")
    stop_acct = next(pos for pos, r in JournalReader(tmp_path / "data" / "journal").iter_from()
                     if r["type"] == "acct" and r["record"] == "stop")
    seg = next((tmp_path / "data" / "journal").glob(f"{stop_acct.segment:012d}.*"))
    with open(seg, "r+b") as fh:  # the torn tail: nothing after the STOP's acct record
        fh.truncate(stop_acct.offset)
    shutil.rmtree(tmp_path / "data" / "rf", ignore_errors=True)
    assert rs.rated("c") == []

    async def after(app: ChargingApp) -> None:
        assert app.service.offline.get("c") is None  # closed by its STOP
        await send(app, acr(STOP, 2, "c", t + 100, 40), now=t + 200)

    rs.run(after)
    (rec,) = rs.rated("c")
    assert (rec["usage"], rec["price"]) == (100, "0.20")
    assert {k: v for k, v in rec.items() if k not in ("id", "ts")} == {
        k: v for k, v in full.items() if k not in ("id", "ts")}


def test_the_acct_record_is_enqueued_by_the_decision_and_the_mark_covers_it(
        tmp_path: Path) -> None:
    """decide() of a START/INTERIM enqueues its acct record (not yet durable): the answer
    must wait for durable_mark(), which covers it."""
    rs = Restarts(tmp_path)
    t = time.time()

    async def body(app: ChargingApp) -> None:
        svc, journal = app.service, app.journal
        await journal.flush()
        for req in (acr(START, 0, "m", t), acr(INTERIM, 1, "m", t + 60, 60)):
            before = journal.position
            coro = svc.decide(req, now=t)
            try:
                coro.send(None)
            except StopIteration as stop:
                assert stop.value.ok
            else:
                raise AssertionError("decide() suspended on the embedded path")
            mark = svc.durable_mark()
            assert mark > before and journal.durable < mark
            await svc.wait_durable(mark)
        recs = [r for _, r in JournalReader(journal.directory).iter_from(None)
                if r.get("session") == "m"]
        assert [(r["type"], r["record"], r["used"]) for r in recs] == [
            ("acct", "start", {}), ("acct", "interim", {"voice": 60})]

    rs.run(body)


def test_a_checkpoint_written_while_its_sessions_change_holds_their_state_at_its_position(
        tmp_path: Path) -> None:
    """A checkpoint is written a row at a time while ACRs keep changing the sessions it
    lists (INTERIMs, a STOP, a late record, a new session): its rows are the sessions as they
    were at its position (copy-on-write), and a restart from it plus the journal after it
    (no checkpoint at exit: a crash) rates every call exactly."""
    from charging import offline_state

    rs = Restarts(tmp_path)
    t = time.time()
    rf_dir = tmp_path / "data" / "rf"

    async def body(app: ChargingApp) -> None:
        for i in range(6):
            await send(app, acr(START, 0, f"c{i}", t), acr(INTERIM, 1, f"c{i}", t + 60, 60),
                       now=t + 60)
        for i in (6, 7):
            await send(app, acr(START, 0, f"c{i}", t), acr(STOP, 2, f"c{i}", t + 60, 60),
                       now=t + 60)
        task = asyncio.ensure_future(app.service.checkpoint_offline(rf_dir, step=1,
                                                                     pause=0.01))
        await asyncio.sleep(0)  # it took its position and wrote its first rows
        await send(app, *(acr(INTERIM, 2, f"c{i}", t + 120, 60) for i in range(3)),
                   acr(STOP, 2, "c3", t + 90, 30), acr(INTERIM, 1, "c6", t + 30, 30),
                   acr(START, 0, "c8", t), now=t + 120)
        pos = await task
        state = offline_state.read(offline_state.path_for(rf_dir, pos))
        closed = [offline_state.closed_row(sid, rec) for sid, rec in state["closed"]]
        rows = {r["id"]: r for r in state["open"] + closed}
        assert [r["id"] for r in state["open"]] == [f"c{i}" for i in range(6)]
        assert [r["id"] for r in closed] == ["c6", "c7"]
        assert all(rows[f"c{i}"]["tot"] == [["voice", 60]] for i in range(6))
        assert rows["c6"]["seen"] == [0, 2] and rows["c6"]["tot"] == [["voice", 60]]
        # after the checkpoint, before the crash: more records the restart must replay
        await send(app, acr(INTERIM, 3, "c0", t + 150, 30), now=t + 150)

    rs.run(body, crash=True)

    async def after(app: ChargingApp) -> None:
        svc = app.service
        assert svc.offline.get("c3") is None and svc._closed_offline.get("c3") is not None
        for i in (0, 1, 2, 4, 5, 8):
            await send(app, acr(STOP, 9, f"c{i}", t + 200, 10), now=t + 200)

    rs.run(after)
    usage = {sid: [(r["usage"], r["result"]) for r in rs.rated(sid)]
             for sid in [f"c{i}" for i in range(9)]}
    assert usage == {"c0": [(160, "ok")], "c1": [(130, "ok")], "c2": [(130, "ok")],
                     "c3": [(90, "ok")], "c4": [(70, "ok")], "c5": [(70, "ok")],
                     "c6": [(60, "ok"), (30, "late")], "c7": [(60, "ok")], "c8": [(10, "ok")]}


def test_over_the_redis_store_too(tmp_path: Path, redis_url: str) -> None:
    """The Rf state does not live in the store (the Redis store has no snapshots): with Redis,
    where the account lookup of a STOP suspends and ACRs of a session arrive pipelined, the
    calls open at a crash are rebuilt from the journal and rated whole."""
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    settings, data = demo_settings(tmp_path), tmp_path / "data"
    t = time.time()
    sids = [f"x{i}" for i in range(4)]

    def run(body: Callable[[ChargingApp], Awaitable[Any]], crash: bool) -> None:
        async def main() -> None:
            app = await build_charging(settings, data, admin=False, store_url=redis_url)
            try:
                await body(app)
            finally:
                if crash:
                    app.rf_dir = None
                await app.close()

        asyncio.run(main())

    async def before(app: ChargingApp) -> None:
        svc = app.service
        got = await asyncio.gather(*(svc.handle(r, now=t + 60) for s in sids for r in (
            acr(START, 0, s, t), acr(INTERIM, 1, s, t + 60, 60), acr(INTERIM, 2, s, t + 90, 30))))
        assert all(g.ok for g in got)

    async def after(app: ChargingApp) -> None:
        svc = app.service
        got = await asyncio.gather(*(svc.handle(r, now=t + 100) for s in sids for r in (
            acr(INTERIM, 2, s, t + 90, 30), acr(STOP, 3, s, t + 100, 10))))
        assert all(g.ok for g in got) and not svc._busy

    run(before, crash=True)
    run(after, crash=False)
    rated = [rec for _, rec in JournalReader(data / "journal").iter_from(None)
             if rec["type"] == "rated"]
    assert sorted((rec["session"], rec["usage"], rec["price"]) for rec in rated) == [
        (s, 100, "0.20") for s in sids]


def test_an_event_rated_record_carries_its_accounting_record_number(tmp_path: Path) -> None:
    """An EVENT_RECORD's rated record carries its Accounting-Record-Number in ``request``, as
    a STOP's (its number) and a late record's (its own) do -- it carried "0" whatever the
    number -- and so does the one recovery writes when the crash cut it off."""
    rs = Restarts(tmp_path)
    t = time.time()
    rs.run(lambda app: send(app, acr(EVENT, 7, "ev7", t, 1, service=ServiceKind.SMS), now=t),
           crash=True)
    (full,) = rs.rated("ev7")
    assert (full["request"], full["usage"], full["price"]) == ("7", 1, "0.05")
    (acct,) = [r for r in rs.journal() if r["type"] == "acct"]
    assert (acct["request"], acct["rf"]["last"]) == ("7", 7)
    acct_end = next(pos for pos, r in JournalReader(tmp_path / "data" / "journal").iter_from()
                    if r["type"] == "acct")
    seg = next((tmp_path / "data" / "journal").glob(f"{acct_end.segment:012d}.*"))
    with open(seg, "r+b") as fh:  # the torn tail: the acct record, not its rated record
        fh.truncate(acct_end.offset)
    shutil.rmtree(tmp_path / "data" / "rf", ignore_errors=True)
    assert rs.rated("ev7") == []

    async def after(app: ChargingApp) -> None:
        await send(app, acr(EVENT, 7, "ev7", t, 1, service=ServiceKind.SMS), now=t + 10)

    rs.run(after)
    (rec,) = rs.rated("ev7")
    assert {k: v for k, v in rec.items() if k not in ("id", "ts")} == {
        k: v for k, v in full.items() if k not in ("id", "ts")}
