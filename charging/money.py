"""Exact money: integer micro-units (1e-6 of the currency's major unit), never float.

Every amount inside icx is an ``int`` of micro-units plus an ISO 4217 currency code carried
beside it. Decimal strings are the only external form (CLI, JSON, journal ``balance_effects``).

Rounding policy (documented in the README, tested in tests/charging/test_money.py):

* rating computes exact rationals and rounds **once per record** to micro-units with
  ``HALF_UP`` (half away from zero), see :func:`div_round`;
* invoice lines and totals round micro-unit sums to the currency's minor unit (2 places for
  EUR) with ``HALF_UP`` via :func:`round_to_places`, and the difference is shown explicitly.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import Enum
from fractions import Fraction

from charging.currency import minor_places

MICROS = 1_000_000
"""Micro-units per major unit."""

_SCALE = 6


class Rounding(Enum):
    """How to turn an exact rational into an integer."""

    HALF_UP = "half_up"  # half away from zero: 0.5 -> 1, -0.5 -> -1
    HALF_EVEN = "half_even"  # banker's rounding
    UP = "up"  # away from zero (ceiling for positives)
    DOWN = "down"  # toward zero (truncate)


class MoneyError(ValueError):
    """An amount could not be parsed or represented exactly."""


def div_round(numerator: int, denominator: int, mode: Rounding = Rounding.HALF_UP) -> int:
    """Return numerator/denominator rounded to an integer by *mode*, exactly (no float)."""
    if denominator == 0:
        raise ZeroDivisionError("div_round by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    negative = numerator < 0
    q, r = divmod(abs(numerator), denominator)
    if r:
        if mode is Rounding.UP:
            q += 1
        elif mode is Rounding.HALF_UP:
            if 2 * r >= denominator:
                q += 1
        elif mode is Rounding.HALF_EVEN:
            if 2 * r > denominator or (2 * r == denominator and q % 2 == 1):
                q += 1
        # DOWN: keep q
    return -q if negative else q


# "-12.345" and the like: ASCII digits only, at most 6 decimals (anything else takes the
# Decimal path, which also strips blanks and reads exponents)
_PLAIN = re.compile(r"(-?)([0-9]{1,18})(?:\.([0-9]{1,6}))?")
_PAD = (0, 100_000, 10_000, 1_000, 100, 10, 1)
# what parse_plain_amount accepts (any number of digits: it names the problem itself)
_OPERATOR = re.compile(r"-?[0-9]+(?:\.([0-9]+))?")


def parse_amount(text: str | int | Decimal, *, rounding: Rounding | None = None) -> int:
    """Parse a decimal amount (``"0.12"``, ``"-3"``, ``Decimal``) into micro-units.

    Raises :class:`MoneyError` when the text is not a number, or has more than 6 decimals and
    no *rounding* was given (precision is never lost silently). A ``float`` or ``bool`` is
    refused with :class:`MoneyError` (a ValueError): a binary float is not an exact decimal
    (``0.1`` is 0.1000000000000000055...), and ``True`` is no amount; callers pass the decimal
    text they received (JSON/TOML/CSV string) or a Decimal/int.
    """
    if isinstance(text, str):
        # fast path for the plain decimal text the journal and the APIs carry ("-0.12", "50"):
        # integer arithmetic, exact (hypothesis-tested against the general path below)
        m = _PLAIN.fullmatch(text)
        if m is not None:
            sign, whole, frac = m.groups()
            micros = int(whole) * MICROS + (int(frac) * _PAD[len(frac)] if frac else 0)
            return -micros if sign else micros
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError(f"amount must be a decimal string, Decimal or int, "
                         f"not {type(text).__name__}: {text!r}")
    if isinstance(text, int):
        return text * MICROS
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"not a decimal amount: {text!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not a finite amount: {text!r}")
    frac = Fraction(value) * MICROS
    if frac.denominator != 1:
        if rounding is None:
            raise MoneyError(f"more than {_SCALE} decimals: {text!r}")
        return div_round(frac.numerator, frac.denominator, rounding)
    return int(frac)


def parse_plain_amount(text: str, currency: str | None = None) -> int:
    """Parse an amount an operator typed (a config file, the admin API) into micro-units.

    Stricter than :func:`parse_amount`: only plain decimal text (``"10.50"``, ``"-3"``:
    ASCII digits, one optional ``.``, an optional leading ``-``) and, given a *currency*, no
    more decimals than its minor unit (:func:`charging.currency.minor_places`). ``"1e3"`` (a
    typo that would credit 1000), ``" 5 "`` or ``"10.001"`` EUR raise :class:`MoneyError`
    saying what is wrong; the caller reports it against its file and key, or its request.
    """
    m = _OPERATOR.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise MoneyError(f"not a plain decimal amount such as \"10.50\": {text!r}")
    decimals = len((m.group(1) or "").rstrip("0"))
    if decimals > _SCALE:
        raise MoneyError(f"more than {_SCALE} decimals: {text!r}")
    if currency is not None and decimals > minor_places(currency):
        raise MoneyError(f"more decimals than {currency} has ({minor_places(currency)}): "
                         f"{text!r}")
    return parse_amount(text)


def to_decimal(micros: int) -> Decimal:
    """Exact Decimal value of *micros*."""
    return Decimal(micros).scaleb(-_SCALE)


def format_amount(micros: int, *, min_places: int = 2) -> str:
    """Decimal string of *micros* with trailing zeros trimmed to *min_places* (``"49.85"``)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    digits = f"{frac:06d}".rstrip("0")
    if len(digits) < min_places:
        digits = digits.ljust(min_places, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def format_money(micros: int, currency: str | None) -> str:
    """*micros* of *currency* as an operator reads it: the currency's own minor places
    (``"1000"`` JPY, ``"50.00"`` EUR, ``"12.345"`` KWD; 2 for a currency ISO 4217 does not
    give minor units for), and every further digit an amount really has -- a balance that
    holds sub-minor amounts (micro-unit rated charges) is shown exactly (``"999.5"`` JPY),
    never rounded to hide money. Use it wherever a balance is displayed, so every command
    shows one account's money alike."""
    return format_amount(micros, min_places=minor_places(currency) if currency else 2)


def round_to_places(micros: int, places: int, mode: Rounding = Rounding.HALF_UP) -> int:
    """Round *micros* to *places* decimals (e.g. 2 for cents); the result is still micro-units."""
    if not 0 <= places <= _SCALE:
        raise MoneyError(f"places must be 0..{_SCALE}, got {places}")
    step = 10 ** (_SCALE - places)
    return div_round(micros, step, mode) * step
