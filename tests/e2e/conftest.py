"""A real `icx serve` stack (Diameter listener + charging + admin HTTP) on ephemeral ports,
run in a background thread with its own event loop so tests can drive it from outside
(python-diameter subprocess, our client, HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from icx.charging_app import RunningServer, start_server
from icx.settings import AccountsSection, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PYD = ROOT / ".venv-pydiameter" / "bin" / "python"

# Destination-Realm / Destination-Host of the CCRs in the real captures (../shared/data/diameter)
CAPTURE_REALMS = ("comverse.com", "magma.com")
CAPTURE_HOSTS = ("dgu2.comverse.com", "tvm-vocs.magma.com", "magma-fedgw.magma.com")

ACCOUNTS = """
[[range]]
first = "41790000001"
last = "41790000020"
amount = "50.00"

[[account]]
id = "41790000000"
amount = "0.00"

# Subscribers of the real captures in ../shared/data/diameter (replay tests).
[[account]]
id = "919080000016"          # nDPI Comverse CCR I/U/T, Subscription-Id E164
amount = "50.00"

[[account]]
id = "1234567810"            # magma Gy, Subscription-Id E164 (IMSI 999991234567810)
identities = ["1234567810", "999991234567810"]
amount = "50.00"
"""


class Server:
    """Handle on the running stack: ports, a way to run coroutines on its loop, the journal."""

    def __init__(self, loop: asyncio.AbstractEventLoop, running: RunningServer,
                 data_dir: Path) -> None:
        self.loop = loop
        self.running = running
        self.data_dir = data_dir

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.running.charging.admin_port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def balance(self, account: str) -> tuple[int, int]:
        view = self.call(self.running.charging.store.get(account))
        b = view.balances[0]
        return b.amount, b.reserved

    def journal(self) -> list[dict[str, Any]]:
        self.call(self.running.charging.journal.flush())
        return [r for _, r in JournalReader(self.data_dir / "journal").iter_from(None)]


def e2e_settings(tmp_path: Path, **ro: Any) -> Settings:
    """The demo config with the e2e accounts (and the capture realms/hosts), *ro* replacing
    [ro] settings."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = load_settings(ROOT / "config" / "icx.toml")
    settings = dataclasses.replace(settings, accounts=AccountsSection(files=(str(accounts),)))
    # the real captures (test_capture_replay) name their own OCS: this server stands in for it
    settings = dataclasses.replace(settings, diameter=dataclasses.replace(
        settings.diameter, realms=CAPTURE_REALMS, hosts=CAPTURE_HOSTS))
    if ro:
        settings = dataclasses.replace(settings, ro=dataclasses.replace(settings.ro, **ro))
    return settings


@contextlib.contextmanager
def serving(settings: Settings, data_dir: Path) -> Iterator[Server]:
    """Run *settings* on ephemeral ports in a background thread until the block ends."""
    loop = asyncio.new_event_loop()
    started: Future[RunningServer] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            running = await start_server(settings, data_dir, port=0, admin_port=0)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(running)
        await stop.wait()
        await running.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    running = started.result(60)
    try:
        yield Server(loop, running, data_dir)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path)


@pytest.fixture
def quick_tcc_server(tmp_path: Path) -> Iterator[Server]:
    """The same stack with Tcc 1 s, checked every 50 ms: supervision really runs."""
    yield from serve(tmp_path, tcc_seconds=1.0, supervision_interval=0.05)


def serve(tmp_path: Path, **ro: Any) -> Iterator[Server]:
    """Run the stack (the demo config, the e2e accounts, *ro* replacing [ro] settings) for
    the duration of a fixture."""
    with serving(e2e_settings(tmp_path, **ro), tmp_path / "data") as srv:
        yield srv
