"""Server-initiated RAR/ASR, /metrics and the operator CLI over real sockets: what an audit
of the admin side found wrong (protocol-facts D for RAR/ASA, the Prometheus text format)."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from diameter.message import Message
from icx.cli import main as cli
from icx.diameter_client import A, connect, mscc
from tests.e2e.conftest import Server
from tests.e2e.test_rar_asr_audit import HOST, SUB, AnsweringPeer, ccr, post

_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def cli_output(res: Any) -> str:
    """A CliRunner result's output without the server thread's own log lines (it runs in
    this process, so its console logger writes into the same captured stdout)."""
    return "".join(line for line in res.output.splitlines(keepends=True)
                   if not _LOG_LINE.match(line))


@pytest.mark.stores
def test_rar_and_asr_reach_a_client_that_reconnected(server: Server) -> None:
    """Facts D: RAR/ASR go to the session's client. A client whose connection dropped and
    came back (same Origin-Host, a new connection) got neither until it sent another CCR: the
    agent still held the closed connection, the top-up reported no RAA and the kill -- no ASA
    -- released the hold at once while the client went on serving the user."""
    sid = f"{HOST};30;reconnected"

    async def main() -> tuple[list[Any], list[Message]]:
        loop = asyncio.get_running_loop()
        first = await connect("127.0.0.1", server.port, origin_host=HOST)
        cca = await first.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 300))))
        assert cca.get("Result-Code") == 2001
        await first.close()  # DPR/DPA, then the connection goes
        await first.closed
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        try:
            _, topped = await loop.run_in_executor(None, post, server,
                                                   f"/api/accounts/{SUB}/topup",
                                                   {"amount": "1.00"})
            _, killed = await loop.run_in_executor(None, post, server,
                                                   f"/api/sessions/{sid}/kill")
            return [topped["reauth"], killed["asa_result_code"], server.balance(SUB)], list(
                getattr(peer, "got", []))
        finally:
            await peer.close()

    seen, got = asyncio.run(main())
    # ASA 2001: the session waits for the client's CCR-T with its hold (facts D)
    assert seen == [{sid: 2001}, 2001, (51_000_000, 600_000)]
    assert [(m.code, m.get("Session-Id"), m.get("Destination-Host")) for m in got] == [
        (258, sid, HOST), (274, sid, HOST)]


@pytest.mark.stores
def test_kill_says_whether_the_hold_went_back(server: Server) -> None:
    """`icx sessions kill` printed "released=True" after ASA 2001, when the hold stays until
    the client's CCR-T (facts D; `kill_grace_seconds` bounds the wait): the operator was told
    the credit was back when it was not. It says what happened to the hold."""
    runner = CliRunner()
    admin = ["--admin", server.admin_url]
    sid_a, sid_b, sid_c = (f"{HOST};31;{rc}" for rc in (2001, 5012, "json"))
    outs: list[Any] = []

    def kill(sid: str, *args: str) -> None:
        res = runner.invoke(cli, ["sessions", "kill", sid, *args, *admin])
        outs.append((res.exit_code, cli_output(res), server.balance(SUB)[1]))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        peer.__class__ = AnsweringPeer
        try:
            for sid, rc, args in ((sid_a, 2001, ()), (sid_c, 2001, ("--json",)),
                                  (sid_b, 5012, ())):
                peer.rc = rc  # type: ignore[attr-defined]
                await peer.request(ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 300))))
                await loop.run_in_executor(None, kill, sid, *args)
        finally:
            await peer.close()

    asyncio.run(main())
    assert outs == [
        (0, f"{sid_a}: ASA 2001: the client ends the session; its hold stays until its CCR-T "
            "(released after 30 s without one)\n", 600_000),
        (0, f'{{"session_id": "{sid_c}", "asa_result_code": 2001, "released": false, '
            '"awaiting_ccr_t": true, "kill_grace_seconds": 30.0}\n', 1_200_000),
        (0, f"{sid_b}: ASA 5012: its hold is released\n", 1_200_000)]
    listed = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["sessions", "list", *admin])
    rows = {cells[0]: cells[2] for cells in (
        [c.strip() for c in line.strip("│ ").split("│")]
        for line in cli_output(listed).splitlines() if line.startswith("│"))}
    assert rows == {sid_a: "voice (killed)", sid_c: "voice (killed)"}, listed.output


def test_cli_against_a_web_server_that_is_not_icx(tmp_path: Path) -> None:
    """`--admin` pointing at some other web server that answers an error page: "error: File
    not found" and exit 2 -- the exit and wording of an unknown account or session -- for
    `sessions list`; "error: Unsupported method ('POST')" for a kill. One line that says the
    answer was no icx API's, exit 1 (the setup, not the input, is wrong)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # (its access log went to the output)
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        results = [CliRunner().invoke(cli, [*args, "--admin", url]) for args in (
            ["sessions", "list"], ["sessions", "kill", "x;1"], ["balance", "show", "x"])]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [(r.exit_code, r.output) for r in results] == [
        (1, f"error: {url}/api/sessions answered HTTP 404 (File not found), not JSON: is "
            "--admin an icx admin API?\n"),
        (1, f"error: {url}/api/sessions/x%3B1/kill answered HTTP 501 (Unsupported method "
            "('POST'))\n"),
        (1, f"error: {url}/api/accounts/x answered HTTP 404 (File not found), not JSON: is "
            "--admin an icx admin API?\n")]


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?\Z')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(?:,|\Z)')


def parse_exposition(text: str) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    """Check *text* against the Prometheus text format 0.0.4 rules and return {family:
    (type, [(sample name, labels, value)])}. Rules: HELP/TYPE at most once per family, TYPE
    before its samples, a family's samples together, names and label syntax, float values,
    counters/gauges named as declared, histograms as _bucket (cumulative, ending le="+Inf" =
    _count) / _sum / _count per label set, a final newline."""
    assert text.endswith("\n"), "no final newline"
    families: dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]] = {}
    helps: set[str] = set()
    done: set[str] = set()
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert _NAME.match(name) and name not in helps, line
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert _NAME.match(name) and name not in families, line
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            families[name] = (kind, [])
            continue
        assert line and not line.startswith("#"), f"stray line {line!r}"
        m = _SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        name, raw, value = m.group(1), m.group(2) or "", m.group(3)
        labels: dict[str, str] = {}
        pos = 0
        while pos < len(raw):
            lm = _LABEL.match(raw, pos)
            assert lm and lm.group(1) not in labels, f"bad labels in {line!r}"
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        family = next((f for f in (name, name.rsplit("_", 1)[0]) if f in families), None)
        assert family is not None, f"{name}: no TYPE before it"
        kind = families[family][0]
        assert name == family or (kind == "histogram" and name[len(family):] in (
            "_bucket", "_sum", "_count")), f"{name} in a {kind} {family}"
        if family != current:
            assert family not in done, f"{family}: samples not together"
            if current is not None:
                done.add(current)
            current = family
        families[family][1].append((name, labels, float(value)))
    for family, (kind, samples) in families.items():
        if kind != "histogram":
            continue
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for name, labels, value in samples:
            le = labels.pop("le", None) if name.endswith("_bucket") else None
            s = series.setdefault(tuple(sorted(labels.items())), {"buckets": []})
            if le is not None:
                s["buckets"].append((float(le), value))
            else:
                s[name[len(family):]] = value
        for key, s in series.items():
            bounds = [b for b, _ in s["buckets"]]
            counts = [c for _, c in s["buckets"]]
            assert bounds == sorted(bounds) and bounds[-1] == float("inf"), (family, key)
            assert counts == sorted(counts), (family, key, "buckets not cumulative")
            assert counts[-1] == s["_count"] and "_sum" in s, (family, key)
    return families


def _scrape(server: Server) -> tuple[str, str]:
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_metrics_content_type_names_the_format_version(server: Server) -> None:
    """The exposition format's Content-Type is ``text/plain; version=0.0.4`` (what a scraper
    reads to pick its parser); the version went in an ``X-Content-Format`` header nothing
    reads."""
    content_type, text = _scrape(server)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    parse_exposition(text)


@pytest.mark.stores
def test_metrics_count_what_was_sent_in_the_exposition_format(server: Server) -> None:
    """Nine CCRs whose answers are known: /metrics counts nine by Result-Code -- the one the
    Diameter layer answered from its duplicate cache (same Origin-Host and End-to-End id,
    facts A9) was missing, though answered 2001 like the retransmit with another End-to-End
    id, which was counted --; the gauges follow the session and the balance; the text keeps
    the Prometheus 0.0.4 rules."""
    from tests.e2e.test_session_audit import send

    sid = f"{HOST};32;metrics"
    rsu = mscc(100, rsu=("CC-Time", 300))
    sent: list[int] = []
    during: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            answer, e2e = await send(peer, ccr(sid, 1, 0, rsu))
            sent.append(answer.get("Result-Code"))
            for kw in ({"e2e": e2e, "t_flag": True}, {"t_flag": True}):  # two retransmits
                sent.append((await send(peer, ccr(sid, 1, 0, rsu), **kw))[0].get("Result-Code"))
            update = ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 300), usu=("CC-Time", 60)))
            sent.append((await send(peer, update))[0].get("Result-Code"))
            during.append(await loop.run_in_executor(None, _scrape, server))
            during.append(server.balance(SUB)[1])
            for msg in (ccr(f"{HOST};32;never-opened", 2, 1, rsu),           # 5002
                        ccr(f"{HOST};32;no-realm", 1, 0, rsu),                # 5005 (below)
                        ccr(sid, 3, 2, mscc(100, usu=("CC-Time", 60))),       # 2001
                        ccr(sid, 2, 3, rsu)):                                 # 5002: ended
                if "no-realm" in msg.get("Session-Id"):
                    msg.avps = [a for a in msg.avps if a.code != 283]
                sent.append((await send(peer, msg))[0].get("Result-Code"))
            sent.append((await send(peer, ccr(f"{HOST};32;other", 1, 0, rsu)))[0]
                        .get("Result-Code"))
        finally:
            await peer.close()

    asyncio.run(main())
    _, text = _scrape(server)
    assert sent == [2001, 2001, 2001, 2001, 5002, 5005, 2001, 5002, 2001]
    families = parse_exposition(text)
    requests = {(labels["command"], labels["result_code"]): value
                for _, labels, value in families["icx_diameter_requests_total"][1]}
    assert requests == {("CCR", "2001"): 6, ("CCR", "5002"): 2, ("CCR", "5005"): 1}
    hist = {name: value for name, labels, value in families["icx_diameter_request_seconds"][1]
            if labels.get("le") in (None, "+Inf")}
    # the latency of the requests the agent answered (not the duplicate, not the 5005)
    assert hist["icx_diameter_request_seconds_count"] == 7
    gauges = {f: samples[0][2] for f, (kind, samples) in families.items() if kind == "gauge"}
    assert (gauges["icx_active_sessions"], gauges["icx_reserved_micros"]) == (1, 600_000)
    assert families["icx_diameter_duplicates_answered_total"][1][0][2] == 1
    _, text_during = during[0]
    before = parse_exposition(text_during)
    assert before["icx_active_sessions"][1][0][2] == 1
    assert before["icx_reserved_micros"][1][0][2] == during[1] == 600_000


def test_sessions_list_and_kill_agree_about_an_offline_session(server: Server) -> None:
    """`icx sessions list` shows open Rf (offline) sessions -- account "None" -- and `icx
    sessions kill` of one said "no open session": the list says it is open, the kill that it
    does not exist. It is an accounting session: no credit is held, ASR/RAR are for online
    (Ro) sessions; the kill and the re-auth say so (exit 2), the list marks it."""
    sid = f"{HOST};33;rf"
    acr = Message.request(271, 3, [
        A("Session-Id", sid), A("Origin-Host", HOST), A("Origin-Realm", "icx.test"),
        A("Destination-Realm", "icx.local"), A("Accounting-Record-Type", 2),
        A("Accounting-Record-Number", 0), A("Acct-Application-Id", 3),
        A("Service-Context-Id", "32260@3gpp.org"),
        A("Subscription-Id", [A("Subscription-Id-Type", 0), A("Subscription-Id-Data", SUB)])],
        proxiable=True)

    async def main() -> int:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            return int((await peer.request(acr)).get("Result-Code"))
        finally:
            await peer.close()

    assert asyncio.run(main()) == 2001
    runner = CliRunner(env={"COLUMNS": "200"})
    admin = ["--admin", server.admin_url]
    listed = runner.invoke(cli, ["sessions", "list", *admin])
    row = next(line for line in cli_output(listed).splitlines() if sid in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:3] == [sid, "-", "voice (Rf)"]
    for verb in ("kill", "reauth"):
        res = runner.invoke(cli, ["sessions", verb, sid, *admin])
        assert (res.exit_code, cli_output(res)) == (
            2, f"error: {sid!r} is an offline (Rf) accounting session: it holds no credit and "
               "takes no ASR or RAR\n"), verb


def test_sessions_list_takes_an_identity_like_balance_show(server: Server) -> None:
    """`icx balance show IMSI` finds the account by any of its identities; `icx sessions list
    --account IMSI` listed nothing for the same account (it compared account ids only)."""
    account, imsi = "1234567810", "999991234567810"  # the e2e accounts: one account, two ids
    sid = f"{HOST};34;by-identity"
    msg = ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 60)))
    msg.avps = [A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                      A("Subscription-Id-Data", account)])
                if a.code == 443 else a for a in msg.avps]

    async def main() -> int:
        peer = await connect("127.0.0.1", server.port, origin_host=HOST)
        try:
            return int((await peer.request(msg)).get("Result-Code"))
        finally:
            await peer.close()

    assert asyncio.run(main()) == 2001
    runner = CliRunner()
    for ident in (account, imsi):
        res = runner.invoke(cli, ["sessions", "list", "--account", ident, "--json",
                                  "--admin", server.admin_url])
        listed = json.loads(cli_output(res))
        assert [s["session_id"] for s in listed["sessions"]] == [sid], (ident, res.output)
    res = runner.invoke(cli, ["balance", "show", imsi, "--json", "--admin", server.admin_url])
    assert json.loads(cli_output(res))["account"] == account
