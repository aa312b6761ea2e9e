"""Charging sessions over a real socket against RFC 4006 §7 (server state machine, facts B5)
and the exactly-once rules (facts A9): what an audit of supervision, retransmits and holds
found handled wrongly. Every check compares the balance's own reserved amount with what the
session table says it holds."""

from __future__ import annotations

import asyncio
from typing import Any

from diameter.message import Message, decode_message
from icx.diameter_client import _HDR, ClientPeer, connect, mscc
from tests.e2e.conftest import Server
from tests.e2e.test_rar_asr_audit import HOST, SUB, ccr

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


def test_a_new_grant_without_usage_replaces_the_hold(server: Server) -> None:
    """A CCR-U that asks for a new grant reporting no usage (what a client does after a RAR
    before it used any of its quota, facts D) got a second hold beside the first: the balance
    kept 0.60 more reserved per such update -- after the CCR-T too, until the holds' TTL (Tcc
    + 60 s). A second INITIAL for the open session did the same. The new grant replaces the
    one held (RFC 4006 §5.1.2: the client's quota is the last one granted)."""

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
                seen.append((cca.get("Result-Code"), held(server)))
            cca = await peer.request(ccr(sid, 3, 2, mscc(100, usu=("CC-Time", 30))))
            seen.append((cca.get("Result-Code"), held(server), server.balance(SUB)[0]))
            return seen
        finally:
            await peer.close()

    assert asyncio.run(main()) == [
        (2001, (600_000, 600_000)), (2001, (600_000, 600_000)), (2001, (600_000, 600_000)),
        (2001, (0, 0), 50_000_000 - 120_000),  # 60 s at 0.12/min, nothing left held
        (2001, (600_000, 600_000)), (2001, (600_000, 600_000)),
        (2001, (0, 0), 50_000_000 - 2 * 120_000)]  # 30 s costs the first 60 s (60/1)
    released = [r for r in server.journal()
                if r["op"] == "release" and r.get("reason") == "replaced"]
    assert [(r["session"], r["holds"][0]["amount"]) for r in released] == [
        (f"{HOST};20;no-usu", "-0.60"), (f"{HOST};20;no-usu", "-0.60"),
        (f"{HOST};20;initial-again", "-0.60")]
