"""Deterministic traffic generator: journal records (schema v1) of mixed interconnect traffic.

For users to try settlement without a network (``icx settle generate``), for the
money-integrity test and for the benchmark. Records are priced with the generator's own
per-minute / per-event rates (:data:`RATES`), per-second billing, rounded once per record to
micro-units half-up -- the same rounding the rating engine applies -- not with the rating
engine's decks (so this module needs no deck files). The mix follows the demo partners file
(config/partners.toml): bilateral sell and buy voice/SMS, EUR traffic invoiced in USD,
hubbing records with one leg per party, content revenue share with refunds, a prepaid
MVNO whose account is debited by each record, and Ro-path records that name only their deck.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from charging.money import MICROS, Rounding, div_round, format_amount
from settlement.currency import Period

# (deck, destination name, dialled prefix) -> (currency, micro-units per minute or per event)
RATES: dict[tuple[str, str], tuple[str, int]] = {
    ("sell-eu", "France Mobile"): ("EUR", 12_500),
    ("sell-eu", "France Fixed"): ("EUR", 4_100),
    ("sell-eu", "UK Mobile"): ("EUR", 9_800),
    ("sell-eu", "USA"): ("EUR", 3_300),
    ("sell-eu", "Germany Mobile"): ("EUR", 11_700),
    ("buy-orange", "France Mobile"): ("EUR", 11_000),
    ("buy-orange", "France Fixed"): ("EUR", 3_500),
    ("buy-att", "USA"): ("USD", 2_900),
    ("sell-mvno", "UK Mobile"): ("GBP", 15_000),
    ("sell-mvno", "UK Fixed"): ("GBP", 6_000),
    ("hub-in", "USA"): ("EUR", 4_000),
    ("hub-out", "USA"): ("EUR", 3_100),
    ("sms-eu", "SMS"): ("EUR", 21_000),
    ("content", "Premium content"): ("EUR", 1_990_000),
    ("carrier_a_sell", "Switzerland Mobile"): ("EUR", 45_000),
    ("carrier_a_sell", "Switzerland Fixed"): ("EUR", 15_000),
}
PREFIX = {"France Mobile": "336", "France Fixed": "331", "UK Mobile": "447",
          "UK Fixed": "4420", "USA": "1212", "Germany Mobile": "4915", "SMS": "336",
          "Premium content": "3381", "Switzerland Mobile": "4179", "Switzerland Fixed": "4144"}
DECK_VERSION = "2026-11-01"

# (weight, partner, direction, service, deck, destinations)
MIX: list[tuple[int, str, str, str, str, tuple[str, ...]]] = [
    (30, "orange-fr", "sell", "voice", "sell-eu", ("UK Mobile", "USA", "Germany Mobile")),
    (12, "orange-fr", "buy", "voice", "buy-orange", ("France Mobile", "France Fixed")),
    (8, "orange-fr", "sell", "sms", "sms-eu", ("SMS",)),
    (14, "att-us", "sell", "voice", "sell-eu", ("France Mobile", "France Fixed", "UK Mobile")),
    (8, "att-us", "buy", "voice", "buy-att", ("USA",)),
    (6, "hub", "", "voice", "", ("USA",)),
    (8, "gamesco", "buy", "content", "content", ("Premium content",)),
    (2, "gamesco", "buy", "sms", "sms-eu", ("SMS",)),
    (12, "mvno-uk", "sell", "voice", "sell-mvno", ("UK Mobile", "UK Fixed")),
    # Ro/Rf-path records: the charging service writes the deck, not the partner
    (4, "ro", "", "voice", "carrier_a_sell", ("Switzerland Mobile", "Switzerland Fixed")),
]
_WEIGHTS = [m[0] for m in MIX]


def price_of(deck: str, destination: str, usage: int, service: str) -> tuple[str, int]:
    """(currency, micro-units) for *usage*: per-second billing of a per-minute rate, or one
    event; rounded once per record to micro-units, half up."""
    ccy, rate = RATES[(deck, destination)]
    if service == "voice":
        return ccy, div_round(rate * usage, 60, Rounding.HALF_UP)
    return ccy, rate * max(usage, 1)


class TrafficGenerator:
    """``records(n)`` yields *n* record dicts inside *period* (UTC month), reproducibly."""

    def __init__(self, period: Period, *, seed: int = 1, node: str = "gen",
                 refund_every: int = 40) -> None:
        self.period = period
        self.rng = random.Random(seed)
        self.node = node
        self.refund_every = refund_every
        lo, hi = period.bounds_us("UTC")
        # keep 1 day away from the edges so every partner timezone sees the same month
        self.lo = lo + 86_400_000_000
        self.hi = hi - 86_400_000_000 - 3_600_000_000
        self.n = 0

    def records(self, count: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        choices = rng.choices
        for _ in range(count):
            (_, partner, direction, service, deck, dests) = choices(MIX, _WEIGHTS)[0]
            yield self._record(partner, direction, service, deck, rng.choice(dests))

    def _record(self, partner: str, direction: str, service: str, deck: str,
                dest: str) -> dict[str, Any]:
        rng = self.rng
        self.n += 1
        n = self.n
        start = rng.randrange(self.lo, self.hi) // 1_000_000 * 1_000_000
        usage = rng.randint(1, 900) if service == "voice" else 1
        a = "+3361" + f"{rng.randrange(10**7):07d}"
        b = "+" + PREFIX[dest] + f"{rng.randrange(10**7):07d}"
        sid = f"{self.node}-sess-{n}"
        rec: dict[str, Any] = {
            "v": 1, "type": "rated", "id": f"{self.node}-{n}", "ts": start + usage * 1_000_000,
            "idem": f"ro:{sid}:1", "session": sid, "request": "1", "start": start,
            "end": start + usage * 1_000_000, "service": service, "usage": usage,
            "unit": "s" if service == "voice" else "event", "a": a, "b": b,
            "account": f"sub-{n % 997}", "destination": dest, "prefix": PREFIX[dest],
            "deck_version": DECK_VERSION, "balance_effects": [], "holds": [], "result": "ok",
        }
        if partner == "hub":
            legs = []
            for leg_partner, leg_dir, leg_deck in (("orange-fr", "sell", "hub-in"),
                                                    ("globalhub", "buy", "hub-out")):
                ccy, micros = price_of(leg_deck, dest, usage, service)
                legs.append({"partner": leg_partner, "direction": leg_dir, "deck": leg_deck,
                             "deck_version": DECK_VERSION, "price": format_amount(micros),
                             "currency": ccy})
            rec["legs"] = legs
            rec["account"] = "carrier:orange-fr"
            return rec
        ccy, micros = price_of(deck, dest, usage, service)
        if partner == "ro":
            rec.update(deck=deck, price=format_amount(micros), currency=ccy)
            return rec
        if partner == "gamesco" and self.refund_every and n % self.refund_every == 0:
            rec["type"] = "refund"
            micros = -micros
        rec.update(partner=partner, direction=direction, deck=deck, price=format_amount(micros),
                   currency=ccy)
        if partner == "mvno-uk":
            rec["account"] = "partner:mvno-uk"
            rec["balance_effects"] = [{"account": "partner:mvno-uk", "balance": "GBP",
                                       "currency": "GBP", "amount": format_amount(-micros)}]
        elif partner == "gamesco":
            rec["balance_effects"] = [{"account": rec["account"], "balance": "EUR",
                                       "currency": "EUR", "amount": format_amount(-micros)}]
        return rec


def _flush(journal: Any, frames: list[bytes], progress: Callable[[int], None] | None) -> int:
    """Append *frames* (may be empty) in one call; report progress; return how many."""
    if frames:
        journal.append_many(frames)
        if progress:
            progress(len(frames))
    return len(frames)


def write_journal(directory: str, records: Iterator[dict[str, Any]], *, batch: int = 20_000,
                  segment_bytes: int = 64 << 20, progress: Any = None) -> int:
    """Append *records* to the journal in *directory* in bulk (fsync at the end only)."""
    from charging.journal import SyncJournal

    journal = SyncJournal(directory, segment_bytes=segment_bytes, fsync=False)
    packb = msgpack.Packer(use_bin_type=True).pack
    count = 0
    buf: list[bytes] = []
    try:
        for rec in records:
            buf.append(packb(rec))
            if len(buf) >= batch:
                count += _flush(journal, buf, progress)
                buf = []
        count += _flush(journal, buf, progress)
        journal.rotate()
    finally:
        journal.close(seal=True)
    return count


def write_journal_cycled(directory: str, gen: TrafficGenerator, count: int, *,
                         pool: int = 200_000, segment_bytes: int = 64 << 20,
                         progress: Any = None) -> int:
    """Benchmark-scale bulk writer: *pool* distinct generated records, cycled to *count*.

    Each copy gets its own record id (``<node>-c<10 digits>``, patched into the packed bytes),
    so ids stay unique; everything else (numbers, times, prices) repeats every *pool* records.
    Settlement does no per-id work, so its cost is that of *count* distinct records.
    """
    from charging.journal import SyncJournal

    packb = msgpack.Packer(use_bin_type=True).pack
    templates: list[tuple[bytes, int]] = []
    for rec in gen.records(min(pool, count)):
        rec["id"] = f"{gen.node}-c{0:010d}"
        raw = packb(rec)
        marker = msgpack.packb(rec["id"])
        templates.append((raw, raw.index(marker) + len(marker) - 10))
    journal = SyncJournal(directory, segment_bytes=segment_bytes, fsync=False)
    written = 0
    try:
        batch: list[bytes] = []
        for i in range(count):
            raw, off = templates[i % len(templates)]
            buf = bytearray(raw)
            buf[off:off + 10] = b"%010d" % i
            batch.append(bytes(buf))
            if len(batch) == 20_000:
                written += _flush(journal, batch, progress)
                batch = []
        written += _flush(journal, batch, progress)
        journal.rotate()
    finally:
        journal.close(seal=True)
    return written


__all__ = ["MICROS", "RATES", "TrafficGenerator", "price_of", "write_journal",
           "write_journal_cycled"]
