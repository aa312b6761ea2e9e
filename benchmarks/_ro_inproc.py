"""In-process Ro hot-path driver (profiling aid for benchmarks/ro.py): CPU per CCR through the
real path PeerProtocol -> PeerConnection -> agent -> service -> ledger -> store -> journal,
with an in-memory transport instead of a socket (no kernel, no load generator on the core).

``python -m benchmarks._ro_inproc [--requests 20000] [--concurrency 256] [--fsync]
[--profile out.prof]`` prints one JSON line: CPU µs per request (process_time), wall rate.
Session mix I/U/U/T, voice + data, like benchmarks/ro.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ro import free_port, make_config
from diameter.framing import FrameBuffer
from diameter.message import Message
from icx.diameter_client import A, CcrTemplate, data_info, mscc, result_code_of, voice_info

_HDR = struct.Struct("!IIIII")


class _Transport:
    """The part of asyncio.Transport that PeerProtocol uses; writes land in ``out``."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def writelines(self, chunks: Any) -> None:
        for c in chunks:
            self.write(c)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def get_write_buffer_size(self) -> int:
        return 0


async def open_peer(settings: Any, agent: Any) -> tuple[Any, Any, _Transport]:
    """The Diameter server *settings* describe, answering through *agent* (its ``respond``
    responder), on an in-memory transport past the CER/CEA exchange: (server, protocol,
    transport). Feed CCR bytes to the protocol's ``data_received`` and read the answers
    from the transport's ``out``. Patch the agent before calling (its methods are bound
    here)."""
    from icx import wiring

    server = wiring.build_server(settings, agent.handle, responder=agent.respond)
    proto = server._protocol()
    tr = _Transport()
    proto.connection_made(tr)  # type: ignore[arg-type]
    cer = Message.request(257, 0, [
        A("Origin-Host", "bench.icx.test"), A("Origin-Realm", "icx.test"),
        A("Host-IP-Address", "127.0.0.1"), A("Vendor-Id", 0),
        A("Product-Name", "icx-bench"), A("Auth-Application-Id", 4),
        A("Acct-Application-Id", 3)])
    proto.data_received(cer.encode())
    await asyncio.sleep(0)
    tr.out.clear()
    return server, proto, tr


def ccr_templates() -> dict[str, CcrTemplate]:
    """The benchmark's CCR templates by kind ("voice", "data"): one demo subscriber."""
    tpls = {}
    for kind in ("voice", "data"):
        extra = [voice_info("41790000001", "41791234567")] if kind == "voice" else [
            data_info("internet")]
        tpls[kind] = CcrTemplate(origin_host="bench.icx.test", origin_realm="icx.test",
                                 dest_realm="icx.local",
                                 context="32260@3gpp.org" if kind == "voice"
                                 else "32251@3gpp.org",
                                 subscriber="41790000001", extra=extra)
    return tpls


def _tail(kind: str, n: int, updates: int) -> tuple[int, int, list[Any]]:
    unit, amount, rg = (("CC-Time", 60, 100) if kind == "voice"
                        else ("CC-Total-Octets", 1_000_000, 1))
    if n == 0:
        return 1, 0, [A("Multiple-Services-Indicator", 1), mscc(rg, rsu=(unit, amount))]
    if n <= updates:
        return 2, n, [mscc(rg, rsu=(unit, amount), usu=(unit, amount), reason=3)]
    return 3, n, [mscc(rg, usu=(unit, amount // 2), reason=2)]


def bench_settings(tmp: Path, *, fsync: bool, request_log: bool) -> Any:
    """The benchmark server's config (benchmarks.ro.make_config) in *tmp*, loaded, with the
    journal's fsync and the per-request log line as asked."""
    from icx.settings import load_settings

    cfg = make_config(tmp, free_port(), free_port())
    text = cfg.read_text()
    if not fsync:
        text = text.replace("fsync = true", "fsync = false", 1)
    if not request_log:
        text = text.replace("request_log = true", "request_log = false", 1)
    cfg.write_text(text)
    return load_settings(cfg)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from icx.charging_app import build_charging

    tmp = Path(tempfile.mkdtemp(prefix="icx-inproc-"))
    try:
        settings = bench_settings(tmp, fsync=args.fsync, request_log=not args.no_request_log)
        app = await build_charging(settings, tmp / "data", admin=False,
                                   store_url=args.store_url or None)
        server, proto, tr = await open_peer(settings, app.agent)
        updates = 2
        frames = FrameBuffer(1 << 24)
        pending: dict[int, list[Any]] = {}  # hbh -> session [kind, sid, step, tpl]
        hbh = iter(range(1, 1 << 31))
        seq = iter(range(1 << 31))
        tpls = ccr_templates()

        def make(i: int) -> list[Any]:
            kind = "voice" if i % 2 else "data"
            sid = f"bench.icx.test;{i}"
            bodies = [tpls[kind].body(sid, *_tail(kind, n, updates)) for n in range(updates + 2)]
            return [kind, sid, 0, bodies]

        # Every request body is encoded before the clock starts: the figure is the server's.
        prepared = [make(i) for i in range(args.requests // (updates + 2) + args.concurrency + 1)]

        def new() -> list[Any]:
            return prepared[next(seq)]

        def encode(s: list[Any]) -> bytes:
            body = s[3][s[2]]
            h = next(hbh)
            pending[h] = s
            return _HDR.pack((1 << 24) | (20 + len(body)), (0xC0 << 24) | 272, 4, h, h) + body

        sent = answered = 0
        codes: dict[int, int] = {}
        prof = None
        if args.profile:
            import cProfile
            prof = cProfile.Profile(time.process_time)
        c0, t0 = time.process_time(), time.perf_counter()
        windows: list[float] = []  # CPU seconds per 1,000 answers (min/median beat the noise)
        last = [c0]
        if prof:
            prof.enable()
        if args.callgrind:  # instrument only the measured loop (run under valgrind)
            _callgrind("-i", "on")
        batch = [encode(new()) for _ in range(args.concurrency)]
        sent += len(batch)
        while answered < args.requests:
            proto.data_received(b"".join(batch))
            batch = []
            await asyncio.sleep(0)
            if not tr.out:  # idle until an answer is written (no spinning: the journal
                # writer thread must get the GIL, as in a real server waiting in epoll)
                tr.waiter = asyncio.get_running_loop().create_future()
                await tr.waiter
                tr.waiter = None
            outs, tr.out = tr.out, []
            for raw in outs:
                for fr in frames.feed(raw):
                    h = int.from_bytes(fr[12:16], "big")
                    s = pending.pop(h)
                    answered += 1
                    if answered % 1000 == 0:
                        c = time.process_time()
                        if sent < args.requests:
                            # steady state only: once nothing more is sent, a window of
                            # 1,000 answers holds fewer new requests (the drain), which
                            # made the old "min window" ~30 % cheaper than any real one
                            windows.append(c - last[0])
                        last[0] = c
                    rc = result_code_of(fr)
                    codes[rc] = codes.get(rc, 0) + 1
                    s[2] += 1
                    nxt = s if (rc == 2001 and s[2] < updates + 2) else new()
                    if sent < args.requests:
                        batch.append(encode(nxt))
                        sent += 1
        if args.callgrind:
            _callgrind("-i", "off")
        if prof:
            prof.disable()
            prof.dump_stats(args.profile)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        await server.close() if hasattr(server, "close") else None
        await app.close()
        return {"bench": "ro_inproc", "requests": answered,
                "cpu_us_per_req": round(cpu / answered * 1e6, 1),
                "cpu_us_min_window": round(min(windows) * 1e3, 1) if windows else None,
                "cpu_us_median_window": round(sorted(windows)[len(windows) // 2] * 1e3, 1)
                if windows else None,
                "rate_wall": round(answered / wall), "rate_cpu": round(answered / cpu),
                "codes": codes, "fsync": args.fsync, "log_level": args.log_level,
                "request_log": not args.no_request_log,
                "store": "redis" if args.store_url else "embedded"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _callgrind(*opts: str) -> None:
    import os
    import subprocess
    subprocess.run(["callgrind_control", *opts, str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--fsync", action="store_true")
    ap.add_argument("--profile", default="")
    ap.add_argument("--log-level", default="warning",
                    help="info: measure with the per-request diameter.request line (JSON "
                         "lines on stderr)")
    ap.add_argument("--callgrind", action="store_true",
                    help="run under `valgrind --tool=callgrind --instr-atstart=no`: only the "
                         "measured loop is instrumented (instructions per CCR = Ir / requests; "
                         "the driver's own framing is included, ~1-2k)")
    ap.add_argument("--no-request-log", action="store_true",
                    help="[diameter] request_log = false")
    ap.add_argument("--store-url", default="",
                    help="redis://127.0.0.1:PORT/0: the Redis store (start a fresh "
                         "redis-server yourself; its CPU is not in the figure)")
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    from icx import logging_setup
    logging_setup.configure("json", args.log_level)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
