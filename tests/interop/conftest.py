"""Fixtures for interop tests: the python-diameter venv and a real `icx serve` subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYDIAMETER = ROOT / ".venv-pydiameter" / "bin" / "python"
ICX = Path(sys.executable).parent / "icx"


@pytest.fixture(scope="session")
def pydiameter_python() -> Path:
    """The python-diameter interpreter; skip (fail under CI=true) when it is missing."""
    if not PYDIAMETER.exists():
        msg = f"python-diameter venv not found at {PYDIAMETER} (make interop-venv)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return PYDIAMETER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A running `icx serve` subprocess."""

    def __init__(self, proc: subprocess.Popen[str], port: int, stderr: Path) -> None:
        self.proc = proc
        self.port = port
        self.stderr = stderr

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def start_icx(tmp: Path, *extra: str, watchdog: int = 6) -> Served:
    """`icx serve -c <tmp config>` on a free port; waits for its "serving" line."""
    port = free_port()
    cfg = tmp / "icx.toml"
    cfg.write_text(
        "[server]\n"
        'data_dir = "data"\n'
        'log_format = "json"\n'
        "[diameter]\n"
        f"listen_port = {port}\n"
        f"watchdog_seconds = {watchdog}\n"
        "[journal]\n"
        "fsync = false\n"
        "[admin]\n"
        "enabled = false\n",
        encoding="utf-8",
    )
    stderr = tmp / "icx.stderr"
    proc = subprocess.Popen(
        [str(ICX), "serve", "-c", str(cfg), *extra],
        stdout=subprocess.PIPE,
        stderr=stderr.open("w"),
        text=True,
        cwd=tmp,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until serving (or exit: empty line)
    if "serving" not in line:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # alive but not serving: never leak the process
            proc.kill()
            proc.wait(5)
        raise AssertionError(f"icx serve did not start: {line!r}\n{stderr.read_text()}")
    return Served(proc, port, stderr)


@pytest.fixture
def icx_server(tmp_path: Path) -> Iterator[Served]:
    served = start_icx(tmp_path, "--no-charging")
    yield served
    stop(served)


def stop(served: Served) -> int:
    if served.proc.poll() is None:
        served.proc.terminate()
        try:
            served.proc.wait(15)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(5)
    time.sleep(0)  # let the OS reap
    return served.proc.returncode
