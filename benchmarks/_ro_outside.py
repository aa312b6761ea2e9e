"""CPU per CCR of the Ro path OUTSIDE decide() (profiling aid for issue 5): the real
PeerProtocol -> PeerConnection -> agent.respond -> durability callback -> CCA -> reply path
of `icx serve`, with the charging service's ``decide`` replaced by a canned answer (no
rating, no ledger, no journal record), the durability callbacks of a read run together on
the next loop turn (as the journal's group commit runs them) and an in-memory transport
(no kernel). ``--callgrind``: instructions instead of seconds (see its help).

``python -m benchmarks._ro_outside [--requests 40000] [--reps 5] [--concurrency 256]``
prints one JSON line: the median over *reps* of ``time.process_time()`` per CCR, the driver's
own cost (framing the answers) measured alone and subtracted. Same I/U/U/T voice + data CCRs
as benchmarks/_ro_inproc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._ro_edge import frames
from benchmarks._ro_inproc import _Transport, open_peer
from benchmarks.ro import free_port, make_config
from charging.requests import ChargingResult, Outcome, UnitKind, UnitsResult
from diameter.avp import EXT

_RESULT = ChargingResult(outcome=Outcome.SUCCESS, units=(UnitsResult(
    rating_group=100, outcome=Outcome.SUCCESS, unit=UnitKind.TIME, granted=60,
    validity_time=3600),))


async def _canned(req: Any, *, now: float) -> ChargingResult:
    return _RESULT


class _Group:
    """Stands in for the journal's ``call_when_durable``: callbacks queue and all run from
    one loop callback, as the group commit's completion runs them (writer._done)."""

    def __init__(self) -> None:
        self.cbs: list[Any] = []

    def call_when_durable(self, pos: Any, cb: Any) -> None:
        if not self.cbs:
            asyncio.get_running_loop().call_soon(self._done)
        self.cbs.append(cb)

    def _done(self) -> None:
        cbs, self.cbs = self.cbs, []
        for cb in cbs:
            try:
                cb(None)
            except Exception:  # as writer._run_callback: one bad callback stops nothing
                pass


_THREAD: list[float] = []


def _count(outs: list[bytes]) -> int:
    """Answers in *outs* (whole frames: the server writes whole answers)."""
    n = 0
    for raw in outs:
        i, end = 0, len(raw)
        while i < end:
            i += int.from_bytes(raw[i + 1:i + 4], "big")
            n += 1
    return n


async def _drive(proto: Any, tr: _Transport, batches: list[bytes], per: int) -> float:
    """Feed every batch (``per`` CCRs each), wait for all its answers; CPU seconds."""
    loop = asyncio.get_running_loop()
    t0 = time.thread_time()
    c0 = time.process_time()
    for data in batches:
        proto.data_received(data)
        got = 0
        while got < per:
            if not tr.out:
                tr.waiter = loop.create_future()
                await tr.waiter
                tr.waiter = None
            outs, tr.out = tr.out, []
            got += _count(outs)
    _THREAD.append(time.thread_time() - t0)
    return time.process_time() - c0


def _callgrind(*opts: str) -> None:
    import os
    import subprocess
    subprocess.run(["callgrind_control", *opts, str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from icx.charging_app import build_charging
    from icx.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="icx-outside-"))
    try:
        cfg = make_config(tmp, free_port(), free_port())
        cfg.write_text(cfg.read_text().replace("request_log = true", "request_log = false", 1))
        settings = load_settings(cfg)
        app = await build_charging(settings, tmp / "data", admin=False)
        agent = app.agent
        assert agent._split is not None
        agent._split = (_canned, agent._split[1], _Group().call_when_durable)
        server, proto, tr = await open_peer(settings, agent)
        per = args.concurrency
        raw = frames(args.requests)
        reps: list[float] = []
        driver: list[float] = []
        for rep in range(args.reps):
            # fresh End-to-End ids each rep: no duplicate-cache hits
            base = (rep + 1) << 24
            fr = [f[:16] + (base + i).to_bytes(4, "big") + f[20:] for i, f in enumerate(raw)]
            batches = [b"".join(fr[i:i + per]) for i in range(0, len(fr), per)]
            if len(fr) % per:
                batches.pop()
            n = len(batches) * per
            if args.callgrind:  # instrument only the measured loop (run under valgrind)
                _callgrind("-i", "on")
            cpu = await _drive(proto, tr, batches, per)
            if args.callgrind:
                _callgrind("-i", "off")
            # the driver alone: count the same answers again
            outs = [b"".join(fr[i:i + per]) for i in range(0, n, per)]
            c0 = time.process_time()
            for o in outs:
                _count([o])
            driver.append((time.process_time() - c0) / n)
            reps.append(cpu / n)
        await app.close()
        med = statistics.median(reps) - statistics.median(driver)
        return {"bench": "ro_outside", "unit": "cpu_us_per_ccr", "value": round(med * 1e6, 2),
                "reps_us": [round(r * 1e6, 2) for r in reps],
                "loop_thread_us": round(statistics.median(_THREAD) / n * 1e6, 2),
                "driver_us": round(statistics.median(driver) * 1e6, 2),
                "ext": EXT is not None, "requests": args.requests,
                "concurrency": per}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--profile", default="")
    ap.add_argument("--callgrind", action="store_true",
                    help="run under `valgrind --tool=callgrind --instr-atstart=no`: only the "
                         "measured loops are instrumented (instructions per CCR = Ir / "
                         "(requests * reps))")
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    from icx import logging_setup
    logging_setup.configure("json", "warning")
    if args.profile:
        import cProfile
        prof = cProfile.Profile(time.process_time)
        prof.enable()
    out = asyncio.run(run(args))
    if args.profile:
        prof.disable()
        prof.dump_stats(args.profile)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
