"""TS 32.299 PS offline charging over a real socket: a PGW's ACRs (Service-Context-Id
32251@3gpp.org) report each rating group's usage in Service-Information / PS-Information /
Service-Data-Container (2040), Accounting-Input/Output-Octets and Time-Usage inside. Each
container is the usage of its own interval (it is sent once, when a change of charging
condition closes it), so the call is the sum of its containers -- in either ``[rf]
usage_reports`` mode -- rated at STOP per rating group: rating group 1 as the context's data
(0.01 EUR/MB), rating group 200 as time-metered data (``[ro.rating_groups]``, 0.02 EUR/min
60/60)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A
from tests.e2e.conftest import e2e_settings, serving
from tests.e2e.test_rf_audit import DATA, HOST, INTERIM, START, STOP, acr
from tests.e2e.test_rf_restart import journal, rated, send

T0 = 1_800_000_000
MB = 1_000_000
MODES = ("incremental", "cumulative")


def sdc(rg: int, *, octets: tuple[int, int] | None = None, time_usage: int | None = None,
        first_last: tuple[int, int] | None = None, seq: int = 1) -> Avp:
    """One Service-Data-Container of rating group *rg* (M and V set, as TS 32.299 has it)."""
    kids = [A("Rating-Group", rg), A("Local-Sequence-Number", seq)]
    if octets is not None:
        kids += [A("Accounting-Input-Octets", octets[0]),
                 A("Accounting-Output-Octets", octets[1])]
    if first_last is not None:
        kids += [A("Time-First-Usage", first_last[0]), A("Time-Last-Usage", first_last[1])]
    if time_usage is not None:
        kids.append(A("Time-Usage", time_usage))
    kids += [A("Change-Condition", 0), A("Change-Time", T0)]
    a = A("Service-Data-Container", kids)
    assert a.flags & 0xC0 == 0xC0 and a.vendor == 10415
    return a


def pgw_acr(sid: str, rtype: int, n: int, *containers: Avp, at: int) -> Message:
    info = A("Service-Information", [A("PS-Information", [
        A("3GPP-Charging-Id", b"\x00\x00\x00\x07"), A("Called-Station-Id", "internet"),
        *containers])])
    return acr(sid, rtype, n, context=DATA, at=at, info=info)


def call(sid: str) -> list[Message]:
    """START; INTERIM 1: RG 1 1 + 2 MB, RG 200 60 s; INTERIM 2: RG 1 in two containers
    (0.5 + 1.5 MB, 1 + 0 MB); STOP: RG 1 1 + 1 MB, RG 200 30 s by its first/last usage
    times. 8 MB of data (0.08 EUR), 90 s of time-metered data (120 s billed: 0.04 EUR)."""
    return [
        pgw_acr(sid, START, 0, at=T0),
        pgw_acr(sid, INTERIM, 1, sdc(1, octets=(1 * MB, 2 * MB)), sdc(200, time_usage=60),
                at=T0 + 60),
        pgw_acr(sid, INTERIM, 2, sdc(1, octets=(500_000, 1_500_000), seq=2),
                sdc(1, octets=(1 * MB, 0), seq=3), at=T0 + 80),
        pgw_acr(sid, STOP, 3, sdc(1, octets=(1 * MB, 1 * MB), seq=4),
                sdc(200, first_last=(T0 + 60, T0 + 90), seq=5), at=T0 + 90),
    ]


def settings_for(tmp_path: Path, mode: str) -> Any:
    settings = e2e_settings(tmp_path)
    return dataclasses.replace(settings, rf=dataclasses.replace(settings.rf,
                                                                usage_reports=mode))


@pytest.mark.parametrize("mode", MODES)
def test_a_pgw_call_is_rated_per_rating_group_by_its_containers(tmp_path: Path,
                                                                 mode: str) -> None:
    """Every ACA 2001 (not 5001: the containers' AVPs are known); the STOP writes one rated
    record per service: data 8,000,000 octets 0.08 EUR, data_time 90 s 0.04 EUR -- not a call
    of 0 octets (containers unread); a retransmitted INTERIM adds nothing."""
    data = tmp_path / "data"
    sid = f"{HOST};sdc;{mode}"
    start, i1, i2, stop = call(sid)
    with serving(settings_for(tmp_path, mode), data) as srv:
        send(srv.port, start, i1, i2, i1, stop)
    recs = sorted((r["service"], r["usage"], r["unit"], r["price"], r["result"])
                  for r in rated(data, sid))
    assert recs == [("data", 8 * MB, "octet", "0.08", "ok"),
                    ("data_time", 90, "s", "0.04", "ok")]
    accts = [r for r in journal(data) if r["type"] == "acct" and r["session"] == sid]
    assert [(r["record"], r["used"]) for r in accts] == [
        ("start", {}), ("interim", {"data": 3 * MB, "data_time": 60}),
        ("interim", {"data": 3 * MB}), ("stop", {"data": 2 * MB, "data_time": 30})]
    assert [dict(r["rf"]["tot"]) for r in accts][-1] == {"data": 8 * MB, "data_time": 90}


def test_containers_beside_top_level_counters_are_not_counted_twice(tmp_path: Path) -> None:
    """A STOP carrying both its containers (2 MB) and the session's top-level RFC 7155
    counters (7 MB so far: the same traffic, the earlier records' and what no charged rating
    group counts) bills the containers' sum, the counters adding nothing: 3 + 2 = 5 MB,
    0.05 EUR (not the counters' 7 MB)."""
    data = tmp_path / "data"
    sid = f"{HOST};sdc;counters"
    stop = pgw_acr(sid, STOP, 2, sdc(1, octets=(1 * MB, 1 * MB)), at=T0 + 90)
    stop.avps += [A("Accounting-Input-Octets", 3 * MB), A("Accounting-Output-Octets", 4 * MB)]
    with serving(e2e_settings(tmp_path), data) as srv:
        send(srv.port, pgw_acr(sid, START, 0, at=T0),
             pgw_acr(sid, INTERIM, 1, sdc(1, octets=(1 * MB, 2 * MB)), at=T0 + 60), stop)
    (rec,) = rated(data, sid)
    assert (rec["service"], rec["usage"], rec["price"]) == ("data", 5 * MB, "0.05")


def tdv(octets: tuple[int, int]) -> Avp:
    """One Traffic-Data-Volumes container (TS 32.299 PS-Information; M and V set)."""
    a = A("Traffic-Data-Volumes", [
        A("Accounting-Input-Octets", octets[0]), A("Accounting-Output-Octets", octets[1]),
        A("Change-Condition", 0), A("Change-Time", T0)])
    assert a.flags & 0xC0 == 0xC0 and a.vendor == 10415
    return a


@pytest.mark.parametrize("mode", MODES)
def test_an_sgw_call_is_rated_by_its_traffic_data_volumes(tmp_path: Path, mode: str) -> None:
    """An SGW reports the bearer's volume in Traffic-Data-Volumes only (no rating group, no
    Service-Data-Container): each container the volume of its own interval, the call their
    sum -- 3 + 3 + 2 = 8 MB, 0.08 EUR (it was a call of 0 octets: the volumes unread); a
    retransmitted INTERIM adds nothing."""
    data = tmp_path / "data"
    sid = f"{HOST};tdv;{mode}"
    i1 = pgw_acr(sid, INTERIM, 1, tdv((1 * MB, 2 * MB)), at=T0 + 60)
    with serving(settings_for(tmp_path, mode), data) as srv:
        send(srv.port, pgw_acr(sid, START, 0, at=T0), i1,
             pgw_acr(sid, INTERIM, 2, tdv((500_000, 1_500_000)), tdv((1 * MB, 0)),
                     at=T0 + 80), i1,
             pgw_acr(sid, STOP, 3, tdv((1 * MB, 1 * MB)), at=T0 + 90))
    (rec,) = rated(data, sid)
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"], rec["result"]) == (
        "data", 8 * MB, "octet", "0.08", "ok")


def test_traffic_data_volumes_beside_containers_are_not_counted_twice(tmp_path: Path) -> None:
    """A PGW's record with both breakdowns of the same traffic -- by bearer (Traffic-Data-
    Volumes, 3 MB) and by rating group (Service-Data-Container, 3 MB) -- bills 3 MB, not 6."""
    data = tmp_path / "data"
    sid = f"{HOST};tdv;both"
    with serving(e2e_settings(tmp_path), data) as srv:
        send(srv.port, pgw_acr(sid, START, 0, at=T0),
             pgw_acr(sid, STOP, 1, tdv((1 * MB, 2 * MB)), sdc(1, octets=(1 * MB, 2 * MB)),
                     at=T0 + 60))
    (rec,) = rated(data, sid)
    assert (rec["service"], rec["usage"], rec["price"]) == ("data", 3 * MB, "0.03")
