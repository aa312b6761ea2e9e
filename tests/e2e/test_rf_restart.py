"""Rf accounting sessions across restarts of a real server, over a real socket: an open call
(START + INTERIMs answered) survives a clean stop and a ``kill -9`` of the `icx serve`
process; the STOP after the restart is rated exactly as the same call without a restart;
ACRs retransmitted after a restart (answered or not) count once; and an ACA leaves only once
the ACR's record is durable (invariant 3: a journal whose group commit is held back holds the
ACA back)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from charging.journal import JournalReader
from diameter.message import Message
from icx.diameter_client import connect
from tests.e2e.conftest import ROOT, Server, e2e_settings, serving
from tests.e2e.test_rf_audit import HOST, INTERIM, START, STOP, acr, check_aca, used

T0 = 1_800_000_000
NOT_COMPARED = ("id", "ts", "idem", "session")


def send(port: int, *requests: Message) -> list[Message]:
    """Each ACR on its own End-to-End id, in order, on one connection (closed with DPR)."""
    async def main() -> list[Message]:
        peer = await connect("127.0.0.1", port, origin_host=HOST)
        try:
            return [await peer.request(m) for m in requests]
        finally:
            await peer.close()

    answers = asyncio.run(main())
    for aca, req in zip(answers, requests, strict=True):
        check_aca(aca, req)
    return answers


def call(sid: str) -> list[Message]:
    """A 135 s call to 41 (0.12 EUR/min, 60/1 -> 0.27): START, INTERIM 60, INTERIM 45, STOP 30."""
    return [acr(sid, START, 0, at=T0), acr(sid, INTERIM, 1, used("CC-Time", 60), at=T0 + 60),
            acr(sid, INTERIM, 2, used("CC-Time", 45), at=T0 + 105),
            acr(sid, STOP, 3, used("CC-Time", 30), at=T0 + 135)]


def journal(data: Path) -> list[dict[str, Any]]:
    return [r for _, r in JournalReader(data / "journal").iter_from(None)]


def rated(data: Path, sid: str) -> list[dict[str, Any]]:
    return [r for r in journal(data) if r["type"] == "rated" and r.get("session") == sid]


def check_same_call(data: Path, sid: str, ref: str) -> None:
    """*sid*'s call is ONE rated record of 135 s, 0.27 EUR, field for field *ref*'s."""
    (rec,) = rated(data, sid)
    (want,) = rated(data, ref)
    assert (rec["usage"], rec["price"], rec["result"], rec["request"]) == (135, "0.27", "ok",
                                                                          "3")
    assert {k: v for k, v in rec.items() if k not in NOT_COMPARED} == {
        k: v for k, v in want.items() if k not in NOT_COMPARED}


def test_an_open_call_survives_a_clean_restart(tmp_path: Path) -> None:
    """START + INTERIM answered, the server stopped and started again: the later INTERIM and
    STOP complete the call as if nothing happened; the START and INTERIM sent again after
    the restart (a CTF that did not see their ACAs) are duplicates."""
    settings, data = e2e_settings(tmp_path), tmp_path / "data"
    a, b = f"{HOST};r1;restart", f"{HOST};r1;ref"
    with serving(settings, data) as srv:
        send(srv.port, *call(b))
        send(srv.port, *call(a)[:2])
    with serving(settings, data) as srv:
        assert srv.running.charging.service.offline.get(a) is not None
        send(srv.port, *call(a)[:2], *call(a)[2:])
    with serving(settings, data) as srv:
        send(srv.port, call(a)[3])  # the STOP again, after another restart: nothing more
    check_same_call(data, a, b)


class IcxServe:
    """`icx serve` of this tree as a real process (demo config, ephemeral port, no admin)."""

    def __init__(self, tmp_path: Path, data: Path) -> None:
        cfg = tmp_path / "config"
        if not cfg.exists():
            cfg.mkdir()
            shutil.copytree(ROOT / "config" / "decks", cfg / "decks")
            shutil.copy(ROOT / "config" / "accounts.toml", cfg / "accounts.toml")
            text = (ROOT / "config" / "icx.toml").read_text()
            for old, new in (("listen_port = 3868", "listen_port = 0"),
                             ("[admin]\n", "[admin]\nenabled = false\n"),
                             ("huge_page_heap = true", "huge_page_heap = false"),
                             ('log_format = "auto"', 'log_format = "json"')):
                assert old in text, old
                text = text.replace(old, new, 1)
            (cfg / "icx.toml").write_text(text)
        self.stderr = open(tmp_path / "serve.stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from icx.cli import main; sys.exit(main())",
             "serve", "-c", str(cfg / "icx.toml"), "--data-dir", str(data)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr)
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("icx: serving Diameter on"):
                self.port = int(line.rsplit(":", 1)[1])
                return
        self.proc.wait(10)
        raise AssertionError(f"icx serve did not start: {self.proc.returncode}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL
        self.stderr.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0
        self.stderr.close()


def test_an_open_call_survives_kill9(tmp_path: Path) -> None:
    """The `icx serve` process SIGKILLed twice while a call is open (after START + INTERIM 1
    were answered; then after INTERIM 1 again -- a duplicate -- and INTERIM 2): the STOP to
    the third process is rated exactly as the same call made without any kill; the STOP
    again (a retransmission) writes nothing."""
    data = tmp_path / "data"
    a, b = f"{HOST};k9;crash", f"{HOST};k9;ref"
    srv = IcxServe(tmp_path, data)
    try:
        send(srv.port, *call(a)[:2])
    finally:
        srv.kill9()
    srv = IcxServe(tmp_path, data)
    try:
        send(srv.port, call(a)[1], call(a)[2])
    finally:
        srv.kill9()
    srv = IcxServe(tmp_path, data)
    try:
        send(srv.port, call(a)[3], call(a)[3], call(a)[0])
        send(srv.port, *call(b))
    finally:
        srv.stop()
    check_same_call(data, a, b)
    accts = sorted(int(r["request"]) for r in journal(data)
                   if r["type"] == "acct" and r["session"] == a)
    assert accts == [0, 1, 2, 3]  # each ACR journaled once, duplicates not at all


def _on_loop(srv: Server, fn: Any) -> Any:
    async def run() -> Any:
        return fn()

    return srv.call(run())


def test_an_aca_leaves_only_once_its_record_is_durable(tmp_path: Path) -> None:
    """The journal's group commit held back: the START's (then the INTERIM's) ACA does not
    leave; once the group is written and synced it does, and its acct record is durable."""
    with serving(e2e_settings(tmp_path), tmp_path / "data") as srv:
        jr = srv.running.charging.journal
        real = jr._dispatch
        held = {"on": False}

        def gated() -> None:
            if held["on"]:
                jr._scheduled = False  # (as _dispatch does) the release dispatches it
                return
            real()

        _on_loop(srv, lambda: setattr(jr, "_dispatch", gated))
        sid = f"{HOST};dur;1"

        async def main() -> None:
            peer = await connect("127.0.0.1", srv.port, origin_host=HOST)
            try:
                for req in call(sid)[:2]:
                    _on_loop(srv, lambda: held.update(on=True))
                    task = asyncio.ensure_future(peer.request(req))
                    await asyncio.sleep(0.5)
                    assert not task.done(), "ACA sent before its record was durable"
                    _on_loop(srv, lambda: (held.update(on=False), real()))
                    check_aca(await asyncio.wait_for(task, 10), req)
                    number = req.get("Accounting-Record-Number")
                    durable = _on_loop(srv, lambda: jr.durable)
                    found = [pos for pos, r in JournalReader(jr.directory).iter_from(None)
                             if r["type"] == "acct" and r["session"] == sid
                             and r["request"] == str(number)]
                    assert len(found) == 1 and found[0] <= durable
            finally:
                await peer.close()

        asyncio.run(main())
        _on_loop(srv, lambda: delattr(jr, "_dispatch"))


def test_settlement_and_reconciliation_see_one_rated_record_per_call(tmp_path: Path) -> None:
    """Rf calls rated with the demo partner's deck ([rf] deck = carrier_a_sell), one of them
    across a restart: settlement (compiled and pure) settles the journal -- acct records and
    all -- exactly as the same journal's rated records alone, and reconciliation's selection
    of our calls (compiled and pure) finds one CDR per call, of its whole duration."""
    import dataclasses
    import time

    from settlement.config import load_config
    from settlement.currency import Period
    from settlement.recon_source import journal_calls
    from settlement.run import ListSource, settle
    from settlement.source import JournalSource

    settings = e2e_settings(tmp_path)
    settings = dataclasses.replace(settings, rf=dataclasses.replace(settings.rf,
                                                                    deck="carrier_a_sell"))
    data = tmp_path / "data"
    now = int(time.time())
    a, b = f"{HOST};st;across", f"{HOST};st;plain"

    def now_call(sid: str) -> list[Message]:
        return [acr(sid, START, 0, at=now), acr(sid, INTERIM, 1, used("CC-Time", 60), at=now),
                acr(sid, INTERIM, 2, used("CC-Time", 45), at=now),
                acr(sid, STOP, 3, used("CC-Time", 30), at=now)]

    with serving(settings, data) as srv:
        send(srv.port, *now_call(b))
        send(srv.port, *now_call(a)[:3])
    with serving(settings, data) as srv:
        send(srv.port, *now_call(a)[2:])
    records = journal(data)
    assert {r["type"] for r in records if r.get("session") in (a, b)} == {"acct", "rated"}
    rated_only = [r for r in records if r["type"] != "acct"]
    cfg = load_config(ROOT / "config" / "partners.toml")
    t = time.gmtime(now)
    period = Period(t.tm_year, t.tm_mon)
    want = settle(cfg, ListSource(rated_only), data_dir=tmp_path / "s0", period=period,
                  partner="carrier_a")
    line = want.invoices["carrier_a"]
    assert not want.problems and line["totals"]
    from settlement import fastagg

    for fast in (False, True) if fastagg.available() else (False,):
        got = settle(cfg, JournalSource(data / "journal", fast=fast),
                     data_dir=tmp_path / f"s{int(fast) + 1}", period=period, partner="carrier_a")
        assert not got.problems
        assert got.invoices["carrier_a"] == line
        calls = journal_calls(data / "journal", "carrier_a", (now - 60) * 1_000_000,
                              (now + 60) * 1_000_000, deck_partners=cfg.deck_partners(),
                              fast=fast)
        assert sorted(c.duration for c in calls) == [135, 135], calls
