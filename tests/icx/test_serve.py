"""`icx serve` refuses to start on bad input with exit 2 and a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diameter.transport_sctp import sctp_unavailable_reason

ICX = Path(sys.executable).parent / "icx"


def serve(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ICX), "serve", "-c", str(cfg)], capture_output=True, text=True, timeout=60
    )


def test_config_errors_print_file_key_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[diameter]\nlisten_port = "x"\nbogus = 1\n', encoding="utf-8")
    out = serve(cfg)
    assert out.returncode == 2
    assert f"{cfg}:diameter.listen_port:" in out.stderr
    assert f"{cfg}:diameter.bogus: unknown key" in out.stderr


def test_sctp_without_kernel_support_exits_2(tmp_path: Path) -> None:
    if sctp_unavailable_reason() is None:
        pytest.skip("this kernel supports SCTP")
    cfg = tmp_path / "sctp.toml"
    cfg.write_text(
        '[server]\nlog_format = "json"\n[diameter]\ntransport = "sctp"\nlisten_port = 0\n'
        "[admin]\nenabled = false\n[journal]\nfsync = false\n",
        encoding="utf-8",
    )
    out = serve(cfg)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "SCTP not supported by this kernel" in out.stderr
