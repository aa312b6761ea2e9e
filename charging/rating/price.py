"""Exact price arithmetic: the executable spec the compiled twin must match bit for bit.

protocol-facts G2: with increments A/B (initial/subsequent) and usage u > 0,
``billed = A if u <= A else A + ceil((u - A) / B) * B``. The amount is

    exact = (min(billed, A) * rate_first + max(billed - A, 0) * rate) / (rate_unit * 1000)

in micro-units (rates are nano-units per ``rate_unit``), rounded **once** HALF_UP to an
integer micro-unit; then ``price = max(connection_fee + amount, minimum_charge)``.
Zero usage (an unanswered call, an empty data report) costs 0: no fee, no minimum.
"""

from __future__ import annotations

from decimal import Decimal

from charging.rating.model import RATE_PER_MICRO, UNLIMITED_UNITS, Row, Tier


def billed_units(usage: int, inc_first: int, inc_next: int) -> int:
    """Usage rounded up to the increments (G2). ``usage <= 0`` bills 0."""
    if usage <= 0:
        return 0
    if usage <= inc_first:
        return inc_first
    rest = usage - inc_first
    return inc_first + -(-rest // inc_next) * inc_next


def amount_numerator(billed: int, row: Row) -> int:
    """The exact amount times ``rate_unit * 1000`` (an integer): nano-units * units."""
    if billed <= 0:
        return 0
    first = billed if billed < row.inc_first else row.inc_first
    return first * row.rate_first + (billed - first) * row.rate


def round_half_up(num: int, den: int) -> int:
    """num/den rounded half away from zero (den > 0)."""
    if num >= 0:
        return (2 * num + den) // (2 * den)
    return -((-2 * num + den) // (2 * den))


def price_micros(usage: int, row: Row) -> tuple[int, int]:
    """(price in micro-units, billed units) for *usage* under *row*."""
    billed = billed_units(usage, row.inc_first, row.inc_next)
    if billed == 0:
        return 0, 0
    den = row.rate_unit * RATE_PER_MICRO
    total = row.connection_fee + round_half_up(amount_numerator(billed, row), den)
    if total < row.minimum_charge:
        total = row.minimum_charge
    return total, billed


def exact_price(usage: int, row: Row) -> Decimal:
    """The price before rounding, in major units (for explanations only)."""
    billed = billed_units(usage, row.inc_first, row.inc_next)
    if billed == 0:
        return Decimal(0)
    den = row.rate_unit * RATE_PER_MICRO
    exact = Decimal(row.connection_fee) + Decimal(amount_numerator(billed, row)) / Decimal(den)
    exact = max(exact, Decimal(row.minimum_charge))
    return exact.scaleb(-6)


def max_units(budget: int, row: Row) -> int:
    """The most usage units, on an increment boundary, whose price fits in *budget* micros.

    0 when not even the initial increment fits; :data:`UNLIMITED_UNITS` when every further
    increment is free. Monotone: ``price_micros(max_units(b), row)[0] <= b``.
    """
    a, b = row.inc_first, row.inc_next
    if row.minimum_charge > budget:
        return 0
    m = budget - row.connection_fee  # the rounded amount may be at most m
    if m < 0:
        return 0
    den = row.rate_unit * RATE_PER_MICRO
    # round_half_up(x/den) <= m  <=>  2x + den < (2m + 2) den  <=>  2x <= (2m + 1) den - 1
    limit = (2 * m + 1) * den - 1
    base = 2 * a * row.rate_first
    if base > limit:
        return 0
    step = 2 * b * row.rate
    if step <= 0:
        return UNLIMITED_UNITS
    k = (limit - base) // step
    units = a + k * b
    return units if units < UNLIMITED_UNITS else UNLIMITED_UNITS


def tiered_amount(total_units: int, row: Row, tiers: tuple[Tier, ...] | None = None) -> int:
    """Settlement helper: micro-units for *total_units* billed units used in one period,
    where the rate changes to ``tier.rate`` for the units beyond ``tier.after_units``.

    Rounded once HALF_UP. Without tiers it is ``total_units * row.rate`` (no increments, no
    fees: settlement sums per-record billed units and applies the volume price on top).
    """
    use = sorted(tiers if tiers is not None else row.tiers, key=lambda t: t.after_units)
    num = 0
    prev_at, prev_rate = 0, row.rate
    for tier in use:
        if total_units <= tier.after_units:
            break
        num += (tier.after_units - prev_at) * prev_rate
        prev_at, prev_rate = tier.after_units, tier.rate
    num += max(total_units - prev_at, 0) * prev_rate
    return round_half_up(num, row.rate_unit * RATE_PER_MICRO)
