"""Run the charging server for benchmarks/ro.py with an optional Redis store URL.

``python -m benchmarks._ro_server -c CFG --data-dir D [--store-url redis://...]`` prints
``READY <port>`` once it accepts Diameter, and stops on SIGTERM. (`icx serve` is what the
embedded-store figure uses; this runner exists because the Redis URL is a benchmark knob.)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from icx import logging_setup
from icx.charging_app import start_server
from icx.settings import load_settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--store-url", default=None)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    settings = load_settings(args.config)
    logging_setup.configure("json", "warning")

    async def run() -> None:
        server = await start_server(settings, Path(args.data_dir), port=args.port,
                                    admin_port=0, store_url=args.store_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"READY {server.port}", flush=True)
        await stop.wait()
        await server.close()

    import uvloop

    uvloop.install()
    asyncio.run(run())


if __name__ == "__main__":
    main()
