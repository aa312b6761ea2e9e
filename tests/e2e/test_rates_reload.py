"""A tariff change on a running server: `icx rates import` + `POST /api/rates/reload` (or
`icx rates reload`), then RAR to the changed deck's open sessions (RFC 4006 §5.5).

A call is rated by its total usage with the tariff in force at its start, so a call in
progress keeps its tariff to the end (re-pricing its past usage would charge the difference
again) and calls from the next second on get the new one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from charging.rating.importer import import_csv
from icx.cli import main as cli
from icx.diameter_client import connect, mscc
from tests.e2e.conftest import ROOT, Server
from tests.e2e.test_rar_asr_audit import HOST, SUB, AnsweringPeer, ccr, post


def _new_retail(tmp_path: Path) -> Path:
    """The demo retail deck with voice to 41 at 0.24 instead of 0.12 EUR/min (60/1)."""
    text = (ROOT / "config" / "decks" / "retail.csv").read_text()
    assert "voice,41,Switzerland,0.12,60/1,0\n" in text
    path = tmp_path / "retail_v2.csv"
    path.write_text(text.replace("voice,41,Switzerland,0.12,60/1,0\n",
                                 "voice,41,Switzerland,0.24,60/1,0\n"))
    return path


def _next_second() -> None:
    time.sleep(1.05 - time.time() % 1)


def test_a_tariff_change_reaches_new_calls_and_rars_the_open_ones(server: Server,
                                                                   tmp_path: Path) -> None:
    engine = server.running.charging.engine
    old, new = f"{HOST};9;old-call", f"{HOST};9;new-call"
    rsu, both = mscc(100, rsu=("CC-Time", 60)), mscc(100, rsu=("CC-Time", 60),
                                                     usu=("CC-Time", 60))

    async def main() -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        try:
            assert (await peer.request(ccr(old, 1, 0, rsu))).get("Result-Code") == 2001
            # the operator imports a new version into the server's data dir...
            await loop.run_in_executor(None, lambda: import_csv(
                engine.store, str(_new_retail(tmp_path)), deck="retail", currency="EUR",
                timezone=engine.calendar.timezone))
            # ...which the server does not use before it is told to
            status, out = await loop.run_in_executor(None, post, server, "/api/rates/reload")
            assert status == 200, out
            first = out
            _, again = await loop.run_in_executor(None, post, server, "/api/rates/reload")
            # the call in progress: RAR'd, and it keeps 0.12/min to its end
            cca = await peer.request(ccr(old, 2, 1, both))
            assert cca.get("Result-Code") == 2001
            cca = await peer.request(ccr(old, 3, 2, mscc(100, usu=("CC-Time", 60))))
            assert cca.get("Result-Code") == 2001
            assert server.balance(SUB) == (50_000_000 - 240_000, 0)
            await loop.run_in_executor(None, _next_second)
            # a call from the next second on: 0.24/min
            assert (await peer.request(ccr(new, 1, 0, rsu))).get("Result-Code") == 2001
            cca = await peer.request(ccr(new, 3, 1, mscc(100, usu=("CC-Time", 60))))
            assert cca.get("Result-Code") == 2001
            assert server.balance(SUB) == (50_000_000 - 240_000 - 240_000, 0)
            return list(getattr(peer, "got", [])), first, again
        finally:
            await peer.close()

    rars, first, again = asyncio.run(main())
    assert first == {"changed": {"retail": {"from": 1, "to": 2}}, "reauth": {old: 2001}}
    assert again == {"changed": {}}  # nothing new: no RAR either
    assert [(m.code, m.get("Session-Id"), m.get("Re-Auth-Request-Type")) for m in rars] == [
        (258, old, 0)]
    prices = {(r["session"], r["price"], r.get("deck_version"))
              for r in server.journal() if r.get("session") in (old, new) and r.get("usage")}
    assert prices == {(old, "0.12", "1"), (new, "0.24", "2")}, prices


def test_icx_rates_reload_says_what_changed(server: Server, tmp_path: Path) -> None:
    engine = server.running.charging.engine
    runner = CliRunner()
    admin = ["--admin", server.admin_url]
    out = runner.invoke(cli, ["rates", "reload", *admin])
    assert out.exit_code == 0 and out.output == "no deck changed\n", out.output
    import_csv(engine.store, str(_new_retail(tmp_path)), deck="retail", currency="EUR",
               timezone=engine.calendar.timezone)
    out = runner.invoke(cli, ["rates", "reload", "--no-reauth", *admin])
    assert out.exit_code == 0 and out.output == "retail: v1 -> v2\n", out.output
    status, body = post(server, "/api/rates/reload", {"reauth": "yes"})
    assert status == 400 and "reauth" in body["error"]
    out = runner.invoke(cli, ["rates", "reload", "--admin", "http://127.0.0.1:9"])
    assert out.exit_code == 1 and "cannot reach the admin API" in out.output
