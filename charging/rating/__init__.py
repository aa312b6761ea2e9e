"""Rating: rate decks, tariffs, exact prices (issue 3).

Public API (stable; the Ro/Rf agent and settlement call it)::

    from charging.rating import RatingEngine, Service, RatedPrice, NoTariff

See charging/rating/engine.py for the calls, model.py for units and scales, price.py for
the arithmetic (the executable spec of the compiled twin cython_ext/rating.pyx).
"""

from charging.rating.bands import BandCalendar
from charging.rating.deckdata import DeckData, DeckMeta
from charging.rating.engine import LoadedDeck, RatingEngine, extension_active
from charging.rating.importer import ImportSummary
from charging.rating.model import (
    MB_OCTETS,
    RATE_SCALE,
    UNLIMITED_UNITS,
    DeckError,
    FxApplied,
    NoTariff,
    RatedPrice,
    RatingError,
    Row,
    Service,
    Tier,
)
from charging.rating.price import billed_units, max_units, price_micros, tiered_amount

__all__ = [
    "BandCalendar",
    "DeckData",
    "DeckError",
    "DeckMeta",
    "FxApplied",
    "ImportSummary",
    "LoadedDeck",
    "MB_OCTETS",
    "NoTariff",
    "RATE_SCALE",
    "RatedPrice",
    "RatingEngine",
    "RatingError",
    "Row",
    "Service",
    "Tier",
    "UNLIMITED_UNITS",
    "billed_units",
    "extension_active",
    "max_units",
    "price_micros",
    "tiered_amount",
]
