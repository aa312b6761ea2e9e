"""Real redis-server fixtures, shared by the charging tests (store, ledger, service) and the e2e
tests that serve on the Redis stores. tests/conftest.py registers the fixtures.

``redis_url``: one standalone redis-server on a free loopback port, no persistence, in a tmp dir.
``redis_unix_url``: another, reached over its unix socket (the store's Batcher path).
``redis_cluster_nodes``: a 3-master Redis Cluster on free loopback ports (cluster bus = port +
10000), created with ``redis-cli --cluster create`` and waited on until ``cluster_state:ok``.

Both are session-scoped and killed at teardown. Without ``redis-server`` on the PATH the tests
that need them are skipped with a reason, except under CI (``CI=true``) or
``ICX_REQUIRE_REDIS=1``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 20.0


def _require_redis() -> str:
    exe = shutil.which("redis-server")
    if exe is None or shutil.which("redis-cli") is None:
        msg = "redis-server/redis-cli not on PATH (apt-get install redis-server)"
        # CI=true (GitHub, GitLab), CI=1 / CI=True elsewhere: any of them demands Redis
        if (os.environ.get("ICX_REQUIRE_REDIS") == "1"
                or os.environ.get("CI", "").lower() in ("1", "true", "yes")):
            pytest.fail(msg + " and CI/ICX_REQUIRE_REDIS demands Redis")
        pytest.skip(msg)
    return exe


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and port+10000 free too when *with_bus*, for the cluster bus)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 and with_bus:
            continue
        if not with_bus or _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One redis-server child process; :meth:`stop` kills it for sure."""

    def __init__(self, exe: str, port: int, workdir: Path, *extra: str) -> None:
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "redis.log"
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
                "--protected-mode", "no", "--logfile", str(self.log), *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.stop()
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"redis-server on port {port} did not start: {err}{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()


def start_cluster(exe: str, base: Path, masters: int = 3) -> tuple[list[RedisProcess], list[int]]:
    """Start *masters* cluster-enabled servers and join them; returns (processes, ports)."""
    procs: list[RedisProcess] = []
    try:
        for _ in range(masters):
            port = free_port(with_bus=True)
            procs.append(RedisProcess(exe, port, base / f"node-{port}", "--cluster-enabled", "yes",
                                      "--cluster-config-file", f"nodes-{port}.conf",
                                      "--cluster-node-timeout", "5000"))
        ports = [p.port for p in procs]
        cmd = ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
               "--cluster-replicas", "0", "--cluster-yes"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        for port in ports:
            while True:
                info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"],
                                      capture_output=True, text=True, timeout=10).stdout
                if "cluster_state:ok" in info:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {port} never reached cluster_state:ok")
                time.sleep(0.1)
        return procs, ports
    except BaseException:
        for p in procs:
            p.stop()
        raise


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server (flush it yourself between tests)."""
    exe = _require_redis()
    proc = RedisProcess(exe, free_port(), tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{proc.port}/0"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def redis_unix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server reached over its unix socket: the store's Batcher path
    (redis-py connections; TCP URLs take the FastPipe), as TLS URLs are."""
    exe = _require_redis()
    work = tmp_path_factory.mktemp("redis-unix")
    sock = work / "redis.sock"
    proc = RedisProcess(exe, free_port(), work, "--unixsocket", str(sock),
                        "--unixsocketperm", "700")
    try:
        yield f"unix://{sock}?db=0"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def redis_cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, int]]]:
    """[(host, port)] of the masters of a private 3-master Redis Cluster."""
    exe = _require_redis()
    procs, ports = start_cluster(exe, tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield [("127.0.0.1", p) for p in ports]
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.stop()
