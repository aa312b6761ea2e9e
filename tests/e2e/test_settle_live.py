"""Settlement next to a live `icx serve` (a real process appending to its journal).

* ``icx settle generate`` (a second journal *writer*) is refused with one line and exit 1 while
  the server holds the journal; the server's journal stays intact (it used to be recovered,
  overwritten and sealed under the server: a closed segment failing its checksum).
* ``icx settle`` (a reader) is safe meanwhile: each run reads the records committed when it
  reads, never a half-written group as corruption, and its checkpoint continues exactly:
  the runs during the traffic plus one after it count every record of the journal once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from charging.journal import JournalReader
from tests.e2e.conftest import ROOT
from tests.e2e.test_rf_restart import IcxServe

PERIOD = datetime.now(UTC).strftime("%Y-%m")


def icx(*args: str, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from icx.cli import main; sys.exit(main())", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "ICX_DATA_DIR": str(data), **env},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def bench(port: int, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from icx.cli import main; sys.exit(main())",
         "bench", "diameter", "--port", str(port), "--connections", "1", "--processes", "1",
         "--rate", "150", "--duration", str(seconds), "--mix", "voice,sms", "--quiet"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def records(data: Path) -> int:
    return sum(len(ch.records) for ch in JournalReader(data / "journal").chunks())


def test_settle_generate_is_refused_while_the_server_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = IcxServe(tmp_path, data)
    try:
        load = bench(srv.port, 3.0)
        time.sleep(1.0)
        before = sorted(p.name for p in (data / "journal").iterdir())
        res = icx("settle", "generate", "--period", PERIOD, "--records", "300",
                  "--partners", str(ROOT / "config" / "partners.toml"), data=data)
        assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
        (line,) = res.stderr.splitlines()
        assert "journal is in use by another writer" in line and f"pid {srv.proc.pid}" in line
        assert res.stdout == ""
        assert sorted(p.name for p in (data / "journal").iterdir()) == before
        out, err = load.communicate(timeout=60)
        assert load.returncode == 0, err
    finally:
        srv.stop()
    verify = icx("journal", "verify", "--data-dir", str(data), "--json", data=data)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    requests = json.loads(out)["requests"]
    rated = sum(1 for _, r in JournalReader(data / "journal").iter_from() if r["type"] == "rated")
    assert rated and rated <= requests  # every CCR-I/U/T/event answered is rated once at most
    # the server stopped, the lock is released: now generate appends
    res = icx("settle", "generate", "--period", PERIOD, "--records", "300",
              "--partners", str(ROOT / "config" / "partners.toml"), data=data)
    assert res.returncode == 0, res.stderr
    assert icx("journal", "verify", "--data-dir", str(data), data=data).returncode == 0


def test_settle_reads_a_live_journal_consistently(tmp_path: Path) -> None:
    data = tmp_path / "data"
    partners = str(ROOT / "config" / "partners.toml")
    runs: list[int] = []
    srv = IcxServe(tmp_path, data)
    try:
        load = bench(srv.port, 3.0)
        for i in range(4):
            time.sleep(0.5)
            # the compiled and the pure reader, alternately
            pure = {"ICX_NO_EXTENSIONS": "1"} if i % 2 else {}
            res = icx("settle", "--period", PERIOD, "--partners", partners, "--json",
                      data=data, **pure)
            assert res.returncode == 0, res.stderr
            runs.append(json.loads(res.stdout)["records_read"])
        _, err = load.communicate(timeout=60)
        assert load.returncode == 0, err
    finally:
        srv.stop()
    res = icx("settle", "--period", PERIOD, "--partners", partners, "--json", data=data)
    assert res.returncode == 0, res.stderr
    last = json.loads(res.stdout)
    runs.append(last["records_read"])
    assert sum(runs[:4]) > 0 and last["records"] == sum(runs) == records(data), runs
