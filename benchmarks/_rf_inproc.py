"""In-process Rf driver: CPU per ACR through the real path PeerProtocol -> PeerConnection ->
agent -> service -> journal, on an in-memory transport (benchmarks/_ro_inproc.py's, no kernel,
no load generator on the core).

``python -m benchmarks._rf_inproc [--requests 20000] [--concurrency 256] [--fsync]
[--interims 2] [--callgrind]`` prints one JSON line: CPU µs per ACR (process_time), wall rate.
On a shared box the CPU figure moves +-30 % run to run: compare instructions per ACR instead
(``valgrind --tool=callgrind --instr-atstart=no python -m benchmarks._rf_inproc --callgrind``:
only the measured loop is instrumented; Ir / requests). Each
accounting session is START, INTERIM x k (60 s of voice each), STOP (30 s), one demo
subscriber, its ACRs sent one after the other's ACA; every ACR is encoded before the clock
starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._ro_inproc import _callgrind, bench_settings, open_peer
from diameter.framing import FrameBuffer
from diameter.message import Message
from icx.diameter_client import A, mscc, result_code_of, voice_info

SUB = "41790000001"


def acr(sid: str, rtype: int, number: int, hbh: int) -> bytes:
    avps = [A("Session-Id", sid), A("Origin-Host", "bench.icx.test"),
            A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local"),
            A("Accounting-Record-Type", rtype), A("Accounting-Record-Number", number),
            A("Acct-Application-Id", 3), A("Service-Context-Id", "32260@3gpp.org"),
            A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", SUB)]),
            A("Event-Timestamp", 1_800_000_000 + 60 * number), voice_info(SUB, "41791234567")]
    if rtype == 3:
        avps.append(mscc(100, usu=("CC-Time", 60)))
    elif rtype == 4:
        avps.append(mscc(100, usu=("CC-Time", 30)))
    return Message.request(271, 3, avps, proxiable=True, hop_by_hop=hbh,
                           end_to_end=hbh).encode()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from icx.charging_app import build_charging

    tmp = Path(tempfile.mkdtemp(prefix="icx-rf-inproc-"))
    try:
        settings = bench_settings(tmp, fsync=args.fsync, request_log=False)
        app = await build_charging(settings, tmp / "data", admin=False)
        server, proto, tr = await open_peer(settings, app.agent)
        steps = args.interims + 2
        sessions = args.requests // steps + args.concurrency + 1
        hbh = iter(range(1, 1 << 31))
        # session i's ACRs, pre-encoded: START 0, INTERIM 1..k, STOP k+1
        prepared = []
        for i in range(sessions):
            sid = f"bench.icx.test;rf;{i}"
            prepared.append([acr(sid, 2 if n == 0 else 4 if n == steps - 1 else 3, n, next(hbh))
                             for n in range(steps)])
        pending: dict[int, list[Any]] = {}  # hbh -> [session index, step]
        nxt = iter(range(sessions))

        def send(s: list[Any]) -> bytes:
            data = prepared[s[0]][s[1]]
            pending[int.from_bytes(data[12:16], "big")] = s
            return data

        frames = FrameBuffer(1 << 24)
        sent = answered = 0
        codes: dict[int, int] = {}
        c0, t0 = time.process_time(), time.perf_counter()
        if args.callgrind:
            _callgrind("-i", "on")
        batch = [send([next(nxt), 0]) for _ in range(args.concurrency)]
        sent += len(batch)
        while answered < args.requests:
            proto.data_received(b"".join(batch))
            batch = []
            await asyncio.sleep(0)
            if not tr.out:
                tr.waiter = asyncio.get_running_loop().create_future()
                await tr.waiter
                tr.waiter = None
            outs, tr.out = tr.out, []
            for raw in outs:
                for fr in frames.feed(raw):
                    s = pending.pop(int.from_bytes(fr[12:16], "big"))
                    answered += 1
                    rc = result_code_of(fr)
                    codes[rc] = codes.get(rc, 0) + 1
                    s[1] += 1
                    follow = s if s[1] < steps else [next(nxt), 0]
                    if sent < args.requests:
                        batch.append(send(follow))
                        sent += 1
        if args.callgrind:
            _callgrind("-i", "off")
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        records = app.journal.records
        await server.close() if hasattr(server, "close") else None
        await app.close()
        return {"bench": "rf_inproc", "requests": answered,
                "cpu_us_per_acr": round(cpu / answered * 1e6, 1),
                "rate_wall": round(answered / wall), "rate_cpu": round(answered / cpu),
                "journal_records": records, "codes": codes, "fsync": args.fsync,
                "interims": args.interims}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--interims", type=int, default=2)
    ap.add_argument("--fsync", action="store_true")
    ap.add_argument("--callgrind", action="store_true",
                    help="run under `valgrind --tool=callgrind --instr-atstart=no`")
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    from icx import logging_setup
    logging_setup.configure("json", "warning")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
