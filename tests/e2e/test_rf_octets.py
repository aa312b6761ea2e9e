"""Rf data calls reported by their top-level octet counters, over a real socket: ACRs carrying
Accounting-Input-Octets / Accounting-Output-Octets (and -Packets), M bit set as RFC 7155 §4.6
requires, are answered 2001 and the call is billed its highest running total (in + out) in
either ``[rf] usage_reports`` mode -- lower totals and retransmissions add nothing -- across a
restart of the server (clean, and ``kill -9`` of `icx serve`) too. The rules themselves:
tests/charging/test_rf_octet_counters.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A, data_info
from tests.e2e.conftest import e2e_settings, serving
from tests.e2e.test_rf_audit import DATA, HOST, INTERIM, START, STOP, acr
from tests.e2e.test_rf_restart import IcxServe, journal, rated, send

T0 = 1_800_000_000
MB = 1_000_000
MODES = ("incremental", "cumulative")
NOT_COMPARED = ("id", "ts", "idem", "session")


def counters(octets_in: int, octets_out: int) -> list[Avp]:
    """The RFC 7155 §4.6 counters of a session so far (packets: one per 1,000 octets)."""
    avps = [A("Accounting-Input-Octets", octets_in), A("Accounting-Output-Octets", octets_out),
            A("Accounting-Input-Packets", octets_in // 1000),
            A("Accounting-Output-Packets", octets_out // 1000)]
    assert all(a.flags & 0x40 and not a.flags & 0x80 for a in avps)  # M set, V clear
    return avps


def dacr(sid: str, rtype: int, n: int, octets: tuple[int, int] | None, at: int) -> Message:
    extra = counters(*octets) if octets is not None else []
    return acr(sid, rtype, n, *extra, context=DATA, at=at, info=data_info("internet"))


def call(sid: str) -> list[Message]:
    """8.5 MB reported as running totals 1 + 2, 2 + 3.5, 3 + 5.5 MB (INTERIM, INTERIM, STOP)."""
    return [dacr(sid, START, 0, None, T0), dacr(sid, INTERIM, 1, (1 * MB, 2 * MB), T0 + 60),
            dacr(sid, INTERIM, 2, (2 * MB, 3_500_000), T0 + 120),
            dacr(sid, STOP, 3, (3 * MB, 5_500_000), T0 + 150)]


def check_call(data: Path, sid: str, ref: str | None = None) -> dict[str, Any]:
    """*sid*'s call is ONE rated record of 8.5 MB (0.085 EUR at 0.01/MB), field for field
    *ref*'s when given."""
    (rec,) = rated(data, sid)
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"], rec["result"],
            rec["request"]) == ("data", 8_500_000, "octet", "0.085", "ok", "3")
    if ref is not None:
        (want,) = rated(data, ref)
        assert {k: v for k, v in rec.items() if k not in NOT_COMPARED} == {
            k: v for k, v in want.items() if k not in NOT_COMPARED}
    return rec


def settings_for(tmp_path: Path, mode: str) -> Any:
    settings = e2e_settings(tmp_path)
    return dataclasses.replace(settings, rf=dataclasses.replace(settings.rf,
                                                                usage_reports=mode))


@pytest.mark.parametrize("mode", MODES)
def test_a_call_reported_by_its_counters_is_billed_its_highest_total(tmp_path: Path,
                                                                     mode: str) -> None:
    """START, INTERIM 1 (1 + 2 MB), INTERIM 2 (2 + 3.5 MB), INTERIM 4 with lower counters
    (0 + 1 MB: the client's counters restarted from zero), INTERIM 2 again on a new
    End-to-End id (a duplicate), STOP (1 + 2 MB after the reset): every ACA 2001, one acct
    record per new record, ONE rated record of 5.5 + 3 = 8.5 MB -- not 0 (counters unread),
    not 5.5 MB (the octets after the reset lost), nothing negative."""
    data = tmp_path / "data"
    sid = f"{HOST};oct;{mode}"
    start, i1, i2, _ = call(sid)
    lower = dacr(sid, INTERIM, 4, (0, 1 * MB), T0 + 130)
    stop = dacr(sid, STOP, 5, (1 * MB, 2 * MB), T0 + 150)
    with serving(settings_for(tmp_path, mode), data) as srv:
        send(srv.port, start, i1, i2, lower, i2, stop)
    (rec,) = rated(data, sid)
    assert (rec["usage"], rec["unit"], rec["price"], rec["result"], rec["request"]) == (
        8_500_000, "octet", "0.085", "ok", "5")
    accts = [r for r in journal(data) if r["type"] == "acct" and r["session"] == sid]
    assert [(r["record"], r["request"], r.get("octets")) for r in accts] == [
        ("start", "0", None), ("interim", "1", [1 * MB, 2 * MB]),
        ("interim", "2", [2 * MB, 3_500_000]), ("interim", "4", [0, 1 * MB]),
        ("stop", "5", [1 * MB, 2 * MB])]
    assert [dict(r["rf"]["tot"]).get("data", 0) for r in accts] == [
        0, 3 * MB, 5_500_000, 6_500_000, 8_500_000]


@pytest.mark.parametrize("mode", MODES)
def test_a_32_bit_counter_wrap_reported_by_its_gigawords_is_no_reset(tmp_path: Path,
                                                                     mode: str) -> None:
    """A RADIUS-derived client counting in 32 bits: input 4,000,000,000, then 705,032,704
    with Acct-Input-Gigawords 1 (RFC 2869 §5.1: one wrap around 2^32, so 5,000,000,000),
    then 1,705,032,704 + 1 wrap and output 1,000,000,000 at STOP (M bit set on the
    gigawords): every ACA 2001 (not 5001), the call is 7,000,000,000 octets = 70.00 EUR at
    0.01/MB -- the wrap neither lost (counted as a decrease) nor mistaken for a reset."""
    data = tmp_path / "data"
    sid = f"{HOST};giga;{mode}"

    def giga(n: int, octets_in: int, wraps: int, octets_out: int | None, at: int,
             rtype: int = INTERIM) -> Message:
        msg = dacr(sid, rtype, n, None, at)
        msg.avps.append(A("Accounting-Input-Octets", octets_in))
        if octets_out is not None:
            msg.avps.append(A("Accounting-Output-Octets", octets_out))
        if wraps:
            msg.avps.append(A("Acct-Input-Gigawords", wraps, flags=0x40))
        return msg

    with serving(settings_for(tmp_path, mode), data) as srv:
        send(srv.port, dacr(sid, START, 0, None, T0), giga(1, 4_000_000_000, 0, None, T0 + 60),
             giga(2, 705_032_704, 1, None, T0 + 120),
             giga(3, 1_705_032_704, 1, 1_000_000_000, T0 + 150, STOP))
    (rec,) = rated(data, sid)
    assert (rec["usage"], rec["price"], rec["request"]) == (7_000_000_000, "70.00", "3")
    accts = [r for r in journal(data) if r["type"] == "acct" and r["session"] == sid]
    assert [r.get("octets") for r in accts] == [
        None, [4_000_000_000, None], [5_000_000_000, None], [6_000_000_000, 1_000_000_000]]


@pytest.mark.parametrize("mode", MODES)
def test_an_open_call_keeps_its_counted_volume_across_a_clean_restart(tmp_path: Path,
                                                                     mode: str) -> None:
    """START + INTERIM 1 answered, the server stopped and started again: INTERIM 1 again (a
    duplicate), INTERIM 2 and the STOP complete the call as the same call without a restart
    (8.5 MB, 0.085 EUR); the STOP again after another restart writes nothing."""
    data = tmp_path / "data"
    a, b = f"{HOST};octr;{mode}", f"{HOST};octr;ref-{mode}"
    settings = settings_for(tmp_path, mode)
    with serving(settings, data) as srv:
        send(srv.port, *call(b))
        send(srv.port, *call(a)[:2])
    with serving(settings, data) as srv:
        session = srv.running.charging.service.offline.get(a)
        assert session is not None and [g.used_total for g in session.grants] == [3 * MB]
        send(srv.port, *call(a)[1:])
    with serving(settings, data) as srv:
        send(srv.port, call(a)[3])
    check_call(data, a, b)


def test_an_open_call_keeps_its_counted_volume_across_kill9(tmp_path: Path) -> None:
    """`icx serve` (demo config) SIGKILLed after START + INTERIM 1 were answered: INTERIM 1
    again (a duplicate), INTERIM 2 and the STOP to the next process are the same call as one
    made without the kill."""
    data = tmp_path / "data"
    a, b = f"{HOST};ock9;crash", f"{HOST};ock9;ref"
    srv = IcxServe(tmp_path, data)
    try:
        send(srv.port, *call(a)[:2])
    finally:
        srv.kill9()
    srv = IcxServe(tmp_path, data)
    try:
        send(srv.port, *call(a)[1:], call(a)[3])
        send(srv.port, *call(b))
    finally:
        srv.stop()
    check_call(data, a, b)
    assert sorted(int(r["request"]) for r in journal(data)
                  if r["type"] == "acct" and r["session"] == a) == [0, 1, 2, 3]
