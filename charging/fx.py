"""Foreign exchange with effective dates: convert micro-units between currencies exactly.

A rate says ``1 FROM = rate TO`` (a Decimal) from an effective date on; the rate used is
returned with every conversion so it is kept with the price (journal ``fx``). Conversion
rounds once, HALF_UP, to micro-units.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from charging.money import div_round


@dataclass(frozen=True, slots=True)
class FxQuote:
    from_currency: str
    to_currency: str
    rate: Decimal  # for display; ``exact`` is what conversion uses
    date: dt.date
    exact: Fraction = Fraction(1)


@dataclass(slots=True)
class FxTable:
    """Rates by currency pair, each a sorted list of (effective date, rate)."""

    rates: dict[tuple[str, str], list[tuple[dt.date, Decimal]]] = field(default_factory=dict)

    def add(self, from_currency: str, to_currency: str, rate: Decimal | str, effective: dt.date | str) -> None:
        r = Decimal(rate)
        if not r.is_finite() or r <= 0:
            raise ValueError(f"fx rate must be positive, got {rate!r}")
        day = dt.date.fromisoformat(effective) if isinstance(effective, str) else effective
        lst = self.rates.setdefault((from_currency.upper(), to_currency.upper()), [])
        bisect.insort(lst, (day, r))

    def quote(self, from_currency: str, to_currency: str, on: dt.date) -> FxQuote:
        """The rate in force on *on*; the inverse of the opposite pair if only that exists.
        KeyError when there is none."""
        f, t = from_currency.upper(), to_currency.upper()
        if f == t:
            return FxQuote(f, t, Decimal(1), on, Fraction(1))
        lst = self.rates.get((f, t))
        if lst:
            i = bisect.bisect_right(lst, (on, Decimal("Infinity"))) - 1
            if i >= 0:
                return FxQuote(f, t, lst[i][1], lst[i][0], Fraction(lst[i][1]))
        inv = self.rates.get((t, f))
        if inv:
            i = bisect.bisect_right(inv, (on, Decimal("Infinity"))) - 1
            if i >= 0:
                return FxQuote(f, t, Decimal(1) / inv[i][1], inv[i][0], 1 / Fraction(inv[i][1]))
        raise KeyError(f"no fx rate {f}->{t} on {on.isoformat()}")

    def convert(self, micros: int, from_currency: str, to_currency: str, on: dt.date) -> tuple[int, FxQuote]:
        """(*micros* in to_currency, the quote used), rounded once HALF_UP."""
        q = self.quote(from_currency, to_currency, on)
        frac = q.exact * micros
        return div_round(frac.numerator, frac.denominator), q
