"""A server-like worker for the service-level crash test: the real charging stack of
`icx serve` over the embedded store (icx.charging_app.build_charging), driven like the agent.

Run: ``python -m tests.charging.crash_service_worker DATA_DIR SEED [--check]``.

It recovers, prints one ``{"ready": ...}`` line, then runs many concurrent Ro sessions
(INITIAL, UPDATE x k, TERMINATE; voice and data; some accounts that run dry -> FUI / 4012)
through ``ChargingService.decide()`` started with ``coro.send(None)`` exactly as
mediation/agent.py does, reads ``durable_mark()`` right after, and prints one ``{"ack": ...}``
line per request ONLY from ``journal.call_when_durable`` -- what the CCA would have carried.
Before deciding it prints a ``{"sent": ...}`` line so the driver can retransmit unanswered
requests after a restart (``DATA_DIR/retries.json``, sent first). The driver kills it with
SIGKILL at random moments. ``--check [--later S]`` recovers (expiring what is due, S seconds
from now), prints the store's state as one JSON line and exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from charging.requests import ChargingRequest, ChargingResult, ServiceKind, ServiceUnits, Verb
from diameter.eager import resume
from icx.charging_app import ChargingApp, build_charging
from icx.settings import AccountsSection, load_settings

ROOT = Path(__file__).resolve().parents[2]
RICH = [f"4179000000{i}" for i in range(1, 6)]  # 20000.00 each: killed sessions hold
POOR = ["41790000100", "41790000101", "41790000102"]  # run dry: FUI, then 4012
ACCOUNTS_TOML = """
[[range]]
first = "41790000001"
last = "41790000005"
amount = "20000.00"
[[range]]
first = "41790000100"
last = "41790000102"
amount = "3.00"
"""
CONCURRENT = 24  # sessions in flight at once


def settings_for(data: Path) -> Any:
    accounts = data / "accounts.toml"
    if not accounts.exists():
        accounts.write_text(ACCOUNTS_TOML)
    s = load_settings(ROOT / "config" / "icx.toml")
    # small segments and frequent snapshots: kills land on rotations and snapshots too
    journal = dataclasses.replace(s.journal, segment_bytes=64 * 1024, snapshot_records=300,
                                  snapshot_seconds=0.5, expiry_interval=0.05)
    # Tcc 2 s: holds of killed sessions expire (TTL = Tcc + 60 s) within a soak, so
    # recovery and the expiry sweep run under kills too
    ro = dataclasses.replace(s.ro, tcc_seconds=2)
    return dataclasses.replace(s, accounts=AccountsSection(files=(str(accounts),)),
                               journal=journal, ro=ro)


def request(o: dict[str, Any]) -> ChargingRequest:
    """The ChargingRequest of a request dict (as mediation/ro.py would build it)."""
    units = ServiceUnits(rating_group=o["rg"], requested=o["requested"],
                         used=o["used"] or 0, used_present=o["used"] is not None)
    return ChargingRequest(verb=Verb[o["verb"]], session_id=o["sid"],
                           request_number=o["n"], service=ServiceKind(o["svc"]),
                           subscriber=o["sub"], destination=o["dest"], units=(units,),
                           multiple_services=True, idem_key=f"ro:{o['sid']}:{o['n']}",
                           peer_host="pgw.test")


def ack_of(o: dict[str, Any], r: ChargingResult) -> dict[str, Any]:
    u = r.units[0] if r.units else None
    return {"ack": True, "sid": o["sid"], "n": o["n"], "verb": o["verb"], "sub": o["sub"],
            "key": f"ro:{o['sid']}:{o['n']}", "used": o["used"], "outcome": r.outcome.value,
            "granted": None if u is None else u.granted,
            "final": False if u is None else u.final_unit,
            "used_cost": 0 if u is None else u.used_cost, "retx": o.get("retx", False)}


class Traffic:
    """Seeded Ro sessions: each sends its next request only after the previous answer."""

    def __init__(self, app: ChargingApp, seed: int, prefix: str) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.count = 0
        self.out = sys.stdout
        self.tasks: set[asyncio.Task[Any]] = set()

    def emit(self, line: dict[str, Any]) -> None:
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def send(self, o: dict[str, Any], done: Any = None) -> None:
        """Decide *o* eagerly (the agent's hot path) and ack it once durable."""
        self.emit({"sent": o})
        svc = self.app.service
        coro = svc.decide(request(o), now=time.time())
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self._decided(o, stop.value, done)
            return
        # (only a session's turn suspends: finish in a Task, as the agent does)
        t = asyncio.get_running_loop().create_task(self._finish(o, coro, yielded, done))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _finish(self, o: dict[str, Any], coro: Any, yielded: Any, done: Any) -> None:
        self._decided(o, await resume(coro, yielded), done)

    def _decided(self, o: dict[str, Any], result: ChargingResult, done: Any) -> None:
        mark = self.app.service.durable_mark()  # right after decide: the contract

        def durable(exc: BaseException | None) -> None:
            if exc is not None:
                return  # the group commit failed: nothing answered
            self.emit(ack_of(o, result))
            if done is not None:
                done(result)

        self.app.journal.call_when_durable(mark, durable)

    def session(self) -> None:
        """Start one new session; it runs to its TERMINATE through answer callbacks."""
        r = self.rng
        self.count += 1
        sid = f"{self.prefix}-{self.count}"
        data = r.random() < 0.4
        sub = r.choice(POOR) if r.random() < 0.15 else r.choice(RICH)
        base = {"sid": sid, "sub": sub, "svc": "data" if data else "voice",
                "rg": 10 if data else 1,
                "dest": "" if data else r.choice(["41791234567", "447700900123",
                                                  "33612345678"])}
        quota = [0, 1_000_000, 20_000_000, 100_000_000] if data else [0, 30, 60, 300, 600]
        used = ([0, 500_000, 5_000_000, 40_000_000] if data else [0, 10, 60, 61, 300])
        updates = r.randint(0, 5)

        def step(n: int) -> None:
            if n == 0:
                o = {**base, "n": 0, "verb": "INITIAL", "requested": r.choice(quota),
                     "used": None}
            elif n <= updates:
                o = {**base, "n": n, "verb": "UPDATE", "used": r.choice(used),
                     "requested": r.choice([None, *quota])}
            else:
                o = {**base, "n": n, "verb": "TERMINATE", "used": r.choice(used),
                     "requested": None}

            def answered(res: ChargingResult) -> None:
                if r.random() < 0.1:  # a retransmit: same key, must get the same answer
                    self.send({**o, "retx": True})
                if o["verb"] == "TERMINATE" or (n == 0 and not res.ok) or (
                        o["verb"] == "UPDATE" and not res.ok):
                    loop.call_later(r.uniform(0, 0.003), self.session)  # over: start another
                else:
                    loop.call_later(r.uniform(0, 0.003), step, n + 1)

            self.send(o, answered)

        loop = asyncio.get_running_loop()
        step(0)


async def serve(data: Path, seed: int) -> None:
    app = await build_charging(settings_for(data), data / "data", admin=False)
    ready = {"ready": True, "sessions_open": len(app.service.sessions)}
    traffic = Traffic(app, seed, f"w{seed}")
    traffic.emit(ready)
    retries = data / "retries.json"
    if retries.exists():
        for o in json.loads(retries.read_text()):
            traffic.send({**o, "retx": True})
    for _ in range(CONCURRENT):
        traffic.session()
    await asyncio.Event().wait()  # until killed


async def check(data: Path, later: float = 0.0) -> None:
    """Recover and print the store's state. *later* > 0: the clock reads that many seconds
    ahead (recovery's expiry sweep then finds every hold due)."""
    if later:
        real = time.time
        time.time = lambda: real() + later  # build_charging reads time.time()
    before_us = int(time.time() * 1_000_000)  # recovery expires everything due by then
    app = await build_charging(settings_for(data), data / "data", admin=False)
    out: dict[str, Any] = {}
    for acct, a in app.store._accounts.items():
        for bid, b in a.balances.items():
            out[f"{acct}/{bid}"] = {
                "amount": b.amount, "reserved": b.reserved, "credit_limit": b.credit_limit,
                "reservations": {rid: [v[0], v[1]] for rid, v in b.res.items()}}
    print(json.dumps({"before_us": before_us, "state": out}))
    await app.close()


def main() -> None:
    data = Path(sys.argv[1])
    if "--check" in sys.argv:
        later = float(sys.argv[sys.argv.index("--later") + 1]) if "--later" in sys.argv else 0.0
        asyncio.run(check(data, later))
    else:
        asyncio.run(serve(data, int(sys.argv[2])))


if __name__ == "__main__":
    main()
