"""Shared helpers for the codec tests: the corpus of real frames, deep decoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diameter import DiameterError
from tests.pcaputil import diameter_messages

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


@pytest.fixture(scope="session")
def corpus(shared_data: Path) -> list[bytes]:
    """Every real frame from the captures plus the well-formed vector messages."""
    frames: list[bytes] = []
    for name in CAPTURE_NAMES:
        frames += diameter_messages(shared_data / "diameter" / name)
    vec = json.loads((shared_data / "diameter" / "diameter_encoding_test_vectors.json").read_text())
    frames.append(bytes.fromhex(vec["go_diameter_cer"]["hex"]))
    return frames
