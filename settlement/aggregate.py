"""Aggregation of journal records into settlement buckets: the pure-Python executable spec.

A bucket is keyed by :data:`KEY_FIELDS` and holds ``[count, usage, micros]`` (exact integer
micro-units of the record currency). Only records with a ``partner`` (or ``legs``) settle:
types ``rated`` (usage), ``refund`` and ``adjust`` (signed amounts, netted on the invoice).
A record without a partner (the Ro/Rf path writes the deck, not the partner) settles with the
partner whose agreement names its deck (``deck_partners``: deck -> (partner, direction)); a
deck several partners' agreements name (``shared_decks``) cannot attribute it: a problem.
A transit/hub record settles each of its ``legs`` with the leg's partner (schema: legs carry
partner, direction, deck, deck_version, price, currency) and not its top-level price.

The period of a record is the month of its ``start`` (else ``ts``) in the partner's timezone.
Prepaid partners' balance movements (``balance_effects`` on their account) are summed per
(account, currency, period) for the money-integrity check.

The compiled twin (``cython_ext/settle_agg.pyx`` via :mod:`settlement.fastagg`) must produce
exactly the same buckets; tests/settlement/test_fastagg_parity.py holds it to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from charging.money import MoneyError, parse_amount
from settlement.currency import Period, period_of

KEY_FIELDS = (
    "partner", "period", "direction", "service", "destination", "deck", "deck_version",
    "currency", "fx_from", "fx_rate", "fx_date", "kind",
)
SETTLED_TYPES = {"rated": "usage", "refund": "refund", "adjust": "adjust"}

BucketKey = tuple[str, ...]
Buckets = dict[BucketKey, list[int]]


@dataclass
class AggregateResult:
    """What one pass produced; merge passes with :meth:`merge`."""

    buckets: Buckets = field(default_factory=dict)
    # (account, currency, period) -> micro-units moved on a prepaid partner's account
    movements: dict[tuple[str, str, str], int] = field(default_factory=dict)
    records: int = 0
    settled: int = 0
    problems: list[str] = field(default_factory=list)
    workers: int = 1  # processes the compiled path used (informational)

    def merge(self, other: AggregateResult) -> None:
        for k, v in other.buckets.items():
            mine = self.buckets.get(k)
            if mine is None:
                self.buckets[k] = list(v)
            else:
                mine[0] += v[0]
                mine[1] += v[1]
                mine[2] += v[2]
        for mk, mv in other.movements.items():
            self.movements[mk] = self.movements.get(mk, 0) + mv
        self.records += other.records
        self.settled += other.settled
        self.problems.extend(other.problems)


class Aggregator:
    """Feed records (dicts, schema v1) with :meth:`add`; read :attr:`result`.

    *timezones* maps partner id -> IANA timezone; a record naming another partner is an
    inconsistency (a problem, not settled). *prepaid* maps prepaid account -> partner id.
    """

    def __init__(self, timezones: Mapping[str, str], prepaid: Mapping[str, str] | None = None,
                 target: Period | None = None,
                 deck_partners: Mapping[str, tuple[str, str]] | None = None,
                 shared_decks: Mapping[str, str] | None = None) -> None:
        self.timezones = dict(timezones)
        self.prepaid = dict(prepaid or {})
        self.target = target
        # deck -> (partner, direction): records of the Ro/Rf path carry the deck, not the partner
        self.deck_partners = dict(deck_partners or {})
        # deck -> who claims it: a record with only such a deck is a problem, not settled
        self.shared_decks = dict(shared_decks or {})
        self.result = AggregateResult()
        self._prices: dict[str, int] = {}
        # partner -> (lo, hi, "YYYY-MM") of the target period: the common case avoids zoneinfo
        self._windows: dict[str, tuple[int, int, str]] = {}
        if target is not None:
            for p, tz in self.timezones.items():
                lo, hi = target.bounds_us(tz)
                self._windows[p] = (lo, hi, str(target))

    def price(self, text: Any) -> int | None:
        """Micro-units of a decimal string, cached per distinct string; None when invalid."""
        if type(text) is not str:
            return None
        v = self._prices.get(text)
        if v is None:
            v = _plain_micros(text)
            if v is None:
                try:
                    v = parse_amount(text)
                except MoneyError:
                    return None
            self._prices[text] = v
        return v

    def period(self, partner: str, when: int) -> str:
        w = self._windows.get(partner)
        if w is not None and w[0] <= when < w[1]:
            return w[2]
        return str(period_of(when, self.timezones[partner]))

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            self.add(rec)

    def add(self, rec: Mapping[str, Any]) -> None:
        res = self.result
        res.records += 1
        kind = SETTLED_TYPES.get(rec.get("type"))  # type: ignore[arg-type]
        if kind is None:
            return
        legs = rec.get("legs")
        when = rec.get("start")
        if type(when) is not int:
            when = rec.get("ts")
            if type(when) is not int:
                if (rec.get("partner") or legs or rec.get("deck") in self.deck_partners
                        or rec.get("deck") in self.shared_decks):
                    res.problems.append(f"record {rec.get('id')!r}: no start or ts")
                return
        usage = rec.get("usage")
        if type(usage) is not int:
            usage = 0
        fxk = fx_key(rec.get("fx"))
        service = rec.get("service") or ""
        destination = rec.get("destination") or ""
        if legs:
            settled = False
            for leg in legs:
                if isinstance(leg, Mapping) and leg.get("partner"):
                    settled |= self._one(rec, leg, kind, when, usage, service, destination, fxk)
            if settled:
                res.settled += 1
        elif rec.get("partner"):
            if self._one(rec, rec, kind, when, usage, service, destination, fxk):
                res.settled += 1
        elif self.deck_partners and rec.get("deck") in self.deck_partners:
            partner, direction = self.deck_partners[rec["deck"]]
            src = {**rec, "partner": partner, "direction": direction}
            if self._one(rec, src, kind, when, usage, service, destination, fxk):
                res.settled += 1
        elif self.shared_decks and rec.get("deck") in self.shared_decks:
            deck = rec["deck"]
            res.problems.append(
                f"record {rec.get('id')!r}: no partner, and its deck {deck!r} is named by "
                f"several agreements ({self.shared_decks[deck]}): cannot tell whose it is")
        if self.prepaid:
            self._movements(rec, when)

    def _one(self, rec: Mapping[str, Any], src: Mapping[str, Any], kind: str, when: int,
             usage: int, service: str, destination: str, fxk: tuple[str, str, str]) -> bool:
        res = self.result
        partner = src["partner"]
        if partner not in self.timezones:
            res.problems.append(f"record {rec.get('id')!r}: unknown partner {partner!r}")
            return False
        got = self.key_of(src, self.period(partner, when), kind, service, destination, fxk)
        if isinstance(got, str):
            res.problems.append(f"record {rec.get('id')!r}: {got}")
            return False
        key, micros = got
        b = res.buckets.get(key)
        if b is None:
            res.buckets[key] = [1, usage, micros]
        else:
            b[0] += 1
            b[1] += usage
            b[2] += micros
        return True

    def key_of(self, src: Mapping[str, Any], period: str, kind: str, service: str,
               destination: str, fxk: tuple[str, str, str]) -> tuple[BucketKey, int] | str:
        """(bucket key, micro-units) of one settled item, or the problem text. The compiled
        twin calls this once per distinct slot so both paths build keys the same way."""
        micros = self.price(src.get("price"))
        if micros is None:
            return f"bad price {src.get('price')!r}"
        currency = src.get("currency")
        direction = src.get("direction")
        if not currency or direction not in ("sell", "buy"):
            return "missing currency or direction"
        key = (src["partner"], period, direction, service, destination,
               src.get("deck") or "", src.get("deck_version") or "", currency,
               fxk[0], fxk[1], fxk[2], kind)
        return key, micros

    def _movements(self, rec: Mapping[str, Any], when: int) -> None:
        effects = rec.get("balance_effects")
        if not effects:
            return
        for eff in effects:
            partner = self.prepaid.get(eff.get("account"))
            if partner is None or eff.get("currency") is None:
                continue
            micros = self.price(eff.get("amount"))
            if micros is None:
                self.result.problems.append(f"record {rec.get('id')!r}: bad balance effect")
                continue
            mk = (eff["account"], eff["currency"], self.period(partner, when))
            self.result.movements[mk] = self.result.movements.get(mk, 0) + micros


def _plain_micros(text: str) -> int | None:
    """Micro-units of a plain ``[-]digits[.1-6 digits]`` string without Decimal; None for
    anything else (the caller then uses charging.money.parse_amount, the reference)."""
    body = text[1:] if text[:1] == "-" else text
    whole, dot, frac = body.partition(".")
    if not (whole.isascii() and whole.isdigit()) or len(frac) > 6 or (
            dot and not (frac.isascii() and frac.isdigit())):
        return None
    v = int(whole) * 1_000_000 + (int(frac.ljust(6, "0")) if frac else 0)
    return -v if text[:1] == "-" else v


def fx_key(fx: Any) -> tuple[str, str, str]:
    """The (from, rate, date) of a record's ``fx`` map as key fields ("" when absent)."""
    if isinstance(fx, Mapping):
        return (str(fx.get("from", "")), str(fx.get("rate", "")), str(fx.get("date", "")))
    return ("", "", "")


def aggregate(records: Iterable[Mapping[str, Any]], timezones: Mapping[str, str],
              prepaid: Mapping[str, str] | None = None, target: Period | None = None,
              deck_partners: Mapping[str, tuple[str, str]] | None = None,
              shared_decks: Mapping[str, str] | None = None) -> AggregateResult:
    """One-shot helper: aggregate *records* and return the result."""
    agg = Aggregator(timezones, prepaid, target, deck_partners, shared_decks)
    agg.add_many(records)
    return agg.result
