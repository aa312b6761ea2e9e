"""Admin HTTP + CLI against the running server: /healthz, /metrics, balance show/topup (with a
RAR to the open session), sessions list/kill (ASR to the client; after ASA 2001 the session waits
for the client's CCR-T, which debits the usage and releases the rest -- protocol-facts D)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from diameter.message import Message
from icx.cli import main as cli
from icx.diameter_client import A, ClientPeer, connect, mscc, voice_info
from tests.e2e.conftest import Server


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode()


def _ccr_i(peer: ClientPeer, sid: str) -> Message:
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", peer.origin_host), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", "32260@3gpp.org"), A("CC-Request-Type", 1),
        A("CC-Request-Number", 0),
        A("Subscription-Id", [A("Subscription-Id-Type", 0),
                              A("Subscription-Id-Data", "41790000005")]),
        A("Multiple-Services-Indicator", 1), mscc(100, rsu=("CC-Time", 300)),
        voice_info("41790000005", "41791234567")], proxiable=True)


def _ccr_t(peer: ClientPeer, sid: str, used: int) -> Message:
    return Message.request(272, 4, [
        A("Session-Id", sid), A("Origin-Host", peer.origin_host), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
        A("Service-Context-Id", "32260@3gpp.org"), A("CC-Request-Type", 3),
        A("CC-Request-Number", 1),
        A("Subscription-Id", [A("Subscription-Id-Type", 0),
                              A("Subscription-Id-Data", "41790000005")]),
        A("Multiple-Services-Indicator", 1), mscc(100, usu=("CC-Time", used), reason=2),
        voice_info("41790000005", "41791234567")], proxiable=True)


def test_admin_api_and_cli(server: Server) -> None:
    runner = CliRunner()
    admin = ["--admin", server.admin_url]
    sid = "adm.icx.test;1;1"
    done = asyncio.Event()

    async def hold_session() -> dict:
        peer = await connect("127.0.0.1", server.port, origin_host="adm.icx.test")
        cca = await peer.request(_ccr_i(peer, sid))
        assert cca.get("Result-Code") == 2001
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, cli_steps)
        # After ASA 2001 the client ends its side with a CCR-T: its usage is debited.
        cca = await peer.request(_ccr_t(peer, sid, 90))
        assert cca.get("Result-Code") == 2001
        await loop.run_in_executor(None, after_ccr_t)
        await peer.close()
        done.set()
        return dict(peer.server_requests)

    seen: dict = {}

    def cli_steps() -> None:
        status, body = _get(server.admin_url + "/healthz")
        assert status == 200 and json.loads(body)["sessions"] == 1
        res = runner.invoke(cli, ["balance", "show", "41790000005", "--json", *admin])
        assert res.exit_code == 0, res.output
        view = json.loads(res.output)
        assert view["balances"][0] == {
            "id": "EUR", "kind": "money", "currency": "EUR", "amount": "50.00",
            "reserved": "0.60", "available": "49.40", "credit_limit": "0.00"}
        res = runner.invoke(cli, ["balance", "topup", "41790000005", "10.00", "--json", *admin])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["balances"][0]["amount"] == "60.00"
        assert out["reauth"] == {sid: 2001}  # RAR answered by the client
        res = runner.invoke(cli, ["sessions", "list", "--json", *admin])
        assert json.loads(res.output)["sessions"][0]["session_id"] == sid
        res = runner.invoke(cli, ["sessions", "kill", sid, "--json", *admin])
        assert res.exit_code == 0 and json.loads(res.output)["asa_result_code"] == 2001
        res = runner.invoke(cli, ["balance", "show", "41790000005", "--json", *admin])
        # the ASR is not a CCR-T: the hold stays until the client's CCR-T (or kill_grace)
        assert json.loads(res.output)["balances"][0]["reserved"] == "0.60"
        res = runner.invoke(cli, ["sessions", "list", "--json", *admin])
        assert json.loads(res.output)["sessions"][0]["killed"] is True

    def after_ccr_t() -> None:
        res = runner.invoke(cli, ["balance", "show", "41790000005", "--json", *admin])
        bal = json.loads(res.output)["balances"][0]
        assert (bal["amount"], bal["reserved"]) == ("59.82", "0.00")  # 90 s at 0.12/min
        status, metrics = _get(server.admin_url + "/metrics")
        assert 'icx_diameter_requests_total{command="CCR",result_code="2001"} 2' in metrics
        assert "icx_diameter_request_seconds_bucket" in metrics
        assert "icx_active_sessions 0" in metrics and "icx_journal_lag_bytes" in metrics
        assert "icx_snapshot_failures_total 0" in metrics
        assert "icx_snapshots_total " in metrics
        assert "icx_snapshot_fork_seconds " in metrics and "icx_snapshot_fork_seconds_max " in metrics
        # the serving loop's own health: its stalls and the collector's pauses
        assert 'icx_event_loop_lag_seconds_bucket{le="+Inf"} ' in metrics
        assert "icx_event_loop_lag_seconds_max " in metrics
        assert 'icx_gc_pause_seconds_total{generation="0"} ' in metrics
        assert "icx_gc_pause_seconds_max " in metrics
        # the disk under every answer: the journal's group commits (write + fdatasync)
        assert 'icx_journal_sync_seconds_bucket{le="+Inf"} ' in metrics
        assert "icx_journal_sync_seconds_count 0" not in metrics  # those CCRs were journaled
        assert "icx_journal_sync_seconds_max " in metrics
        # bad input -> exit 2
        assert runner.invoke(cli, ["balance", "topup", "41790000005", "abc", *admin]).exit_code == 2
        assert runner.invoke(cli, ["balance", "show", "nobody", *admin]).exit_code == 2

    seen = asyncio.run(hold_session())
    assert seen == {258: 1, 274: 1}


def _post(url: str, body: object) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.request.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_topup_refuses_json_float_amounts(server: Server) -> None:
    url = server.admin_url + "/api/accounts/41790000002/topup"
    opening = server.balance("41790000002")[0]
    for bad in (10.5, 0.1, 10.0, True, None, ["1"]):
        status, body = _post(url, {"amount": bad, "reauth": False})
        assert status == 400, (bad, body)
        assert "decimal string" in body["error"], body
    assert server.balance("41790000002")[0] == opening  # nothing was credited
    status, body = _post(url, {"amount": "10.50", "reauth": False})
    assert status == 200 and body["balances"][0]["amount"] == "60.50", body
    status, body = _post(url, {"amount": 2, "reauth": False})  # a whole number of major units
    assert status == 200 and body["balances"][0]["amount"] == "62.50", body
    assert server.balance("41790000002")[0] == opening + 12_500_000


def test_topup_refuses_what_it_would_misread(server: Server) -> None:
    """An exponent ("1e3": 1000 credited for a typo), a misspelt or non-string key (a retry
    credited again), a "reauth" that is no boolean ("no" read as true): 400, nothing moved."""
    url = server.admin_url + "/api/accounts/41790000002/topup"
    opening = server.balance("41790000002")[0]
    for body, says in [
        ({"amount": "1e3", "reauth": False}, "amount: not a plain decimal amount"),
        ({"amount": " 5 ", "reauth": False}, "amount: not a plain decimal amount"),
        ({"amount": "1.00", "idempotency_key": "pay-1"}, "unknown field 'idempotency_key'"),
        ({"amount": "1.00", "key": 5}, "key must be a JSON string, not JSON number"),
        ({"amount": "1.00", "reauth": "no"}, "reauth must be a JSON boolean, not JSON string"),
        ({"amount": "1.00", "balance": ["EUR"]}, "balance must be a JSON string"),
    ]:
        status, out = _post(url, body)
        assert status == 400 and says in out["error"], (body, out)
    assert server.balance("41790000002")[0] == opening
    for _ in range(2):  # the key makes a retry credit once
        status, out = _post(url, {"amount": "1.00", "key": "pay-1", "reauth": False})
        assert status == 200 and out["balances"][0]["amount"] == "51.00", out
    res = CliRunner().invoke(cli, ["balance", "topup", "41790000002", "1e3",
                                   "--admin", server.admin_url])
    assert res.exit_code == 2 and "not a plain decimal amount" in res.output, res.output
    assert server.balance("41790000002")[0] == opening + 1_000_000


def test_cli_sends_ids_as_one_path_segment(server: Server) -> None:
    """An id went into the URL as typed: "41790000002?x" (or "#2") topped up 41790000002, a
    space raised InvalidURL (a traceback), "%3A" reached the server as ":"."""
    admin = ["--admin", server.admin_url]
    opening = server.balance("41790000002")[0]
    for ident in ("41790000002?x", "41790000002#2", "4179 0000002", "41790000002%3A", "a/b"):
        res = CliRunner().invoke(cli, ["balance", "topup", ident, "1.00", *admin])
        assert res.exit_code == 2, (ident, res.output, res.exception)
        assert f"error: unknown account {ident!r}" in res.output, res.output
    assert server.balance("41790000002")[0] == opening
    res = CliRunner().invoke(cli, ["sessions", "kill", "a;b/c d?e", *admin])
    assert res.exit_code == 2 and "no open session 'a;b/c d?e'" in res.output, res.output
    res = CliRunner().invoke(cli, ["sessions", "list", "--account", "a&b c", "--json", *admin])
    assert res.exit_code == 0 and json.loads(res.output)["count"] == 0, res.output


def test_cli_against_a_server_that_does_not_answer_json(tmp_path: Path) -> None:
    """--admin pointing at some other web server: one line and exit 1, not a JSONDecodeError."""
    import functools
    import http.server
    import threading

    (tmp_path / "api" / "accounts").mkdir(parents=True)
    (tmp_path / "api" / "accounts" / "x").write_text("<html>not icx</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        res = CliRunner().invoke(cli, ["balance", "show", "x", "--admin", url])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert res.exit_code == 1, (res.output, res.exception)
    assert (f"error: {url}/api/accounts/x did not answer JSON: is --admin an icx admin API?\n"
            in res.output), res.output


def test_topup_key_of_a_different_top_up_is_a_conflict(server: Server) -> None:
    """The same key with another amount answered 200 (the balance unchanged): the caller was
    told its top-up went through when nothing was credited."""
    url = server.admin_url + "/api/accounts/41790000002/topup"
    status, out = _post(url, {"amount": "1.00", "key": "pay-7", "reauth": False})
    assert status == 200 and out["balances"][0]["amount"] == "51.00", out
    status, out = _post(url, {"amount": "1.00", "key": "pay-7", "reauth": False})
    assert status == 200 and out["balances"][0]["amount"] == "51.00", out  # a retry
    status, out = _post(url, {"amount": "5.00", "key": "pay-7", "reauth": False})
    assert status == 409, out
    assert out["error"] == ("key 'pay-7' was already used for another top-up (1.00 to "
                            "41790000002/EUR); nothing credited"), out
    res = CliRunner().invoke(cli, ["balance", "topup", "41790000002", "5.00", "--key", "pay-7",
                                   "--admin", server.admin_url])
    assert res.exit_code == 2 and "already used for another top-up" in res.output, res.output
    assert server.balance("41790000002")[0] == 51_000_000


def test_metrics_named_total_are_counters(server: Server) -> None:
    """promtool: "non-counter metrics should not have _total suffix" (icx_snapshots_total and
    icx_snapshot_failures_total were gauges); and no family is declared twice."""
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    types = [line.split()[2:] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len({name for name, _ in types}) == len(types)
    assert [name for name, kind in types if name.endswith("_total") and kind != "counter"] == []


def test_healthz_is_503_once_the_ledger_failed_closed(server: Server) -> None:
    """After a journal write failed the ledger refuses every money op until a restart, and
    /healthz still said ok: a supervisor probing it never restarted the server."""
    ledger = server.running.charging.ledger
    assert _get(server.admin_url + "/healthz")[0] == 200
    ledger._failed = OSError(28, "No space left on device")  # what a failed group commit sets
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(server.admin_url + "/healthz")
    finally:
        ledger._failed = None
    assert err.value.code == 503 and json.loads(err.value.read())["status"] == "failed"
