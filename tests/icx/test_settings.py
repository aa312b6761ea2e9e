from pathlib import Path

import pytest
from click.testing import CliRunner

from icx.cli import main
from icx.config_loader import ConfigError
from icx.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_demo_config_loads() -> None:
    s = load_settings(ROOT / "config" / "icx.toml")
    assert s.diameter.origin_host == "ocs.icx.local"
    assert s.diameter.origin_realm == "icx.local"
    assert s.diameter.listen_port == 3868


def test_every_problem_is_named_with_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[diameter]\nlisten_port = "x"\nwatchdog_seconds = 2\nbogus = 1\n'
        '[server]\nlog_format = "xml"\n[nonsense]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    lines = str(err.value).splitlines()
    assert f"{cfg}:diameter.listen_port: expected an integer, got a string" in lines
    assert any(line.startswith(f"{cfg}:diameter.watchdog_seconds: must be between 6") for line in lines)
    assert f"{cfg}:diameter.bogus: unknown key" in lines
    assert f"{cfg}:nonsense: unknown key" in lines
    assert any(line.startswith(f"{cfg}:server.log_format: must be one of") for line in lines)


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["check-config", str(ROOT / "config" / "icx.toml")])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[diameter]\nlisten_port = 70000\n")
    res = runner.invoke(main, ["check-config", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}:diameter.listen_port: must be between 0 and 65535, got 70000" in res.output
    broken = tmp_path / "broken.toml"
    broken.write_text("[diameter\n")
    res = runner.invoke(main, ["check-config", str(broken)])
    assert res.exit_code == 2 and "invalid TOML" in res.output


def test_version() -> None:
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and "icx, version" in res.output


def test_tcc_shorter_than_the_validity_time_is_refused(tmp_path: Path) -> None:
    """Tcc under the Validity-Time would close sessions whose quota is still valid (their
    next report 5002, the usage uncharged): file:key, before anything starts."""
    cfg = tmp_path / "ro.toml"
    cfg.write_text("[ro]\nvalidity_time = 600\ntcc_seconds = 300\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert any(line.startswith(f"{cfg}:ro.tcc_seconds: 300 s is shorter than validity_time")
               for line in str(err.value).splitlines())
    cfg.write_text("[ro]\nvalidity_time = 600\ntcc_seconds = 600\n")
    assert load_settings(cfg).ro.tcc_seconds == 600
    cfg.write_text("[ro]\nvalidity_time = 0\ntcc_seconds = 5\n")  # 0: no Validity-Time sent
    assert load_settings(cfg).ro.tcc_seconds == 5


def test_kill_grace_is_an_ro_setting_the_service_gets(tmp_path: Path) -> None:
    from icx.charging_app import service_config

    demo = load_settings(ROOT / "config" / "icx.toml")
    assert service_config(demo).kill_grace == 30.0
    cfg = tmp_path / "ro.toml"
    cfg.write_text("[ro]\nkill_grace_seconds = 5\n")
    assert service_config(load_settings(cfg)).kill_grace == 5.0
    cfg.write_text("[ro]\nkill_grace_seconds = 0\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert any(line.startswith(f"{cfg}:ro.kill_grace_seconds: must be between 1")
               for line in str(err.value).splitlines())


@pytest.mark.parametrize("preallocate", [True, False])
def test_journal_preallocate_setting_reaches_the_journal(tmp_path: Path, preallocate: bool) -> None:
    """[journal] preallocate = false makes the server append to a growing segment file; the
    default keeps the open segment at its full size (zeros past the data)."""
    import asyncio

    from icx.charging_app import build_charging

    cfg = tmp_path / "j.toml"
    cfg.write_text(f"[journal]\nsegment_bytes = 1048576\n"
                   f"preallocate = {'true' if preallocate else 'false'}\n")
    settings = load_settings(cfg)
    assert settings.journal.preallocate is preallocate

    async def open_and_close() -> int:
        app = await build_charging(settings, tmp_path / "data", admin=False)
        try:
            await app.journal.wait_preallocated(full=True)
            return max(p.stat().st_size for p in (tmp_path / "data" / "journal").glob("*.open"))
        finally:
            await app.close()

    size = asyncio.run(open_and_close())
    if preallocate:
        assert size == 1048576
    else:
        assert size < 4096


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_journal_writer_threads_setting_reaches_the_journal(tmp_path: Path, threads: int) -> None:
    """[journal] writer_threads picks how many native writer threads take group commits (0:
    the Python writer thread); without the compiled extensions it is always the Python one."""
    import asyncio

    import cython_ext
    from icx.charging_app import build_charging

    cfg = tmp_path / "j.toml"
    cfg.write_text(f"[journal]\nsegment_bytes = 1048576\nwriter_threads = {threads}\n")
    settings = load_settings(cfg)
    assert settings.journal.writer_threads == threads

    async def open_and_close() -> int:
        app = await build_charging(settings, tmp_path / "data", admin=False)
        try:
            return app.journal.native_writers
        finally:
            await app.close()

    native = cython_ext.load("journal_io") is not None
    assert asyncio.run(open_and_close()) == (threads if native else 0)


def test_journal_writer_threads_out_of_range_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "j.toml"
    cfg.write_text("[journal]\nwriter_threads = 9\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert f"{cfg}:journal.writer_threads:" in str(err.value)


@pytest.mark.parametrize("table", ["ro", "rating.decks"])
def test_a_currency_iso_4217_does_not_know_is_refused(tmp_path: Path, table: str) -> None:
    cfg = tmp_path / "c.toml"
    if table == "ro":
        cfg.write_text('[ro]\ncurrency = "EUX"\n')
        key = "ro.currency"
    else:
        cfg.write_text('[[rating.decks]]\nfile = "d.csv"\ndeck = "d"\ncurrency = "EUX"\n')
        key = "rating.decks[0].currency"
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert f"{cfg}:{key}: must be an ISO 4217 currency code like EUR" in str(err.value)


def test_accounts_files_default_to_the_one_beside_the_config_when_there_is_one(
        tmp_path: Path) -> None:
    """Without [accounts], accounts.toml beside the config is read if present (no error
    when absent); files named in [accounts] must exist."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[journal]\nfsync = false\n")
    assert load_settings(cfg).account_files() == []
    (tmp_path / "accounts.toml").write_text("")
    assert load_settings(cfg).account_files() == [tmp_path / "accounts.toml"]
    cfg.write_text('[accounts]\nfiles = ["more.toml"]\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert f"{cfg}:accounts.files[0]: file not found: {tmp_path}/more.toml" in str(err.value)


def test_a_toml_syntax_error_is_file_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[diameter]\nlisten_port = 3868\nlisten_port = = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value).startswith(f"{cfg}:3: invalid TOML: "), str(err.value)


def test_an_unknown_default_service_is_refused(tmp_path: Path) -> None:
    """It raised ValueError at start, after the accounts were journaled (exit 1, traceback)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ro]\ndefault_service = "vocie"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert f"{cfg}:ro.default_service: unknown service 'vocie'" in str(err.value)
    cfg.write_text('[ro]\ndefault_service = ""\n')  # "": answer 5031
    assert load_settings(cfg).ro.default_service == ""


def test_rating_decks_need_a_usable_and_distinct_deck_name(tmp_path: Path) -> None:
    """A bad name failed the start with ValueError (exit 1, traceback) after importing the
    decks before it; a name given twice imported both files as versions of one deck at each
    start, the second replacing the first's prices."""
    cfg = tmp_path / "c.toml"
    (tmp_path / "a.csv").write_text("prefix,rate\n41,0.1\n")
    cfg.write_text('[[rating.decks]]\nfile = "a.csv"\ndeck = "a/b"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert f"{cfg}:rating.decks[0].deck: bad deck name 'a/b'" in str(err.value)
    cfg.write_text('[[rating.decks]]\nfile = "a.csv"\ndeck = "sell"\ndirection = "sell"\n'
                   '[[rating.decks]]\nfile = "a.csv"\ndeck = "sell"\ndirection = "buy"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value) == (f"{cfg}:rating.decks[1].deck: deck 'sell' is also "
                              "rating.decks[0]; one file per deck")


def test_a_derived_key_written_in_the_file_is_refused(tmp_path: Path) -> None:
    """base_dir = "..." was replaced by the file's directory in silence."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('base_dir = "/etc/icx"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value) == f"{cfg}:base_dir: unknown key (derived from the file's location)"


def test_a_rating_group_that_is_no_unsigned32_is_refused(tmp_path: Path) -> None:
    """Rating-Group "abc" passed check-config, then `icx serve` failed with ValueError (exit 1)
    after journaling the accounts; "-5" never matched; "0200" beside "200" named one group
    twice, the last silently winning."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ro.rating_groups]\n"abc" = "voice"\n"-5" = "sms"\n"0200" = "voice"\n'
                   '"200" = "data"\n"4294967296" = "data"\n"4294967295" = "sms"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value).splitlines() == [
        f"{cfg}:ro.rating_groups.abc: 'abc' is no Rating-Group: use a decimal number "
        "0..4294967295",
        f"{cfg}:ro.rating_groups.-5: '-5' is no Rating-Group: use a decimal number "
        "0..4294967295",
        f"{cfg}:ro.rating_groups.200: Rating-Group 200 is also '0200'",
        f"{cfg}:ro.rating_groups.4294967296: '4294967296' is no Rating-Group: use a decimal "
        "number 0..4294967295",
    ]
    cfg.write_text('[ro.rating_groups]\n"0" = "voice"\n"4294967295" = "sms"\n')
    assert load_settings(cfg).ro.rating_groups == {"0": "voice", "4294967295": "sms"}


def test_a_bad_effective_date_of_a_configured_deck_names_the_key(tmp_path: Path) -> None:
    """It was reported as `deck.csv:--effective: ...`, a command-line option the operator
    never gave, instead of the config key."""
    (tmp_path / "a.csv").write_text("prefix,rate\n41,0.1\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[rating.decks]]\nfile = "a.csv"\ndeck = "a"\neffective = "2026-13-01"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value) == (f"{cfg}:rating.decks[0].effective: bad date '2026-13-01': "
                              "month must be in 1..12")
    cfg.write_text('[[rating.decks]]\nfile = "a.csv"\ndeck = "a"\neffective = "01/02/2026"\n')
    assert load_settings(cfg).rating.decks[0].effective == "01/02/2026"


def test_rf_usage_reports_is_validated_and_reaches_the_service(tmp_path: Path) -> None:
    """[rf] usage_reports: "incremental" (default) or "cumulative"; anything else is refused
    with file:key (check-config exit 2), before anything starts."""
    from icx.charging_app import service_config

    demo = load_settings(ROOT / "config" / "icx.toml")
    assert demo.rf.usage_reports == "incremental"
    assert service_config(demo).offline_usage_reports == "incremental"
    cfg = tmp_path / "rf.toml"
    cfg.write_text('[rf]\nusage_reports = "cumulative"\n')
    assert service_config(load_settings(cfg)).offline_usage_reports == "cumulative"
    cfg.write_text('[rf]\nusage_reports = "running"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value) == (f"{cfg}:rf.usage_reports: must be one of 'incremental', "
                              "'cumulative', got 'running'")
    res = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert res.exit_code == 2 and f"{cfg}:rf.usage_reports: must be one of" in res.output
