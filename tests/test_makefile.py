"""The Makefile's quick-start targets do what the README says they do (make -n: nothing runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path: Path, target: str) -> str:
    for name in ("Makefile", "pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    out = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_run_on_a_fresh_clone_serves_without_the_interop_peer(tmp_path: Path) -> None:
    """README: `make run` is venv -> install -> build extensions -> serve; only `make test`
    needs python-diameter (the interop peer, its own venv fetched from the index)."""
    run = _dry_run(tmp_path, "run")
    assert "setup.py -q build_ext --inplace" in run and "icx serve -c config/icx.toml" in run
    assert "python-diameter" not in run and ".venv-pydiameter" not in run
    assert "python-diameter==0.9.0" in _dry_run(tmp_path, "test")
