"""Charging sessions over a real socket against RFC 4006 §7 (server state machine, facts B5)
and the exactly-once rules (facts A9): what an audit of supervision, retransmits and holds
found handled wrongly. Every check compares the balance's own reserved amount with what the
session table says it holds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.request
from typing import Any

import pytest

from diameter.message import Message, decode_message
from icx.diameter_client import _HDR, ClientPeer, connect, mscc
from tests.e2e.conftest import Server
from tests.e2e.test_rar_asr_audit import HOST, SUB, AnsweringPeer, ccr, post

# balances, holds, journal records and answers: the same on every store
pytestmark = pytest.mark.stores

RSU = mscc(100, rsu=("CC-Time", 300))  # 300 s to Switzerland: 0.60 held


async def send(peer: ClientPeer, msg: Message, *, e2e: int | None = None,
               t_flag: bool = False) -> tuple[Message, int]:
    """Send *msg* with its own End-to-End id (a fresh one unless given) and, with *t_flag*,
    the T bit (RFC 6733 §3: a possible retransmission); return (answer, End-to-End id)."""
    body = b"".join(a.encode() for a in msg.avps)
    hbh, fresh = peer.next_ids()
    e2e = fresh if e2e is None else e2e
    flags = 0xC0 | (0x10 if t_flag else 0)
    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    peer.pending[hbh] = fut
    peer.write(_HDR.pack((1 << 24) | (20 + len(body)), (flags << 24) | msg.code, msg.app_id,
                         hbh, e2e) + body)
    return decode_message(await asyncio.wait_for(fut, 10)), e2e


def held(server: Server) -> tuple[int, int]:
    """(what the balance has reserved, what the open sessions say they hold), micro-units."""
    return server.balance(SUB)[1], server.call(_reserved_total(server))


async def _reserved_total(server: Server) -> int:
    return int(server.running.charging.service.sessions.reserved_total())


async def until_closed(server: Server) -> None:
    """Wait (10 s at most) until Tcc supervision has closed every session and given its holds
    back: on the Redis stores a hold goes back a store round trip after its session left the
    table (the release is awaited there), so an empty table alone is not the end of it."""
    service = server.running.charging.service
    deadline = time.monotonic() + 10
    while (len(service.sessions) or held(server)[0]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # Tcc 1 s, supervised every 50 ms


def test_a_new_grant_without_usage_replaces_the_hold(server: Server) -> None:
    """A CCR-U that asks for a new grant reporting no usage (what a client does after a RAR
    before it used any of its quota, facts D) got a second hold beside the first: the balance
    kept 0.60 more reserved per such update -- after the CCR-T too, until the holds' TTL (Tcc
    + 60 s). The new grant replaces the one held (RFC 4006 §5.1.2: the client's quota is the
    last one granted). A second INITIAL for the open session did the same -- it was taken as
    an UPDATE --; it is now refused and changes nothing (RFC 4006 §7 has no INITIAL in Open,
    an INITIAL is request 0, §8.2): 5004 with Failed-AVP CC-Request-Number, the session and its
    hold as they were."""

    async def main() -> list[Any]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        seen: list[Any] = []
        try:
            sid = f"{HOST};20;no-usu"
            for rtype, number in ((1, 0), (2, 1), (2, 2)):
                cca = await peer.request(ccr(sid, rtype, number, RSU))
                seen.append((cca.get("Result-Code"), held(server)))
            cca = await peer.request(ccr(sid, 3, 3, mscc(100, usu=("CC-Time", 60))))
            seen.append((cca.get("Result-Code"), held(server), server.balance(SUB)[0]))
            sid = f"{HOST};20;initial-again"
            for rtype, number in ((1, 0), (1, 1)):
                cca = await peer.request(ccr(sid, rtype, number, RSU))
                failed = cca.find("Failed-AVP")
                seen.append((cca.get("Result-Code"), cca.get("CC-Request-Type"),
                             cca.get("CC-Request-Number"),
                             None if failed is None else failed.get("CC-Request-Number"),
                             held(server)))
            cca = await peer.request(ccr(sid, 3, 1, mscc(100, usu=("CC-Time", 30))))
            seen.append((cca.get("Result-Code"), held(server), server.balance(SUB)[0]))
            return seen
        finally:
            await peer.close()

    assert asyncio.run(main()) == [
        (2001, (600_000, 600_000)), (2001, (600_000, 600_000)), (2001, (600_000, 600_000)),
        (2001, (0, 0), 50_000_000 - 120_000),  # 60 s at 0.12/min, nothing left held
        (2001, 1, 0, None, (600_000, 600_000)), (5004, 1, 1, 1, (600_000, 600_000)),
        (2001, (0, 0), 50_000_000 - 2 * 120_000)]  # 30 s costs the first 60 s (60/1)
    released = [r for r in server.journal()
                if r["op"] == "release" and r.get("reason") == "replaced"]
    assert [(r["session"], r["holds"][0]["amount"]) for r in released] == [
        (f"{HOST};20;no-usu", "-0.60"), (f"{HOST};20;no-usu", "-0.60")]


def test_a_retransmit_after_tcc_gets_its_answer_and_changes_nothing(
        quick_tcc_server: Server) -> None:
    """Tcc (1 s here) closes a silent session: holds back, a release record, and a new CCR for
    it gets 5002 (RFC 4006 §7: Tcc expired -> Idle). A retransmission of the session's last
    request (same Session-Id and CC-Request-Number, T flag, another End-to-End id: facts A9)
    must get the answer it got and change nothing. The server forgot that answer with the
    session: a retransmitted CCR-I opened the session again around a hold the Tcc release had
    given back (the reserve replayed by key; the session table then claimed 0.60 held that the
    balance no longer had), a retransmitted CCR-U got 5002 instead of its 2001."""
    server = quick_tcc_server
    service = server.running.charging.service
    only_i, with_u = f"{HOST};21;only-initial", f"{HOST};21;updated"
    update = ccr(with_u, 2, 1, mscc(100, rsu=("CC-Time", 300), usu=("CC-Time", 60)))

    async def main() -> list[Any]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        seen: list[Any] = []
        try:
            first_i, _ = await send(peer, ccr(only_i, 1, 0, RSU))
            await send(peer, ccr(with_u, 1, 0, RSU))
            first_u, _ = await send(peer, update)
            seen.append((first_i.get("Result-Code"), first_u.get("Result-Code"), held(server)))
            await until_closed(server)
            seen.append((len(service.sessions), held(server), server.balance(SUB)[0]))
            seen.append(await asyncio.get_running_loop().run_in_executor(None, _after_tcc,
                                                                          server))
            again_i, _ = await send(peer, ccr(only_i, 1, 0, RSU), t_flag=True)
            again_u, _ = await send(peer, update, t_flag=True)
            seen.append((again_i.encode()[20:] == first_i.encode()[20:],
                         again_u.encode()[20:] == first_u.encode()[20:],
                         len(service.sessions), held(server), server.balance(SUB)[0]))
            after, _ = await send(peer, ccr(with_u, 2, 2, mscc(100, rsu=("CC-Time", 300),
                                                                 usu=("CC-Time", 60))))
            seen.append((after.get("Result-Code"), held(server), server.balance(SUB)[0]))
            return seen
        finally:
            await peer.close()

    debited = 50_000_000 - 120_000  # the UPDATE's 60 s, once
    assert asyncio.run(main()) == [
        (2001, 2001, (1_200_000, 1_200_000)),
        (0, (0, 0), debited),
        ("49.88", "0.00", "49.88", ["icx_active_sessions 0", "icx_reserved_micros 0"]),
        (True, True, 0, (0, 0), debited),
        (5002, (0, 0), debited)]
    releases = [(r["session"], r["reason"]) for r in server.journal() if r["op"] == "release"]
    assert sorted(releases) == sorted([(with_u, "tcc_expired"), (only_i, "tcc_expired")])


def _after_tcc(server: Server) -> tuple[Any, ...]:
    """What the operator sees once Tcc closed the sessions: the balance (admin API) and the
    gauges (/metrics)."""
    with urllib.request.urlopen(f"{server.admin_url}/api/accounts/{SUB}", timeout=10) as r:
        bal = json.loads(r.read())["balances"][0]
    with urllib.request.urlopen(f"{server.admin_url}/metrics", timeout=10) as r:
        metrics = r.read().decode().splitlines()
    return (bal["amount"], bal["reserved"], bal["available"],
            [line for line in metrics if line.startswith(("icx_active_sessions ",
                                                          "icx_reserved_micros "))])


def test_a_retransmit_after_an_operator_kill_gets_its_answer(server: Server) -> None:
    """The same after an operator kill the client answered ASA 5002 (the session is not
    active there: released at once, facts D): the retransmitted CCR-I got no session back."""
    sid = f"{HOST};22;killed"

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        peer.rc = 5002  # type: ignore[attr-defined]
        try:
            first, _ = await send(peer, ccr(sid, 1, 0, RSU))
            status, out = await loop.run_in_executor(None, post, server,
                                                     f"/api/sessions/{sid}/kill")
            again, _ = await send(peer, ccr(sid, 1, 0, RSU), t_flag=True)
            return [status, out["asa_result_code"], again.encode()[20:] == first.encode()[20:],
                    server.running.charging.service.sessions.get(sid), held(server)]
        finally:
            await peer.close()

    assert asyncio.run(main()) == [200, 5002, True, None, (0, 0)]


async def _forgetful(service: Any) -> None:
    """A service that keeps one answer and no record of ended sessions: a Session-Id reused
    past ``[store] session_retention``, once the first session's answers left the cache."""
    service.config = dataclasses.replace(service.config, answer_cache_size=1,
                                         session_retention=0.0)


def test_every_hold_of_a_reused_session_id_is_released_by_tcc(quick_tcc_server: Server) -> None:
    """The release the server writes for a session it ends (Tcc, kill) was keyed by Session-Id
    and rating group only, so a second session under the same Session-Id -- a CCR-I
    retransmitted once its answer had left the bounded answer cache, or a client reusing ids
    -- had its Tcc release answered from the store's record of the first one: nothing
    released, 0.60 held with no session until the hold's TTL. The key names the hold.
    (Within ``[store] session_retention`` of the first session's end its Session-Id now gets
    5002 -- test_a_late_initial_of_an_ended_session_gets_5002 --: this is about a reuse past
    that window, so the server's record of ended sessions is switched off here.)"""
    server = quick_tcc_server
    service = server.running.charging.service
    sid = f"{HOST};23;reused"

    async def main() -> list[Any]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            await send(peer, ccr(sid, 1, 0, RSU))
            await until_closed(server)
            await send(peer, ccr(f"{HOST};23;other", 1, 0, RSU))  # its answer pushes ours out
            await until_closed(server)
            again, _ = await send(peer, ccr(sid, 1, 0, RSU))
            update, _ = await send(peer, ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 300),
                                                                usu=("CC-Time", 60))))
            await until_closed(server)
            return [again.get("Result-Code"), update.get("Result-Code"), len(service.sessions),
                    server.balance(SUB)]
        finally:
            await peer.close()

    server.call(_forgetful(service))
    assert asyncio.run(main()) == [2001, 2001, 0, (50_000_000 - 120_000, 0)]


def test_a_reused_session_ids_hold_at_another_mscc_position_is_released_by_tcc(
        quick_tcc_server: Server) -> None:
    """The same with the key the fix above gave the release (Session-Id, rating group, number
    of the request that placed the hold): a new session under the id whose same-numbered
    request asks for the rating group at another MSCC position places a new hold (its reserve
    is another op), and its Tcc release was answered from the store's record of the first
    session's release: nothing released. The release is keyed by the reserve that placed the
    hold. (A reuse past ``[store] session_retention``: the record of ended sessions is
    switched off here, as above.)"""
    server = quick_tcc_server
    service = server.running.charging.service
    sid = f"{HOST};24;reused"

    async def main() -> list[Any]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        seen: list[Any] = []
        try:
            # session 1: MSI alone, then RG 100 asked at MSCC position 1 (RG 7 asks nothing)
            first, _ = await send(peer, ccr(sid, 1, 0))
            update, _ = await send(peer, ccr(sid, 2, 1, mscc(7), RSU))
            seen.append((first.get("Result-Code"), update.get("Result-Code"), held(server)))
            await until_closed(server)
            gone, _ = await send(peer, ccr(f"{HOST};24;other", 2, 1, RSU))  # pushes ours out
            seen.append((gone.get("Result-Code"), held(server)))
            # session 2 under the same id: RG 100 asked at position 0 by request 1
            again, _ = await send(peer, ccr(sid, 1, 0))
            update, _ = await send(peer, ccr(sid, 2, 1, RSU))
            seen.append((again.get("Result-Code"), update.get("Result-Code"), held(server)))
            await until_closed(server)
            seen.append((len(service.sessions), server.balance(SUB)))
            return seen
        finally:
            await peer.close()

    server.call(_forgetful(service))
    assert asyncio.run(main()) == [
        (2001, 2001, (600_000, 600_000)), (5002, (0, 0)),
        (2001, 2001, (600_000, 600_000)), (0, (50_000_000, 0))]
    releases = [(r["session"], r["reason"]) for r in server.journal() if r["op"] == "release"]
    assert releases == [(sid, "tcc_expired"), (sid, "tcc_expired")]


def test_a_late_initial_of_an_ended_session_gets_5002(quick_tcc_server: Server) -> None:
    """A CCR-I retransmitted after Tcc closed its session AND after its answer left the
    bounded answer cache opened the session again: its reserve replayed by key (the store's
    record of the hold Tcc gave back), so the session table claimed 0.60 held that the
    balance no longer had, until that session closed too. The server remembers ended
    sessions ``[store] session_retention`` (300 s): within it such a CCR-I is a request of a
    session that no longer exists, 5002 (facts A6), and changes nothing."""
    server = quick_tcc_server
    service = server.running.charging.service
    sid = f"{HOST};25;late"

    async def small_cache() -> None:
        service.config = dataclasses.replace(service.config, answer_cache_size=1)

    async def main() -> list[Any]:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        seen: list[Any] = []
        try:
            first, _ = await send(peer, ccr(sid, 1, 0, RSU))
            seen.append((first.get("Result-Code"), held(server)))
            await until_closed(server)
            gone, _ = await send(peer, ccr(f"{HOST};25;other", 2, 1, RSU))  # pushes ours out
            seen.append((gone.get("Result-Code"), held(server)))
            for _ in range(2):
                late, _ = await send(peer, ccr(sid, 1, 0, RSU), t_flag=True)
                seen.append((late.get("Result-Code"), late.get("CC-Request-Type"),
                             len(service.sessions), held(server), server.balance(SUB)))
            return seen
        finally:
            await peer.close()

    server.call(small_cache())
    assert asyncio.run(main()) == [
        (2001, (600_000, 600_000)), (5002, (0, 0)),
        (5002, 1, 0, (0, 0), (50_000_000, 0)), (5002, 1, 0, (0, 0), (50_000_000, 0))]
    releases = [(r["session"], r["reason"]) for r in server.journal() if r["op"] == "release"]
    assert releases == [(sid, "tcc_expired")]
