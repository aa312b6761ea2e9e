"""What the service remembers of a closed Rf call (for ``[store] session_retention`` after its
last record): which record numbers it saw -- a duplicate is dropped, a new one is a late
record -- and what prices a late record (the call's parties, deck, start, totals, account);
compact, as 1,000 calls/s keep 300,000 of them; kept across restarts (checkpoint or journal)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path

import pytest

from charging.requests import ChargingRequest, ServiceKind, ServiceUnits, Verb
from icx.charging_app import ChargingApp
from tests.charging.test_rf_recovery import INTERIM, START, STOP, Restarts, acr, send

WORLD = "12125551234"  # rest of world: 0.50 EUR/min, 60/60


@pytest.mark.parametrize("how", ["same_run", "clean", "crash_journal_only",
                                 "crash_after_checkpoint"])
def test_a_closed_call_tells_duplicates_from_late_records_and_prices_them(
        tmp_path: Path, how: str) -> None:
    """Records 0, 2 and 4 (STOP) of a 60/60 call, 70 s so far (billed 120 s: 1.00): closed.
    Then record 3 (+20 s: still 120 s billed, a late record of 0.00), 2 again and 4 again
    (duplicates), record 1 (+60 s: 150 s, billed 180 s: +0.50), record 1 and 3 again
    (duplicates) -- in one run, or with a restart (clean, crash with the journal alone, crash
    after a checkpoint taken while the call was closed) between the STOP and the rest."""
    rs = Restarts(tmp_path)
    t = time.time()
    sid = "late"

    def a(verb: Verb, n: int, at: float, used: int | None = None) -> ChargingRequest:
        return acr(verb, n, sid, at, used, dest=WORLD)

    async def rest(app: ChargingApp) -> None:
        await send(app, a(INTERIM, 3, t + 60, 20), a(INTERIM, 2, t + 40, 40),
                   a(STOP, 4, t + 70, 30), a(INTERIM, 1, t + 20, 60),
                   a(INTERIM, 1, t + 20, 60), a(INTERIM, 3, t + 60, 20), now=t + 100)

    async def first(app: ChargingApp) -> None:
        await send(app, a(START, 0, t), a(INTERIM, 2, t + 40, 40), a(STOP, 4, t + 70, 30),
                   now=t + 70)
        if how == "crash_after_checkpoint":
            await app.service.checkpoint_offline(tmp_path / "data" / "rf")
            await send(app, acr(START, 0, "other", t), now=t + 71)
        if how == "same_run":
            await rest(app)

    rs.run(first, crash=how.startswith("crash"))
    if how == "crash_journal_only":
        import shutil
        shutil.rmtree(tmp_path / "data" / "rf", ignore_errors=True)
    if how != "same_run":
        rs.run(rest)
    got = [(r["usage"], r["price"], r["result"], r["request"]) for r in rs.rated(sid)]
    assert got == [(70, "1.00", "ok", "4"), (20, "0.00", "late", "3"),
                   (60, "0.50", "late", "1")]
    accts = [r["request"] for r in rs.journal() if r["type"] == "acct" and r["session"] == sid]
    assert accts == ["0", "2", "4", "3", "1"]
    late = rs.rated(sid)[2]
    stop = rs.rated(sid)[0]
    for k in ("a", "b", "account", "deck", "start", "currency", "prefix", "destination",
              "deck_version", "service", "unit"):
        assert late[k] == stop[k], k


def test_a_closed_call_is_remembered_in_few_bytes(tmp_path: Path) -> None:
    """The closed calls' table costs (tracemalloc: what dropping it frees) under 600 bytes per
    call -- Session-Id key and table entry included -- for calls whose strings are all their
    own (as decoded off the wire). A Session object with its Grant and seen set cost ~1.3 KB:
    ~400 MB at 1,000 calls/s over the 300 s retention."""
    rs = Restarts(tmp_path)
    t = time.time()
    calls = 2000

    def req(i: int, verb: Verb, n: int, used: int | None = None) -> ChargingRequest:
        units = () if used is None else (ServiceUnits(used=used, used_present=True),)
        sub = f"4179{i:07d}"
        return ChargingRequest(
            verb=verb, session_id=f"pgw1.mnc001.mcc228.3gppnetwork.org;{1_700_000_000 + i};{i}",
            request_number=n, service=ServiceKind.VOICE, subscriber=sub,
            destination=f"4179{i * 7:07d}", origin="".join(sub), units=units,
            idem_key=f"rf:{i}:{n}", offline=True, at=t + 60 * n,
            peer_host="".join(["pgw1.mnc001.mcc228", ".3gppnetwork.org"]),
            peer_realm="".join(["mnc001.mcc228", ".3gppnetwork.org"]),
            context="".join(["32260", "@3gpp.org"]))

    async def body(app: ChargingApp) -> None:
        svc = app.service
        gc.collect()
        tracemalloc.start()
        try:
            for i in range(calls):
                await send(app, req(i, START, 0), req(i, INTERIM, 1, 60), req(i, STOP, 2, 30),
                           now=t)
            await app.journal.flush()
            assert len(svc._closed_offline) == calls
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            svc._closed_offline.clear()
            gc.collect()
            per_call = (before - tracemalloc.get_traced_memory()[0]) / calls
        finally:
            tracemalloc.stop()
        print(f"closed Rf call: {per_call:.0f} bytes")
        assert per_call < 600

    rs.run(body)


def test_a_version_1_checkpoint_still_restores_closed_calls(tmp_path: Path) -> None:
    """A checkpoint written before the compact records (version 1: closed calls as rows with
    ``seen`` and ``exp``) is still read: after the restart a duplicate of the closed call is
    dropped, a late record of it priced, and the call forgotten at its old forget-at."""
    import msgpack

    from charging import offline_state

    rs = Restarts(tmp_path)
    t = time.time()
    rf_dir = tmp_path / "data" / "rf"

    async def first(app: ChargingApp) -> None:
        await send(app, acr(START, 0, "v1", t), acr(INTERIM, 1, "v1", t + 60, 60),
                   acr(STOP, 3, "v1", t + 90, 30), now=t + 90)
        await app.service.checkpoint_offline(rf_dir)

    rs.run(first, crash=True)
    _, path = offline_state.list_checkpoints(rf_dir)[0]  # the newest: what recovery reads
    state = offline_state.read(path)
    assert state["v"] == 2
    state["v"] = 1
    state["closed"] = [offline_state.closed_row(sid, rec) for sid, rec in state["closed"]]
    assert state["closed"][0]["seen"] == [0, 1, 3]
    assert state["closed"][0]["exp"] == pytest.approx(t + 90 + 300)
    path.write_bytes(msgpack.packb(state, use_bin_type=True))

    async def after(app: ChargingApp) -> None:
        svc = app.service
        assert svc._closed_offline["v1"] == offline_state.pack_closed(
            offline_state.session_of(state["closed"][0], svc.config.currency))
        await send(app, acr(STOP, 3, "v1", t + 90, 30), acr(INTERIM, 1, "v1", t + 60, 60),
                   acr(INTERIM, 2, "v1", t + 80, 15), now=t + 100)
        svc._offline_forget(t + 100 + 300 - 1)
        assert "v1" in svc._closed_offline
        svc._offline_forget(t + 100 + 300)
        assert "v1" not in svc._closed_offline

    rs.run(after)
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("v1")] == [
        (90, "0.18", "ok"), (15, "0.03", "late")]
