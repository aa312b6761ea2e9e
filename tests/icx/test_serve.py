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


def test_serve_started_with_stdin_closed_stops_cleanly(tmp_path: Path) -> None:
    """A supervisor may start `icx serve` with stdin closed: fd 0 must not become the event
    loop's epoll fd (libuv aborts when it closes an fd <= 2: the stop ended in SIGABRT)."""
    import os
    import signal

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[server]\nlog_format = "json"\n[diameter]\nlisten_port = 0\n'
        "[admin]\nenabled = false\n[journal]\nfsync = false\n",
        encoding="utf-8",
    )
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [str(ICX), "serve", "-c", str(cfg), "--data-dir", str(tmp_path / "data")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
            preexec_fn=lambda: os.close(0),  # noqa: PLW1509 -- closes only the child's stdin
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until serving (or exit: empty line)
            assert "serving" in line, (line, stderr.read_text())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, stderr.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert "uv__close" not in stderr.read_text()
