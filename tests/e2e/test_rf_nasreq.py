"""NASREQ-style accounting AVPs over a real socket: an ACR carrying the RFC 7155 §4.6
accounting AVPs (Acct-Session-Time 46, Acct-Authentic 45, Acct-Delay-Time 41, Acct-Link-Count
51, Accounting-Auth-Method 406) and RFC 6733's Acct-Multi-Session-Id 50 / Acct-Interim-Interval
85, M bit set as §4.6 requires, is answered 2001 -- not 5001 DIAMETER_AVP_UNSUPPORTED -- and
recorded. A time-metered call's STOP reporting no time in Used-Service-Unit is billed its
Acct-Session-Time (the client's own measure of the session's length, §4.6.5), not the span of
our Event-Timestamps."""

from __future__ import annotations

from pathlib import Path

from diameter.avp import Avp
from icx.diameter_client import A
from tests.e2e.conftest import e2e_settings, serving
from tests.e2e.test_rf_audit import HOST, INTERIM, START, STOP, acr
from tests.e2e.test_rf_restart import journal, rated, send

T0 = 1_800_000_000


def nasreq(session_time: int | None) -> list[Avp]:
    avps = [A("Acct-Authentic", 1), A("Acct-Delay-Time", 0), A("Acct-Link-Count", 1),
            A("Accounting-Auth-Method", 2), A("Acct-Multi-Session-Id", "multi-1"),
            A("Acct-Interim-Interval", 60)]
    if session_time is not None:
        avps.append(A("Acct-Session-Time", session_time))
    assert all(a.flags & 0x40 and not a.flags & 0x80 for a in avps)  # M set, V clear
    return avps


def test_a_nasreq_acr_is_answered_2001_and_billed_its_session_time(tmp_path: Path) -> None:
    """A voice call to 41 (0.12 EUR/min, 60/1): START at T0, INTERIM at T0 + 60 with
    Acct-Session-Time 55, STOP at T0 + 100 (our clock: the record waited in the client's
    queue) with Acct-Session-Time 75: every ACA 2001, ONE rated record of 75 s = 0.15 EUR
    (not 100 s = 0.20 by the timestamps)."""
    data = tmp_path / "data"
    sid = f"{HOST};nasreq;1"
    with serving(e2e_settings(tmp_path), data) as srv:
        send(srv.port, acr(sid, START, 0, *nasreq(None), at=T0),
             acr(sid, INTERIM, 1, *nasreq(55), at=T0 + 60),
             acr(sid, STOP, 2, *nasreq(75), at=T0 + 100))
    (rec,) = rated(data, sid)
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"], rec["result"]) == (
        "voice", 75, "s", "0.15", "ok")
    accts = [r for r in journal(data) if r["type"] == "acct" and r["session"] == sid]
    assert [dict(r["rf"]["tot"]).get("voice", 0) for r in accts] == [0, 55, 75]


def test_without_acct_session_time_the_timestamps_still_time_the_call(tmp_path: Path) -> None:
    """The same NASREQ AVPs without Acct-Session-Time: the call lasts from its START's
    Event-Timestamp to its STOP's, as before (100 s, 0.20 EUR)."""
    data = tmp_path / "data"
    sid = f"{HOST};nasreq;2"
    with serving(e2e_settings(tmp_path), data) as srv:
        send(srv.port, acr(sid, START, 0, *nasreq(None), at=T0),
             acr(sid, STOP, 1, *nasreq(None), at=T0 + 100))
    (rec,) = rated(data, sid)
    assert (rec["usage"], rec["price"]) == (100, "0.20")
