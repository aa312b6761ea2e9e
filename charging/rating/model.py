"""The rating model: services, tariff rows, rated prices and the errors a caller handles.

Units and scales (all integers, never float):

* usage is counted per service: VOICE and DATA_TIME in **seconds**, SMS/MMS in **events**
  (one per segment), CONTENT in **items**, DATA in **octets**;
* a row's rate is quoted per ``rate_unit`` usage units: 60 s for VOICE/DATA_TIME,
  1 event/item for SMS/MMS/CONTENT, and **1 MB = 1,000,000 octets** (SI, not 2**20) for DATA;
* rates are integers of **nano-units** (1e-9 of the currency's major unit, :data:`RATE_SCALE`)
  so decks quoting up to 9 decimals are exact; fees and prices are **micro-units**
  (charging/money.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

RATE_SCALE = 1_000_000_000
"""Nano-units per major unit: the fixed-point scale of every rate."""

RATE_PER_MICRO = RATE_SCALE // 1_000_000
"""Nano-units per micro-unit (1000)."""

MB_OCTETS = 1_000_000
"""One MB for DATA pricing: 10**6 octets (SI megabyte)."""

NEVER = 2**62
"""Sentinel epoch second meaning 'no end' (effective_to) / 'always' (-NEVER for effective_from)."""

UNLIMITED_UNITS = 2**53
"""What :meth:`RatingEngine.max_units` returns when the tariff is free: the caller clamps it."""


class Service(str, Enum):
    """What is being rated; the value is the journal's ``service`` string."""

    VOICE = "voice"  # seconds
    SMS = "sms"  # events (segments)
    MMS = "mms"  # events
    DATA = "data"  # octets, priced per MB
    DATA_TIME = "data_time"  # seconds of a time-metered data session
    CONTENT = "content"  # items / events

    @property
    def unit(self) -> str:
        """The journal ``unit`` string of this service's usage."""
        return _UNIT[self]

    @property
    def code(self) -> int:
        """A small stable integer (used by the compiled twin and the on-disk form)."""
        return _CODE[self]

    @staticmethod
    def from_code(code: int) -> Service:
        return _BY_CODE[code]

    @staticmethod
    def parse(text: str) -> Service:
        """Accept a value (``"voice"``) or a synonym (``"call"``, ``"gprs"``); raise ValueError."""
        key = text.strip().lower().replace("-", "_").replace(" ", "_")
        if key in _SYNONYMS:
            return _SYNONYMS[key]
        raise ValueError(f"unknown service {text!r} (one of {', '.join(s.value for s in Service)})")


_UNIT = {
    Service.VOICE: "s",
    Service.SMS: "event",
    Service.MMS: "event",
    Service.DATA: "octet",
    Service.DATA_TIME: "s",
    Service.CONTENT: "event",
}
_CODE = {s: i for i, s in enumerate(Service)}
_BY_CODE = {i: s for s, i in _CODE.items()}
_SYNONYMS: dict[str, Service] = {s.value: s for s in Service}
_SYNONYMS.update(
    {
        "call": Service.VOICE,
        "calls": Service.VOICE,
        "minutes": Service.VOICE,
        "data_volume": Service.DATA,
        "gprs": Service.DATA,
        "octets": Service.DATA,
        "datatime": Service.DATA_TIME,
        "data_seconds": Service.DATA_TIME,
        "vas": Service.CONTENT,
        "item": Service.CONTENT,
        "event": Service.CONTENT,
    }
)

DEFAULT_RATE_UNIT: dict[Service, int] = {
    Service.VOICE: 60,
    Service.DATA_TIME: 60,
    Service.SMS: 1,
    Service.MMS: 1,
    Service.CONTENT: 1,
    Service.DATA: MB_OCTETS,
}
"""Usage units one quoted rate pays for (per minute, per event, per MB)."""

DEFAULT_INCREMENTS: dict[Service, tuple[int, int]] = {
    Service.VOICE: (1, 1),
    Service.DATA_TIME: (1, 1),
    Service.SMS: (1, 1),
    Service.MMS: (1, 1),
    Service.CONTENT: (1, 1),
    Service.DATA: (1000, 1000),  # per-KB granularity unless the deck says otherwise
}


@dataclass(frozen=True, slots=True)
class Tier:
    """A volume tier: once ``after_units`` usage units were used in the settlement period,
    the rate becomes ``rate`` (nano-units per rate unit). Applied by settlement, see
    :func:`charging.rating.price.tiered_amount`."""

    after_units: int
    rate: int


@dataclass(frozen=True, slots=True)
class Row:
    """One tariff row of a deck version (already normalised and validated).

    ``prefix`` "" is the catch-all; ``origin`` "" matches any A-number; ``band`` "" any time.
    ``rate_first`` applies to the first ``inc_first`` billed units, ``rate`` to the rest
    (both nano-units per ``rate_unit``). ``blocked`` rows (closed codes) raise NoTariff.
    Effective window: ``eff_from <= at < eff_to`` (epoch seconds, UTC).
    """

    service: Service
    prefix: str
    destination: str
    rate: int
    rate_first: int
    inc_first: int
    inc_next: int
    rate_unit: int
    connection_fee: int = 0
    minimum_charge: int = 0
    eff_from: int = -NEVER
    eff_to: int = NEVER
    origin: str = ""
    band: str = ""
    blocked: bool = False
    tiers: tuple[Tier, ...] = ()


@dataclass(frozen=True, slots=True)
class FxApplied:
    """The conversion a price went through (kept with the price, journal ``fx``)."""

    from_currency: str
    to_currency: str
    rate: str  # Decimal string: 1 from_currency = rate to_currency; "1/R": divided by R exactly
    date: str  # ISO date the rate is effective from
    original_price: int  # micro-units in from_currency


@dataclass(frozen=True, slots=True)
class RatedPrice:
    """The price of one usage record and everything that explains it.

    ``price`` is integer micro-units, rounded once per record (HALF_UP); ``rate`` the Decimal
    string per ``rate_unit`` usage units (the subsequent-increment rate; ``rate_first`` for the
    first increment). ``increments`` is (initial, subsequent) in usage units.
    """

    price: int
    currency: str
    deck: str
    deck_version: int
    service: Service
    prefix: str
    destination: str
    origin: str
    band: str
    usage: int
    billed_units: int
    increments: tuple[int, int]
    rate: str
    rate_first: str
    rate_unit: int
    connection_fee: int
    minimum_charge: int
    exact_num: int  # the exact price before the one rounding is exact_num / exact_den
    exact_den: int  # micro-units (see ``unrounded``)
    fx: FxApplied | None = None
    tiers: tuple[Tier, ...] = field(default=())

    @property
    def unrounded(self) -> str:
        """The exact price before the one rounding, as a Decimal string in major units
        (computed on demand: the hot path never builds it)."""
        from decimal import Decimal, localcontext

        with localcontext() as ctx:
            ctx.prec = 40
            return str((Decimal(self.exact_num) / Decimal(self.exact_den)).scaleb(-6))

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (amounts as decimal strings)."""
        from charging.money import format_amount

        out: dict[str, object] = {
            "price": format_amount(self.price),
            "price_micros": self.price,
            "currency": self.currency,
            "deck": self.deck,
            "deck_version": self.deck_version,
            "service": self.service.value,
            "prefix": self.prefix,
            "destination": self.destination,
            "origin": self.origin,
            "band": self.band,
            "usage": self.usage,
            "unit": self.service.unit,
            "billed_units": self.billed_units,
            "increments": list(self.increments),
            "rate": self.rate,
            "rate_first": self.rate_first,
            "rate_unit": self.rate_unit,
            "connection_fee": format_amount(self.connection_fee),
            "minimum_charge": format_amount(self.minimum_charge),
            "unrounded": self.unrounded,
            "rounding": "once per record to micro-units, half away from zero",
        }
        if self.fx is not None:
            out["fx"] = {
                "from": self.fx.from_currency,
                "to": self.fx.to_currency,
                "rate": self.fx.rate,
                "date": self.fx.date,
                "original_price": format_amount(self.fx.original_price),
            }
        if self.tiers:
            out["tiers"] = [
                {"after_units": t.after_units, "rate": rate_to_str(t.rate)} for t in self.tiers
            ]
        return out


class RatingError(Exception):
    """Base of the rating errors."""


class NoTariff(RatingError):
    """No row of the deck prices this usage (unknown deck, no prefix, closed code, not
    effective yet). The Ro agent answers it as DIAMETER_RATING_FAILED (5031)."""


class DeckError(RatingError):
    """A deck file is bad. ``problems`` holds ``file:line: what is wrong`` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems[:20]) + (f"\n... {len(problems) - 20} more" if len(problems) > 20 else ""))


def rate_to_str(rate_nanos: int) -> str:
    """Decimal string of a nano-unit rate, trailing zeros trimmed (``49500000`` -> ``"0.0495"``)."""
    sign = "-" if rate_nanos < 0 else ""
    whole, frac = divmod(abs(rate_nanos), RATE_SCALE)
    digits = f"{frac:09d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"
