"""Ro sessions across a restart of a real server, over a real socket: a session that ended
(CCR-I, CCR-U, CCR-T answered) just before the server stopped is still an ended session
once it starts again, for the rest of ``[store] session_retention`` (charging/ended_recovery.py):
its CCR-I retransmitted after the restart (a client that never saw the CCA) is answered 5002
DIAMETER_UNKNOWN_SESSION_ID (RFC 6733 §7.1.5, facts A6/B5) and moves no money -- not a new
session opened and charged again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from diameter.message import Message
from icx.diameter_client import connect, mscc
from tests.e2e.conftest import e2e_settings, serving
from tests.e2e.test_rar_asr_audit import HOST, SUB, ccr


def send(port: int, *requests: Message) -> list[Message]:
    """Each request on its own End-to-End id, in order, on one connection."""
    async def main() -> list[Message]:
        peer = await connect("127.0.0.1", port, origin_host=HOST)
        try:
            return [await peer.request(m) for m in requests]
        finally:
            await peer.close()

    return asyncio.run(main())


def test_a_ccr_i_retransmitted_after_a_restart_is_refused(tmp_path: Path) -> None:
    settings, data = e2e_settings(tmp_path), tmp_path / "data"
    sid = f"{HOST};restart;1"
    initial = ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 60)))
    with serving(settings, data) as srv:
        answers = send(srv.port, initial,
                       ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
                       ccr(sid, 3, 2, mscc(100, usu=("CC-Time", 30))))
        assert [a.get("Result-Code") for a in answers] == [2001, 2001, 2001]
        after = srv.balance(SUB)
        assert after == (50_000_000 - 180_000, 0)  # 90 s at 0.12/min
    with serving(settings, data) as srv:
        assert srv.balance(SUB) == after
        late = send(srv.port, initial, initial)
        assert [(a.get("Result-Code"), a.get("CC-Request-Type"), a.get("CC-Request-Number"))
                for a in late] == [(5002, 1, 0), (5002, 1, 0)]
        assert srv.balance(SUB) == after
        service = srv.running.charging.service
        assert len(service.sessions) == 0
        holds = [r for r in srv.journal() if r.get("session") == sid and r["type"] == "hold"]
        assert len(holds) == 2  # the CCR-I's and the CCR-U's: none after the restart
