"""Server-initiated RAR skips the sessions the operator killed (ASR answered 2001, the
session waits for its CCR-T: protocol-facts D) -- a top-up, a tariff change and `POST
/api/reauth` re-authorise the live sessions only (RFC 4006 §5.5: a RAR asks the client to
re-authorise; a killed session is being torn down)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from charging.rating.importer import import_csv
from diameter.message import Message
from icx.diameter_client import connect, mscc
from tests.e2e.conftest import Server
from tests.e2e.test_rar_asr_audit import HOST, SUB, AnsweringPeer, ccr, post
from tests.e2e.test_rates_reload import _new_retail


def test_rar_goes_to_the_live_sessions_not_the_killed_one(server: Server,
                                                         tmp_path: Path) -> None:
    """Before: the killed session got a RAR from the top-up, from the tariff change and from
    `POST /api/reauth` as if it were still being served."""
    engine = server.running.charging.engine
    killed, live = f"{HOST};40;killed", f"{HOST};40;live"
    outs: dict[str, Any] = {}

    async def main() -> list[Message]:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        try:
            for sid in (killed, live):
                cca = await peer.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 60))))
                assert cca.get("Result-Code") == 2001
            _, asa = await loop.run_in_executor(None, post, server,
                                                f"/api/sessions/{killed}/kill")
            assert asa["awaiting_ccr_t"] is True, asa
            _, outs["topup"] = await loop.run_in_executor(
                None, post, server, f"/api/accounts/{SUB}/topup", {"amount": "1.00"})
            await loop.run_in_executor(None, lambda: import_csv(
                engine.store, str(_new_retail(tmp_path)), deck="retail", currency="EUR",
                timezone=engine.calendar.timezone))
            _, outs["reload"] = await loop.run_in_executor(None, post, server,
                                                           "/api/rates/reload")
            _, outs["all"] = await loop.run_in_executor(None, post, server, "/api/reauth")
            # the killed session still ends as the client ends it: its CCR-T is charged
            cca = await peer.request(ccr(killed, 3, 1, mscc(100, usu=("CC-Time", 60))))
            assert cca.get("Result-Code") == 2001
            return list(getattr(peer, "got", []))
        finally:
            await peer.close()

    got = asyncio.run(main())
    assert outs["topup"]["reauth"] == {live: 2001}, outs
    assert outs["reload"]["reauth"] == {live: 2001}, outs
    assert outs["all"] == {"sent": 1, "results": {live: 2001}}, outs
    assert [(m.code, m.get("Session-Id")) for m in got] == [
        (274, killed), (258, live), (258, live), (258, live)]
    # 1.00 topped up, 0.12 for the killed call's minute; the live call's 0.12 still held
    assert server.balance(SUB) == (50_880_000, 120_000)
