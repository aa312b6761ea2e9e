"""ISO 4217 currency codes: alphabetic (our decks, balances and settings) to numeric
(Diameter Currency-Code, RFC 4006 §8.11, facts B4).

The table is pycountry's (the ISO 4217 list, kept up to date upstream), not a hand-written
excerpt: a code missing from an excerpt was sent as EUR, misstating the money.
"""

from __future__ import annotations

from functools import lru_cache

import pycountry

# ISO 4217 "XXX": no currency involved. Sent for a code ISO 4217 does not know (settings
# and decks are checked with is_iso4217 first, so only a hand-built request gets here):
# never another currency's code.
NO_CURRENCY = 999


@lru_cache(maxsize=256)
def currency_numeric(code: str) -> int:
    """The ISO 4217 numeric code of the alphabetic *code* (``"AUD"`` -> 36), or
    :data:`NO_CURRENCY` when ISO 4217 has no such currency."""
    entry = pycountry.currencies.get(alpha_3=code.upper())
    return int(entry.numeric) if entry is not None else NO_CURRENCY


def is_iso4217(code: str) -> bool:
    """Whether *code* is an alphabetic ISO 4217 currency code (exactly three letters)."""
    return len(code) == 3 and code.isalpha() and code.isupper() and (
        pycountry.currencies.get(alpha_3=code) is not None)
