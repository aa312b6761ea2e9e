"""CSV deck import: the shapes carriers exchange, checked against the TCXC expected file."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from charging.rating.csvdeck import ImportOptions, read_deck
from charging.rating.model import MB_OCTETS, NEVER, DeckError, Service
from charging.rating.model import rate_to_str as r2s

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ratedecks"


def read(text: str, **kw: object) -> object:
    return read_deck(text, ImportOptions(**kw), is_text=True, name="d.csv")  # type: ignore[arg-type]


def test_tcxc_rate_notice_matches_the_expected_file() -> None:
    """Same code expansion, dates and increments as TCXC's normalised output (--now 2026-09-17)."""
    res = read_deck(str(FIXTURES / "tcxc_acme_rate_notice.INPUT.csv"), ImportOptions(timezone="UTC"))
    d = res.data
    now = int(dt.datetime(2026, 9, 17, tzinfo=dt.UTC).timestamp())
    ours: dict[str, list[str]] = {}
    for i in range(len(d)):
        p = d.prefix[i]
        start = d.eff_from[i]
        if d.blocked[i]:
            when = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            ours[p] = ["", "", p, when, "", "0", "1"] + ours[p][7:]
            continue
        when = "ASAP" if start <= now else dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        ours[p] = ["", "", p, when, "", "0", "0", r2s(d.rate_first[i]), r2s(d.rate[i]),
                   str(d.inc_first[i]), str(d.inc_next[i])]
    with open(FIXTURES / "tcxc_acme_rate_notice.EXPECTED_tcxc.csv", newline="") as fh:
        expected = list(csv.reader(fh))[1:]
    assert len(expected) == 25
    assert list(ours.values()) == expected
    # a closed code is priced until its date and blocked from it
    i_active = [i for i in range(len(d)) if d.prefix[i] == "234805" and not d.blocked[i]][0]
    assert d.eff_from[i_active] == -NEVER and d.eff_to[i_active] == int(
        dt.datetime(2026, 9, 20, tzinfo=dt.UTC).timestamp())
    assert d.names[d.dest[0]] == "Germany Mobile - Vodafone"


def test_semicolons_decimal_commas_country_and_area_columns() -> None:
    res = read("Destination;Country Code;Area Codes;Current Rate;New Rate;Effective Date;Billing\n"
               "Spain Mobile;34;6, 7;0,0100;0,0120;03/04/2027;60/60\n")
    d = res.data  # type: ignore[attr-defined]
    assert d.prefix == ["346", "347"]
    assert list(d.rate) == [12_000_000, 12_000_000]  # the new rate wins over the current one
    assert d.eff_from[0] == int(dt.datetime(2027, 4, 3, tzinfo=dt.UTC).timestamp())


def test_hyphen_concat_for_country_area_pairs() -> None:
    res = read("Destination,Code,Rate\nKorea-Mobile,82-10,0.1\nPeru-Lima,51-1,0.2\n", hyphen="concat")
    assert res.data.prefix == ["8210", "511"]  # type: ignore[attr-defined]


def test_header_synonyms_and_separate_increment_columns() -> None:
    res = read("Dial Code\tDescription\tRate per min\tInitial increment\tSubsequent increment\t"
               "Setup fee\tMinimum charge\tEnd date\n+44 7700\tUK Mobile\t0.0125\t30\t6\t0.01\t0.02\t2027-01-01\n")
    d = res.data  # type: ignore[attr-defined]
    assert d.prefix == ["447700"]
    assert (d.inc_first[0], d.inc_next[0], d.fee[0], d.min_charge[0]) == (30, 6, 10_000, 20_000)
    assert d.eff_to[0] == int(dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp())
    assert d.names[d.dest[0]] == "UK Mobile"


def test_effective_dates_are_local_midnight_in_the_deck_timezone() -> None:
    res = read("prefix,rate,effective\n41,0.1,2026-03-29\n42,0.1,29.03.2026\n", timezone="Europe/Zurich")
    d = res.data  # type: ignore[attr-defined]
    midnight = int(dt.datetime(2026, 3, 28, 23, 0, tzinfo=dt.UTC).timestamp())  # CET = UTC+1
    assert list(d.eff_from) == [midnight, midnight]


def test_services_units_and_catch_all() -> None:
    res = read("service,prefix,rate,unit,billing\nvoice,*,0.5,,60/60\ndata,internet,0.01,MB,\n"
               "sms,*,0.05,,\ncontent,game-1,1.99,item,\ndata_time,*,0.02,min,60/60\n")
    d = res.data  # type: ignore[attr-defined]
    assert d.prefix == ["", "internet", "", "game-1", ""]
    assert [Service.from_code(c) for c in d.service] == [
        Service.VOICE, Service.DATA, Service.SMS, Service.CONTENT, Service.DATA_TIME]
    assert list(d.rate_unit) == [60, MB_OCTETS, 1, 1, 60]
    assert (d.inc_first[1], d.inc_next[1]) == (1000, 1000)  # DATA default: per KB


def test_preamble_and_footer_are_skipped() -> None:
    res = read("Acme\nIssue date:,16/09/2026\n\nCode,Rate\n1,0.01\n\n\"Rates subject to change.\"\n")
    assert res.data.prefix == ["1"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("41,abc", "d.csv:2: rate is not a non-negative decimal number: 'abc'"),
        ("41,0.1234567891", "d.csv:2: rate has more than 9 decimals"),
        ("41,-0.1", "d.csv:2: rate is not a non-negative decimal number"),
        ("49174-49172,0.1", "d.csv:2: bad code range"),
        ("41,0.1,13/13/2026", "d.csv:2: bad date"),
        ("41,0.1,,60-60", "d.csv:2: increment must be a positive integer, got '60-60'"),
        ("41,0.1,,0/60", "d.csv:2: initial increment must be a positive integer"),
        (",0.1", "d.csv:2: no prefix/code"),
        ("41,0.1\n41,0.2", "d.csv:3: duplicate row for prefix '41' (first at line 2)"),
    ],
)
def test_bad_rows_are_reported_file_line_what(body: str, message: str) -> None:
    with pytest.raises(DeckError) as exc:
        read("prefix,rate,effective,billing\n" + body + "\n")
    assert exc.value.problems[0].startswith(message)


def test_no_header_is_an_error() -> None:
    with pytest.raises(DeckError) as exc:
        read("just,some\n1,2\n")
    assert exc.value.problems == ["d.csv:1: no header line found (needs a prefix/code column and a rate/price column)"]


def test_skip_bad_keeps_good_rows_and_returns_rejects() -> None:
    res = read("prefix,rate\n41,0.1\n42,x\n43,0.3\n", skip_bad=True)
    assert res.data.prefix == ["41", "43"]  # type: ignore[attr-defined]
    assert [(line, raw) for line, _, raw in res.rejects] == [(3, "42,x")]  # type: ignore[attr-defined]


def test_every_bad_row_is_listed_without_skip_bad(deck_csv: Callable[..., str]) -> None:
    path = deck_csv("prefix,rate\n41,x\n42,0.1\n43,y\n")
    with pytest.raises(DeckError) as exc:
        read_deck(path, ImportOptions())
    assert [p.split(":", 2)[1] for p in exc.value.problems] == ["2", "4"]
    assert exc.value.problems[0].startswith(path + ":2:")


@pytest.mark.parametrize(("row", "message"), [
    # past 64 bits: the deck's int64 columns raised OverflowError (a traceback, exit 1)
    ("41,99999999999999999999,60/1,0,", "d.csv:2: rate is too large: '99999999999999999999'"),
    ("41,0.1,60/1,99999999999999999999,", "d.csv:2: connection fee is too large"),
    ("41,0.1,60/99999999999999999999,0,", "d.csv:2: subsequent increment is too large"),
    ("41,0.1,60/1,0,99999999999999999999:0.01", "d.csv:2: tier threshold is too large"),
])
def test_a_number_too_large_for_the_deck_is_file_line_what(row: str, message: str) -> None:
    with pytest.raises(DeckError) as exc:
        read("prefix,rate,billing,connection fee,tiers\n" + row + "\n")
    assert exc.value.problems[0].startswith(message), exc.value.problems


def test_a_deck_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    """A Latin-1 export raised UnicodeDecodeError (a traceback from `icx serve`)."""
    p = tmp_path / "latin1.csv"
    p.write_bytes("prefix,destination,rate\n41,Switzerland,0.1\n225,Côte d'Ivoire,0.2\n"
                  .encode("latin-1"))
    with pytest.raises(DeckError) as exc:
        read_deck(str(p), ImportOptions())
    assert exc.value.problems == [f"{p}:3: not UTF-8 text (byte 0xf4); save the file as UTF-8"]
    p.write_bytes("\ufeffprefix,destination,rate\n225,Côte d'Ivoire,0.2\n".encode())
    assert list(read_deck(str(p), ImportOptions()).data.prefix) == ["225"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("only", [None, "slow"])
def test_a_row_with_a_cell_past_the_header_is_refused(only: str | None) -> None:
    """An unquoted decimal comma shifts the row: "41,0,12,Switzerland" under prefix,rate,
    destination was imported as rate 0 (free calls to 41) named "12"."""
    text = "prefix,rate,destination\n41,0,12,Switzerland\n44,0.20,UK\n"
    with pytest.raises(DeckError) as exc:
        read_deck(text, ImportOptions(), is_text=True, name="d.csv", only=only)
    assert exc.value.problems == [
        "d.csv:2: 4 cells where the header has 3: a shifted row (an unquoted decimal comma?)"]
    # empty cells past the header (a spreadsheet's trailing separators) are no data
    res = read_deck("prefix,rate,destination\n41,0.12,Switzerland,,\n44,0.20,UK,\n",
                    ImportOptions(), is_text=True, name="d.csv", only=only)
    assert list(res.data.rate) == [120_000_000, 200_000_000]
