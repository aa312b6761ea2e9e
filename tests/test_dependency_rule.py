"""The one-way dependency rule of the architecture, enforced by an import scan (ast).

icx -> mediation -> {diameter, charging}; settlement -> charging; charging -> cython_ext.
charging/ never imports a protocol package or asyncio transports; diameter/ never imports charging/.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["diameter", "mediation", "charging", "cython_ext", "settlement", "icx"]

# package -> project packages it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "icx": {"mediation", "diameter", "charging", "settlement", "cython_ext"},
    "mediation": {"diameter", "charging", "cython_ext"},
    "diameter": {"cython_ext"},
    "charging": {"cython_ext"},
    "settlement": {"charging", "cython_ext"},
    "cython_ext": set(),
}
# third-party/stdlib modules a package must never import
FORBIDDEN_EXTERNAL: dict[str, set[str]] = {
    "charging": {"smpplib", "aiohttp", "asyncio_dgram", "sctp"},
    "settlement": {"aiohttp", "asyncio_dgram", "sctp"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


_PYX_IMPORT = re.compile(r"^\s*(?:from|import|cimport)\s+([A-Za-z_]\w*)", re.MULTILINE)


def _pyx_imports(path: Path) -> set[str]:
    """Top-level module names a Cython file imports (ast cannot parse Cython; a line scan)."""
    return set(_PYX_IMPORT.findall(path.read_text(encoding="utf-8")))


def _files(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py")) + sorted((ROOT / pkg).rglob("*.pyx"))


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_imports_follow_the_rule(pkg: str) -> None:
    bad: list[str] = []
    for f in _files(pkg):
        for mod in _pyx_imports(f) if f.suffix == ".pyx" else _imports(f):
            if mod in PACKAGES and mod != pkg and mod not in ALLOWED[pkg]:
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
            if mod in FORBIDDEN_EXTERNAL.get(pkg, set()):
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert not bad, "dependency rule broken:\n" + "\n".join(bad)


# The Redis store's own database client is the one place in charging/ that opens a socket:
# it talks to the store's database, not to a network element. Nothing else may.
STORE_CLIENTS = {"charging/store/redis_fast.py"}


def test_charging_uses_no_asyncio_transports() -> None:
    bad = []
    for f in _files("charging"):
        if str(f.relative_to(ROOT)) in STORE_CLIENTS:
            continue
        if f.suffix == ".py" and any(
            s in f.read_text(encoding="utf-8")
            for s in ("create_server(", "open_connection(", "start_server(", "create_connection(")
        ):
            bad.append(str(f.relative_to(ROOT)))
    assert not bad, f"charging/ must not open transports: {bad}"


def test_scanner_detects_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import charging.money\nfrom mediation import ro\n")
    assert {"charging", "mediation"} <= _imports(f)
    g = tmp_path / "x.pyx"
    g.write_text("# cython: boundscheck=False\ncimport cython\nfrom charging.money import MICROS\n"
                 "    import settlement.aggregate\n")
    assert {"cython", "charging", "settlement"} <= _pyx_imports(g)
