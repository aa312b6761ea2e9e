"""A second `icx serve` on a data dir a live server holds is refused before it touches it.

The journal's writer lock (charging/journal/segments.py) stops a second writer of the
journal, but a second server reached it only after importing its decks and opening the store
in the same directory. `icx serve` now locks ``<data-dir>/serve.lock`` first: one line naming
the holder, exit 1, nothing in the directory changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import ROOT
from tests.e2e.test_rf_restart import IcxServe


def _files(data: Path) -> dict[str, tuple[int, int]]:
    """Every file under *data* with its size and mtime (the lock file's pid line aside)."""
    return {str(p.relative_to(data)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(data.rglob("*")) if p.is_file() and p.name != "serve.lock"}


def _quiet(data: Path) -> dict[str, tuple[int, int]]:
    """The listing once the live server has finished its start-up writes (its first Rf
    checkpoint goes through a temporary file)."""
    last = _files(data)
    for _ in range(50):
        time.sleep(0.2)
        now = _files(data)
        if now == last and not any(".tmp" in name for name in now):
            return now
        last = now
    raise AssertionError("the live server kept writing its data dir")


def test_a_second_server_on_the_same_data_dir_is_refused_untouched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = IcxServe(tmp_path, data)
    try:
        before = _quiet(data)
        # an operator starting a second server by mistake, with a changed deck (it would be
        # imported as a new version into the live server's rates)
        other = tmp_path / "other"
        shutil.copytree(tmp_path / "config", other)
        deck = other / "decks" / "carrier_a_sell.csv"
        deck.write_text(deck.read_text().replace("0.0150", "0.0170"))
        second = subprocess.run(
            [sys.executable, "-c", "import sys; from icx.cli import main; sys.exit(main())",
             "serve", "-c", str(other / "icx.toml"), "--data-dir", str(data)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, (second.returncode, second.stderr)
        assert second.stdout == ""
        (line,) = [ln for ln in second.stderr.splitlines() if ln.startswith("icx serve:")]
        assert "cannot start" in line and str(data) in line
        assert f"{first.proc.pid}:" in line  # the holder, for the operator's next step
        assert _files(data) == before
        assert first.proc.poll() is None  # the live server carries on
    finally:
        first.stop()
    # the first one stopped: the lock went with it, the directory serves again
    again = IcxServe(tmp_path, data)
    again.stop()
