"""Invariant 3 under kill -9: a real worker process (ledger + embedded store + journal) is
SIGKILLed at random moments under concurrent load, restarted, and audited.

After every run: for each balance, the recovered store amount == opening + Σ journal
balance_effects; every acknowledged op is in the journal exactly once with the acknowledged
effects; no idem key appears twice; no reservation outlives its TTL; no balance passes its
credit limit; `icx journal verify` exits 0.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from charging.journal import JournalReader
from charging.ledger.audit import AckedOp, audit_acked, idem_counts, journal_balances
from charging.store import memory  # noqa: F401  (a missing embedded store is a failure, not a skip)

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = [f"acct{i}" for i in range(8)]


def worker_cmd(data: Path, redis_url: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "tests.charging.crash_worker", str(data)]
    return cmd + ["--redis", redis_url] if redis_url else cmd


def json_lines(stream: Any) -> Any:
    """A worker's JSON lines, in order; other output (structlog's start-up lines) is skipped."""
    for raw in stream:
        if raw.startswith(b"{"):
            yield json.loads(raw)


class Worker:
    """One incarnation of a crash worker: started, read until its ``ready`` line, then its
    acknowledgement lines collected by a thread until :meth:`kill`. ``cmd``/``stdin``: another
    worker module (default: tests.charging.crash_worker, fed ops on stdin)."""

    def __init__(self, data: Path, redis_url: str | None = None, *,
                 cmd: list[str] | None = None, stdin: int = subprocess.PIPE) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            cmd or worker_cmd(data, redis_url),
            stdin=stdin, stdout=subprocess.PIPE, cwd=ROOT, env=env, bufsize=0)
        assert self.proc.stdout is not None
        self._it = json_lines(self.proc.stdout)
        try:
            ready = next(self._it)
            assert ready.get("ready"), ready
        except BaseException:  # a worker that failed to start must not outlive the test
            self.proc.kill()
            self.proc.wait()
            raise
        self.ready = ready
        self.acks: list[dict[str, Any]] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        try:
            for line in self._it:
                self.acks.append(line)
        except json.JSONDecodeError:
            pass  # a line cut by the kill: never an acknowledgement (acks are whole lines)

    def send(self, ops: list[dict[str, Any]]) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"".join(json.dumps(o).encode() + b"\n" for o in ops))
            return True
        except (BrokenPipeError, OSError):
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._t.join(timeout=10)


class Driver:
    """Generates concurrent money ops; retries some unacknowledged ones after each restart."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.open_res: list[tuple[str, str]] = []  # (account, rid) acked reservations
        self.sent: dict[str, dict[str, Any]] = {}  # key -> op
        self.acked: dict[str, dict[str, Any]] = {}  # key -> ack

    def op(self) -> dict[str, Any]:
        r = self.rng
        self.n += 1
        n = self.n
        acct = r.choice(ACCOUNTS)
        roll = r.random()
        if roll < 0.35:
            o = {"op": "reserve", "account": acct, "rid": f"s{n}",
                 "amount": r.randint(1, 3_000_000), "ttl": r.choice([0.2, 0.5, 2.0, 30.0])}
        elif roll < 0.6 and self.open_res:
            acct, rid = self.open_res.pop(r.randrange(len(self.open_res)))
            o = {"op": "commit", "account": acct, "rid": rid, "amount": r.randint(0, 2_000_000)}
        elif roll < 0.65 and self.open_res:
            acct, rid = self.open_res.pop(r.randrange(len(self.open_res)))
            o = {"op": "release", "account": acct, "rid": rid}
        elif roll < 0.9:
            o = {"op": "debit", "account": acct, "amount": r.randint(1, 1_000_000)}
        else:
            o = {"op": "topup", "account": acct, "amount": r.randint(1, 5_000_000)}
        o["n"] = n
        o["key"] = f"k{n}"
        self.sent[o["key"]] = o
        return o

    def absorb(self, acks: list[dict[str, Any]]) -> None:
        for a in acks:
            if "key" not in a:
                continue
            first = self.acked.setdefault(a["key"], a)
            # exactly-once: a retry of an acked op returns the same answer
            assert (first["status"], first["granted"], first["effects"], first["holds"]) == (
                a["status"], a["granted"], a["effects"], a["holds"]), (first, a)
            op = self.sent[a["key"]]
            if op["op"] == "reserve" and a["status"] == "ok" and not a["replayed"]:
                self.open_res.append((op["account"], op["rid"]))

    def retries(self, k: int) -> list[dict[str, Any]]:
        unacked = [o for key, o in self.sent.items() if key not in self.acked]
        return self.rng.sample(unacked, min(k, len(unacked)))


def audit(data: Path, driver: Driver, redis_url: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(worker_cmd(data, redis_url) + ["--check"], cwd=ROOT, env=env,
                         capture_output=True, check=True)
    chk = json.loads(out.stdout)
    jdir = data / "journal"
    expected = journal_balances(jdir)
    for name, b in chk["state"].items():
        acct, bal = name.split("/")
        assert b["amount"] == expected[(acct, bal)], (name, b, expected[(acct, bal)])
        assert b["amount"] - b["reserved"] + b["credit_limit"] >= 0, (name, b)  # no overdraw
        assert b["reserved"] == sum(r[0] for r in b["reservations"].values())
        for rid, (_amount, exp_us) in b["reservations"].items():
            assert exp_us > chk["before_us"], f"{name} reservation {rid} outlived its TTL"
    counts = idem_counts(jdir)
    # account records may repeat identically (journaled before the store creates the account)
    dup = {k: c for k, c in counts.items() if c > 1 and not k.startswith("account:")}
    assert not dup, f"journaled twice: {dup}"
    by_key = {r["idem"]: r for _, r in JournalReader(jdir).iter_from()}
    # every acknowledged op journaled once with the acknowledged amounts, balances, currency
    acked = {key: AckedOp([tuple(e) for e in ack["effects"]], [tuple(h) for h in ack["holds"]])
             for key, ack in driver.acked.items()}
    problems = audit_acked(jdir, acked)
    assert not problems, problems[:20]
    moved = sum(1 for ack in driver.acked.values() if ack["effects"] or ack["holds"])
    from icx.cli import main as icx_main

    res = CliRunner().invoke(icx_main, ["journal", "verify", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    return {"acked": len(driver.acked), "moved": moved, "records": len(by_key),
            "expired_at_check": chk["expired"],
            "pending_journaled_at_check": chk["pending_journaled"]}


def crash_run(data: Path, kills: int, seed: int, redis_url: str | None = None
              ) -> dict[str, Any]:
    driver = Driver(seed)
    rng = random.Random(seed + 1)
    replayed_total = 0
    for _ in range(kills):
        w = Worker(data, redis_url)
        replayed_total += w.ready.get("replayed", 0) + w.ready.get("pending_journaled", 0)
        w.send(driver.retries(20))
        # a cluster client opens a connection per concurrent command at first: give it longer
        # and slow down the offered load so that ops complete, not only queue
        cluster = bool(redis_url and redis_url.startswith("cluster:"))
        window = (0.3, 1.5) if cluster else (0.05, 0.6)
        burst, pause = ((1, 6), 0.02) if cluster else ((5, 60), 0.01)
        deadline = time.monotonic() + rng.uniform(*window)
        while time.monotonic() < deadline:
            if not w.send([driver.op() for _ in range(rng.randint(*burst))]):
                break
            time.sleep(rng.uniform(0, pause))
        w.kill()
        driver.absorb(list(w.acks))
    stats = audit(data, driver, redis_url)
    stats.update(kills=kills, ops_sent=len(driver.sent), replayed_on_start=replayed_total)
    return stats


def _store(request: pytest.FixtureRequest, kind: str) -> str | None:
    """None for the embedded store; a flushed private Redis (or Redis Cluster) otherwise."""
    import redis

    if kind == "embedded":
        return None
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        r = redis.Redis.from_url(url)
        r.flushall()
        r.close()
        return url
    nodes = request.getfixturevalue("redis_cluster_nodes")
    for host, port in nodes:
        r = redis.Redis(host=host, port=port)
        r.flushall()
        r.close()
    return "cluster:" + ",".join(f"{h}:{p}" for h, p in nodes)


@pytest.fixture(params=["embedded", "redis"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    return _store(request, request.param)


@pytest.fixture(params=["embedded", "redis", "redis-cluster"])
def soak_store_url(request: pytest.FixtureRequest) -> str | None:
    return _store(request, request.param)


def test_crash_kill9_fast(tmp_path: Path, store_url: str | None) -> None:
    stats = crash_run(tmp_path, kills=4, seed=1234, redis_url=store_url)
    assert stats["acked"] > 0 and stats["moved"] > 0


@pytest.mark.slow
def test_crash_kill9_soak(tmp_path: Path, soak_store_url: str | None) -> None:
    kills = int(os.environ.get("ICX_CRASH_KILLS", "60"))
    stats = crash_run(tmp_path, kills=kills, seed=int(os.environ.get("ICX_CRASH_SEED", "7")),
                      redis_url=soak_store_url)
    store = ("embedded" if soak_store_url is None
             else "redis-cluster" if soak_store_url.startswith("cluster:") else "redis")
    print("crash soak:", json.dumps({"store": store, **stats}))
    assert stats["kills"] >= 50 and stats["acked"] > 0
