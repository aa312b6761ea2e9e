"""RatingEngine: versions, reloads, matching, bands and DST, origin, data, FX, max_units."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from charging.fx import FxTable
from charging.rating import BandCalendar, NoTariff, RatingEngine, Service
from charging.rating import engine as engine_mod
from charging.rating.price import price_micros
from charging.rating.store import DeckStore

ROOT = Path(__file__).resolve().parents[3]
ZRH = ZoneInfo("Europe/Zurich")


def at(y: int, mo: int, d: int, h: int = 12, mi: int = 0, s: int = 0, tz: ZoneInfo = ZRH) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp()


@pytest.fixture
def engine(tmp_path: Path, compiled: bool) -> RatingEngine:
    return RatingEngine.open(tmp_path / "data", compiled=compiled,
                             calendar=BandCalendar.build("Europe/Zurich"))


def test_demo_retail_deck(engine: RatingEngine) -> None:
    s = engine.ensure_imported(str(ROOT / "config/decks/retail.csv"), deck="retail")
    assert s.version == 1
    now = at(2026, 11, 26)
    p = engine.rate(deck="retail", service=Service.VOICE, destination="41791234567", at=now, usage=125)
    assert (p.price, p.prefix, p.destination, p.deck_version, p.billed_units) == (250_000, "41", "Switzerland", 1, 125)
    assert engine.rate(deck="retail", service=Service.VOICE, destination="+447700900123", at=now, usage=61).price == 203_333
    other = engine.rate(deck="retail", service=Service.VOICE, destination="12125551234", at=now, usage=61)
    assert (other.price, other.prefix, other.billed_units) == (1_000_000, "", 120)
    assert engine.rate(deck="retail", service=Service.SMS, destination="41791234567", at=now, usage=2).price == 100_000
    assert engine.rate(deck="retail", service=Service.DATA, destination="internet", at=now, usage=1_000_000).price == 10_000
    assert engine.rate(deck="retail", service=Service.DATA_TIME, destination="internet", at=now, usage=61).price == 40_000
    assert engine.price("retail", Service.VOICE, "41791234567", now, 125) == 250_000
    assert engine.max_units(deck="retail", service=Service.VOICE, destination="41791234567", at=now,
                            budget=1_000_000) == 500
    assert engine.rate(deck="retail", service=Service.MMS, destination="447700900123", at=now, usage=1).price == 400_000
    assert engine.rate(deck="retail", service=Service.CONTENT, destination="x", at=now, usage=2).price == 2_000_000
    assert engine.price("retail", Service.CONTENT, "game-1", now, 1) == 1_990_000
    with pytest.raises(NoTariff):  # MMS has no catch-all: another country has no tariff
        engine.rate(deck="retail", service=Service.MMS, destination="12125551234", at=now, usage=1)
    with pytest.raises(NoTariff):
        engine.rate(deck="nope", service=Service.VOICE, destination="41", at=now, usage=1)


def test_ensure_imported_is_idempotent_and_import_versions(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    path = deck_csv("prefix,rate\n41,0.10\n42,0.20\n")
    assert engine.ensure_imported(path, deck="d").version == 1
    assert engine.ensure_imported(path, deck="d").version is None
    path2 = deck_csv("prefix,rate\n41,0.12\n43,0.30\n42,0.10\n", "v2.csv")
    s = engine.import_csv(path2, deck="d")
    assert (s.version, s.new, s.increased, s.decreased, s.removed) == (2, 1, 1, 1, 0)
    now = at(2026, 1, 1)
    assert engine.rate(deck="d", service=Service.VOICE, destination="41", at=now, usage=60).price == 120_000
    old = engine.rate(deck="d", service=Service.VOICE, destination="41", at=now, usage=60, version=1)
    assert (old.price, old.deck_version) == (100_000, 1)
    assert DeckStore(engine.store.root.parent).versions("d") == [1, 2]


def test_ensure_imported_keeps_a_version_imported_by_hand(
        engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    """The config names a deck file (imported at start); the operator imports a new tariff by
    hand (`icx rates import`). The next start must not re-import the unchanged config file
    over it ("same file -> no new version"): only a changed config file is a new version."""
    path = deck_csv("prefix,rate\n41,0.10\n")
    assert engine.ensure_imported(path, deck="d").version == 1
    assert engine.import_csv(deck_csv("prefix,rate\n41,0.20\n", "by-hand.csv"),
                             deck="d").version == 2
    assert engine.ensure_imported(path, deck="d").version is None  # a restart
    assert engine.rate(deck="d", service=Service.VOICE, destination="41", at=at(2026, 1, 1),
                       usage=60).price == 200_000
    Path(path).write_text("prefix,rate\n41,0.30\n")  # the config file changed
    assert engine.ensure_imported(path, deck="d").version == 3
    assert engine.ensure_imported(path, deck="d").version is None


def test_a_running_engine_picks_up_a_new_version(tmp_path: Path, deck_csv: Callable[..., str], compiled: bool) -> None:
    server = RatingEngine.open(tmp_path, compiled=compiled)
    importer = RatingEngine.open(tmp_path, compiled=compiled)
    importer.import_csv(deck_csv("prefix,rate\n41,0.10\n"), deck="d")
    assert server.reload_if_changed() is True
    assert server.reload_if_changed() is False
    assert server.rate(deck="d", service=Service.VOICE, destination="41", at=0, usage=60).price == 100_000
    importer.import_csv(deck_csv("prefix,rate\n41,0.30\n", "b.csv"), deck="d")
    server.reload_if_changed()
    p = server.rate(deck="d", service=Service.VOICE, destination="41", at=0, usage=60)
    assert (p.price, p.deck_version) == (300_000, 2)


def test_a_bad_file_stores_nothing(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    from charging.rating import DeckError

    with pytest.raises(DeckError):
        engine.import_csv(deck_csv("prefix,rate\n41,0.1\n42,bad\n"), deck="d")
    assert engine.store.versions("d") == []


def test_longest_prefix_and_normalisation(tmp_path: Path, deck_csv: Callable[..., str], compiled: bool) -> None:
    e = RatingEngine.open(tmp_path, compiled=compiled, technical_prefixes=("1010",))
    e.import_csv(deck_csv("prefix,destination,rate\n7,Eastasia,1\n78,Eurasia,2\n789,Ocenaia,3\n3,London,4\n"), deck="d")
    for number, prefix in [("71235557890", "7"), ("781235557890", "78"), ("7891235557890", "789"),
                           ("31235557890", "3"), ("+7891", "789"), ("007891", "789"),
                           ("sip:+78123@example.com;user=phone", "78"), ("tel:+7-89-1", "789"),
                           ("10107891", "789")]:
        assert e.lookup(deck="d", service=Service.VOICE, destination=number, at=0).prefix == prefix, number
    with pytest.raises(NoTariff):
        e.rate(deck="d", service=Service.VOICE, destination="41", at=0, usage=1)


def test_effective_switchover_at_local_midnight_across_dst(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    engine.import_csv(deck_csv("prefix,rate,effective\n41,0.10,2026-01-01\n41,0.20,2026-03-29\n"), deck="d",
                      timezone="Europe/Zurich")
    def price(t: float) -> int:
        return engine.rate(deck="d", service=Service.VOICE, destination="41", at=t, usage=60).price
    assert price(at(2026, 3, 28, 23, 59, 59)) == 100_000
    assert price(at(2026, 3, 29, 0, 0, 0)) == 200_000  # DST day: midnight is 23:00 UTC (CET)
    assert price(at(2026, 3, 28, 22, 59, 59, tz=ZoneInfo("UTC"))) == 100_000
    with pytest.raises(NoTariff):  # not effective yet
        price(at(2025, 12, 31, 23, 59, 59))


def test_end_dated_and_closed_codes(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    engine.import_csv(deck_csv("code,rate,effective,change\n234,0.10,,\n234805,0.121,20/09/2026,Closed\n"),
                      deck="d", timezone="UTC")
    utc = ZoneInfo("UTC")
    assert engine.rate(deck="d", service=Service.VOICE, destination="2348051", at=at(2026, 9, 19, tz=utc), usage=60).price == 121_000
    with pytest.raises(NoTariff, match="closed"):  # no fallback to the shorter 234
        engine.rate(deck="d", service=Service.VOICE, destination="2348051", at=at(2026, 9, 20, 0, tz=utc), usage=60)
    assert engine.price("d", Service.VOICE, "2340", at(2026, 9, 21, tz=utc), 60) == 100_000


def banded(tmp_path: Path, deck_csv: Callable[..., str], compiled: bool, mode: str) -> RatingEngine:
    cal = BandCalendar.build("Europe/Zurich", {"peak": ["mon-fri 08:00-19:00"], "weekend": ["sat-sun 00:00-24:00"]},
                             ["2026-12-25"], "weekend", "offpeak")
    e = RatingEngine.open(tmp_path, compiled=compiled, calendar=cal, band_mode=mode)
    e.import_csv(deck_csv("prefix,rate,band,billing\n41,0.60,peak,1/1\n41,0.30,offpeak,1/1\n41,0.12,weekend,1/1\n"
                          "44,0.50,,1/1\n"), deck="d")
    return e


def test_time_bands_and_dst(tmp_path: Path, deck_csv: Callable[..., str], compiled: bool) -> None:
    e = banded(tmp_path, deck_csv, compiled, "start")
    utc = ZoneInfo("UTC")
    def rated(t: float) -> tuple[str, int]:
        p = e.rate(deck="d", service=Service.VOICE, destination="4179", at=t, usage=60)
        return p.band, p.price
    assert rated(at(2026, 3, 27, 7, 30, tz=utc)) == ("peak", 600_000)  # Fri 08:30 CET
    assert rated(at(2026, 3, 27, 6, 30, tz=utc)) == ("offpeak", 300_000)  # Fri 07:30 CET
    assert rated(at(2026, 3, 30, 6, 30, tz=utc)) == ("peak", 600_000)  # Mon 08:30 CEST (after DST)
    assert rated(at(2026, 3, 29, 12)) == ("weekend", 120_000)
    assert rated(at(2026, 12, 25, 12)) == ("weekend", 120_000)  # holiday (a Friday)
    assert rated(at(2026, 3, 27, 18, 59, 59)) == ("peak", 600_000)
    assert rated(at(2026, 3, 27, 19, 0, 0)) == ("offpeak", 300_000)
    assert e.price("d", Service.VOICE, "4179", at(2026, 3, 27, 19), 60) == 300_000
    assert e.rate(deck="d", service=Service.VOICE, destination="44", at=at(2026, 3, 27, 12), usage=60).price == 500_000
    prices, rows = e.rate_batch("d", Service.VOICE, ["4179", "4179", "44"], [60, 60, 60],
                                [int(at(2026, 3, 27, 12)), int(at(2026, 3, 28, 12)), 0])
    assert list(prices) == [600_000, 120_000, 500_000]


def test_split_mode_prices_each_band(tmp_path: Path, deck_csv: Callable[..., str], compiled: bool) -> None:
    e = banded(tmp_path, deck_csv, compiled, "split")
    p = e.rate(deck="d", service=Service.VOICE, destination="4179", at=at(2026, 3, 27, 18, 59), usage=120)
    assert (p.band, p.price) == ("peak+offpeak", 600_000 + 300_000)
    # the fast path (what online sessions price with) splits too
    assert e.price("d", Service.VOICE, "4179", at(2026, 3, 27, 18, 59), 120) == 600_000 + 300_000
    start = e.rate(deck="d", service=Service.VOICE, destination="4179", at=at(2026, 3, 27, 18, 58, 30), usage=30)
    assert (start.band, start.price) == ("peak", 300_000)


def test_origin_is_a_first_class_dimension(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    engine.import_csv(deck_csv("origin,prefix,rate\n,44,0.20\n41,44,0.10\n4179,44,0.05\n,447,0.30\n"), deck="d")
    def pfx(origin: str | None) -> tuple[str, str, int]:
        p = engine.rate(deck="d", service=Service.VOICE, destination="4420", origin=origin, at=0, usage=60)
        return p.prefix, p.origin, p.price
    assert pfx(None) == ("44", "", 200_000)
    assert pfx("+41221234567") == ("44", "41", 100_000)
    assert pfx("41791234567") == ("44", "4179", 50_000)
    # the longest destination prefix wins over a longer origin
    assert engine.rate(deck="d", service=Service.VOICE, destination="4470", origin="4179", at=0, usage=60).price == 300_000


def test_destination_names_from_phonenumbers_when_missing(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    engine.import_csv(deck_csv("prefix,rate\n41,0.1\n33,0.1\n"), deck="d")
    assert engine.rate(deck="d", service=Service.VOICE, destination="41791234567", at=0, usage=1).destination == "Switzerland"
    assert engine.rate(deck="d", service=Service.VOICE, destination="33612345678", at=0, usage=1).destination == "France"


def test_fx_conversion_is_kept_with_the_price(tmp_path: Path, deck_csv: Callable[..., str], compiled: bool) -> None:
    fx = FxTable()
    fx.add("USD", "EUR", "0.92", "2026-01-01")
    fx.add("USD", "EUR", "0.95", "2026-06-01")
    e = RatingEngine.open(tmp_path, compiled=compiled, fx=fx)
    e.import_csv(deck_csv("prefix,rate\n1,0.10\n"), deck="us", currency="USD")
    p = e.rate(deck="us", service=Service.VOICE, destination="1212", at=at(2026, 3, 1), usage=60, currency="EUR")
    assert (p.price, p.currency, p.fx.rate, p.fx.date, p.fx.original_price) == (92_000, "EUR", "0.92", "2026-01-01", 100_000)  # type: ignore[union-attr]
    p2 = e.rate(deck="us", service=Service.VOICE, destination="1212", at=at(2026, 7, 1), usage=60, currency="EUR")
    assert p2.price == 95_000
    q, quote = fx.convert(1_000_000, "EUR", "USD", dt.date(2026, 3, 1))  # inverse, exact
    assert q == 1_086_957 and quote.rate == Decimal(1) / Decimal("0.92")


def test_rate_batch_matches_single_rating(engine: RatingEngine) -> None:
    engine.ensure_imported(str(ROOT / "config/decks/retail.csv"), deck="retail")
    dests = ["41791234567", "447700900123", "12125551234", "41", "4"]
    usages = [125, 61, 61, 0, 3600]
    prices, rows = engine.rate_batch("retail", Service.VOICE, dests, usages, [0] * 5)
    assert list(prices) == [engine.price("retail", Service.VOICE, d, 0, u) for d, u in zip(dests, usages, strict=True)]
    prices2, _ = engine.rate_batch("retail", Service.MMS, dests, usages, [0] * 5)
    assert list(prices2) == [125 * 300_000, 61 * 400_000, -1, 0, -1]
    prices3, _ = engine.rate_batch("retail", Service.DATA_TIME, dests, usages, [0] * 5, version=1)
    assert list(prices3) == [60_000, 40_000, 40_000, 0, 1_200_000]


def test_tiers_are_exposed_for_settlement(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    engine.import_csv(deck_csv("prefix,rate,tiers\n41,0.10,60000:0.08;300000:0.05\n"), deck="d")
    tiers = engine.tiers(deck="d", service=Service.VOICE, destination="4179", at=0)
    assert [(t.after_units, t.rate) for t in tiers] == [(60000, 80_000_000), (300000, 50_000_000)]
    assert engine.rate(deck="d", service=Service.VOICE, destination="41", at=0, usage=1).tiers == tiers


def test_huge_usages_are_priced_exactly(engine: RatingEngine, deck_csv: Callable[..., str]) -> None:
    """An Unsigned64 count: the compiled index used to truncate the price to 64 bits (0.298384
    EUR for 368,934,881,474,197 SMS at 0.05); both paths now give the exact reference price."""
    engine.import_csv(deck_csv("service,prefix,rate\nsms,44,0.05\n"), deck="d")
    row = engine.lookup(deck="d", service=Service.SMS, destination="447700900123", at=0)
    for usage in (2**36, 2**36 + 1, 368_934_881_474_197, 2**53 - 1):
        want = price_micros(usage, row)[0]
        assert want == usage * 50_000
        assert engine.price("d", Service.SMS, "447700900123", 0, usage) == want
        assert engine.rate(deck="d", service=Service.SMS, destination="447700900123", at=0,
                           usage=usage).price == want


@pytest.mark.parametrize("currency", ["EUX", "EURO", "12A"])
def test_a_deck_in_a_currency_iso_4217_does_not_know_is_refused(
        tmp_path: Path, deck_csv: Callable[..., str], currency: str) -> None:
    e = RatingEngine.open(tmp_path, compiled=False)
    with pytest.raises(ValueError, match="currency must be an ISO 4217 code"):
        e.import_csv(deck_csv("prefix,rate\n1,0.10\n"), deck="x", currency=currency)
    e.import_csv(deck_csv("prefix,rate\n1,0.10\n"), deck="x", currency="aud")  # any case


def test_reload_keeps_each_replaced_version_for_what_started_before(
        tmp_path: Path, deck_csv: Callable[..., str], compiled: bool) -> None:
    """A running server's reload: calls rated at a start before the reload's next whole
    second keep the version they started with, in every entry point (price, price_plan,
    rate, max_units, lookup); later ones get the new one; an explicit version still wins."""
    server = RatingEngine.open(tmp_path, compiled=compiled)
    importer = RatingEngine.open(tmp_path, compiled=compiled)
    importer.import_csv(deck_csv("prefix,rate\n41,0.10\n"), deck="d")
    t0 = at(2026, 1, 1)
    assert server.reload(t0) == {"d": (None, 1)}
    importer.import_csv(deck_csv("prefix,rate\n41,0.30\n", "b.csv"), deck="d")
    assert server.preload() == 1  # loaded, not in use yet
    assert server.price("d", Service.VOICE, "41", t0 + 5, 60) == 100_000
    t1 = t0 + 100.25
    assert server.reload(t1) == {"d": (1, 2)} and server.reload(t1 + 1) == {}
    before, after = t1 - 0.2, t1 + 0.7  # same second as the reload: still the old version
    later = t0 + 101
    kw: dict[str, Any] = {"deck": "d", "service": Service.VOICE, "destination": "41"}
    for when, price, version in ((t0, 100_000, 1), (before, 100_000, 1), (after, 100_000, 1),
                                 (later, 300_000, 2)):
        assert server.price("d", Service.VOICE, "41", when, 60) == price
        p = server.rate(at=when, usage=60, **kw)
        assert (p.price, p.deck_version) == (price, version)
        assert server.max_units(at=when, budget=price, **kw) == 60
        plan = server.price_plan("d", Service.VOICE, "41", when)
        if plan is not None:
            assert plan[0].meta.version == version
    assert server.rate(at=t0, usage=60, version=2, **kw).price == 300_000
    # rate_batch: each usage by the version in force at its start, in the caller's order
    ats = [int(later), int(t0), int(later) + 5, int(before)]
    prices, rows = server.rate_batch("d", Service.VOICE, ["41"] * 4, [60] * 4, ats)
    assert list(prices) == [300_000, 100_000, 300_000, 100_000] and min(rows) >= 0
    assert list(server.rate_batch("d", Service.VOICE, ["41"] * 2, [60] * 2, ats[1:3],
                                  version=1)[0]) == [100_000, 100_000]
    assert list(server.rate_batch("d", Service.VOICE, ["41"], [60], [int(t0)])[0]) == [100_000]
    # only the newest replaced versions are kept
    for i in range(3, 3 + engine_mod.KEEP_SUPERSEDED + 1):
        importer.import_csv(deck_csv(f"prefix,rate\n41,0.{i}0\n", f"v{i}.csv"), deck="d")
        server.reload(t1 + 10 * i)
    assert len(server._superseded["d"]) == engine_mod.KEEP_SUPERSEDED
