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
from settlement.currency import Period, period_of


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


def convert_price(cfg: SettlementConfig, micros: int, src: str, dst: str, *, deck: str,
                  start_us: int, default_tz: str) -> tuple[int, Conversion | None, Period]:
    """One rated price (*micros* in *src*, e.g. ``icx rate``'s) in *dst*, converted as its
    invoice line would be: with the ``[[fx]]`` rate of the billing period the usage starts in
    (direct, or the opposite pair's divided exactly), rounded once HALF_UP to micro-units.

    The period is taken in the timezone of the partner whose agreement names *deck* (as
    settlement attributes a record that carries only its deck), else in *default_tz* (the
    rating timezone). Returns ``(micros in dst, the conversion or None when src == dst, the
    period)``; raises :class:`FxError` when the partners file has no such rate -- the caller
    must report it and show no price (a price is never converted on a guessed rate)."""
    owner = cfg.deck_partners().get(deck)
    tz = cfg.partners[owner[0]].timezone if owner and owner[0] in cfg.partners else default_tz
    period = period_of(start_us, tz)
    conv = find_rate(cfg, str(period), src.upper(), dst.upper(), "", "", "")
    return convert(micros, conv), conv, period
