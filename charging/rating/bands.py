"""Time bands (protocol-facts G3): which band (peak, offpeak, weekend, holiday...) is in force
at an instant, from a calendar in a configured timezone. There is no standard: the calendar
is configuration. DST is handled by ``zoneinfo``: rules are in local wall-clock time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RULE = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class BandRule:
    band: str
    days: frozenset[int]  # 0 = Monday
    start_minute: int  # inclusive, local time
    end_minute: int  # exclusive; 1440 = midnight


def parse_rule(band: str, text: str) -> BandRule:
    """``"mon-fri 08:00-19:00"`` -> BandRule; raise ValueError with what is wrong."""
    m = _RULE.match(text.lower())
    if not m:
        raise ValueError(f"bad band rule {text!r} (e.g. 'mon-fri 08:00-19:00')")
    d1 = _DAYS.index(m[1]) if m[1] in _DAYS else -1
    d2 = _DAYS.index(m[2]) if m[2] in _DAYS else (d1 if m[2] is None else -1)
    if d1 < 0 or d2 < 0:
        raise ValueError(f"bad day in band rule {text!r}")
    days = frozenset(range(d1, d2 + 1)) if d1 <= d2 else frozenset([*range(d1, 7), *range(0, d2 + 1)])
    start = int(m[3]) * 60 + int(m[4])
    end = int(m[5]) * 60 + int(m[6])
    if not 0 <= start < end <= 1440:
        raise ValueError(f"bad hours in band rule {text!r} (start < end, 00:00..24:00)")
    return BandRule(band=band.lower(), days=days, start_minute=start, end_minute=end)


@dataclass(frozen=True, slots=True)
class BandCalendar:
    """Rules are tried in order; a holiday date gives ``holiday_band``; else ``default_band``."""

    timezone: str = "UTC"
    rules: tuple[BandRule, ...] = ()
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    holiday_band: str = "weekend"
    default_band: str = "offpeak"

    @staticmethod
    def build(timezone: str, rules: dict[str, list[str]] | None = None, holidays: list[str] | None = None,
              holiday_band: str = "weekend", default_band: str = "offpeak") -> BandCalendar:
        """From config values: ``{"peak": ["mon-fri 08:00-19:00"], "weekend": ["sat-sun 00:00-24:00"]}``."""
        ZoneInfo(timezone)  # raises for an unknown zone
        parsed = tuple(parse_rule(b, r) for b, rs in (rules or {}).items() for r in rs)
        days = frozenset(dt.date.fromisoformat(h) for h in (holidays or []))
        return BandCalendar(timezone, parsed, days, holiday_band.lower(), default_band.lower())

    def band_at(self, at: float) -> str:
        """The band in force at epoch second *at*."""
        local = dt.datetime.fromtimestamp(at, ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return self.holiday_band
        wd = local.weekday()
        minute = local.hour * 60 + local.minute
        for r in self.rules:
            if wd in r.days and r.start_minute <= minute < r.end_minute:
                return r.band
        return self.default_band

    def next_change(self, at: float, limit_s: int = 8 * 86400) -> float | None:
        """The first instant after *at* (within *limit_s*) when the band differs; minute
        resolution (rules are minute-aligned in local time). Used to split a call."""
        band = self.band_at(at)
        t = (int(at) // 60 + 1) * 60
        end = at + limit_s
        while t <= end:
            if self.band_at(t) != band:
                return float(t)
            t += 60
        return None
