"""Currency conversion of exact line sums (never per record, never float).

Lookup order for converting an amount in *src* currency to the invoice currency *dst*:

1. the FX rate recorded on the records (the journal ``fx`` map): a record priced in ``src``
   that was converted from ``dst`` at ``rate`` converts back at ``1/rate``; one converted
   from a third currency is not usable for this direction;
2. the agreement's period rate (``[[fx]]`` in the partners file, direct or inverted);
3. otherwise the run fails: an invoice is never issued on a guessed rate.

The converted amount is ``src_micros * rate`` rounded once, HALF_UP, to micro-units.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from charging.money import Rounding, div_round
from settlement.config import SettlementConfig


@dataclass(frozen=True, slots=True)
class Conversion:
    rate: Decimal  # multiply src by this to get dst (may be the inverse of a recorded rate)
    shown: str  # the rate as a person reads it, e.g. "1/0.92" or "1.0870"
    date: str
    source: str  # "record" or "agreement"


class FxError(ValueError):
    """No usable rate for a conversion."""


def find_rate(cfg: SettlementConfig, period: str, src: str, dst: str, fx_from: str,
              fx_rate: str, fx_date: str) -> Conversion | None:
    """The conversion for one line, or None when *src* == *dst*; raises FxError if none."""
    if src == dst:
        return None
    if fx_rate and fx_from == dst:
        try:
            r = Decimal(fx_rate)
        except InvalidOperation:
            r = Decimal("NaN")
        if not r.is_finite() or r <= 0:
            # a rate that is no positive number (garbage, NaN, Infinity: 1/Infinity would
            # convert every amount to 0) is an inconsistency, never a guess
            raise FxError(f"record fx rate {fx_rate!r} ({fx_from}->{src}) is not a positive "
                          "decimal")
        return Conversion(Decimal(1) / r, f"1/{fx_rate}", fx_date, "record")
    agreed = cfg.fx_rate(period, src, dst)
    if agreed is not None:
        return Conversion(agreed.rate, _shown(cfg, period, src, dst), agreed.date, "agreement")
    raise FxError(f"no FX rate {src}->{dst} for period {period} (add an [[fx]] entry)")


def _shown(cfg: SettlementConfig, period: str, src: str, dst: str) -> str:
    for r in cfg.fx:
        if r.period == period and r.from_ccy == src and r.to_ccy == dst:
            return str(r.rate)
    for r in cfg.fx:
        if r.period == period and r.from_ccy == dst and r.to_ccy == src:
            return f"1/{r.rate}"
    return "?"


def convert(micros: int, conv: Conversion | None) -> int:
    """*micros* converted exactly and rounded once to micro-units (HALF_UP)."""
    if conv is None:
        return micros
    if "/" in conv.shown and conv.shown.startswith("1/"):
        # divide by the recorded rate exactly rather than by a rounded inverse
        f = Fraction(micros) / Fraction(Decimal(conv.shown[2:]))
    else:
        f = Fraction(micros) * Fraction(conv.rate)
    return div_round(f.numerator, f.denominator, Rounding.HALF_UP)
