"""Deeply nested Grouped AVPs must be refused, not crash the server.

Failed-AVP (and every Grouped AVP whose grammar has ``* [ AVP ]``) may hold itself, so one
CCR under the 64 KiB message limit can nest ~8000 levels. The validator recurses once per
level: the compiled twin overflowed the C stack (SIGSEGV: the whole server dies, found in the
session-3 review), the pure spec raised RecursionError (not a DiameterError: no answer). Both
must answer 5004 instead (diameter.validate.MAX_NESTING).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._ro_edge import frames as bench_frames
from diameter import DiameterError
from diameter.message import decode_message
from diameter.validate import MAX_NESTING, check_request

ROOT = Path(__file__).resolve().parents[2]
FAILED_AVP = 279


def nested_ccr(depth: int) -> bytes:
    """A valid hot-path CCR plus one Failed-AVP nested ``depth`` levels deep (no M bit)."""
    inner = b""
    for _ in range(depth):
        inner = struct.pack(">II", FAILED_AVP, 8 + len(inner)) + inner
    raw = bytearray(bench_frames(1)[0] + inner)
    raw[1:4] = len(raw).to_bytes(3, "big")
    return bytes(raw)


def test_just_below_the_limit_is_accepted() -> None:
    check_request(decode_message(nested_ccr(MAX_NESTING - 1)))


@pytest.mark.parametrize("depth", [MAX_NESTING, MAX_NESTING + 1, 900, 1200])
def test_too_deep_is_5004(depth: int) -> None:
    with pytest.raises(DiameterError) as exc:
        check_request(decode_message(nested_ccr(depth)))
    assert exc.value.result_code == 5004
    assert exc.value.failed_avp is not None
    assert int.from_bytes(exc.value.failed_avp[:4], "big") == FAILED_AVP


@pytest.mark.parametrize("no_ext", ["", "1"])
def test_max_size_nesting_does_not_kill_the_process(no_ext: str) -> None:
    """~8000 levels in a 64 KiB CCR: in a child process (a SIGSEGV must fail the test, not
    take pytest down), compiled and pure."""
    depth = (65536 - len(bench_frames(1)[0])) // 8 - 1
    code = (
        "import sys; from tests.diameter.test_validate_nesting import nested_ccr\n"
        "from diameter import DiameterError\n"
        "from diameter.message import decode_message\n"
        "from diameter.validate import check_request\n"
        f"raw = nested_ccr({depth}); assert len(raw) <= 65536\n"
        "try:\n"
        "    check_request(decode_message(raw))\n"
        "except DiameterError as exc:\n"
        "    print(exc.result_code)\n"
    )
    env = dict(os.environ, ICX_NO_EXTENSIONS=no_ext) if no_ext else {
        k: v for k, v in os.environ.items() if k != "ICX_NO_EXTENSIONS"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "5004"
