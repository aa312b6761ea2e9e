"""`icx rate --currency`: the price converted with the partners file's [[fx]] period rate.

`icx rate` had a --currency option but nothing filled the engine's FX table, so every
conversion ended in "no fx rate" (exit 1): an operator could not see what a destination priced
in EUR costs in USD. It now converts as an invoice line converts (settlement/fx.py): the
[[fx]] rate of the billing period the usage falls in (the period in the timezone of the
partner whose agreement names the deck, else the rating timezone), the opposite pair's rate
divided exactly, rounded once, half up, to micro-units; the rate, its date and the period are
shown. No rate: one line naming the file, pair and period, exit 1; a bad partners file:
``file:key: reason``, exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from click.testing import CliRunner

from charging.money import Rounding, div_round
from icx.cli import main

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "config" / "partners.toml"

PARTNERS = """
[partners.paris]
currency = "EUR"
timezone = "Europe/Paris"

[[agreements]]
id = "PARIS-BIL"
partner = "paris"
type = "bilateral"
sell_deck = "paris_sell"

[[fx]]
period = "2026-11"
from = "EUR"
to = "USD"
rate = "1.0850"
date = "2026-10-23"

[[fx]]
period = "2026-12"
from = "EUR"
to = "USD"
rate = "1.0900"
date = "2026-11-23"
"""


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner(mix_stderr=False).invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def _half_up(micros: int, rate: Fraction) -> int:
    f = micros * rate
    return div_round(f.numerator, f.denominator, Rounding.HALF_UP)


def _import(dd: str, deck: str, currency: str, deck_csv: Callable[..., str]) -> None:
    path = deck_csv("prefix,destination,rate,billing\n44,United Kingdom,0.20,1/1\n",
                    f"{deck}.csv")
    code, _, err = run("rates", "import", path, "--deck", deck, "--currency", currency,
                       "--effective", "2026-01-01", "--data-dir", dd)
    assert code == 0, err


def test_converts_with_the_period_rate_and_shows_it(tmp_path: Path,
                                                    deck_csv: Callable[..., str]) -> None:
    dd = str(tmp_path / "data")
    _import(dd, "retail", "EUR", deck_csv)
    args = ("rate", "--deck", "retail", "--to", "447700900123", "--seconds", "61",
            "--at", "2026-11-26T12:00:00", "--data-dir", dd, "--partners", str(DEMO))
    code, out, err = run(*args, "--currency", "USD", "--json")
    assert code == 0, err
    got = json.loads(out)
    eur = 203_333  # 61 s at 0.20/min, rounded once to micro-units
    usd = _half_up(eur, Fraction("1.0850"))
    assert usd == 220_616  # 0.220616305 -> 0.220616
    assert (got["price"], got["price_micros"], got["currency"]) == ("0.220616", usd, "USD")
    assert got["fx"] == {"from": "EUR", "to": "USD", "rate": "1.0850", "date": "2026-10-23",
                         "original_price": "0.203333", "period": "2026-11",
                         "partners": str(DEMO)}
    code, out, _ = run(*args, "--currency", "usd")
    assert code == 0
    assert "price        0.220616 USD\n" in out
    assert (f"fx           EUR->USD 1.0850, rate of 2026-10-23 ([[fx]] of period 2026-11, "
            f"{DEMO})\n             from 0.203333 EUR: converted exactly") in out


def test_the_opposite_pair_is_divided_exactly(tmp_path: Path,
                                              deck_csv: Callable[..., str]) -> None:
    dd = str(tmp_path / "data")
    _import(dd, "usdeck", "USD", deck_csv)
    code, out, err = run("rate", "--deck", "usdeck", "--to", "44", "--seconds", "60",
                         "--at", "2026-11-26T12:00:00", "--data-dir", dd,
                         "--partners", str(DEMO), "--currency", "EUR", "--json")
    assert code == 0, err
    got = json.loads(out)
    # 0.20 USD / 1.0850 = 0.18433179723...: never 0.20 * a rounded inverse
    assert got["price_micros"] == _half_up(200_000, 1 / Fraction("1.0850")) == 184_332
    assert (got["currency"], got["fx"]["rate"], got["fx"]["date"]) == ("EUR", "1/1.0850",
                                                                      "2026-10-23")


def test_the_period_is_the_deck_partners_month(tmp_path: Path,
                                               deck_csv: Callable[..., str]) -> None:
    """23:30 UTC on 30 November is 1 December in Paris: a deck of the Paris partner's
    agreement takes December's rate (as its invoice would); a deck nobody's agreement names
    takes the rating timezone's (UTC) November rate."""
    dd = str(tmp_path / "data")
    partners = tmp_path / "partners.toml"
    partners.write_text(PARTNERS)
    _import(dd, "paris_sell", "EUR", deck_csv)
    _import(dd, "retail", "EUR", deck_csv)
    seen = {}
    for deck in ("paris_sell", "retail"):
        code, out, err = run("rate", "--deck", deck, "--to", "44", "--seconds", "60",
                             "--at", "2026-11-30T23:30:00+00:00", "--data-dir", dd,
                             "--partners", str(partners), "--currency", "USD", "--json")
        assert code == 0, err
        fx = json.loads(out)["fx"]
        seen[deck] = (fx["period"], fx["rate"], json.loads(out)["price"])
    assert seen == {"paris_sell": ("2026-12", "1.0900", "0.218"),
                    "retail": ("2026-11", "1.0850", "0.217")}


def test_no_rate_is_one_line_and_exit_1_a_bad_file_exit_2(tmp_path: Path,
                                                          deck_csv: Callable[..., str]) -> None:
    dd = str(tmp_path / "data")
    _import(dd, "retail", "EUR", deck_csv)
    base = ("rate", "--deck", "retail", "--to", "44", "--seconds", "60", "--data-dir", dd)
    for extra in ((), ("--json",)):
        code, out, err = run(*base, "--at", "2026-11-26T12:00", "--partners", str(DEMO),
                             "--currency", "JPY", *extra)
        assert (code, out, err) == (1, "", f"rate: {DEMO}: no FX rate EUR->JPY for period "
                                           "2026-11 (add an [[fx]] entry)\n")
    code, out, err = run(*base, "--at", "2027-03-01T12:00", "--partners", str(DEMO),
                         "--currency", "USD")
    assert (code, out) == (1, "") and "no FX rate EUR->USD for period 2027-03" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[fx]]\nperiod = "2026-11"\nfrom = "EUR"\nto = "USD"\nrate = "-1"\n'
                   'date = "2026-10-23"\n')
    code, out, err = run(*base, "--partners", str(bad), "--currency", "USD")
    assert code == 2 and out == "" and err.startswith(f"{bad}:fx[0].rate: "), err
    code, out, err = run(*base, "--partners", str(tmp_path / "none.toml"), "--currency", "USD")
    assert (code, err) == (2, f"{tmp_path / 'none.toml'}:-: file not found\n")
    # the deck's own currency needs no rate and no partners file
    code, out, _ = run(*base, "--partners", str(tmp_path / "none.toml"), "--currency", "EUR")
    assert code == 0 and "price        0.20 EUR" in out
