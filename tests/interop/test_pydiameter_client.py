"""python-diameter (its own venv, out of process) as a client peer of a real `icx serve`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest

from diameter.adapter import connect
from tests.diameter.peer_helpers import CLIENT, ccr
from tests.interop.conftest import ROOT, Served, start_icx, stop

pytestmark = pytest.mark.interop
SCRIPT = ROOT / "tests" / "interop" / "pydiameter_client.py"


def run_client(python: Path, port: int, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [str(python), str(SCRIPT), str(port), *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT / "tests" / "interop",  # never import our `diameter` package by accident
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result line; stderr:\n{out.stderr[-3000:]}"
    return json.loads(lines[-1])


def test_cer_cea_dwr_dwa_ccr_dpr_against_diameter_base(
    pydiameter_python: Path, icx_server: Served
) -> None:
    result = run_client(pydiameter_python, icx_server.port, "--ccr")
    assert result["error"] is None, (result, icx_server.log()[-3000:])
    assert result["cea"] is True
    assert int(result["dwa"]) >= 1  # type: ignore[call-overload]
    assert result["ccr_result"] == 3001  # no charging handler: command unsupported
    assert result["dpa"] is True
    log = icx_server.log()
    assert '"event": "diameter.request"' in log and '"result_code": 3001' in log


def test_ccr_answered_by_the_charging_stack(pydiameter_python: Path, tmp_path: Path) -> None:
    served = start_icx(tmp_path)  # full `icx serve`: the Ro/Rf agent is the handler
    try:
        result = run_client(pydiameter_python, served.port, "--ccr")
        assert result["error"] is None, (result, served.log()[-3000:])
        assert result["cea"] is True and result["dpa"] is True
        # The agent, not the bare stack (3001), answered: this config loads no accounts, so
        # the subscriber is unknown to the OCS (RFC 4006 5030). ">= 2001" accepted any code.
        assert result["ccr_result"] == 5030, result
    finally:
        assert stop(served) == 0


def test_sigterm_sends_dpr_and_exits_cleanly(icx_server: Served) -> None:
    async def main() -> int | None:
        client = await connect(CLIENT, "127.0.0.1", icx_server.port)
        ans = await client.request(ccr())
        assert ans.get("Result-Code") == 3001
        icx_server.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(client.closed, 10)
        return client.disconnect_cause

    cause = asyncio.run(main())
    assert cause == 0  # DPR with Disconnect-Cause REBOOTING
    assert icx_server.proc.wait(10) == 0
