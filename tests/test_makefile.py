"""The Makefile's quick-start targets do what the README says they do (make -n: nothing runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path: Path, target: str, *args: str) -> str:
    for name in ("Makefile", "pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "tools").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tools" / "pick-python", tmp_path / "tools" / "pick-python")
    out = subprocess.run(["make", "-n", target, *args], cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=60)
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_run_on_a_fresh_clone_serves_without_the_interop_peer(tmp_path: Path) -> None:
    """README: `make run` is venv -> install -> build extensions -> serve; only `make test`
    needs python-diameter (the interop peer, its own venv fetched from the index)."""
    run = _dry_run(tmp_path, "run")
    assert "setup.py -q build_ext --inplace" in run and "icx serve -c config/icx.toml" in run
    assert "python-diameter" not in run and ".venv-pydiameter" not in run
    assert "python-diameter==0.9.0" in _dry_run(tmp_path, "test")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_the_venv_is_made_from_the_picked_interpreter_unless_one_is_given(
        tmp_path: Path) -> None:
    """tools/pick-python names a Python 3.11+ that has its headers and can make a venv (the
    distribution's PGO+LTO build first); `make PYTHON=...` overrides it."""
    picked = subprocess.run([str(ROOT / "tools" / "pick-python")], capture_output=True,
                            text=True, check=True, timeout=60).stdout.strip()
    probe = ("import os, sys, sysconfig, ensurepip; print(sys.version_info >= (3, 11), "
             "os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))")
    ok = subprocess.run([picked, "-c", probe], capture_output=True, text=True, check=True,
                        timeout=60).stdout.split()
    assert ok == ["True", "True"], (picked, ok)
    assert f"{picked} -m venv .venv" in _dry_run(tmp_path, "build")
    assert "/opt/other/python3 -m venv .venv" in _dry_run(tmp_path, "build",
                                                           "PYTHON=/opt/other/python3")
