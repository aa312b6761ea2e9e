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

# ISO 4217 (table A.1) minor units where they differ from 2 (the default), every such code:
# the list had missed BIF, DJF, GNF, KMF, PYG, RWF, UYI, VUV, XPF (0) and CLF, UYW (4),
# whose invoices were rounded to cents. pycountry has no minor units.
_EXPONENTS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}


@lru_cache(maxsize=256)
def currency_numeric(code: str) -> int:
    """The ISO 4217 numeric code of the alphabetic *code* (``"AUD"`` -> 36), or
    :data:`NO_CURRENCY` when ISO 4217 has no such currency."""
    entry = pycountry.currencies.get(alpha_3=code.upper())
    return int(entry.numeric) if entry is not None else NO_CURRENCY


@lru_cache(maxsize=256)
def currency_alpha(numeric: int) -> str | None:
    """The alphabetic ISO 4217 code of a numeric one (a Diameter Currency-Code: 392 -> "JPY"),
    or None when ISO 4217 has none (999 "XXX" included: no currency involved)."""
    if numeric == NO_CURRENCY:
        return None
    entry = pycountry.currencies.get(numeric=f"{numeric:03d}")
    return str(entry.alpha_3) if entry is not None else None


def is_iso4217(code: str) -> bool:
    """Whether *code* is an alphabetic ISO 4217 currency code (exactly three letters)."""
    return len(code) == 3 and code.isalpha() and code.isupper() and (
        pycountry.currencies.get(alpha_3=code) is not None)


def minor_places(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 for EUR, 0 for JPY, 3 for KWD)."""
    return _EXPONENTS.get(currency, 2)
