"""Shared helpers for the codec tests: the corpus of real frames, deep decoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diameter import DiameterError
from tests.conftest import SHARED_DATA
from tests.pcaputil import diameter_messages

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "diameter"

CAPTURE_NAMES = (
    "ndpi_diameter_dcca_ccr_cca.pcap",
    "magma_gx_gy_combined_03.pcapng",
    "arkime_diameter_synthetic.pcap",
)


def deep(avps: list[Any]) -> list[Any]:
    """A comparable image of an AVP tree: (code, vendor, flags, value | error key), recursive."""
    out: list[Any] = []
    for a in avps:
        try:
            v = a.value
        except DiameterError as exc:
            out.append((a.code, a.vendor, a.flags, "error", exc.key()))
            continue
        if isinstance(v, list):
            v = deep(v)
        elif isinstance(v, float):
            v = repr(v)
        out.append((a.code, a.vendor, a.flags, v))
    return out


def data_file(name: str) -> Path | None:
    """A Diameter fixture: the permissive copy in tests/fixtures/diameter, else
    ../shared/data/diameter, else None."""
    for base in (FIXTURES, SHARED_DATA / "diameter"):
        if (base / name).is_file():
            return base / name
    return None


def require(name: str) -> Path:
    """Like data_file, but skips the test cleanly when the file is absent."""
    p = data_file(name)
    if p is None:
        pytest.skip(f"fixture {name} not found in tests/fixtures/diameter or ../shared/data")
    return p


def go_diameter_cer() -> bytes:
    """go-diameter's canonical 204-byte CER (BSD-3-Clause, tests/fixtures/diameter)."""
    doc = json.loads(require("go_diameter_cer.json").read_text())
    return bytes.fromhex(doc["hex"])


@pytest.fixture(scope="session")
def corpus() -> list[bytes]:
    """Every real frame from the available captures plus go-diameter's CER."""
    frames: list[bytes] = []
    for name in CAPTURE_NAMES:
        p = data_file(name)
        if p is not None:
            frames += diameter_messages(p)
    frames.append(go_diameter_cer())
    return frames
