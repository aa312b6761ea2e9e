"""Online sessions and their Session-Id over its whole life (RFC 4006 §7 server state machine,
facts B5; duplicates, facts A9): a Session-Id seen again -- reused by the client, or a late
request of a session that already ended -- must never leave a hold the session table does not
know, nor open a session around a hold already given back. The real stack (rating engine +
embedded store + journal + ledger), time driven by ``now``; both paths (compiled / pure)."""

from __future__ import annotations

import dataclasses

from charging.journal import JournalReader
from charging.requests import ChargingRequest, Outcome, ServiceKind, ServiceUnits, Verb
from icx.charging_app import ChargingApp
from tests.charging.test_service import T0, Runner, money, stack, voice

__all__ = ["stack"]  # (the fixture, imported)

SUB = "41790000001"


def ccr(sid: str, verb: Verb, n: int, *units: ServiceUnits) -> ChargingRequest:
    """A CCR with Multiple-Services-Indicator 1 and the MSCCs *units* (none: MSI alone)."""
    return ChargingRequest(verb=verb, session_id=sid, request_number=n,
                           service=ServiceKind.VOICE, subscriber=SUB,
                           destination="41791234567", units=units, multiple_services=True,
                           idem_key=f"ro:{sid}:{n}", peer_host="pgw.test")


def rg(group: int, requested: int | None = None) -> ServiceUnits:
    return ServiceUnits(rating_group=group, requested=requested)


async def forget_answers(app: ChargingApp, now: float) -> None:
    """Push every remembered answer out of the bounded answer cache (one entry left: the
    answer to a request of a session nobody opened)."""
    svc = app.service
    svc.config = dataclasses.replace(svc.config, answer_cache_size=1)
    r = await svc.handle(voice(Verb.UPDATE, 1, sid="nobody", used=1), now=now)
    assert r.outcome is Outcome.UNKNOWN_SESSION


async def releases(app: ChargingApp, sid: str) -> list[tuple[str, str]]:
    await app.journal.flush()
    reader = JournalReader(app.journal._writer.directory)
    return [(rec["reason"], rec["holds"][0]["amount"]) for _, rec in reader.iter_from(None)
            if rec["op"] == "release" and rec.get("session") == sid]


def test_the_release_of_a_reused_session_ids_hold_is_not_the_first_sessions(
        stack: Runner) -> None:
    """A hold released by the server (Tcc, operator kill) was keyed by Session-Id, rating
    group and the number of the request that placed it. A client reusing a Session-Id whose
    new session asks for the same rating group with a request of the same number -- at
    another MSCC position, so the reserve is a new op and places a new hold -- had that hold's
    release answered from the store's record of the first session's: nothing released, the
    hold kept (no session knows it) until its TTL. The release is keyed by the reserve op
    that placed the hold."""

    async def body(app: ChargingApp) -> None:
        svc = app.service
        sid = "reused"
        # session 1: MSI alone, then RG 1 asked at MSCC position 1 (RG 2 asks nothing)
        assert (await svc.handle(ccr(sid, Verb.INITIAL, 0), now=T0)).ok
        r = await svc.handle(ccr(sid, Verb.UPDATE, 1, rg(2), rg(1, 60)), now=T0 + 1)
        assert r.ok and await money(app, SUB) == (50_000_000, 120_000)  # 60 s at 0.12/min
        assert await svc.kill(sid, now=T0 + 2)  # no ASA 2001: released at once
        assert await money(app, SUB) == (50_000_000, 0)
        # the client reuses the id well after (past the ended sessions' window, its answers
        # gone from the cache): RG 1 asked at position 0 by request 1 again
        await forget_answers(app, T0 + 400)
        assert (await svc.handle(ccr(sid, Verb.INITIAL, 0), now=T0 + 401)).ok
        r = await svc.handle(ccr(sid, Verb.UPDATE, 1, rg(1, 60)), now=T0 + 402)
        assert r.ok and await money(app, SUB) == (50_000_000, 120_000)
        assert await svc.kill(sid, now=T0 + 403)
        assert (len(svc.sessions), await money(app, SUB)) == (0, (50_000_000, 0))
        assert await releases(app, sid) == [("killed", "-0.12"), ("killed", "-0.12")]

    stack(body)
