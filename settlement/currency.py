"""Currency minor units, invoice rounding and billing periods.

Rounding policy (the one documented in the README and shown on every invoice):

1. rating already rounded each record to micro-units (charging/money.py);
2. settlement sums records exactly in micro-units; an FX conversion multiplies the exact
   line sum by the rate and rounds once to micro-units (HALF_UP);
3. each invoice line is rounded to the currency's minor unit (ISO 4217 exponent) HALF_UP;
   the line shows its exact amount and its rounding;
4. the invoice total is the sum of the rounded lines; the invoice shows the exact total and
   ``rounding = total - exact_total`` so ``sum(record amounts) + rounding == total`` holds.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from charging.currency import is_iso4217, minor_places
from charging.money import Rounding, round_to_places

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def is_currency(code: str) -> bool:
    """True when *code* is an ISO 4217 alphabetic code (three capitals ISO 4217 knows)."""
    return is_iso4217(code)


def round_invoice(micros: int, currency: str) -> int:
    """Round micro-units to the currency's minor unit, HALF_UP (still micro-units)."""
    return round_to_places(micros, minor_places(currency), Rounding.HALF_UP)


class PeriodError(ValueError):
    """A period or timezone that cannot be used."""


@dataclass(frozen=True, slots=True)
class Period:
    """A monthly billing period ``YYYY-MM``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD.match(text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise PeriodError(f"period must be YYYY-MM, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Period:
        return Period(self.year + 1, 1) if self.month == 12 else Period(self.year, self.month + 1)

    def prev(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def last_day(self) -> str:
        """ISO date of the period's last day: the default issue date."""
        day = calendar.monthrange(self.year, self.month)[1]
        return f"{self.year:04d}-{self.month:02d}-{day:02d}"

    def bounds_us(self, tz: str) -> tuple[int, int]:
        """[start, end) of the period in epoch microseconds, midnight to midnight in *tz*."""
        zone = zone_of(tz)
        lo = datetime(self.year, self.month, 1, tzinfo=zone)
        n = self.next()
        hi = datetime(n.year, n.month, 1, tzinfo=zone)
        return _us(lo), _us(hi)


def _us(dt: datetime) -> int:
    # timestamp() is float; whole seconds at midnight are exact, so int() is safe here.
    return int(dt.timestamp()) * 1_000_000


def zone_of(tz: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; raises PeriodError when unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PeriodError(f"unknown timezone {tz!r}") from exc


def period_of(start_us: int, tz: str) -> Period:
    """The monthly period a usage starting at *start_us* belongs to, in partner timezone *tz*."""
    dt = datetime.fromtimestamp(start_us // 1_000_000, tz=zone_of(tz))
    return Period(dt.year, dt.month)
