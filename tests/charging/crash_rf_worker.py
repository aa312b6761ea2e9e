"""A server-like worker for the Rf crash test: the real charging stack of `icx serve` over the
embedded store (icx.charging_app.build_charging), driven like the agent drives ACRs.

Run: ``python -m tests.charging.crash_rf_worker DATA_DIR SEED [--finish] [--cumulative]``.

It recovers, prints one ``{"ready": ...}`` line, then runs many concurrent Rf accounting
sessions (START, INTERIM x k, STOP; voice to 41, each record reporting its CC-Time) through
``ChargingService.decide()`` started with ``coro.send(None)`` as mediation/agent.py does,
reads ``durable_mark()`` right after, and prints one ``{"ack": ...}`` line per ACR ONLY from
``journal.call_when_durable`` -- when the ACA would have left. A session's plan (how many
INTERIMs, the usage of each record) follows from its Session-Id, so any incarnation can
continue it: ``DATA_DIR/resume.json`` lists ``[sid, next record number]`` to go on with first
(the driver's retransmissions of unanswered ACRs, and repeats of answered ones). Some ACRs
are sent twice in a row (a duplicate within one run). ``--finish``: no new sessions; exit 0
once every resumed session has had its STOP answered. ``--cumulative``: ``[rf] usage_reports =
"cumulative"``, each record reporting the session's running total instead of its own part.
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
SUB = "41790000001"
DEST = "41791234567"  # 0.12 EUR/min, 60/1
T0 = 1_800_000_000.0  # Event-Timestamp of every START (a fixed rating time)
CONCURRENT = 24
USAGES = (10, 60, 61, 300)


def plan(sid: str) -> list[int]:
    """The usage (s) each record of session *sid* reports: [START (none), INTERIM..., STOP]."""
    r = random.Random(sid)
    return [0] + [r.choice(USAGES) for _ in range(r.randint(0, 4))] + [r.choice(USAGES)]


def expected_price_micros(sid: str) -> int:
    """0.12 EUR/min, 60/1: the first minute whole, then per second (2,000 micro-units/s)."""
    total = sum(plan(sid))
    return max(total, 60) * 2_000


def settings_for(data: Path, cumulative: bool = False) -> Any:
    accounts = data / "accounts.toml"
    if not accounts.exists():
        accounts.write_text('[[account]]\nid = "41790000001"\namount = "1.00"\n')
    s = load_settings(ROOT / "config" / "icx.toml")
    # small segments, frequent store snapshots and Rf checkpoints: kills land on rotations,
    # snapshots and checkpoints too
    journal = dataclasses.replace(s.journal, segment_bytes=64 * 1024, snapshot_records=300,
                                  snapshot_seconds=0.3, expiry_interval=0.05)
    rf = dataclasses.replace(s.rf, usage_reports="cumulative" if cumulative else "incremental")
    return dataclasses.replace(s, accounts=AccountsSection(files=(str(accounts),)),
                               journal=journal, rf=rf)


def request(sid: str, n: int, cumulative: bool = False) -> ChargingRequest:
    p = plan(sid)
    verb = Verb.INITIAL if n == 0 else Verb.TERMINATE if n == len(p) - 1 else Verb.UPDATE
    used = sum(p[:n + 1]) if cumulative else p[n]
    units = (ServiceUnits(used=used, used_present=True),) if n else ()
    return ChargingRequest(verb=verb, session_id=sid, request_number=n,
                           service=ServiceKind.VOICE, subscriber=SUB, destination=DEST,
                           origin=SUB, units=units, idem_key=f"rf:{sid}:{n}", offline=True,
                           at=T0 + 60 * n, peer_host="ctf.test", peer_realm="test")


class Traffic:
    def __init__(self, app: ChargingApp, seed: int, prefix: str, *, new: bool,
                 cumulative: bool = False) -> None:
        self.app = app
        self.cumulative = cumulative
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.new = new
        self.count = 0
        self.open: set[str] = set()
        self.all_done = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    def emit(self, line: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def send(self, sid: str, n: int, then: bool) -> None:
        """Decide ACR n of *sid* eagerly (the agent's path) and ack it once durable; *then*:
        go on with the session after the ack."""
        self.emit({"sent": [sid, n]})
        svc = self.app.service
        coro = svc.decide(request(sid, n, self.cumulative), now=time.time())
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self._decided(sid, n, stop.value, then)
            return
        t = asyncio.get_running_loop().create_task(self._finish(sid, n, coro, yielded, then))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _finish(self, sid: str, n: int, coro: Any, yielded: Any, then: bool) -> None:
        self._decided(sid, n, await resume(coro, yielded), then)

    def _decided(self, sid: str, n: int, result: ChargingResult, then: bool) -> None:
        mark = self.app.service.durable_mark()  # right after decide: the contract

        def durable(exc: BaseException | None) -> None:
            if exc is not None:
                return  # the group commit failed: no ACA
            assert result.ok, result
            self.emit({"ack": [sid, n]})
            if then:
                self.after(sid, n)

        self.app.journal.call_when_durable(mark, durable)

    def after(self, sid: str, n: int) -> None:
        loop = asyncio.get_running_loop()
        if self.rng.random() < 0.1:
            self.send(sid, n, False)  # the same ACR again: a duplicate
        if n == len(plan(sid)) - 1:
            self.open.discard(sid)
            if self.new:
                loop.call_later(self.rng.uniform(0, 0.003), self.session)
            elif not self.open:
                self.all_done.set()
        else:
            loop.call_later(self.rng.uniform(0, 0.003), self.send, sid, n + 1, True)

    def session(self) -> None:
        self.count += 1
        sid = f"{self.prefix}-{self.count}"
        self.open.add(sid)
        self.send(sid, 0, True)

    def go_on(self, sid: str, n: int) -> None:
        self.open.add(sid)
        self.send(sid, n, True)


async def serve(data: Path, seed: int, finish: bool, cumulative: bool = False) -> None:
    app = await build_charging(settings_for(data, cumulative), data / "data", admin=False)
    traffic = Traffic(app, seed, f"w{seed}", new=not finish, cumulative=cumulative)
    traffic.emit({"ready": True, "rf_open": len(app.service.offline)})
    resumed = data / "resume.json"
    if resumed.exists():
        for sid, n in json.loads(resumed.read_text()):
            traffic.go_on(sid, n)
    if finish:
        if traffic.open:
            await traffic.all_done.wait()
        await app.close()
        traffic.emit({"finished": True})
        return
    for _ in range(CONCURRENT):
        traffic.session()
    await asyncio.Event().wait()  # until killed


def main() -> None:
    asyncio.run(serve(Path(sys.argv[1]), int(sys.argv[2]), "--finish" in sys.argv,
                      "--cumulative" in sys.argv))


if __name__ == "__main__":
    main()
