"""Invariant 3 under kill -9 through the Ro charging service's synchronous ledger path.

A real worker process (tests/charging/crash_service_worker.py: the `icx serve` charging stack
over the embedded store, requests decided with ``ChargingService.decide()`` started by
``coro.send(None)`` and answered from ``journal.call_when_durable``, as mediation/agent.py
does) is SIGKILLed at random (seeded) moments while many Ro sessions run, restarted (recovery)
with the unanswered requests retransmitted, and audited at the end:

1. every balance: recovered store amount == opening + Σ journal balance_effects;
2. every answered CCR-U/T's committed usage is journaled once, with the answered cost, and no
   (session, request number) commit is journaled twice; retransmits got the same answer;
3. `icx journal verify` exits 0;
4. no reservation outlives its TTL after the final recovery (which runs the expiry sweep).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from charging.journal import JournalReader
from charging.ledger.audit import idem_counts, journal_balances
from charging.money import parse_amount
from tests.charging.test_crash import ROOT, Worker, json_lines


class ServiceWorker(Worker):
    """One incarnation of the service worker (kill/acks as :class:`Worker`)."""

    def __init__(self, data: Path, seed: int) -> None:
        super().__init__(data, cmd=[sys.executable, "-m", "tests.charging.crash_service_worker",
                                    str(data), str(seed)], stdin=subprocess.DEVNULL)


class Client:
    """What the Ro clients saw: requests sent, answers received, retransmits to make."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sent: dict[str, dict[str, Any]] = {}  # key -> request
        self.acked: dict[str, dict[str, Any]] = {}  # key -> first answer
        self.answers = 0
        self.retransmits_compared = 0

    def absorb(self, lines: list[dict[str, Any]]) -> None:
        first_in_run: dict[str, dict[str, Any]] = {}
        for line in lines:
            if "sent" in line:
                o = line["sent"]
                self.sent.setdefault(f"ro:{o['sid']}:{o['n']}", o)
                continue
            if not line.get("ack"):
                continue
            self.answers += 1
            key = line["key"]
            self.acked.setdefault(key, line)
            same = {k: v for k, v in line.items() if k != "retx"}
            prev = first_in_run.setdefault(key, same)
            if prev is not same:
                # a retransmit to the same running server gets the same answer
                assert prev == same, (prev, same)
                self.retransmits_compared += 1

    def retries(self, k: int) -> list[dict[str, Any]]:
        unacked = [o for key, o in self.sent.items() if key not in self.acked]
        return self.rng.sample(unacked, min(k, len(unacked)))


def _check(data: Path, *later: str) -> tuple[dict[str, Any], bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.charging.crash_service_worker", str(data), "0",
         "--check", *later], cwd=ROOT, env=env, capture_output=True, check=True)
    return next(json_lines(out.stdout.splitlines())), out.stdout


def _verify(data: Path) -> None:
    from icx.cli import main as icx_main

    res = CliRunner().invoke(icx_main, ["journal", "verify", "--data-dir",
                                        str(data / "data")])
    assert res.exit_code == 0, res.output


def audit(data: Path, client: Client) -> dict[str, Any]:
    chk, stdout = _check(data)
    # build_charging logs "ledger_recovered expired=N ..." (structlog, on stdout)
    found = re.search(rb"ledger_recovered.*?expired=(\d+)", stdout)
    expired_at_check = int(found.group(1)) if found else None
    jdir = data / "data" / "journal"
    # (1) balance == opening + Σ balance_effects; never overdrawn; holds add up
    expected = journal_balances(jdir)
    assert {tuple(n.split("/")) for n in chk["state"]} == set(expected)
    for name, b in chk["state"].items():
        acct, bal = name.split("/")
        assert b["amount"] == expected[(acct, bal)], (name, b, expected[(acct, bal)])
        assert b["amount"] - b["reserved"] + b["credit_limit"] >= 0, (name, b)
        assert b["reserved"] == sum(r[0] for r in b["reservations"].values())
        # (4) the final recovery expired every reservation due
        for rid, (_amount, exp_us) in b["reservations"].items():
            assert exp_us > chk["before_us"], f"{name} reservation {rid} outlived its TTL"
    # (2) no idem key twice; one commit per (session, request number, slice)
    counts = idem_counts(jdir)
    dup = {k: c for k, c in counts.items() if c > 1 and not k.startswith("account:")}
    assert not dup, f"journaled twice: {dup}"
    commits: dict[str, list[dict[str, Any]]] = {}
    per_request: Counter[tuple[str, str]] = Counter()
    for _pos, rec in JournalReader(jdir).iter_from():
        idem = str(rec.get("idem", ""))
        if rec.get("type") == "rated" and idem.startswith("ro:"):
            per_request[(str(rec["session"]), str(rec["request"]))] += 1
            commits.setdefault(idem.rsplit(":", 2)[0], []).append(rec)
    twice = {k: c for k, c in per_request.items() if c > 1}
    assert not twice, f"usage of one request charged twice: {twice}"
    checked = 0
    for key, ack in client.acked.items():
        if ack["verb"] == "INITIAL" or ack["used"] is None:
            continue
        recs = commits.get(key, [])
        if ack["used_cost"] or (ack["outcome"] == "ok" and recs):
            assert len(recs) == 1, (key, ack, recs)
            rec = recs[0]
            assert int(rec["usage"]) == ack["used"], (key, ack, rec)
            moved = sum(parse_amount(e["amount"]) for e in rec["balance_effects"]
                        if e["account"] == ack["sub"])
            assert moved == -ack["used_cost"], (key, ack, rec)
            checked += 1
        # else: answered without a commit (a retransmit after a restart finds no session:
        # unknown_session). The unanswered original's commit may be journaled -- once (above).
    # (3) the journal verifies
    _verify(data)
    # (4') an hour later every hold is past its TTL (Tcc + 60 s): the recovery's expiry
    # sweep releases them all, journaled, and the balances still add up
    late, late_out = _check(data, "--later", "3600")
    expected = journal_balances(jdir)
    for name, b in late["state"].items():
        acct, bal = name.split("/")
        assert b["reservations"] == {} and b["reserved"] == 0, (name, b)
        assert b["amount"] == expected[(acct, bal)], (name, b, expected[(acct, bal)])
    _verify(data)
    found = re.search(rb"ledger_recovered.*?expired=(\d+)", late_out)
    outcomes = Counter(a["outcome"] for a in client.acked.values())
    return {"answered": len(client.acked), "answers": client.answers,
            "sent": len(client.sent), "commits_checked": checked,
            "retransmits_compared": client.retransmits_compared,
            "outcomes": dict(outcomes),
            "fui": sum(1 for a in client.acked.values() if a["final"]), "records": sum(counts.values()),
            "expired_at_check": expired_at_check,
            "expired_an_hour_later": int(found.group(1)) if found else None,
            "live_reservations": sum(len(b["reservations"]) for b in chk["state"].values())}


def crash_run(data: Path, kills: int, seed: int) -> dict[str, Any]:
    client = Client(seed)
    rng = random.Random(seed + 1)
    for i in range(kills):
        (data / "retries.json").write_text(json.dumps(client.retries(20)))
        w = ServiceWorker(data, seed * 1000 + i)
        time.sleep(rng.uniform(0.05, 0.8))
        w.kill()
        client.absorb(list(w.acks))
    stats = audit(data, client)
    stats.update(kills=kills, seed=seed)
    return stats


def test_crash_service_kill9_fast(tmp_path: Path) -> None:
    stats = crash_run(tmp_path, kills=4, seed=4321)
    print("service crash:", json.dumps(stats))
    assert stats["answered"] > 0 and stats["commits_checked"] > 0


@pytest.mark.slow
def test_crash_service_kill9_soak(tmp_path: Path) -> None:
    kills = int(os.environ.get("ICX_CRASH_KILLS", "60"))
    stats = crash_run(tmp_path, kills=kills, seed=int(os.environ.get("ICX_CRASH_SEED", "7")))
    print("service crash soak:", json.dumps(stats))
    assert stats["kills"] >= 50 and stats["commits_checked"] > 0
