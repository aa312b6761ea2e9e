"""Invariant 3 for Rf under kill -9: a real worker process (tests/charging/crash_rf_worker.py,
the `icx serve` charging stack driven as mediation/agent.py drives ACRs) is SIGKILLed at
random (seeded) moments while many accounting sessions run. Each restart recovers, and the
driver -- a CTF -- retransmits every ACR not answered, repeats some answered ones, and goes on
with each session where it was; a last run finishes every session. Audited at the end:

1. every ACR answered (ACA 2001) has its ``acct`` record in the journal, and no ACR (Session-Id
   + Accounting-Record-Number) is journaled twice;
2. every session is ONE rated record: the usage of all its records (START/INTERIMs before a
   kill included) at the price of the whole call, never a duplicate counted twice, no late
   record, no idem key twice;
3. `icx journal verify` exits 0.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from charging.ledger.audit import idem_counts
from charging.money import format_amount
from tests.charging.crash_rf_worker import expected_price_micros, plan
from tests.charging.test_crash import Worker
from tests.charging.test_crash_service import _verify


class RfWorker(Worker):
    def __init__(self, data: Path, seed: int, *, finish: bool = False,
                 cumulative: bool = False) -> None:
        cmd = [sys.executable, "-m", "tests.charging.crash_rf_worker", str(data), str(seed)]
        cmd += ["--finish"] if finish else []
        cmd += ["--cumulative"] if cumulative else []
        super().__init__(data, cmd=cmd, stdin=subprocess.DEVNULL)

    def wait(self) -> None:
        assert self.proc.wait(120) == 0
        self._t.join(timeout=10)


class Ctf:
    """What the CTF sent and got answered; which ACR each session goes on with."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.acked: dict[str, int] = {}  # sid -> highest record number answered (-1: none)
        self.answers: set[tuple[str, int]] = set()
        self.repeats = 0

    def absorb(self, lines: list[dict[str, Any]]) -> None:
        for line in lines:
            if "sent" in line:
                self.acked.setdefault(line["sent"][0], -1)
            elif "ack" in line:
                sid, n = line["ack"]
                self.answers.add((sid, n))
                self.acked[sid] = max(self.acked.get(sid, -1), n)

    def resume(self) -> list[list[Any]]:
        """[sid, n]: each unfinished session from its first unanswered ACR (a retransmission:
        it may have been journaled before the kill) -- or, now and then, from the last one
        answered (a repeat, which must count once); some finished sessions repeat their
        STOP."""
        out = []
        for sid, n in self.acked.items():
            last = len(plan(sid)) - 1
            repeat = n >= 0 and self.rng.random() < 0.3
            if n < last:
                out.append([sid, n if repeat else n + 1])
                self.repeats += repeat
            elif repeat and self.rng.random() < 0.2:
                out.append([sid, last])
                self.repeats += 1
        return out


def audit(data: Path, ctf: Ctf) -> dict[str, Any]:
    jdir = data / "data" / "journal"
    acct: Counter[tuple[str, int]] = Counter()
    rated: dict[str, list[dict[str, Any]]] = {}
    for _pos, rec in JournalReader(jdir).iter_from():
        if rec["type"] == "acct":
            acct[(rec["session"], int(rec["request"]))] += 1
        elif rec["type"] == "rated" and str(rec.get("idem", "")).startswith("rf:"):
            rated.setdefault(rec["session"], []).append(rec)
    # (1) journal before answer, once per ACR
    missing = sorted(a for a in ctf.answers if a not in acct)
    assert not missing, f"answered but not journaled: {missing[:10]}"
    twice = {k: c for k, c in acct.items() if c > 1}
    assert not twice, f"an ACR journaled twice: {twice}"
    # (2) one rated record per call, the whole call's usage and price
    for sid, n in ctf.acked.items():
        p = plan(sid)
        assert n == len(p) - 1, (sid, n, p)
        recs = rated.get(sid, [])
        assert [(r["usage"], r["result"], r["request"]) for r in recs] == [
            (sum(p), "ok", str(len(p) - 1))], (sid, p, recs)
        assert recs[0]["price"] == format_amount(expected_price_micros(sid)), (sid, recs)
    assert set(rated) == set(ctf.acked)
    counts = idem_counts(jdir)
    dup = {k: c for k, c in counts.items() if c > 1 and not k.startswith("account:")}
    assert not dup, f"journaled twice: {dup}"
    # (3)
    _verify(data)
    return {"sessions": len(ctf.acked), "answers": len(ctf.answers),
            "acct_records": sum(acct.values()), "repeats": ctf.repeats}


def crash_run(data: Path, kills: int, seed: int, *, cumulative: bool = False) -> dict[str, Any]:
    ctf = Ctf(seed)
    rng = random.Random(seed + 1)
    for i in range(kills):
        (data / "resume.json").write_text(json.dumps(ctf.resume()))
        w = RfWorker(data, seed * 1000 + i, cumulative=cumulative)
        time.sleep(rng.uniform(0.05, 0.8))
        w.kill()
        ctf.absorb(list(w.acks))
    (data / "resume.json").write_text(json.dumps(ctf.resume()))
    w = RfWorker(data, seed * 1000 + kills, finish=True, cumulative=cumulative)
    w.wait()
    ctf.absorb(list(w.acks))
    stats = audit(data, ctf)
    stats.update(kills=kills, seed=seed, cumulative=cumulative)
    return stats


def test_crash_rf_kill9_fast(tmp_path: Path) -> None:
    stats = crash_run(tmp_path, kills=4, seed=2468)
    print("rf crash:", json.dumps(stats))
    assert stats["sessions"] > 20 and stats["repeats"] > 0


def test_crash_rf_kill9_fast_cumulative(tmp_path: Path) -> None:
    """The same with ``[rf] usage_reports = "cumulative"``: each record reports the call's
    running total; every call is still one record of its whole usage (sum of its parts),
    retransmissions and repeats across the kills counted once."""
    stats = crash_run(tmp_path, kills=4, seed=1357, cumulative=True)
    print("rf crash cumulative:", json.dumps(stats))
    assert stats["sessions"] > 20 and stats["repeats"] > 0


@pytest.mark.slow
def test_crash_rf_kill9_soak(tmp_path: Path) -> None:
    kills = int(os.environ.get("ICX_CRASH_KILLS", "60"))
    stats = crash_run(tmp_path, kills=kills, seed=int(os.environ.get("ICX_CRASH_SEED", "11")))
    print("rf crash soak:", json.dumps(stats))
    assert stats["kills"] >= 50 and stats["sessions"] > 100
