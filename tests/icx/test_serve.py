"""`icx serve` refuses to start on bad input with exit 2 and a clear message."""

from __future__ import annotations

import os
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


ROOT = Path(__file__).resolve().parents[2]
GOOD_DECK = "prefix,rate\n41,0.12\n44,0.20\n"
GOOD_ACCOUNTS = '[[account]]\nid = "41790000000"\namount = "1.00"\n'


def serve_this_tree(cfg: Path, data: Path) -> subprocess.CompletedProcess[str]:
    """`icx serve` of this source tree (the console script may be another checkout's)."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from icx.cli import main; sys.exit(main())",
         "serve", "-c", str(cfg), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _config(tmp_path: Path, accounts: str | None = GOOD_ACCOUNTS, deck: str = GOOD_DECK) -> Path:
    cfg = tmp_path / "icx.toml"
    cfg.write_text(
        '[server]\nlog_format = "json"\nhuge_page_heap = false\n[diameter]\nlisten_port = 0\n'
        "[admin]\nenabled = false\n[journal]\nfsync = false\n"
        '[accounts]\nfiles = ["accounts.toml"]\n'
        '[[rating.decks]]\nfile = "deck.csv"\ndeck = "retail"\n', encoding="utf-8")
    if accounts is not None:
        (tmp_path / "accounts.toml").write_text(accounts, encoding="utf-8")
    (tmp_path / "deck.csv").write_text(deck, encoding="utf-8")
    return cfg


@pytest.mark.parametrize(("accounts", "deck", "message"), [
    # a missing accounts file was skipped: the server ran without the accounts
    (None, GOOD_DECK, "{cfg}:accounts.files[0]: file not found: {dir}/accounts.toml"),
    # one id twice: both were created at once (one balance won), then the start failed
    (GOOD_ACCOUNTS + '[[account]]\nid = "41790000000"\namount = "5.00"\n', GOOD_DECK,
     "{dir}/accounts.toml:account[1]: account '41790000000' is defined twice"),
    (GOOD_ACCOUNTS.replace('"1.00"', '"1e3"'), GOOD_DECK,
     "{dir}/accounts.toml:account[0].amount: not a plain decimal amount"),
    (GOOD_ACCOUNTS, GOOD_DECK + "33,0.1x\n", "{dir}/deck.csv:4: rate is not a non-negative"),
])
def test_a_bad_file_the_config_names_is_exit_2_with_its_place_and_nothing_started(
        tmp_path: Path, accounts: str | None, deck: str, message: str) -> None:
    """Like a bad key: `file:key|line: what`, exit 2, no traceback, no journal written."""
    cfg = _config(tmp_path, accounts, deck)
    out = serve_this_tree(cfg, tmp_path / "data")
    assert out.returncode == 2, out.stderr[-2000:]
    assert message.format(cfg=cfg, dir=tmp_path) in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "start_failed" not in out.stderr
    assert not (tmp_path / "data" / "journal").exists()


def test_check_config_reports_the_named_files_too(tmp_path: Path) -> None:
    """`icx check-config` prints what `icx serve` would refuse (it said ok, serve refused)."""
    from click.testing import CliRunner

    from icx.cli import main

    cfg = _config(tmp_path, GOOD_ACCOUNTS.replace('"1.00"', '"1.001"'), GOOD_DECK + "33,x\n")
    res = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert res.exit_code == 2
    assert f"{tmp_path}/accounts.toml:account[0].amount: more decimals than EUR has" in res.output
    assert f"{tmp_path}/deck.csv:4: rate is not a non-negative decimal number" in res.output
    assert not (tmp_path / "data").exists()
    ok = _config(tmp_path)
    res = CliRunner().invoke(main, ["check-config", str(ok)])
    assert res.exit_code == 0 and res.output == f"{ok}: ok\n", res.output


def test_an_ro_deck_the_server_does_not_have_is_refused(tmp_path: Path) -> None:
    """[ro] deck = a typo: the server started and answered every CCR 5031."""
    from click.testing import CliRunner

    from icx.cli import main

    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + '[ro]\ndeck = "dd"\n[rf]\nenabled = false\n')
    out = serve_this_tree(cfg, tmp_path / "data")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{cfg}:ro.deck: no deck 'dd'; the server has retail" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "data" / "journal").exists()
    res = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert res.exit_code == 2 and f"{cfg}:ro.deck: no deck 'dd'" in res.output, res.output
