"""Multi-service (MSCC) CCRs whose services fail, over a real socket: the command-level
Result-Code and what becomes of the session (RFC 4006 §5.1.2, §7, §8.16; protocol-facts B5).

The rule icx follows for every request type: when at least one MSCC of a request succeeds the
command succeeds (2001) and each MSCC carries its own Result-Code; when none does but another
rating group of the session still holds quota, the command still succeeds (failing it would
end the session and strand that quota's usage uncharged); otherwise the request was not
successfully processed, so the command carries the failure (the first MSCC's code:
RFC 4006 §5.1.2, a command-level failure takes precedence over the MSCC codes) -- an INITIAL
opens no session, an UPDATE debits the reported usage and ends the session, releasing what it
still holds (RFC 4006 §7 server table, facts B5 "UPDATE failed -> debit used units -> Idle"),
as a single-MSCC request that fails always did."""

from __future__ import annotations

from typing import Any

import pytest

from diameter.avp import Avp
from diameter.message import Message
from icx.diameter_client import A, mscc
from tests.e2e.conftest import Server
from tests.e2e.test_ro_audit import EMPTY, ccr_avps, exchange, topup

# balances, holds, journal records and answers: the same on every store
pytestmark = pytest.mark.stores

MSI = A("Multiple-Services-Indicator", 1)


def _ccr(sid: str, rtype: int, number: int, *extra: Avp, sub: str = EMPTY,
         context: str | None = None) -> Message:
    avps = ccr_avps(sid, rtype, number, sub, *extra)
    if context is not None:
        avps = [A("Service-Context-Id", context) if a.code == 461 else a for a in avps]
    return Message.request(272, 4, avps, proxiable=True)


def _msccs(cca: Message) -> list[tuple[Any, ...]]:
    """(Rating-Group, Result-Code, granted CC-Time or None) of each MSCC of *cca*."""
    out = []
    for m in cca.find_all("Multiple-Services-Credit-Control"):
        gsu = m.find("Granted-Service-Unit")
        out.append((m.get("Rating-Group"), m.get("Result-Code"),
                    gsu.get("CC-Time") if gsu is not None else None))
    return out


def _open(server: Server, sid: str) -> bool:
    return server.running.charging.service.sessions.get(sid) is not None


def test_update_whose_every_mscc_reaches_the_credit_limit_while_another_group_holds(
        server: Server) -> None:
    """Every MSCC of a CCR-U gets 4012 while a third rating group of the session still holds
    quota: the command succeeds (2001), each MSCC says 4012, and the session stays open so
    the third group's usage is charged when it is reported. (Failing the command would end the
    session and release that quota: its report would get 5002 and the usage go uncharged.)"""
    topup(server, EMPTY, "0.36")  # three 60 s grants at 0.12 EUR/min (41, 60/1)
    sid = "mscc;all-4012-other-holds"
    update = _ccr(sid, 2, 1, *(mscc(rg, rsu=("CC-Time", 60), usu=("CC-Time", 60))
                               for rg in (100, 101)))
    init, upd, again, later, term = exchange(
        server,
        _ccr(sid, 1, 0, MSI, *(mscc(rg, rsu=("CC-Time", 60)) for rg in (100, 101, 102))),
        update,
        update,  # the client resends it (same CC-Request-Number): same answer, charged once
        _ccr(sid, 2, 2, mscc(102, usu=("CC-Time", 30))),
        _ccr(sid, 3, 3, mscc(102, usu=("CC-Time", 15))))
    assert init.get("Result-Code") == 2001
    assert _msccs(init) == [(100, 2001, 60), (101, 2001, 60), (102, 2001, 60)]
    assert upd.get("Result-Code") == 2001
    assert upd.find("Failed-AVP") is None
    assert _msccs(upd) == [(100, 4012, None), (101, 4012, None)]
    assert again.get("Result-Code") == 2001 and _msccs(again) == _msccs(upd)
    # the session stayed open for RG 102, whose reports are charged
    assert later.get("Result-Code") == 2001 and _msccs(later) == [(102, 2001, None)]
    assert term.get("Result-Code") == 2001
    assert not _open(server, sid)
    # RG 102: 45 s used at 0.12 EUR/min (60/1) = 0.12 EUR for the first 60 s block
    assert server.balance(EMPTY) == (0, 0)


def test_update_whose_every_mscc_reaches_the_credit_limit_fails_and_ends_the_session(
        server: Server) -> None:
    """Every MSCC of a CCR-U gets 4012 and no other rating group holds anything: the request
    was not successfully processed -- 4012 at command level, the reported usage debited, the
    session ended (RFC 4006 §7); a later CCR-U / CCR-T gets 5002. (It was answered 2001 with
    the session kept open around nothing, until Tcc.)"""
    topup(server, EMPTY, "0.24")
    sid = "mscc;all-4012"
    update = _ccr(sid, 2, 1, *(mscc(rg, rsu=("CC-Time", 60), usu=("CC-Time", 60))
                               for rg in (100, 101)))
    init, upd, again, later = exchange(
        server,
        _ccr(sid, 1, 0, MSI, *(mscc(rg, rsu=("CC-Time", 60)) for rg in (100, 101))),
        update,
        update,
        _ccr(sid, 3, 2, mscc(100, usu=("CC-Time", 0))))
    assert init.get("Result-Code") == 2001
    assert upd.get("Result-Code") == 4012
    assert _msccs(upd) == [(100, 4012, None), (101, 4012, None)]
    assert again.get("Result-Code") == 4012 and _msccs(again) == _msccs(upd)
    assert not _open(server, sid)
    assert server.balance(EMPTY) == (0, 0)
    assert later.get("Result-Code") == 5002
    releases = [r for r in server.journal() if r.get("op") == "release"]
    assert [(r["session"], r["reason"]) for r in releases] == []


def test_single_mscc_update_reaching_the_credit_limit_keeps_the_session_of_other_groups(
        server: Server) -> None:
    """The same rule for a CCR-U with one MSCC: while another rating group holds quota, its
    4012 is per MSCC and the session stays open for that group's report."""
    topup(server, EMPTY, "0.24")
    sid = "mscc;one-4012-other-holds"
    init, upd, term = exchange(
        server,
        _ccr(sid, 1, 0, MSI, *(mscc(rg, rsu=("CC-Time", 60)) for rg in (100, 101))),
        _ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
        _ccr(sid, 3, 2, mscc(101, usu=("CC-Time", 60))))
    assert init.get("Result-Code") == 2001
    assert upd.get("Result-Code") == 2001 and _msccs(upd) == [(100, 4012, None)]
    assert term.get("Result-Code") == 2001
    assert server.balance(EMPTY) == (0, 0)


def test_update_whose_every_mscc_cannot_be_rated_keeps_the_other_groups_session(
        server: Server) -> None:
    """5031 for every MSCC of a CCR-U (an MMS session asking quota for two MMS rating groups
    its recipient has no tariff for) while its time-metered data group (RG 200) holds quota:
    2001 with 5031 in each MSCC, and the data usage is charged at the CCR-T."""
    sub = "41790000005"
    sid = "mscc;all-5031"
    mms = "32270@3gpp.org"
    init, upd, term = exchange(
        server,
        _ccr(sid, 1, 0, MSI, mscc(200, rsu=("CC-Time", 60)), sub=sub, context=mms),
        _ccr(sid, 2, 1, *(A("Multiple-Services-Credit-Control", [
            A("Requested-Service-Unit", [A("CC-Service-Specific-Units", 1)]),
            A("Rating-Group", rg)]) for rg in (1, 2)), sub=sub, context=mms),
        _ccr(sid, 3, 2, mscc(200, usu=("CC-Time", 60)), sub=sub, context=mms))
    assert init.get("Result-Code") == 2001 and _msccs(init) == [(200, 2001, 60)]
    assert upd.get("Result-Code") == 2001
    assert _msccs(upd) == [(1, 5031, None), (2, 5031, None)]
    assert term.get("Result-Code") == 2001
    assert server.balance(sub) == (49_980_000, 0)  # 60 s of data at 0.02 EUR/min


def test_update_whose_only_mscc_cannot_be_rated_fails_with_5031_and_ends_the_session(
        server: Server) -> None:
    """With nothing else held, 5031 goes to command level with Failed-AVP (RFC 4006 §9.2:
    required with DIAMETER_RATING_FAILED) and the session ends."""
    sub = "41790000006"
    sid = "mscc;all-5031-alone"
    mms = "32270@3gpp.org"
    init, upd, term = exchange(
        server,
        _ccr(sid, 1, 0, MSI, sub=sub, context=mms),
        _ccr(sid, 2, 1, *(A("Multiple-Services-Credit-Control", [
            A("Requested-Service-Unit", [A("CC-Service-Specific-Units", 1)]),
            A("Rating-Group", rg)]) for rg in (1, 2)), sub=sub, context=mms),
        _ccr(sid, 3, 2, sub=sub, context=mms))
    assert init.get("Result-Code") == 2001
    assert upd.get("Result-Code") == 5031
    assert _msccs(upd) == [(1, 5031, None), (2, 5031, None)]
    failed: Any = upd.find("Failed-AVP")
    assert failed is not None and failed.find("Multiple-Services-Credit-Control") is not None
    assert not _open(server, sid)
    assert server.balance(sub) == (50_000_000, 0)
    assert term.get("Result-Code") == 5002


def test_update_with_some_msccs_failing_still_succeeds_per_mscc(server: Server) -> None:
    """A partial failure stays as it was: 2001 at command level, each MSCC its own code
    (RFC 4006 §5.1.2: quotas have independent result codes), the session open."""
    topup(server, EMPTY, "0.36")
    sid = "mscc;partial"
    init, upd, term = exchange(
        server,
        _ccr(sid, 1, 0, MSI, *(mscc(rg, rsu=("CC-Time", 60)) for rg in (100, 101))),
        _ccr(sid, 2, 1, *(mscc(rg, rsu=("CC-Time", 60), usu=("CC-Time", 60))
                          for rg in (100, 101))),
        _ccr(sid, 3, 2, mscc(100, usu=("CC-Time", 60))))
    assert init.get("Result-Code") == 2001
    assert upd.get("Result-Code") == 2001
    assert _msccs(upd) == [(100, 2001, 60), (101, 4012, None)]
    assert term.get("Result-Code") == 2001
    assert server.balance(EMPTY) == (0, 0)


def test_initial_with_msi_and_no_mscc_opens_the_session_and_grants_nothing(
        server: Server) -> None:
    """RFC 4006 §5.2 / §8.16: with MSI=1 quota is asked per MSCC, by its RSU; a CCR-I with
    MSI=1 and no MSCC asks for none (a Gy client opening its session before any service is
    used). It got an MSCC with no Rating-Group / Service-Identifier -- a grant the client
    cannot attach to any service -- and 300 s held for it (4012 on an empty account). Now:
    2001 with no MSCC, nothing held, the session open; quota comes with the first CCR-U that
    asks for it. An MSI=1 CCR-U / CCR-T without MSCC likewise answers none."""
    sub = "41790000006"
    sid = "mscc;msi-only"
    init, upd, idle, term = exchange(
        server,
        _ccr(sid, 1, 0, MSI, sub=sub),
        _ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 60)), sub=sub),
        _ccr(sid, 2, 2, MSI, sub=sub),
        _ccr(sid, 3, 3, MSI, sub=sub))
    assert init.get("Result-Code") == 2001
    assert _msccs(init) == [] and init.find("Granted-Service-Unit") is None
    assert upd.get("Result-Code") == 2001 and _msccs(upd) == [(100, 2001, 60)]
    assert idle.get("Result-Code") == 2001 and _msccs(idle) == []
    assert term.get("Result-Code") == 2001 and _msccs(term) == []
    assert not _open(server, sid)
    assert server.balance(sub) == (50_000_000, 0)  # nothing used, the RG 100 hold released
    holds = [r for r in server.journal() if r.get("session") == sid and r.get("op") == "reserve"]
    assert len(holds) == 1  # only RG 100's

    # an empty account: nothing is asked yet, so nothing is refused yet
    sid = "mscc;msi-only-empty"
    init, upd = exchange(server, _ccr(sid, 1, 0, MSI),
                         _ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 60))))
    assert init.get("Result-Code") == 2001 and _msccs(init) == []
    assert upd.get("Result-Code") == 4012 and _msccs(upd) == [(100, 4012, None)]
    assert not _open(server, sid)
    assert server.balance(EMPTY) == (0, 0)


def test_command_level_units_are_answered_at_command_level_also_with_msi(
        server: Server) -> None:
    """MSI=1 says the client can take MSCCs; a request that still puts its RSU/USU at command
    level (no MSCC) names no rating group or service to answer per MSCC, so its grant goes at
    command level (GSU, Validity-Time), as the same session's CCR-U without MSI already got
    (RFC 4006 §5.1.2: only a server *using* the feature answers in MSCCs, per service id /
    rating group). It came back in an MSCC with neither -- for a session's CCR-I and for an
    event (also one with no RSU, charged its default single unit)."""
    sub = "41790000008"
    rsu = A("Requested-Service-Unit", [A("CC-Time", 60)])
    init, upd = exchange(server, _ccr("cmd;1", 1, 0, MSI, rsu, sub=sub),
                         _ccr("cmd;1", 2, 1, rsu, A("Used-Service-Unit", [A("CC-Time", 60)]),
                              sub=sub))
    for cca in (init, upd):
        assert cca.get("Result-Code") == 2001 and _msccs(cca) == []
        assert cca.find("Granted-Service-Unit").get("CC-Time") == 60
        assert cca.get("Validity-Time") == 600

    def event(sid: str, *extra: Avp) -> Message:
        return Message.request(272, 4, [
            A("Service-Context-Id", "32274@3gpp.org") if a.code == 461 else a
            for a in ccr_avps(sid, 4, 0, sub, A("Requested-Action", 0), MSI, *extra)
            if a.code != 873], proxiable=True)  # (no Service-Information: SMS "*" tariff)

    one, two = exchange(server, event("cmd;ev1"), event(
        "cmd;ev2", A("Requested-Service-Unit", [A("CC-Service-Specific-Units", 2)])))
    for cca, n in ((one, 1), (two, 2)):
        assert cca.get("Result-Code") == 2001 and _msccs(cca) == []
        assert cca.find("Granted-Service-Unit").get("CC-Service-Specific-Units") == n
    # 0.12 for the call's first minute, 3 SMS at 0.05; the second minute held
    assert server.balance(sub) == (50_000_000 - 120_000 - 150_000, 120_000)
