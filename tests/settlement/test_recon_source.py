"""Reconciliation reads our journal through the compiled selection (settle_agg.select_calls)
and gets exactly the calls of the pure spec (JournalReader + our_cdrs): generated traffic,
hand-made odd records and hypothesis-made ones; a corrupt closed segment fails both ways.
Skipped when the extension is not built or ICX_NO_EXTENSIONS=1 (then the pure path is the
only path), unless CI=true / ICX_REQUIRE_EXTENSIONS=1 demands the build.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import JournalCorruptError, JournalReader
from settlement import fastagg
from settlement.config import CdrMapping
from settlement.currency import Period
from settlement.generate import TrafficGenerator, write_journal
from settlement.recon_source import journal_calls

from .conftest import T0, rec

_REQUIRED = os.environ.get("CI") == "true" or os.environ.get("ICX_REQUIRE_EXTENSIONS") == "1"
pytestmark = pytest.mark.skipif(
    not fastagg.available() and (not cython_ext.extensions_enabled() or not _REQUIRED),
    reason="cython_ext.settle_agg not built or disabled")
NOV = Period(2026, 11)
LO, HI = NOV.bounds_us("Europe/Paris")
DECKS = {"carrier_a_sell": ("orange-fr", "sell"), "carrier_a_buy": ("orange-fr", "buy"),
         "other": ("att-us", "sell")}
MAP = CdrMapping(a="a", b="b", start="s", duration="d", billing_increment=1)


def _key(c: Any) -> tuple[Any, ...]:
    return (c.start_us, c.id, c.amount or 0, c.currency or "", str(c.duration), c.a, c.b)


def both(directory: Path, **kw: Any) -> tuple[list[Any], list[Any]]:
    args = dict(partner="orange-fr", lo=LO, hi=HI, mapping=MAP, deck_partners=DECKS)
    args.update(kw)
    pure = journal_calls(directory, fast=False, **args)  # type: ignore[arg-type]
    comp = journal_calls(directory, fast=True, **args)  # type: ignore[arg-type]
    return sorted(pure, key=_key), sorted(comp, key=_key)


def test_generated_traffic_same_calls(tmp_path: Path) -> None:
    gen = TrafficGenerator(NOV, seed=5, node="g5")
    write_journal(str(tmp_path / "j"), gen.records(4000), segment_bytes=256 << 10)
    assert len(JournalReader(tmp_path / "j").segments()) > 2
    for direction, service in (("any", "any"), ("sell", "sms"), ("buy", "voice")):
        pure, comp = both(tmp_path / "j", direction=direction, service=service)
        assert pure == comp
    pure, comp = both(tmp_path / "j")
    assert pure == comp
    assert len(pure) > 1000  # orange-fr voice: top-level records and hub legs


ODD: list[dict[str, Any]] = [
    rec(id="plain", price="0.0098"),
    rec(id="legs", partner=None, legs=[{"partner": "orange-fr", "direction": "sell",
                                        "price": "0.01", "currency": "EUR"},
                                       {"partner": "globalhub", "direction": "buy",
                                        "price": "0.008", "currency": "EUR"}]),
    rec(id="legs-other", legs=[{"partner": "globalhub", "direction": "buy", "price": "1"}]),
    rec(id="empty-legs", legs=[]),
    rec(id="fx", currency="USD", fx={"from": "EUR", "to": "USD", "rate": "1.08", "date": "d"}),
    rec(id="deck-only", partner=None, direction=None, deck="carrier_a_sell"),
    rec(id="deck-empty-partner", partner="", deck="carrier_a_buy"),
    rec(id="deck-other", partner=None, deck="other"),
    rec(id="deck-unknown", partner=None, deck="nope"),
    rec(id="deck-not-str", partner=None, deck=5),
    rec(id="price-int", price=3),
    rec(id="price-exp", price="1e-3"),
    rec(id="price-empty", price=""),
    rec(id="price-nil", price=None),
    rec(id="price-long", price="123456789012.5"),
    rec(id="neg", type="adjust", price="-0.5"),
    rec(id=17),
    rec(id="a-nil", a=None, b="0044 20 7946 0000"),
    rec(id="usage-nil", usage=None),
    rec(id="usage-big", usage=2**64 - 1),
    rec(id="unit-event", unit="event"),
    rec(id="unit-nil", unit=None),
    rec(id="no-direction", direction=None),
    rec(id="ccy-nil", currency=None),
    rec(id="hold", type="hold"),
    rec(id="refund", type="refund"),
    rec(id="sms", service="sms"),
    rec(id="start-bool", start=True),
    rec(id="start-str", start="1"),
    rec(id="start-early", start=LO - 1),
    rec(id="start-lo", start=LO),
    rec(id="start-hi", start=HI),
    rec(id="partner-int", partner=7),
    rec(id="other-partner", partner="att-us"),
]


def test_odd_records_same_calls(tmp_path: Path) -> None:
    records = []
    for r in ODD:
        r = dict(r)
        for k in [k for k, v in r.items() if v is None and k in ("partner", "direction", "deck")]:
            if r["id"] not in ("a-nil", "price-nil", "usage-nil", "unit-nil", "ccy-nil"):
                del r[k]  # absent, not nil (both are tried: see the *-nil records)
        records.append(r)
    write_journal(str(tmp_path / "j"), iter(records))
    for direction in ("any", "sell", "buy"):
        for service in ("voice", "any"):
            pure, comp = both(tmp_path / "j", direction=direction, service=service)
            assert pure == comp
    ids = sorted(c.id for c in both(tmp_path / "j")[1])
    # legs-other: a top-level orange-fr record whose legs are all another partner's
    assert ids == sorted(["plain", "legs", "legs-other", "empty-legs", "fx", "deck-only", "deck-empty-partner",
                          "price-int", "price-exp", "price-empty", "price-nil", "price-long",
                          "neg", "17", "a-nil", "usage-nil", "usage-big", "unit-event",
                          "unit-nil", "no-direction", "ccy-nil", "start-lo"])


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**62, 2**64 - 1),
                   st.sampled_from(["", "s", "x", "orange-fr", "att-us", "sell", "buy", "voice",
                                    "rated", "adjust", "0.5", "-1.25", "1e2", "EUR",
                                    "carrier_a_sell", "+41791234567"]),
                   st.lists(st.integers(0, 2), max_size=2))
FIELDS = ["type", "service", "start", "partner", "direction", "deck", "id", "a", "b", "usage",
          "unit", "price", "currency"]


@st.composite
def odd_record(draw: st.DrawFn) -> dict[str, Any]:
    r = rec(id=draw(st.sampled_from(["x1", "x2"])), start=T0)
    for f in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            r.pop(f, None)
        else:
            r[f] = draw(VALUES)
    if draw(st.booleans()):
        r["legs"] = draw(st.lists(st.fixed_dictionaries(
            {"partner": st.sampled_from(["orange-fr", "globalhub"]),
             "direction": st.sampled_from(["sell", "buy"]),
             "price": st.sampled_from(["0.1", "2"]), "currency": st.just("EUR")}), max_size=2))
    return r


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(odd_record(), min_size=1, max_size=12))
def test_hypothesis_records_same_calls_or_same_error(tmp_path: Path,
                                                     records: list[dict[str, Any]]) -> None:
    d = tmp_path / f"j{abs(hash(repr(records)))}"
    write_journal(str(d), iter(records))
    got = []
    for fast in (False, True):
        try:
            got.append(sorted(journal_calls(d, "orange-fr", LO, HI, mapping=MAP,
                                            deck_partners=DECKS, service="any", fast=fast),
                              key=_key))
        except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            got.append(type(exc).__name__)  # the spec rejects it: so must the fast path
    assert got[0] == got[1]


def test_corrupt_closed_segment_fails_both_ways(tmp_path: Path) -> None:
    write_journal(str(tmp_path / "j"), iter([rec(id=f"r{i}") for i in range(50)]))
    seg = JournalReader(tmp_path / "j").segments()[0]
    assert seg.closed
    raw = bytearray(seg.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    seg.path.write_bytes(bytes(raw))
    for fast in (False, True):
        with pytest.raises(JournalCorruptError):
            journal_calls(tmp_path / "j", "orange-fr", LO, HI, fast=fast)


def test_icx_reconcile_takes_the_compiled_path_with_the_same_report(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from icx.cli import main

    from .conftest import DEMO

    d, cdrs = str(tmp_path), str(tmp_path / "orange.csv")
    runner = CliRunner(mix_stderr=False)
    r = runner.invoke(main, ["settle", "generate", "--period", "2026-11", "--records", "2000",
                             "--data-dir", d, "--their-cdrs", cdrs, "--partners", str(DEMO)])
    assert r.exit_code == 0, r.stderr
    docs, files = [], []
    for env in ({}, {"ICX_NO_EXTENSIONS": "1"}):
        r = runner.invoke(main, ["reconcile", "--partner", "orange-fr", "--period", "2026-11",
                                 "--their-cdrs", cdrs, "--data-dir", d, "--partners", str(DEMO),
                                 "--json"], env=env)
        assert r.exit_code == 0, r.stderr
        docs.append(json.loads(r.stdout))
        files.append((tmp_path / "settlement" / "recon" / "2026-11" / "orange-fr" /
                      "RECON-2026-11-ORANGE-FR.csv").read_bytes())
    assert docs[0].pop("fast_path") is True
    assert docs[1].pop("fast_path") is False  # cython_ext.load honours the variable per call
    assert docs[0] == docs[1] and files[0] == files[1]
    assert docs[0]["counts"]["exact"] > 500


def test_select_calls_survives_mutated_payloads() -> None:
    """Fuzz: CRC-valid frames whose msgpack payload is mutated (bytes changed, dropped,
    inserted, cut) give a result or, for invalid UTF-8 in a selected record's text, the same
    UnicodeDecodeError msgpack raises: never a crash or another error."""
    import random
    import struct
    import zlib

    import msgpack

    mod = cython_ext.load("settle_agg")
    if mod is None:
        pytest.skip("cython_ext.settle_agg not built or disabled")
    base = msgpack.packb(rec(id="x"))
    rng = random.Random(7)
    header = b"ICXJ\x00\x01" + bytes(10)
    for _ in range(20_000):
        b = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            if op < 0.5:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif op < 0.75 and len(b) > 2:
                del b[rng.randrange(len(b))]
            else:
                b.insert(rng.randrange(len(b)), rng.randrange(256))
        if rng.random() < 0.1:
            b = b[:rng.randrange(len(b))]
        frame = (header + b"\xce" + struct.pack(">I", len(b)) + b"\xce"
                 + struct.pack(">I", zlib.crc32(b)) + bytes(b))
        try:
            end, problem, fast, slow = mod.select_calls(frame, 16, 1 << 24, b"orange-fr",
                                                        [("sell-eu", "sell")], "any", 0, 2**62)
        except UnicodeDecodeError:
            continue
        assert end == len(frame) and problem is None and len(fast) + len(slow) <= 1
