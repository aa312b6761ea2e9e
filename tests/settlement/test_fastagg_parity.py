"""The compiled aggregator (cython_ext/settle_agg.pyx) against the pure spec (Aggregator).

Same journal bytes -> the same buckets, prepaid movements, record and settled counts and
problems, for generated traffic and for hypothesis-made records with odd field values.
Skipped when the extension is not built or ICX_NO_EXTENSIONS=1 (the pure path is then the
only path and is covered by the other tests).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import JournalCorruptError, JournalReader, SyncJournal
from settlement import fastagg
from settlement.aggregate import Aggregator
from settlement.currency import Period
from settlement.generate import TrafficGenerator, write_journal

from .conftest import T0

# Under CI=true (or ICX_REQUIRE_EXTENSIONS=1) with extensions enabled a missing build is a
# failure, not a skip.
_REQUIRED = os.environ.get("CI") == "true" or os.environ.get("ICX_REQUIRE_EXTENSIONS") == "1"
pytestmark = pytest.mark.skipif(
    not fastagg.available() and (not cython_ext.extensions_enabled() or not _REQUIRED),
    reason="cython_ext.settle_agg not built or disabled")
NOV = Period(2026, 11)
TZ = {"orange-fr": "Europe/Paris", "att-us": "America/New_York", "globalhub": "UTC",
      "gamesco": "Europe/Dublin", "mvno-uk": "Europe/London"}
PREPAID = {"partner:mvno-uk": "mvno-uk"}
DECKS = {"carrier_a_sell": ("orange-fr", "sell")}


def _both(journal: Path, cp=None):
    pure = Aggregator(TZ, PREPAID, target=NOV, deck_partners=DECKS)
    for chunk in JournalReader(journal).chunks(cp):
        pure.add_many(chunk.records)
    fast = Aggregator(TZ, PREPAID, target=NOV, deck_partners=DECKS)
    end = fastagg.read_journal(journal, cp, fast, None)
    return pure.result, fast.result, end


def _same(pure, fast) -> None:
    assert fast.buckets == pure.buckets
    assert fast.movements == pure.movements
    assert (fast.records, fast.settled) == (pure.records, pure.settled)
    assert sorted(fast.problems) == sorted(pure.problems)


def test_generated_traffic_same_result(tmp_path: Path) -> None:
    write_journal(str(tmp_path), TrafficGenerator(NOV, seed=5).records(5000),
                  segment_bytes=256 << 10)
    pure, fast, end = _both(tmp_path)
    _same(pure, fast)
    assert pure.records == 5000
    # resuming from the returned checkpoint reads nothing more
    write_journal(str(tmp_path), TrafficGenerator(NOV, seed=6, node="x").records(300))
    pure2, fast2, _ = _both(tmp_path, end)
    _same(pure2, fast2)
    assert fast2.records == 300


def test_parallel_segment_groups_same_result(tmp_path: Path) -> None:
    write_journal(str(tmp_path), TrafficGenerator(NOV, seed=8).records(3000),
                  segment_bytes=64 << 10)
    pure = Aggregator(TZ, PREPAID, target=NOV, deck_partners=DECKS)
    for chunk in JournalReader(tmp_path).chunks():
        pure.add_many(chunk.records)
    fast = Aggregator(TZ, PREPAID, target=NOV, deck_partners=DECKS)
    seen: list[int] = []
    end = fastagg.read_journal(tmp_path, None, fast, seen.append, workers=2,
                               parallel_min_bytes=0)
    _same(pure.result, fast.result)
    assert end == fastagg.read_journal(tmp_path, None, Aggregator(TZ, PREPAID, target=NOV),
                                       None, workers=1)
    assert len(seen) == 2


def test_crc_matches_zlib() -> None:
    import cython_ext

    mod = cython_ext.load("settle_agg")
    for data in (b"", b"a", b"123456789", bytes(range(256)) * 3):
        assert mod.crc32_py(data) == zlib.crc32(data)
        assert mod.frame_crc_py(data) == zlib.crc32(data)
    assert mod.crc_backend() in ("pclmul", "zlib", "tables")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=700))
def test_frame_crc_matches_zlib_at_every_length(data: bytes) -> None:
    """The dispatching CRC (PCLMUL folding for >= 64 bytes where the CPU has it) and the
    slice-by-8 tables both equal zlib.crc32, the journal's checksum."""
    import cython_ext

    mod = cython_ext.load("settle_agg")
    assert mod.frame_crc_py(data) == zlib.crc32(data) == mod.crc32_py(data)


def test_corruption_in_a_closed_segment_is_an_error(tmp_path: Path) -> None:
    write_journal(str(tmp_path), TrafficGenerator(NOV, seed=5).records(200))
    seg = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[500] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError):
        fastagg.read_journal(tmp_path, None, Aggregator(TZ, PREPAID, target=NOV), None)


_text = st.one_of(st.none(), st.sampled_from(["", "voice", "sms", "x", "carrier_a_sell"]),
                  st.integers(-2, 2))
_partner = st.one_of(st.sampled_from(["orange-fr", "att-us", "gamesco", "mvno-uk", "nobody", ""]),
                     st.none(), st.integers(0, 1))
_price = st.one_of(st.sampled_from(["0.01", "-1.5", "0.0000001", "abc", "3", "0.000001", "1.",
                                    ".5", "+1", "1e3", "-0", "007", "123456789012.5", " 1"]),
                   st.none(), st.integers(0, 3))
_when = st.one_of(st.integers(T0 - 40 * 86_400_000_000, T0 + 40 * 86_400_000_000), st.none(),
                  st.just("soon"), st.booleans())
_leg = st.fixed_dictionaries({"partner": _partner, "direction": st.sampled_from(["sell", "buy"]),
                              "price": _price, "currency": st.sampled_from(["EUR", "GBP"])},
                             optional={"deck": _text})


@st.composite
def _record(draw):
    r = {"v": 1, "type": draw(st.sampled_from(["rated", "rated", "refund", "adjust", "hold",
                                                "topup"])),
         "id": f"h-{draw(st.integers(0, 99))}"}
    fields = {
        "partner": _partner, "direction": st.sampled_from(["sell", "buy", "up", None]),
        "service": _text, "destination": _text, "deck": _text, "deck_version": _text,
        "currency": st.sampled_from(["EUR", "USD", "", None]), "price": _price,
        "usage": st.one_of(st.integers(-5, 10**6), st.none(), st.just(2**63 + 5), st.floats(0, 1)),
        "start": _when, "ts": _when,
        "fx": st.one_of(st.none(), st.just({"from": "USD", "to": "EUR", "rate": "0.9",
                                            "date": "2026-11-01"})),
        "legs": st.one_of(st.just([]), st.none(), st.lists(_leg, max_size=3)),
        "balance_effects": st.one_of(st.just([]), st.lists(st.fixed_dictionaries(
            {"account": st.sampled_from(["partner:mvno-uk", "sub-1"]),
             "currency": st.sampled_from(["GBP", None]),
             "amount": _price}), max_size=2)),
    }
    for name, strat in fields.items():
        if draw(st.booleans()) or name in ("partner", "price", "start"):
            r[name] = draw(strat)
    return r


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=st.lists(_record(), min_size=1, max_size=25))
def test_odd_records_same_result(tmp_path_factory, records) -> None:
    d = tmp_path_factory.mktemp("j")
    j = SyncJournal(d, fsync=False)
    j.append_many(records)
    j.close()
    pure = Aggregator(TZ, PREPAID, target=NOV, deck_partners=DECKS)
    try:
        for chunk in JournalReader(d).chunks():
            pure.add_many(chunk.records)
    except TypeError:
        # an unhashable partner is rejected by the spec; the compiled path must reject it too
        with pytest.raises(TypeError):
            fastagg.read_journal(d, None, Aggregator(TZ, PREPAID, target=NOV,
                                                     deck_partners=DECKS), None)
        return
    fast = Aggregator(TZ, PREPAID, target=NOV, deck_partners=DECKS)
    fastagg.read_journal(d, None, fast, None)
    _same(pure.result, fast.result)


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.binary(max_size=80), min_size=1, max_size=8),
       prefix=st.sampled_from([b"", b"\x8f", b"\xde\xff\xff", b"\xdf\xff\xff\xff\xff",
                               b"\x84\xa4type\xa5rated\xa4legs"]))
def test_walker_never_crashes_on_hostile_payloads(payloads, prefix) -> None:
    """Frames that check but carry garbage: the compiled walker must either fold a record or
    hand it to the slow list, never read out of bounds or crash."""
    import cython_ext
    from charging.journal.framing import SEGMENT_HEADER, frame

    mod = cython_ext.load("settle_agg")
    data = SEGMENT_HEADER + b"".join(frame(prefix + p) for p in payloads)
    fa = mod.SegmentAggregator(lambda k: (0, 1 << 62), [b"partner:mvno-uk"], True)
    end = fa.feed(data, len(SEGMENT_HEADER))
    assert end == len(data) and fa.problem is None
    assert fa.records == len(payloads) == fa.fast + fa.skipped + len(fa.slow)
