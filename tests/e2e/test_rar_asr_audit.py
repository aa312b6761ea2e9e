"""Server-initiated RAR/ASR, supervision records and the operator CLI over a real socket,
checked against protocol-facts D (RAR/RAA, ASR/ASA) and RFC 4006 §5.1.2: edge cases an audit
found handled wrongly."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from diameter.message import Message, decode_message
from icx.cli import main as cli
from icx.diameter_client import A, ClientPeer, connect, mscc, voice_info
from tests.e2e.conftest import Server, e2e_settings, serving

SUB = "41790000007"  # 50.00 EUR in the e2e accounts
HOST = "rar.icx.test"


class AnsweringPeer(ClientPeer):
    """A client that answers RAR/ASR with ``rc`` and keeps every server request it got."""

    rc = 2001

    def _server_request(self, frame: bytes) -> None:
        msg = decode_message(frame)
        self.got: list[Message] = getattr(self, "got", [])
        self.got.append(msg)
        self.write(msg.answer([msg.find(263), A("Result-Code", self.rc),
                               A("Origin-Host", self.origin_host),
                               A("Origin-Realm", self.origin_realm)]).encode())


def ccr(sid: str, rtype: int, number: int, *units: Any) -> Message:
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", HOST), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", "32260@3gpp.org"), A("CC-Request-Type", rtype),
        A("CC-Request-Number", number),
        A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", SUB)]),
        A("Multiple-Services-Indicator", 1), *units, voice_info(SUB, "41791234567")],
        proxiable=True)


def post(server: Server, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        server.admin_url + path, method="POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:  # (aiohttp's own 500 page)
            return exc.code, {"error": text.decode(errors="replace")}


@pytest.mark.stores
def test_raa_unknown_session_ends_the_session(server: Server) -> None:
    """Facts D: RAA 5002 UNKNOWN_SESSION_ID means the session has gone at the client; the
    server ends it too (RFC 4006 §5.1.2: a failure detected in a session ends it and returns
    the reserved units) instead of keeping its hold until Tcc (20 min by default)."""
    sid = f"{HOST};1;raa5002"

    async def main() -> list[Message]:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        try:
            cca = await peer.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 300))))
            assert cca.get("Result-Code") == 2001 and server.balance(SUB) == (50_000_000, 600_000)
            status, out = await loop.run_in_executor(
                None, post, server, f"/api/accounts/{SUB}/topup", {"amount": "1.00"})
            assert status == 200 and out["reauth"] == {sid: 2001}
            peer.rc = 5002  # the client lost the session
            status, out = await loop.run_in_executor(
                None, post, server, f"/api/accounts/{SUB}/topup", {"amount": "1.00"})
            assert status == 200 and out["reauth"] == {sid: 5002}
            assert server.running.charging.service.sessions.get(sid) is None
            assert server.balance(SUB) == (52_000_000, 0)  # the hold is back
            cca = await peer.request(ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 300),
                                                        usu=("CC-Time", 60))))
            assert cca.get("Result-Code") == 5002
            return list(peer.got)
        finally:
            await peer.close()

    rars = asyncio.run(main())
    # both RARs: Ro, addressed to the session's client (facts D)
    for rar in rars:
        assert (rar.code, rar.app_id, rar.is_request, rar.is_proxiable) == (258, 4, True, True)
        assert rar.avps[0].code == 263 and rar.get("Session-Id") == sid
        assert (rar.get("Origin-Host"), rar.get("Origin-Realm")) == ("ocs.icx.local", "icx.local")
        assert (rar.get("Destination-Host"), rar.get("Destination-Realm")) == (HOST, "icx.test")
        assert rar.get("Auth-Application-Id") == 4 and rar.get("Re-Auth-Request-Type") == 0
    releases = [r for r in server.journal() if r.get("session") == sid and r["op"] == "release"]
    assert len(releases) == 1 and releases[0]["holds"][0]["amount"] == "-0.60"


@pytest.mark.stores
@pytest.mark.parametrize("how", ["tcc", "kill_grace", "asa_5002"])
def test_a_release_by_the_server_journals_why(server: Server, how: str) -> None:
    """The release record of a session the server ends itself says why (Tcc expiry, operator
    kill, ...): the service passes the reason, but it was written as ``result`` and the
    ledger's own ``result`` (the store status, "ok") replaced it, so the journal could not tell
    a Tcc expiry from a kill. It belongs in ``reason`` (docs/journal-schema.md)."""
    sid = f"{HOST};2;{how}"
    service = server.running.charging.service

    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        peer.rc = 5002 if how == "asa_5002" else 2001
        try:
            cca = await peer.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 300))))
            assert cca.get("Result-Code") == 2001
            if how == "tcc":
                assert server.call(service.supervise(time.time() + 1300)) == [sid]
            else:
                status, out = await loop.run_in_executor(
                    None, post, server, f"/api/sessions/{sid}/kill")
                assert status == 200 and out["asa_result_code"] == peer.rc
                if how == "kill_grace":  # ASA 2001 and no CCR-T within kill_grace_seconds
                    assert server.call(service.supervise(time.time() + 31)) == [sid]
            assert server.balance(SUB) == (50_000_000, 0)
            cca = await peer.request(ccr(sid, 3, 1, mscc(100, usu=("CC-Time", 60))))
            assert cca.get("Result-Code") == 5002  # nothing charged after the server ended it
        finally:
            await peer.close()

    asyncio.run(main())
    (rel,) = [r for r in server.journal() if r.get("session") == sid and r["op"] == "release"]
    assert rel["result"] == "ok"  # the store status (schema: result = OpStatus value)
    assert rel["reason"] == {"tcc": "tcc_expired", "kill_grace": "killed",
                             "asa_5002": "killed"}[how]


@pytest.mark.stores
def test_topup_of_more_than_a_balance_can_hold_is_refused(server: Server) -> None:
    """A top-up the store cannot represent is bad input (400 and a message, CLI exit 2), not
    an HTTP 500 from a ValueError deep in the store."""
    status, body = post(server, f"/api/accounts/{SUB}/topup", {"amount": "1e400"})
    assert status == 400 and "amount" in body["error"], body
    status, body = post(server, f"/api/accounts/{SUB}/topup", {"amount": "9007199255"})
    assert status == 400 and "amount" in body["error"], body
    res = CliRunner().invoke(cli, ["balance", "topup", SUB, "1e400", "--admin",
                                   server.admin_url])
    assert res.exit_code == 2 and "amount" in res.output, res.output
    assert server.balance(SUB) == (50_000_000, 0)


@pytest.mark.parametrize("url", ["nowhere", "http://[::1", "ftp//x"])
def test_cli_admin_url_that_is_no_url_is_a_clear_error(url: str) -> None:
    """`--admin` that is not an http(s) URL: one error line and a non-zero exit, never a
    Python traceback (urllib raises ValueError before any connection)."""
    res = CliRunner().invoke(cli, ["balance", "show", SUB, "--admin", url])
    assert res.exit_code == 2, (res.output, res.exception)
    assert isinstance(res.exception, SystemExit)
    assert "--admin" in res.output and url in res.output, res.output


def test_cli_topup_of_a_negative_amount_names_the_amount(server: Server) -> None:
    """`icx balance topup ID -5`: the amount is refused as an amount (click took "-5" for an
    unknown option and answered "No such option: -5")."""
    res = CliRunner().invoke(cli, ["balance", "topup", SUB, "-5", "--admin", server.admin_url])
    assert res.exit_code == 2
    assert "not a positive decimal amount: '-5'" in res.output, res.output
    assert server.balance(SUB) == (50_000_000, 0)


def _metrics(server: Server) -> str:
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_metrics_count_every_answered_request_by_result_code(server: Server) -> None:
    """icx_diameter_requests_total counts requests by command and Result-Code: also those the
    Diameter layer answers itself (a CCR missing Destination-Realm gets 5005 before it reaches
    the agent), not only the agent's; the active-session gauge follows CCR-I / CCR-T."""
    sid = f"{HOST};3;metrics"
    no_realm = ccr(f"{HOST};3;bad", 1, 0, mscc(100, rsu=("CC-Time", 60)))
    no_realm.avps = [a for a in no_realm.avps if a.code != 283]
    seen: list[str] = []

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            codes = [(await peer.request(no_realm)).get("Result-Code")]
            codes.append((await peer.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 60)))))
                         .get("Result-Code"))
            seen.append(await loop.run_in_executor(None, _metrics, server))
            codes.append((await peer.request(ccr(sid, 3, 1, mscc(100, usu=("CC-Time", 30)))))
                         .get("Result-Code"))
            seen.append(await loop.run_in_executor(None, _metrics, server))
            return codes
        finally:
            await peer.close()

    assert asyncio.run(main()) == [5005, 2001, 2001]
    during, after = seen
    assert "icx_active_sessions 1\n" in during and "icx_reserved_micros 120000\n" in during
    assert "icx_active_sessions 0\n" in after and "icx_reserved_micros 0\n" in after
    assert 'icx_diameter_requests_total{command="CCR",result_code="2001"} 2\n' in after
    assert 'icx_diameter_requests_total{command="CCR",result_code="5005"} 1\n' in after
    # the connection and protocol counters an engineer on call looks at first
    for line in ("icx_diameter_connections 1", "icx_diameter_peers_open 1",
                 "icx_diameter_requests_inflight 0", "icx_diameter_connections_total 1",
                 "icx_diameter_too_busy_total 0", "icx_diameter_duplicates_answered_total 0",
                 "# TYPE icx_diameter_connections_total counter"):
        assert line + "\n" in after, line


class SilentPeer(ClientPeer):
    """A client that never answers the server's RAR/ASR."""

    def _server_request(self, frame: bytes) -> None:
        self.got = [*getattr(self, "got", []), decode_message(frame)]


def test_a_silent_client_is_given_up_on_after_answer_timeout(tmp_path: Path) -> None:
    """``[diameter] answer_timeout_seconds`` bounds how long a RAR waits for its RAA, and so
    the admin call that sent it (it was a fixed 10 s: a top-up with reauth blocked that long
    per silent client)."""
    settings = e2e_settings(tmp_path)
    settings = dataclasses.replace(settings, diameter=dataclasses.replace(
        settings.diameter, answer_timeout_seconds=0.5))
    sid = f"{HOST};4;silent"
    with serving(settings, tmp_path / "data") as server:

        async def main() -> tuple[float, dict[str, Any], int]:
            loop = asyncio.get_running_loop()
            peer = await connect("127.0.0.1", server.port, origin_host=HOST)
            peer.__class__ = SilentPeer
            try:
                cca = await peer.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 300))))
                assert cca.get("Result-Code") == 2001
                t0 = time.monotonic()
                status, out = await loop.run_in_executor(
                    None, post, server, f"/api/accounts/{SUB}/topup", {"amount": "1.00"})
                assert status == 200
                return time.monotonic() - t0, out, len(peer.got)
            finally:
                await peer.close()

        took, out, rars = asyncio.run(main())
    assert rars == 1 and out["reauth"] == {sid: None}
    assert 0.5 <= took < 5.0
