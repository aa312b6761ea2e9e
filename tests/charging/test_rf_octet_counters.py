"""Rf data volume from the ACR's top-level octet counters, through the charging service as
`icx serve` builds it (rating engine + embedded store + journal + ledger; the wire is in
tests/e2e/test_rf_octets.py).

Accounting-Input-Octets / Accounting-Output-Octets (RFC 7155 §4.6.1/4.6.2) count what the
session carried "in the course of this session": running totals, whatever ``[rf]
usage_reports`` says of Used-Service-Units. A record reporting no octets in Used-Service-Unit
for the session's own (octet-metered) service reports through them the call's volume so
far: the call is at least their sum (input + output), so each record adds what it exceeds
the volume counted before and the call is billed its highest total. A record reporting
both: its USU counts, its counters add nothing (counting both would count the same octets
twice). A lower total from a newer record is logged and adds nothing; duplicates, late
records, timeouts and restarts behave as with USU.

Demo deck: data 0.01 EUR/MB (1 MB = 1,000,000 octets) billed per KB (1000/1000)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from charging.requests import ChargingRequest, ServiceKind, Verb
from icx.charging_app import ChargingApp
from tests.charging.test_rf_recovery import EVENT, INTERIM, START, STOP, acr, same_call, send
from tests.charging.test_rf_usage_reports import MODES, reports, restarts

MB = 1_000_000
DATA = ServiceKind.DATA


def dacr(verb: Verb, n: int, sid: str, at: float, octets: tuple[int, int] | None = None,
         used: int | None = None, service: ServiceKind = DATA) -> ChargingRequest:
    """A data ACR carrying *octets* = (Accounting-Input-Octets, Accounting-Output-Octets)
    and/or *used* octets in a command-level Used-Service-Unit."""
    return dataclasses.replace(acr(verb, n, sid, at, used, service=service),
                               session_octets=octets)


def accts(rs: Any, sid: str) -> list[dict[str, Any]]:
    return [r for r in rs.journal() if r["type"] == "acct" and r["session"] == sid]


def totals(rs: Any, sid: str) -> list[int]:
    """The session's data volume after each of its acct records (``rf.tot``)."""
    return [dict(r["rf"]["tot"]).get("data", 0) for r in accts(rs, sid)]


@pytest.mark.parametrize("mode", MODES)
def test_a_call_reported_by_its_counters_alone_is_billed_its_final_total(
        tmp_path: Path, mode: str) -> None:
    """START, then running totals in + out = 1 + 2, 2 + 3.5, 3 + 5.5 MB (INTERIM, INTERIM,
    STOP): each record adds what it exceeds the one before (3, 2.5, 3 MB) and the call is
    ONE rated record of 8.5 MB (0.085 EUR) -- in either mode, field for field the same call
    reported in Used-Service-Units. The acct records carry the counters as received."""
    rs = restarts(tmp_path, mode)
    t = time.time()
    counters = [(1 * MB, 2 * MB), (2 * MB, 3_500_000), (3 * MB, 5_500_000)]
    u1, u2, u3 = reports(mode, [3 * MB, 2_500_000, 3 * MB])

    async def body(app: ChargingApp) -> None:
        await send(app, dacr(START, 0, "c", t), dacr(INTERIM, 1, "c", t + 60, counters[0]),
                   dacr(INTERIM, 2, "c", t + 120, counters[1]),
                   dacr(STOP, 3, "c", t + 150, counters[2]), now=t + 150)
        await send(app, dacr(START, 0, "ref", t), dacr(INTERIM, 1, "ref", t + 60, used=u1),
                   dacr(INTERIM, 2, "ref", t + 120, used=u2),
                   dacr(STOP, 3, "ref", t + 150, used=u3), now=t + 150)

    rs.run(body)
    (rec,) = rs.rated("c")
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"], rec["result"]) == (
        "data", 8_500_000, "octet", "0.085", "ok")
    (ref,) = rs.rated("ref")
    same_call(ref, rec)
    assert totals(rs, "c") == [0, 3 * MB, 5_500_000, 8_500_000]
    assert [r.get("octets") for r in accts(rs, "c")] == [None, *map(list, counters)]
    assert [r["used"] for r in accts(rs, "c")] == [{}, {}, {}, {}]


@pytest.mark.parametrize("mode", MODES)
def test_a_record_with_usu_and_counters_counts_its_usu_once(tmp_path: Path,
                                                           mode: str) -> None:
    """Records reporting octets in Used-Service-Unit AND in their counters count their USU
    only; a later record with counters alone raises the call to its total:

    - "same": USU 3 and 2 MB (parts; totals 3, 5 in cumulative mode) with counters 3 and
      5 MB, then a STOP with counters 8 MB alone: 8 MB (not 13 or 16: counted once);
    - "usu": USU-only INTERIMs of 2 and 3 MB, then a STOP with counters 6 MB: 6 MB, not 11;
    - "wider": counters that count more than the USU (another rating group's octets): USU 1
      and 1 MB with counters 2 and 4 MB are 2 MB so far (the USU's), then a STOP with
      counters 6 MB alone: 6 MB."""
    rs = restarts(tmp_path, mode)
    t = time.time()
    same = reports(mode, [3 * MB, 2 * MB])
    usu = reports(mode, [2 * MB, 3 * MB])
    wider = reports(mode, [1 * MB, 1 * MB])

    async def body(app: ChargingApp) -> None:
        await send(app, dacr(START, 0, "same", t),
                   dacr(INTERIM, 1, "same", t + 60, (1 * MB, 2 * MB), used=same[0]),
                   dacr(INTERIM, 2, "same", t + 90, (2 * MB, 3 * MB), used=same[1]),
                   dacr(STOP, 3, "same", t + 120, (3 * MB, 5 * MB)), now=t + 120)
        await send(app, dacr(START, 0, "usu", t), dacr(INTERIM, 1, "usu", t + 60, used=usu[0]),
                   dacr(INTERIM, 2, "usu", t + 90, used=usu[1]),
                   dacr(STOP, 3, "usu", t + 120, (1 * MB, 5 * MB)), now=t + 120)
        await send(app, dacr(START, 0, "wider", t),
                   dacr(INTERIM, 1, "wider", t + 60, (0, 2 * MB), used=wider[0]),
                   dacr(INTERIM, 2, "wider", t + 90, (0, 4 * MB), used=wider[1]),
                   dacr(STOP, 3, "wider", t + 120, (0, 6 * MB)), now=t + 120)

    rs.run(body)
    assert [(r["usage"], r["price"]) for r in rs.rated("same")] == [(8 * MB, "0.08")]
    assert totals(rs, "same") == [0, 3 * MB, 5 * MB, 8 * MB]
    assert [(r["usage"], r["price"]) for r in rs.rated("usu")] == [(6 * MB, "0.06")]
    assert [(r["usage"], r["price"]) for r in rs.rated("wider")] == [(6 * MB, "0.06")]
    assert totals(rs, "wider") == [0, 1 * MB, 2 * MB, 6 * MB]


@pytest.mark.parametrize("mode", MODES)
def test_a_counter_reset_keeps_what_was_counted_and_bills_what_follows(
        tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """Output counter 5 MB, then 3 MB (a newer record: the client's counter restarted from
    zero -- RFC 7155 counters are Unsigned64 running totals and do not wrap), then input 1 MB
    and output 3 MB at STOP: the call is 5 + 3 + 1 = 9 MB (0.09), not 5 MB (the octets after
    the reset lost until the new count passed the old one); the reset logs one warning naming
    the session and both readings. Records that arrive out of order (INTERIM 2 with 7 MB
    before INTERIM 1 with 5 MB) are no reset: no warning, the call is its STOP's 9 MB."""
    rs = restarts(tmp_path, mode)
    t = time.time()
    caplog.set_level(logging.WARNING, logger="icx.rf")

    async def body(app: ChargingApp) -> None:
        await send(app, dacr(START, 0, "low", t), dacr(INTERIM, 1, "low", t + 60, (0, 5 * MB)),
                   dacr(INTERIM, 2, "low", t + 90, (0, 3 * MB)),
                   dacr(STOP, 3, "low", t + 120, (1 * MB, 3 * MB)), now=t + 120)
        await send(app, dacr(START, 0, "order", t),
                   dacr(INTERIM, 2, "order", t + 90, (2 * MB, 5 * MB)),
                   dacr(INTERIM, 1, "order", t + 60, (1 * MB, 4 * MB)),
                   dacr(STOP, 3, "order", t + 120, (3 * MB, 6 * MB)), now=t + 120)

    rs.run(body)
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("low")] == [
        (9 * MB, "0.09", "ok")]
    assert totals(rs, "low") == [0, 5 * MB, 8 * MB, 9 * MB]
    warnings = [r.getMessage() for r in caplog.records if "octets" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "'low'" in warnings[0] and str(3 * MB) in warnings[0] and str(5 * MB) in warnings[0]
    assert [(r["usage"], r["price"]) for r in rs.rated("order")] == [(9 * MB, "0.09")]
    assert totals(rs, "order") == [0, 7 * MB, 7 * MB, 9 * MB]


@pytest.mark.parametrize("mode", MODES)
def test_duplicates_late_records_and_a_timeout_with_counters(tmp_path: Path,
                                                            mode: str) -> None:
    """A retransmitted INTERIM (same Accounting-Record-Number, higher counters even) writes
    nothing; an INTERIM delayed past its STOP, counting less than the STOP, adds nothing (its
    acct record, no rated record); a call closed for silence at 4 MB and its STOP at 6 MB
    afterwards: 4 MB (tcc_expired) + a late record of the 2 MB it adds."""
    rs = restarts(tmp_path, mode)
    t = time.time()

    async def body(app: ChargingApp) -> None:
        svc = app.service
        await send(app, dacr(START, 0, "d", t), dacr(INTERIM, 1, "d", t + 60, (0, 3 * MB)),
                   dacr(INTERIM, 1, "d", t + 60, (0, 9 * MB)),  # a duplicate
                   dacr(STOP, 3, "d", t + 120, (1 * MB, 7 * MB)),
                   dacr(INTERIM, 2, "d", t + 90, (1 * MB, 5 * MB)),  # late, less: nothing
                   dacr(STOP, 3, "d", t + 120, (1 * MB, 7 * MB)), now=t + 120)  # a duplicate
        await send(app, dacr(START, 0, "o", t), dacr(INTERIM, 1, "o", t + 60, (1 * MB, 3 * MB)),
                   now=t + 60)
        timeout = svc.config.offline_timeout
        assert timeout is not None
        assert await svc.supervise(t + 60 + timeout + 1) == ["o"]
        await send(app, dacr(STOP, 2, "o", t + 120, (2 * MB, 4 * MB)),
                   now=t + 60 + timeout + 2)

    rs.run(body)
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("d")] == [
        (8 * MB, "0.08", "ok")]
    assert [(r["record"], r["request"]) for r in accts(rs, "d")] == [
        ("start", "0"), ("interim", "1"), ("stop", "3"), ("late", "2")]
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("o")] == [
        (4 * MB, "0.04", "tcc_expired"), (2 * MB, "0.02", "late")]


@pytest.mark.parametrize("how", ["clean", "crash_journal_only", "crash_after_checkpoint"])
@pytest.mark.parametrize("mode", MODES)
def test_a_restart_mid_call_keeps_the_counted_volume(tmp_path: Path, mode: str,
                                                     how: str) -> None:
    """START, INTERIM 1 (3 MB), INTERIM 2 (5.5 MB), restart, INTERIM 2 again (a duplicate),
    STOP (8.5 MB): the session after the restart has the 5.5 MB counted and its record
    numbers, and the call is ONE rated record of 8.5 MB, field for field the same call
    without a restart -- after a clean stop, a crash with the journal alone, and a crash
    with a checkpoint mid-call; the STOP again after another crash writes nothing."""
    rs = restarts(tmp_path, mode)
    t = time.time()
    first = [(START, 0, t, None), (INTERIM, 1, t + 60, (1 * MB, 2 * MB)),
             (INTERIM, 2, t + 90, (2 * MB, 3_500_000))]
    stop = (3 * MB, 5_500_000)

    async def before(app: ChargingApp) -> None:
        for sid in ("ref", "rs"):
            for verb, n, at, octets in first:
                if how == "crash_after_checkpoint" and n == 2:
                    await app.service.checkpoint_offline(tmp_path / "data" / "rf")
                await send(app, dacr(verb, n, sid, at, octets), now=at)
        await send(app, dacr(STOP, 3, "ref", t + 120, stop), now=t + 120)

    rs.run(before, crash=how != "clean")
    if how == "crash_journal_only":
        shutil.rmtree(tmp_path / "data" / "rf", ignore_errors=True)

    async def after(app: ChargingApp) -> None:
        svc = app.service
        session = svc.offline.get("rs")
        assert session is not None and session.seen == {0, 1, 2}
        assert [(g.service, g.used_total) for g in session.grants] == [(DATA, 5_500_000)]
        await send(app, dacr(INTERIM, 2, "rs", t + 90, (2 * MB, 3_500_000)),
                   dacr(STOP, 3, "rs", t + 120, stop), now=t + 121)

    rs.run(after, crash=True)
    rs.run(lambda app: send(app, dacr(STOP, 3, "rs", t + 120, stop), now=t + 130))
    (ref,) = rs.rated("ref")
    (rec,) = rs.rated("rs")
    assert (rec["usage"], rec["price"], rec["result"], rec["request"]) == (
        8_500_000, "0.085", "ok", "3")
    same_call(ref, rec)
    assert [(r["record"], r["request"]) for r in accts(rs, "rs")] == [
        ("start", "0"), ("interim", "1"), ("interim", "2"), ("stop", "3")]


def test_an_event_record_and_a_voice_call_with_counters(tmp_path: Path) -> None:
    """A data EVENT_RECORD with counters alone (1 + 1.5 MB) is one rated record of their
    2.5 MB (0.025 EUR). Counters beside a service not metered in octets are not its usage:
    a voice call (IMS Rf, no USU) is still timed by its Event-Timestamps -- 90 s at 0.12
    EUR/min 60/1: 0.18 -- as the same call without them."""
    rs = restarts(tmp_path, "incremental")
    t = time.time()
    voice = ServiceKind.VOICE

    async def body(app: ChargingApp) -> None:
        await send(app, dacr(EVENT, 0, "ev", t, (1 * MB, 1_500_000)), now=t)
        for sid, octets in (("v", (5 * MB, 7 * MB)), ("vref", None)):
            await send(app, dacr(START, 0, sid, t, service=voice),
                       dacr(STOP, 1, sid, t + 90, octets, service=voice), now=t + 90)

    rs.run(body)
    assert [(r["service"], r["usage"], r["unit"], r["price"]) for r in rs.rated("ev")] == [
        ("data", 2_500_000, "octet", "0.025")]
    (rec,) = rs.rated("v")
    assert (rec["service"], rec["usage"], rec["price"]) == ("voice", 90, "0.18")
    (ref,) = rs.rated("vref")
    same_call(ref, rec)


@pytest.mark.parametrize("crash", [False, True])
def test_a_counter_reset_after_a_restart_still_bills_what_was_counted_before(
        tmp_path: Path, crash: bool) -> None:
    """START + INTERIM 1 (output counter 5 MB) answered, the server stopped (cleanly: from
    the Rf checkpoint; or killed: from the journal's acct records alone) and started again:
    INTERIM 2 reads 1 MB (the client's counter restarted) and the STOP 2 MB -- the call is
    5 + 2 = 7 MB (0.07), as without the restart: the counters' last reading survives it, so
    the reset is seen and the 5 MB counted before it are kept."""
    rs = restarts(tmp_path, "incremental")
    t = time.time()

    async def first(app: ChargingApp) -> None:
        await send(app, dacr(START, 0, "rr", t), dacr(INTERIM, 1, "rr", t + 60, (0, 5 * MB)),
                   now=t + 60)

    async def second(app: ChargingApp) -> None:
        await send(app, dacr(INTERIM, 2, "rr", t + 90, (0, 1 * MB)),
                   dacr(STOP, 3, "rr", t + 120, (0, 2 * MB)), now=t + 120)

    rs.run(first, crash=crash)
    rs.run(second)
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("rr")] == [
        (7 * MB, "0.07", "ok")]
    assert totals(rs, "rr") == [0, 5 * MB, 6 * MB, 7 * MB]
