"""`icx rates import`, `icx rates list` and `icx rate` through click (exit codes, JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from icx.cli import main

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner(mix_stderr=False).invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_import_then_explain(tmp_path: Path) -> None:
    dd = str(tmp_path / "data")
    code, out, _ = run("rates", "import", str(ROOT / "config/decks/retail.csv"), "--deck", "retail", "--data-dir", dd)
    assert code == 0 and "deck retail version 1: 11 rows" in out and "11 new" in out
    code, out, _ = run("rates", "import", str(ROOT / "config/decks/retail.csv"), "--deck", "retail",
                       "--data-dir", dd, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["version"] == 2 and summary["unchanged"] == 11
    code, out, _ = run("rate", "--deck", "retail", "--to", "+41 79 123 45 67", "--seconds", "125",
                       "--at", "2026-11-26T12:00:00", "--data-dir", dd, "--json")
    got = json.loads(out)
    assert code == 0
    assert {k: got[k] for k in ("price", "currency", "prefix", "destination", "deck_version", "billed_units")} == {
        "price": "0.25", "currency": "EUR", "prefix": "41", "destination": "Switzerland",
        "deck_version": 2, "billed_units": 125}
    code, out, _ = run("rate", "--deck", "retail", "--to", "internet", "--octets", "1500001", "--data-dir", dd)
    assert code == 0 and "price        0.01501 EUR" in out and "billed 1501000 octet" in out
    code, out, _ = run("rates", "list", "--data-dir", dd, "--json")
    assert [(d["deck"], d["version"]) for d in json.loads(out)] == [("retail", 1), ("retail", 2)]


def test_bad_deck_exits_2_with_file_line(tmp_path: Path, deck_csv: Callable[..., str]) -> None:
    bad = deck_csv("prefix,rate\n41,0.1\n42,zero\n")
    code, _, err = run("rates", "import", bad, "--deck", "d", "--data-dir", str(tmp_path / "data"))
    assert code == 2 and f"{bad}:3: rate is not a non-negative decimal number: 'zero'" in err
    assert not (tmp_path / "data" / "rates" / "d").exists() or not list((tmp_path / "data" / "rates" / "d").glob("*.deck"))


def test_skip_bad_writes_rejects(tmp_path: Path, deck_csv: Callable[..., str]) -> None:
    bad = deck_csv("prefix,rate\n41,0.1\n42,zero\n")
    code, out, _ = run("rates", "import", bad, "--deck", "d", "--data-dir", str(tmp_path / "data"), "--skip-bad")
    assert code == 0 and "1 rows rejected" in out
    assert Path(bad + ".rejects.csv").read_text().splitlines()[1].startswith("3,rate is not")


def test_demo_deck_prices_mms_and_content(tmp_path: Path) -> None:
    """The service map serves mms and content: the demo retail deck prices both."""
    dd = str(tmp_path / "data")
    run("rates", "import", str(ROOT / "config/decks/retail.csv"), "--deck", "retail", "--data-dir", dd)
    want = {  # (to, events, service) -> (price, prefix, destination)
        ("+44 7700 900123", "1", "mms"): ("0.40", "44", "United Kingdom"),
        ("41791234567", "2", "mms"): ("0.60", "41", "Switzerland"),
        ("0033612345678", "1", "mms"): ("0.40", "33", "France"),
        ("game-1", "3", "content"): ("5.97", "game-1", "Premium game"),
        ("news-daily", "1", "content"): ("1.00", "", "Any content item"),
    }
    for (to, n, service), expected in want.items():
        code, out, err = run("rate", "--deck", "retail", "--to", to, "--events", n, "--service",
                             service, "--at", "2026-11-26T12:00:00", "--data-dir", dd, "--json")
        assert code == 0, err
        got = json.loads(out)
        assert (got["price"], got["prefix"], got["destination"]) == expected
        assert (got["service"], got["unit"], got["currency"]) == (service, "event", "EUR")


def test_rate_errors(tmp_path: Path) -> None:
    dd = str(tmp_path / "data")
    run("rates", "import", str(ROOT / "config/decks/retail.csv"), "--deck", "retail", "--data-dir", dd)
    # MMS has no catch-all in the demo deck: an MMS to +1 has no tariff
    code, out, _ = run("rate", "--deck", "retail", "--to", "1", "--events", "1", "--service", "mms",
                       "--data-dir", dd, "--json")
    assert code == 1 and json.loads(out)["error"] == "no_tariff"
    code, _, err = run("rate", "--deck", "retail", "--to", "1", "--seconds", "1", "--events", "1", "--data-dir", dd)
    assert code == 2
    code, _, err = run("rate", "--deck", "retail", "--to", "1", "--seconds", "1", "--at", "yesterday", "--data-dir", dd)
    assert code == 2


def test_config_decks_import_at_start_is_idempotent(tmp_path: Path) -> None:
    from icx.commands.rates import engine_from_settings, import_configured_decks
    from icx.settings import load_settings

    settings = load_settings(ROOT / "config/icx.toml")
    engine = engine_from_settings(settings, tmp_path)
    first = import_configured_decks(settings, engine)
    assert [(s.deck, s.version) for s in first] == [("retail", 1), ("carrier_a_sell", 1), ("carrier_a_buy", 1)]
    again = import_configured_decks(settings, engine_from_settings(settings, tmp_path))
    assert [s.version for s in again] == [None, None, None]
    assert engine.deck("carrier_a_buy").meta.partner == "carrier_a"
    assert engine.deck("carrier_a_buy").meta.direction == "buy"


def test_import_progress_bar_stays_off_stdout(tmp_path: Path) -> None:
    """A 100k-line import draws its progress bar when stderr is a terminal; with --json piped
    on stdout, stdout must hold exactly the JSON document (the bar used to leave a blank line
    there). A real process: stderr is a pseudo-terminal, stdout a pipe."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    deck = tmp_path / "big.csv"
    with deck.open("w") as fh:
        fh.write("prefix,destination,rate,billing\n")
        fh.writelines(f"{1_000_000 + i},Dest {i % 50},0.0{i % 90 + 10},60/1\n"
                      for i in range(100_000))
    master, slave = pty.openpty()
    seen: list[bytes] = []

    def drain() -> None:  # keep the terminal's buffer from filling (the writer would block)
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = ("import sys; from icx.cli import main; "
                "sys.exit(main(sys.argv[1:], prog_name='icx'))")
        proc = subprocess.run(
            [sys.executable, "-c", code, "rates", "import", str(deck), "--deck", "big",
             "--data-dir", str(tmp_path / "data"), "--json"],
            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, cwd=ROOT,
            timeout=300, check=False)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    assert proc.returncode == 0
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert (doc["deck"], doc["version"], doc["rows"], doc["new"]) == ("big", 1, 100_000, 100_000)


def test_rate_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """An unknown deck was "no tariff: no deck 'x'", exit 1, like a destination without a
    tariff; an unknown version too; --currency nope was exit 1 with a quoted KeyError; and
    --seconds 60 --service data priced 60 octets."""
    dd = str(tmp_path / "data")
    run("rates", "import", str(ROOT / "config/decks/retail.csv"), "--deck", "retail", "--data-dir", dd)
    base = ("rate", "--to", "41", "--data-dir", dd)
    cases = [
        (("--deck", "nosuch", "--seconds", "60"), f"rate: no deck 'nosuch' in {dd}; decks: retail"),
        (("--deck", "nosuch", "--seconds", "60", "--json"),
         f"rate: no deck 'nosuch' in {dd}; decks: retail"),
        (("--deck", "retail", "--seconds", "60", "--version", "9"),
         "rate: no version 9 of deck 'retail'; versions: 1"),
        (("--deck", "retail", "--seconds", "60", "--currency", "nope"),
         "rate: --currency must be an ISO 4217 code like EUR, got 'nope'"),
        (("--deck", "retail", "--seconds", "60", "--service", "data"),
         "rate: --service data is metered in octets: give --octets, not --seconds"),
        (("--deck", "retail", "--octets", "60", "--service", "sms"),
         "rate: --service sms is metered in events: give --events, not --octets"),
    ]
    for args, line in cases:
        code, out, err = run(*base, *args)
        assert (code, out, err) == (2, "", line + "\n"), args
    # a currency without a rate is not bad input, but says so without Python's quotes
    nofx = tmp_path / "partners.toml"
    nofx.write_text('[partners.x]\ncurrency = "EUR"\n')
    code, _, err = run(*base, "--deck", "retail", "--seconds", "60", "--currency", "USD",
                       "--partners", str(nofx), "--at", "2026-11-26T12:00")
    assert code == 1 and err == (f"rate: {nofx}: no FX rate EUR->USD for period 2026-11 "
                                 "(add an [[fx]] entry)\n"), err
    code, out, _ = run(*base, "--deck", "retail", "--seconds", "60", "--service", "data_time",
                       "--version", "1", "--currency", "eur", "--json")
    assert code == 0 and json.loads(out)["price"] == "0.02", out


def test_import_refuses_a_rejects_file_it_cannot_write_before_storing(
        tmp_path: Path, deck_csv: Callable[..., str]) -> None:
    """--skip-bad --rejects into a missing directory: a traceback (exit 1) after the deck was
    stored, the rejected rows lost. --timezone Mars/Base said 'No time zone ...' in quotes."""
    bad = deck_csv("prefix,rate\n41,0.1\n42,zero\n")
    dd = tmp_path / "data"
    Path(bad + ".rejects.csv").mkdir()  # the default rejects file
    for target, why in ((tmp_path / "no" / "r.csv", f"no directory {tmp_path / 'no'}"),
                        (None, "it is a directory")):
        code, out, err = run("rates", "import", bad, "--deck", "d", "--data-dir", str(dd),
                             "--skip-bad", *(("--rejects", str(target)) if target else ()))
        where = target or bad + ".rejects.csv"
        assert (code, out, err) == (2, "", f"{where}: cannot write the rejects file: {why}\n")
        assert not (dd / "rates" / "d").exists()
    code, out, err = run("rates", "import", bad, "--deck", "d", "--data-dir", str(dd),
                         "--timezone", "Mars/Base")
    assert (code, err) == (2, f"{bad}:--timezone: unknown timezone 'Mars/Base'\n")
    code, out, _ = run("rates", "import", bad, "--deck", "d", "--data-dir", str(dd), "--skip-bad",
                       "--rejects", str(tmp_path / "r.csv"), "--json")
    assert code == 0 and json.loads(out)["rejects_file"] == str(tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines()[1].startswith("3,rate is not")
