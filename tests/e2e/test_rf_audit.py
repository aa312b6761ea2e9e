"""Rf offline charging over a real socket (RFC 6733 §9, facts A9/C1): ACR START/INTERIM/STOP/
EVENT become rated records in the journal (no balance check), each ACA echoes Session-Id,
Accounting-Record-Type/-Number with Result-Code 2001, interim records are assembled into one
rated call at STOP, duplicates (Session-Id + Accounting-Record-Number) are answered without a
second record, and bad or out-of-order input is answered as the RFC says and loses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from charging.rating.importer import import_csv
from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A, connect, data_info, mscc, sms_info, voice_info
from tests.e2e.conftest import ROOT, Server, e2e_settings, serving
from tests.e2e.test_rar_asr_audit import post

HOST = "rf.icx.test"
SUB = "41790000007"
EMPTY = "41790000000"  # 0.00 EUR: offline records need no credit
T0 = 1_800_000_000  # Event-Timestamps (epoch seconds; the codec converts to NTP time)
START, INTERIM, STOP, EVENT = 2, 3, 4, 1

VOICE, DATA, SMS = "32260@3gpp.org", "32251@3gpp.org", "32274@3gpp.org"


def acr(sid: str, rtype: int | None, number: int | None, *extra: Avp,
        context: str = VOICE, sub: str = SUB, at: float | None = None,
        info: Avp | None = None, drop: tuple[int, ...] = ()) -> Message:
    avps: list[Avp] = [
        A("Session-Id", sid), A("Origin-Host", HOST), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local")]
    if rtype is not None:
        avps.append(A("Accounting-Record-Type", rtype))
    if number is not None:
        avps.append(A("Accounting-Record-Number", number))
    avps += [A("Acct-Application-Id", 3), A("Service-Context-Id", context),
             A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                   A("Subscription-Id-Data", sub)])]
    if at is not None:
        avps.append(A("Event-Timestamp", at))
    avps.append(info if info is not None else voice_info(sub, "41791234567"))
    avps.extend(extra)
    return Message.request(271, 3, [a for a in avps if a.code not in drop], proxiable=True)


def used(unit: str, n: int, rg: int = 100) -> Avp:
    return mscc(rg, usu=(unit, n))


def exchange(server: Server, *requests: Message) -> list[Message]:
    """Send each ACR on a fresh Hop-by-Hop/End-to-End id (so the Diameter layer's duplicate
    cache, keyed by Origin-Host + End-to-End, does not answer a repeat: Rf's own duplicate
    detection by Session-Id + Accounting-Record-Number must)."""
    async def main() -> list[Message]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            return [await peer.request(m) for m in requests]
        finally:
            await peer.close()

    return asyncio.run(main())


def rated(server: Server, sid: str) -> list[dict[str, Any]]:
    return [r for r in server.journal() if r.get("session") == sid and r["type"] == "rated"]


def check_aca(aca: Message, req: Message, rc: int = 2001) -> None:
    """ACA grammar (RFC 6733 §9.7.2): <Session-Id> first, {Result-Code}, our {Origin-Host}
    {Origin-Realm}, {Accounting-Record-Type}/{Accounting-Record-Number} echoed; no E bit for
    2xxx/5xxx."""
    assert not aca.is_request and not aca.is_error and aca.code == 271 and aca.app_id == 3
    assert aca.avps[0].name == "Session-Id" and aca.get("Session-Id") == req.get("Session-Id")
    assert aca.get("Result-Code") == rc
    assert (aca.get("Origin-Host"), aca.get("Origin-Realm")) == ("ocs.icx.local", "icx.local")
    for name in ("Accounting-Record-Type", "Accounting-Record-Number"):
        assert aca.get(name) == req.get(name), name
    assert aca.get("Acct-Application-Id") == 3


def total(records: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["price"]) for r in records), Decimal(0))


def test_start_interims_stop_is_one_rated_call_without_a_balance_check(server: Server) -> None:
    """150 s to Switzerland (0.12 EUR/min, 60/1) reported 60 + 60 + 30: one record of 0.30 at
    STOP; the subscriber's balance is not touched (offline), even an empty one."""
    for sub in (SUB, EMPTY):
        sid = f"{HOST};1;{sub}"
        reqs = [acr(sid, START, 0, sub=sub, at=T0),
                acr(sid, INTERIM, 1, used("CC-Time", 60), sub=sub, at=T0 + 60),
                acr(sid, INTERIM, 2, used("CC-Time", 60), sub=sub, at=T0 + 120),
                acr(sid, STOP, 3, used("CC-Time", 30), sub=sub, at=T0 + 150)]
        for aca, req in zip(exchange(server, *reqs), reqs, strict=True):
            check_aca(aca, req)
        (rec,) = rated(server, sid)
        assert (rec["usage"], rec["unit"], rec["price"], rec["currency"]) == (150, "s", "0.30",
                                                                              "EUR")
        assert (rec["service"], rec["result"], rec["prefix"]) == ("voice", "ok", "41")
        assert (rec["a"], rec["b"], rec["account"]) == (sub, "41791234567", sub)
        assert (rec["start"], rec["end"]) == (T0 * 1_000_000, (T0 + 150) * 1_000_000)
        assert rec["balance_effects"] == [] and rec["holds"] == []
    assert server.balance(SUB) == (50_000_000, 0)
    assert server.balance(EMPTY) == (0, 0)


def test_a_call_without_used_units_is_timed_by_its_event_timestamps(server: Server) -> None:
    """IMS Rf carries no USU: the call lasts from START's to STOP's Event-Timestamp. 125 s at
    0.50 EUR/min 60/60 (rest of world) bills 180 s: 1.50."""
    sid = f"{HOST};2;ts"
    info = voice_info(SUB, "12125551234")
    exchange(server, acr(sid, START, 0, at=T0, info=info),
             acr(sid, INTERIM, 1, at=T0 + 60, info=info),
             acr(sid, STOP, 2, at=T0 + 125, info=info))
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"], rec["prefix"]) == (125, "1.50", "")


def test_event_record_is_rated_once(server: Server) -> None:
    """EVENT_RECORD (an SMS): one record of 0.05; the same record again (a retransmission on
    another path: new End-to-End id) is answered 2001 and not recorded twice (RFC 6733 §9.4)."""
    sid = f"{HOST};3;sms"
    req = acr(sid, EVENT, 0, context=SMS, at=T0, info=sms_info("447700900123"))
    answers = exchange(server, req, req)
    for aca in answers:
        check_aca(aca, req)
    (rec,) = rated(server, sid)
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"]) == ("sms", 1, "event",
                                                                        "0.05")


def test_duplicates_are_answered_without_a_second_record(server: Server) -> None:
    """Each repeated (Session-Id, Accounting-Record-Number) -- before and after STOP -- gets
    2001 with its own echo and adds nothing."""
    sid = f"{HOST};4;dup"
    start = acr(sid, START, 0, at=T0)
    i1 = acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60)
    stop = acr(sid, STOP, 2, used("CC-Time", 30), at=T0 + 90)
    reqs = [start, i1, start, i1, stop, stop, i1, start]
    for aca, req in zip(exchange(server, *reqs), reqs, strict=True):
        check_aca(aca, req)
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (90, "0.18")


def test_interims_out_of_order_are_all_counted(server: Server) -> None:
    """INTERIM 2 before INTERIM 1 (failover, RFC 6733 §9.4): both counted at STOP."""
    sid = f"{HOST};5;ooo"
    exchange(server, acr(sid, START, 0, at=T0),
             acr(sid, INTERIM, 2, used("CC-Time", 60), at=T0 + 120),
             acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60),
             acr(sid, STOP, 3, used("CC-Time", 30), at=T0 + 150))
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (150, "0.30")


def test_an_interim_arriving_after_its_stop_is_not_lost(server: Server) -> None:
    """INTERIM 2 delayed past STOP 3: answered 2001 and its 60 s recorded, priced so that the
    records of the call add up to the price of the whole call (150 s: 0.30); the same late
    INTERIM again adds nothing."""
    sid = f"{HOST};6;late"
    late = acr(sid, INTERIM, 2, used("CC-Time", 60), at=T0 + 120)
    reqs = [acr(sid, START, 0, at=T0), acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60),
            acr(sid, STOP, 3, used("CC-Time", 30), at=T0 + 150), late, late]
    for aca, req in zip(exchange(server, *reqs), reqs, strict=True):
        check_aca(aca, req)
    records = rated(server, sid)
    assert [r["usage"] for r in records] == [90, 60]
    assert total(records) == Decimal("0.30")
    assert records[1]["result"] == "late" and records[1]["request"] == "2"


def test_stop_or_interim_without_start_is_recorded(server: Server) -> None:
    """The START was lost (or went to another server): what arrives is still rated."""
    sid = f"{HOST};7;nostart"
    reqs = [acr(sid, STOP, 1, used("CC-Time", 90), at=T0 + 90)]
    for aca, req in zip(exchange(server, *reqs), reqs, strict=True):
        check_aca(aca, req)
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (90, "0.18")
    sid = f"{HOST};7;interim-first"
    exchange(server, acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60),
             acr(sid, STOP, 2, used("CC-Time", 30), at=T0 + 90))
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (90, "0.18")


@pytest.mark.parametrize(("drop", "rtype", "number", "rc", "failed"), [
    ((480,), None, 1, 5005, 480),   # no Accounting-Record-Type
    ((485,), INTERIM, None, 5005, 485),  # no Accounting-Record-Number
    ((), 7, 1, 5004, 480),          # no such Accounting-Record-Type (RFC 6733 §9.8.1)
])
def test_bad_records_get_the_rfc_answer_and_lose_nothing(
        server: Server, drop: tuple[int, ...], rtype: int | None, number: int | None, rc: int,
        failed: int) -> None:
    """5005 (missing) / 5004 (invalid value) in the ACA's own grammar (no E bit) with the
    failing AVP in Failed-AVP (facts A6); nothing recorded for it, and the session's good
    records before and after it are still rated."""
    sid = f"{HOST};9;bad-{rc}-{failed}"
    bad = acr(sid, rtype, number, used("CC-Time", 60), at=T0 + 60, drop=drop)
    start, stop = acr(sid, START, 0, at=T0), acr(sid, STOP, 2, used("CC-Time", 30), at=T0 + 90)
    a_start, a_bad, a_stop = exchange(server, start, bad, stop)
    check_aca(a_start, start)
    check_aca(a_stop, stop)
    assert a_bad.get("Result-Code") == rc and not a_bad.is_error
    assert a_bad.avps[0].name == "Session-Id" and a_bad.get("Session-Id") == sid
    fa: Any = a_bad.find("Failed-AVP")
    assert fa is not None and fa.value[0].code == failed
    if rtype is not None:
        assert a_bad.get("Accounting-Record-Type") == rtype
    if number is not None:
        assert a_bad.get("Accounting-Record-Number") == number
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (30, "0.12")  # 60/1: the first minute is whole


def test_a_stop_after_the_session_timed_out_is_not_lost(server: Server) -> None:
    """A session silent past its timeout is closed with the usage seen so far; its STOP
    arriving later adds the rest as a late record, not dropped as a duplicate."""
    sid = f"{HOST};11;timeout"
    exchange(server, acr(sid, START, 0, at=T0),
             acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60))
    service = server.running.charging.service
    assert server.call(service.supervise(time.time() + 8 * 86400)) == [sid]
    stop = acr(sid, STOP, 2, used("CC-Time", 30), at=T0 + 90)
    for aca in exchange(server, stop, stop):
        check_aca(aca, stop)
    records = rated(server, sid)
    assert [(r["usage"], r["result"]) for r in records] == [(60, "tcc_expired"), (30, "late")]
    assert total(records) == Decimal("0.18")


def test_a_call_is_rated_with_the_tariff_in_force_at_its_start(server: Server,
                                                              tmp_path: Path) -> None:
    """A tariff change while an Rf call is open (rates import + reload): the call keeps the
    tariff of its start, as Ro calls do (docs/charging.md) -- not the one in force at STOP."""
    engine = server.running.charging.engine
    text = (ROOT / "config" / "decks" / "retail.csv").read_text()
    new = tmp_path / "retail_v2.csv"
    new.write_text(text.replace("voice,41,Switzerland,0.12,60/1,0\n",
                                "voice,41,Switzerland,0.24,60/1,0\n"))
    sid = f"{HOST};10;tariff"
    now = time.time()
    exchange(server, acr(sid, START, 0, at=now - 5))
    import_csv(engine.store, str(new), deck="retail", currency="EUR",
               timezone=engine.calendar.timezone)
    status, out = post(server, "/api/rates/reload")
    assert status == 200, out
    time.sleep(1.05 - time.time() % 1)
    exchange(server, acr(sid, STOP, 1, used("CC-Time", 60), at=time.time()))
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"], rec["deck_version"]) == (60, "0.12", "1")


def test_octets_and_time_metered_data_by_rating_group(server: Server) -> None:
    """A data session: 5 MB on RG 1 at 0.01 EUR/MB = 0.05; rating group 200 is time-metered
    data ([ro.rating_groups], 0.02 EUR/min 60/60): 90 s bill 120 s = 0.04 -- not 0 (its
    CC-Time read as octets)."""
    sid = f"{HOST};8;data"
    info = data_info("internet")
    exchange(server, acr(sid, START, 0, context=DATA, at=T0, info=info),
             acr(sid, STOP, 1, used("CC-Total-Octets", 5_000_000, rg=1), context=DATA,
                 at=T0 + 90, info=info))
    (rec,) = rated(server, sid)
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"]) == (
        "data", 5_000_000, "octet", "0.05")
    sid = f"{HOST};8;data-time"
    exchange(server, acr(sid, START, 0, context=DATA, at=T0, info=info),
             acr(sid, STOP, 1, used("CC-Time", 90, rg=200), context=DATA, at=T0 + 90,
                 info=info))
    (rec,) = rated(server, sid)
    assert (rec["service"], rec["usage"], rec["unit"], rec["price"]) == (
        "data_time", 90, "s", "0.04")
    # both in one session: one record per service at STOP
    sid = f"{HOST};8;both"
    exchange(server, acr(sid, START, 0, context=DATA, at=T0, info=info),
             acr(sid, INTERIM, 1, used("CC-Total-Octets", 2_000_000, rg=1),
                 used("CC-Time", 60, rg=200), context=DATA, at=T0 + 60, info=info),
             acr(sid, STOP, 2, used("CC-Total-Octets", 3_000_000, rg=1),
                 used("CC-Time", 30, rg=200), context=DATA, at=T0 + 90, info=info))
    assert sorted((r["service"], r["usage"], r["price"]) for r in rated(server, sid)) == [
        ("data", 5_000_000, "0.05"), ("data_time", 90, "0.04")]


def test_rf_settings_are_its_own(tmp_path: Path) -> None:
    """[rf] deck and session_timeout apply to accounting sessions -- not [ro] deck and
    tcc_seconds: an Rf session silent longer than Tcc (1200 s) but less than the session
    timeout is still open, and its call is rated with the [rf] deck."""
    settings = e2e_settings(tmp_path)
    assert (settings.ro.tcc_seconds, settings.rf.session_timeout) == (1200, 7200)
    settings = dataclasses.replace(settings, rf=dataclasses.replace(settings.rf,
                                                                    deck="carrier_a_sell"))
    with serving(settings, tmp_path / "data") as server:
        sid = f"{HOST};12;rf-settings"
        service = server.running.charging.service
        t = time.time()
        exchange(server, acr(sid, START, 0, at=t))
        assert server.call(service.supervise(t + 1300)) == []  # past Tcc: still open
        exchange(server, acr(sid, STOP, 1, used("CC-Time", 60), at=t + 60))
        (rec,) = rated(server, sid)
        # carrier_a_sell: 4179 Switzerland Mobile 0.045 EUR/min, 60/1
        assert (rec["deck"], rec["prefix"], rec["price"], rec["result"]) == (
            "carrier_a_sell", "4179", "0.045", "ok")
        sid = f"{HOST};12;rf-timeout"
        exchange(server, acr(sid, START, 0, at=t))
        assert server.call(service.supervise(t + 7300)) == [sid]  # past the session timeout


def vsai(app: int, name: str = "Acct-Application-Id") -> Avp:
    return A("Vendor-Specific-Application-Id", [A("Vendor-Id", 10415), A(name, app)])


def with_apps(msg: Message, *apps: Avp) -> Message:
    """*msg* (built without its Acct-Application-Id) with the application AVPs *apps*."""
    return Message.request(271, 3, [*msg.avps, *apps], proxiable=True)


@pytest.mark.parametrize(("apps", "failed"), [
    ((A("Acct-Application-Id", 4),), ("Acct-Application-Id", 4)),
    ((A("Acct-Application-Id", 16777216),), ("Acct-Application-Id", 16777216)),
    ((vsai(4),), ("Vendor-Specific-Application-Id", ("Acct-Application-Id", 4))),
    ((A("Acct-Application-Id", 3), vsai(5)),
     ("Vendor-Specific-Application-Id", ("Acct-Application-Id", 5))),
    ((vsai(4, "Auth-Application-Id"),),
     ("Vendor-Specific-Application-Id", ("Auth-Application-Id", 4))),
])
def test_an_application_id_avp_other_than_the_header_is_5004(
        server: Server, apps: tuple[Avp, ...], failed: tuple[str, Any]) -> None:
    """The header's Application-ID (3) MUST equal the message's Application-Id AVPs (RFC 6733
    §3, facts A2): an ACR whose Acct-Application-Id (or Vendor-Specific-Application-Id's
    application id) says otherwise is answered 5004 DIAMETER_INVALID_AVP_VALUE in the ACA's
    grammar (no E bit), Failed-AVP carrying the offending AVP -- inside its Vendor-Specific-
    Application-Id when it is a member (§7.5) -- and our Acct-Application-Id 3; nothing is
    journaled for it, the session's good records are still rated."""
    sid = f"{HOST};12;app-{len(apps)}-{failed[0]}-{failed[1]}"
    bad = with_apps(acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60, drop=(259,)), *apps)
    start, stop = acr(sid, START, 0, at=T0), acr(sid, STOP, 2, used("CC-Time", 30), at=T0 + 90)
    a_start, a_bad, a_stop = exchange(server, start, bad, stop)
    check_aca(a_start, start)
    check_aca(a_stop, stop)
    assert a_bad.get("Result-Code") == 5004 and not a_bad.is_error
    assert a_bad.avps[0].name == "Session-Id" and a_bad.get("Session-Id") == sid
    assert (a_bad.get("Accounting-Record-Type"), a_bad.get("Accounting-Record-Number")) == (
        INTERIM, 1)
    assert a_bad.get("Acct-Application-Id") == 3
    fa: Any = a_bad.find("Failed-AVP")
    assert fa is not None and len(fa.value) == 1
    (got,) = fa.value
    name, value = failed
    assert got.name == name
    if isinstance(value, tuple):
        (member,) = got.value
        assert (member.name, member.value) == value
    else:
        assert got.value == value
    acct = [r["request"] for r in server.journal()
            if r.get("session") == sid and r["type"] == "acct"]
    assert acct == ["0", "2"]
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (30, "0.12")


def test_application_id_avps_equal_to_the_header_are_accepted(server: Server) -> None:
    """Acct-Application-Id 3, a Vendor-Specific-Application-Id naming 3, both, or neither
    (both are optional in the ACR grammar, RFC 6733 §9.7.1): answered 2001 and counted."""
    sid = f"{HOST};13;apps"
    reqs = [acr(sid, START, 0, at=T0),
            with_apps(acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60, drop=(259,)),
                      vsai(3)),
            acr(sid, INTERIM, 2, used("CC-Time", 60), vsai(3), at=T0 + 120),
            acr(sid, STOP, 3, used("CC-Time", 30), at=T0 + 150, drop=(259,))]
    for aca, req in zip(exchange(server, *reqs), reqs, strict=True):
        check_aca(aca, req)
    (rec,) = rated(server, sid)
    assert (rec["usage"], rec["price"]) == (150, "0.30")
