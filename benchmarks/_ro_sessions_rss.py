"""RSS of N concurrent open Ro sessions (benchmarks/ro.py runs this in a child process).

Builds the real charging stack in process (embedded store, journal with fsync off so the
measurement is about memory, not the disk), opens N voice sessions with CCR-I through the
charging service (each holds a reservation), and prints one JSON line with the RSS before and
after. ``python -m benchmarks._ro_sessions_rss --sessions 100000``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from charging.requests import ChargingRequest, ServiceKind, ServiceUnits, Verb


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def run(n: int, config: str) -> dict[str, object]:
    from icx.charging_app import build_charging
    from icx.settings import AccountsSection, load_settings

    tmp = Path(tempfile.mkdtemp(prefix="icx-rss-"))
    accounts = tmp / "accounts.toml"
    accounts.write_text('[[range]]\nfirst = "41790000001"\nlast = "41790000999"\n'
                        'amount = "1000000.00"\n')
    settings = load_settings(config)
    if settings.server.huge_page_heap:
        # as `icx serve` runs: Python's heap on huge pages (RSS grows by 2 MiB pages there)
        from icx import huge_pages

        huge_pages.install(settings.server.heap_populate_ahead_mb)
    settings = dataclasses.replace(
        settings, accounts=AccountsSection(files=(str(accounts),)),
        journal=dataclasses.replace(settings.journal, fsync=False))
    app = await build_charging(settings, tmp / "data", admin=False)
    svc = app.service
    before = rss_kb()
    t0 = time.perf_counter()
    batch = 2000
    for start in range(0, n, batch):
        await asyncio.gather(*(svc.handle(ChargingRequest(
            verb=Verb.INITIAL, session_id=f"rss.icx.test;{i};{i * 7}", request_number=0,
            service=ServiceKind.VOICE, subscriber=str(41790000001 + i % 999),
            destination=f"4179{i % 10_000_000:07d}", origin=str(41790000001 + i % 999),
            units=(ServiceUnits(rating_group=100, requested=300),), multiple_services=True,
            idem_key=f"ro:rss;{i}:0", peer_host="rss.icx.test", peer_realm="icx.test"),
            now=time.time()) for i in range(start, min(n, start + batch))))
    elapsed = time.perf_counter() - t0
    after = rss_kb()
    open_sessions = len(svc.sessions)
    await app.close()
    return {"sessions": open_sessions, "rss_before_mb": round(before / 1024, 1),
            "rss_after_mb": round(after / 1024, 1),
            "rss_delta_mb": round((after - before) / 1024, 1),
            "bytes_per_session": round((after - before) * 1024 / max(1, open_sessions)),
            "open_rate_per_s": round(n / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parent.parent
                                            / "config" / "icx.toml"))
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args.sessions, args.config))))


if __name__ == "__main__":
    main()
