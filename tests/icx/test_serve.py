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


BANDED_DECK = "prefix,rate,band\n41,0.30,peak\n41,0.10,offpeak\n"


def test_a_default_band_no_deck_prices_is_refused(tmp_path: Path) -> None:
    """default_band = "ofpeak": check-config said ok and the server started; off-peak calls
    then matched no row of a banded deck (5031) or only its rows without a band."""
    from click.testing import CliRunner

    from icx.cli import main

    cfg = _config(tmp_path, deck=BANDED_DECK)
    cfg.write_text(cfg.read_text() + '[rating]\ndefault_band = "ofpeak"\n'
                   '[rating.bands]\npeak = ["mon-fri 08:00-19:00"]\n')
    want = f"{cfg}:rating.default_band: no deck prices band 'ofpeak'; the decks' bands are " \
           "offpeak, peak"
    out = serve_this_tree(cfg, tmp_path / "data")
    assert out.returncode == 2, out.stderr[-2000:]
    assert want in out.stderr.splitlines(), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not (tmp_path / "data" / "journal").exists()
    res = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert res.exit_code == 2 and res.output == want + "\n", res.output


def _banded_config(tmp_path: Path, rating: str, other_deck: str | None = None) -> Path:
    cfg = _config(tmp_path, deck=BANDED_DECK)
    text = cfg.read_text() + rating
    if other_deck is not None:
        (tmp_path / "other.csv").write_text(other_deck, encoding="utf-8")
        text += '[[rating.decks]]\nfile = "other.csv"\ndeck = "other"\n'
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize(("rating", "other_deck", "wrong"), [
    # a typo in a rule's band: those hours matched no banded row
    ('[rating.bands]\npeek = ["mon-fri 08:00-19:00"]\n', None,
     "rating.bands.peek: no deck prices band 'peek'"),
    # holiday_band counts once holidays are listed...
    ('[rating]\nholidays = ["2026-12-25"]\nholiday_band = "holliday"\n', None,
     "rating.holiday_band: no deck prices band 'holliday'"),
    # ...and not before (the default "weekend" is never used then)
    ('[rating]\nholiday_band = "holliday"\n', None, None),
    # a band only one deck prices is a band of the decks (the other prices by rows without one)
    ('[rating]\nholidays = ["2026-12-25"]\nholiday_band = "weekend"\n',
     "prefix,rate,band\n41,0.05,weekend\n41,0.20,\n", None),
    # bands are case-insensitive, as the calendar and the deck reader read them
    ('[rating]\ndefault_band = "OffPeak"\n[rating.bands]\nPeak = ["mon-fri 08:00-19:00"]\n',
     None, None),
    # "" on purpose: only rows without a band
    ('[rating]\ndefault_band = ""\n', None, None),
])
def test_check_config_checks_every_band_the_calendar_names(
        tmp_path: Path, rating: str, other_deck: str | None, wrong: str | None) -> None:
    from click.testing import CliRunner

    from icx.cli import main

    cfg = _banded_config(tmp_path, rating, other_deck)
    res = CliRunner().invoke(main, ["check-config", str(cfg)])
    if wrong is None:
        assert res.exit_code == 0 and res.output == f"{cfg}: ok\n", res.output
    else:
        assert res.exit_code == 2 and res.output.startswith(f"{cfg}:{wrong}; "), res.output


def test_bands_are_not_checked_when_no_deck_has_any(tmp_path: Path) -> None:
    """The demo: [rating.bands] and default_band set, no deck with a band column."""
    from click.testing import CliRunner

    from icx.cli import main

    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + '[rating]\ndefault_band = "anything"\n'
                   '[rating.bands]\nnight = ["mon-sun 00:00-06:00"]\n')
    res = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert res.exit_code == 0, res.output


def test_a_deck_imported_into_the_data_dir_counts_for_the_bands(tmp_path: Path) -> None:
    """check-config asks the data dir too, as serve does (its engine loads every deck)."""
    from click.testing import CliRunner

    from icx.cli import main

    cfg = _config(tmp_path)  # the configured deck has no bands
    (tmp_path / "night.csv").write_text("prefix,rate,band\n41,0.01,night\n41,0.02,day\n")
    cfg.write_text(cfg.read_text().replace("[server]\n", '[server]\ndata_dir = "data"\n')
                   + '[rating]\ndefault_band = "nite"\n[rating.bands]\nday = ["mon-sun 06:00-22:00"]\n')
    runner = CliRunner()
    res = runner.invoke(main, ["rates", "import", str(tmp_path / "night.csv"), "--deck", "n",
                               "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["check-config", str(cfg)])
    assert res.exit_code == 2, res.output
    assert res.output == (f"{cfg}:rating.default_band: no deck prices band 'nite'; the decks' "
                          "bands are day, night\n")
