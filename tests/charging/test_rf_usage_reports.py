"""``[rf] usage_reports``: how an INTERIM/STOP's Used-Service-Units count, through the charging
service as `icx serve` builds it (rating engine + embedded store + journal + ledger).

``incremental`` (the default, TS 32.299 containers): each record reports its own part; the
call's usage is their sum. ``cumulative`` (RFC 6733 style running totals): each record reports
the call's usage so far; the call's usage is the highest total reported -- a record that
arrives after a newer one (reordered) adds nothing, a newer record reporting less than before
keeps the higher total (and logs a warning). Duplicates, late records and the restart
(checkpoint + the ``acct`` records after it, or the journal alone after a kill -9) behave the
same in both modes."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import pytest

from charging.requests import ServiceKind
from icx.charging_app import ChargingApp
from tests.charging.test_rf_recovery import (
    INTERIM,
    START,
    STOP,
    Restarts,
    acr,
    same_call,
    send,
)

MODES = ("incremental", "cumulative")


def restarts(tmp_path: Path, mode: str) -> Restarts:
    rs = Restarts(tmp_path)
    rs.settings = dataclasses.replace(
        rs.settings, rf=dataclasses.replace(rs.settings.rf, usage_reports=mode))
    return rs


def reports(mode: str, parts: list[int]) -> list[int]:
    """What a client reports for a call used in *parts*: each part, or the running total."""
    if mode == "incremental":
        return parts
    out, total = [], 0
    for p in parts:
        total += p
        out.append(total)
    return out


def test_the_setting_reaches_the_service(tmp_path: Path) -> None:
    rs = restarts(tmp_path, "cumulative")

    async def body(app: ChargingApp) -> None:
        assert app.service.config.offline_usage_reports == "cumulative"

    rs.run(body)
    (tmp_path / "default").mkdir()
    rs = Restarts(tmp_path / "default")
    rs.run(_check_default)


async def _check_default(app: ChargingApp) -> None:
    assert app.service.config.offline_usage_reports == "incremental"


@pytest.mark.parametrize("mode", MODES)
def test_a_call_reported_in_either_mode_is_rated_once_whole(tmp_path: Path, mode: str) -> None:
    """150 s to Switzerland (0.12 EUR/min, 60/1) used 60 + 60 + 30: reported as parts
    (incremental) or as running totals 60, 120, 150 (cumulative), one rated record of 150 s,
    0.30 EUR. The acct records carry what each ACR reported."""
    rs = restarts(tmp_path, mode)
    t = time.time()
    i1, i2, s3 = reports(mode, [60, 60, 30])

    async def body(app: ChargingApp) -> None:
        await send(app, acr(START, 0, "c", t), acr(INTERIM, 1, "c", t + 60, i1),
                   acr(INTERIM, 2, "c", t + 120, i2), acr(STOP, 3, "c", t + 150, s3),
                   now=t + 150)

    rs.run(body)
    (rec,) = rs.rated("c")
    assert (rec["usage"], rec["price"], rec["result"], rec["request"]) == (150, "0.30", "ok", "3")
    used = [r["used"] for r in rs.journal() if r["type"] == "acct"]
    assert used == [{}, {"voice": i1}, {"voice": i2}, {"voice": s3}]


def test_cumulative_data_octets(tmp_path: Path) -> None:
    """Data (0.01 EUR/MB) reported as running totals of octets 3 MB, 5 MB, 8 MB: 8 MB."""
    rs = restarts(tmp_path, "cumulative")
    t = time.time()
    mb = 1_000_000
    data = ServiceKind.DATA

    async def body(app: ChargingApp) -> None:
        await send(app, acr(START, 0, "d", t, service=data),
                   acr(INTERIM, 1, "d", t + 60, 3 * mb, service=data),
                   acr(INTERIM, 2, "d", t + 120, 5 * mb, service=data),
                   acr(STOP, 3, "d", t + 150, 8 * mb, service=data), now=t + 150)

    rs.run(body)
    (rec,) = rs.rated("d")
    assert (rec["usage"], rec["unit"], rec["result"]) == (8 * mb, "octet", "ok")
    (tmp_path / "inc").mkdir()
    ref = restarts(tmp_path / "inc", "incremental")

    async def parts(app: ChargingApp) -> None:
        await send(app, acr(START, 0, "d", t, service=data),
                   acr(STOP, 1, "d", t + 150, 8 * mb, service=data), now=t + 150)

    ref.run(parts)
    (inc,) = ref.rated("d")
    assert rec["price"] == inc["price"]


def test_cumulative_reordered_duplicate_and_late_records(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Running totals 60, 120, 135 and 150 (STOP) arriving as INTERIM 2 (120), INTERIM 1 (60:
    older, adds nothing, no warning), INTERIM 2 again (a duplicate), STOP 4 (150), then
    INTERIM 3 (135) after the STOP (a late record adding nothing: its acct record, no rated
    record) and INTERIM 3 again (a duplicate): one rated record of 150 s. A second call times
    out at 120 s; its STOP (150) afterwards is a late record of the 30 s it adds, priced at
    what they add to the call."""
    rs = restarts(tmp_path, "cumulative")
    t = time.time()
    caplog.set_level(logging.WARNING, logger="icx.rf")

    async def body(app: ChargingApp) -> None:
        svc = app.service
        await send(app, acr(START, 0, "r", t), acr(INTERIM, 2, "r", t + 120, 120),
                   acr(INTERIM, 1, "r", t + 60, 60), now=t + 120)
        assert [g.used_total for g in svc.offline.get("r").grants] == [120]  # type: ignore[union-attr]
        dup = await svc.handle(acr(INTERIM, 2, "r", t + 120, 120), now=t + 121)
        assert dup.ok  # (the journal below: nothing written)
        await send(app, acr(STOP, 4, "r", t + 150, 150), now=t + 150)
        await send(app, acr(INTERIM, 3, "r", t + 135, 135), now=t + 151)
        dup = await svc.handle(acr(INTERIM, 3, "r", t + 135, 135), now=t + 152)
        assert dup.ok  # (the journal below: nothing written)
        # timed out at 120 s, then its STOP
        await send(app, acr(START, 0, "o", t), acr(INTERIM, 1, "o", t + 120, 120), now=t + 120)
        timeout = svc.config.offline_timeout
        assert timeout is not None
        assert await svc.supervise(t + 120 + timeout + 1) == ["o"]
        await send(app, acr(STOP, 2, "o", t + 150, 150), now=t + 120 + timeout + 2)

    rs.run(body)
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("r")] == [(150, "0.30", "ok")]
    assert [(r["record"], r["request"]) for r in rs.journal()
            if r["type"] == "acct" and r["session"] == "r"] == [
        ("start", "0"), ("interim", "2"), ("interim", "1"), ("stop", "4"), ("late", "3")]
    assert [(r["usage"], r["price"], r["result"]) for r in rs.rated("o")] == [
        (120, "0.24", "tcc_expired"), (30, "0.06", "late")]
    assert not [r for r in caplog.records if "lower" in r.getMessage()]


def test_cumulative_total_lower_than_before_keeps_the_higher_and_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A newer record reporting a total under the one before (a client that reset its
    counter, or counts per record after all): the call keeps the highest total -- never
    un-charge what was reported -- and one warning names the session and both totals."""
    rs = restarts(tmp_path, "cumulative")
    t = time.time()
    caplog.set_level(logging.WARNING, logger="icx.rf")

    async def body(app: ChargingApp) -> None:
        await send(app, acr(START, 0, "w", t), acr(INTERIM, 1, "w", t + 120, 120),
                   acr(INTERIM, 2, "w", t + 130, 10), acr(STOP, 3, "w", t + 150, 150),
                   now=t + 150)

    rs.run(body)
    assert [(r["usage"], r["price"]) for r in rs.rated("w")] == [(150, "0.30")]
    (warning,) = [r for r in caplog.records if "lower" in r.getMessage()]
    assert "'w'" in warning.getMessage() and "10" in warning.getMessage()
    assert "120" in warning.getMessage()


@pytest.mark.parametrize("how", ["clean", "crash_journal_only", "crash_after_checkpoint"])
@pytest.mark.parametrize("mode", MODES)
def test_a_restart_rebuilds_the_same_state_in_either_mode(tmp_path: Path, mode: str,
                                                          how: str) -> None:
    """START + INTERIM (60 s) + INTERIM (45 s), restart, INTERIM 2 again (a retransmission:
    a duplicate), STOP (30 s): the session after the restart has the usage and record numbers
    it had, and the call is one rated record of 135 s (0.27 EUR), field for field the one
    of the same call without a restart -- after a clean stop (checkpoint at the end), a
    crash with no checkpoint (the journal alone), and a crash with a checkpoint mid-call
    and an INTERIM after it."""
    rs = restarts(tmp_path, mode)
    t = time.time()
    i1, i2, s3 = reports(mode, [60, 45, 30])
    first = [(START, 0, t, None), (INTERIM, 1, t + 60, i1), (INTERIM, 2, t + 105, i2)]

    async def before(app: ChargingApp) -> None:
        for sid in ("ref", "rs"):
            for verb, n, at, used in first:
                if how == "crash_after_checkpoint" and n == 2:
                    await app.service.checkpoint_offline(tmp_path / "data" / "rf")
                await send(app, acr(verb, n, sid, at, used), now=at)
        await send(app, acr(STOP, 3, "ref", t + 135, s3), now=t + 135)

    rs.run(before, crash=how != "clean")
    if how == "crash_journal_only":
        shutil.rmtree(tmp_path / "data" / "rf", ignore_errors=True)

    async def after(app: ChargingApp) -> None:
        svc = app.service
        session = svc.offline.get("rs")
        assert session is not None and session.seen == {0, 1, 2}
        assert [g.used_total for g in session.grants] == [105]
        dup = await svc.handle(acr(INTERIM, 2, "rs", t + 105, i2), now=t + 130)
        assert dup.ok  # (the journal below: nothing written)
        await send(app, acr(STOP, 3, "rs", t + 135, s3), now=t + 136)
        assert svc._closed_offline.get("rs") is not None

    rs.run(after, crash=True)

    async def again(app: ChargingApp) -> None:  # the STOP again after another crash
        dup = await app.service.handle(acr(STOP, 3, "rs", t + 135, s3), now=t + 140)
        assert dup.ok  # (the journal below: nothing written)

    rs.run(again)
    (ref,) = rs.rated("ref")
    (rec,) = rs.rated("rs")
    assert (rec["usage"], rec["price"], rec["result"], rec["request"]) == (135, "0.27", "ok", "3")
    same_call(ref, rec)
    assert [(r["record"], r["request"]) for r in rs.journal()
            if r["type"] == "acct" and r["session"] == "rs"] == [
        ("start", "0"), ("interim", "1"), ("interim", "2"), ("stop", "3")]
