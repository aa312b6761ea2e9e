from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charging.money import (
    MICROS,
    MoneyError,
    Rounding,
    div_round,
    format_amount,
    parse_amount,
    round_to_places,
    to_decimal,
)


def test_parse_and_format_round_trip_examples() -> None:
    assert parse_amount("49.85") == 49_850_000
    assert parse_amount("-0.000001") == -1
    assert parse_amount("0.00137") == 1370
    assert format_amount(49_850_000) == "49.85"
    assert format_amount(1370) == "0.00137"
    assert format_amount(-5_000_000) == "-5.00"
    assert format_amount(0) == "0.00"


def test_parse_rejects_hidden_precision_loss() -> None:
    with pytest.raises(MoneyError):
        parse_amount("0.0000001")
    assert parse_amount("0.0000005", rounding=Rounding.HALF_UP) == 1
    with pytest.raises(MoneyError):
        parse_amount("abc")
    with pytest.raises(MoneyError):
        parse_amount("NaN")


@pytest.mark.parametrize(
    ("num", "den", "mode", "expected"),
    [
        (5, 2, Rounding.HALF_UP, 3),
        (-5, 2, Rounding.HALF_UP, -3),
        (5, 2, Rounding.HALF_EVEN, 2),
        (7, 2, Rounding.HALF_EVEN, 4),
        (1, 3, Rounding.UP, 1),
        (-1, 3, Rounding.UP, -1),
        (2, 3, Rounding.DOWN, 0),
        (4, 2, Rounding.UP, 2),
    ],
)
def test_div_round_modes(num: int, den: int, mode: Rounding, expected: int) -> None:
    assert div_round(num, den, mode) == expected


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_parse_inverse(micros: int) -> None:
    assert parse_amount(format_amount(micros)) == micros
    assert to_decimal(micros) == Decimal(micros) / MICROS


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6))
def test_div_round_matches_decimal_half_up(num: int, den: int) -> None:
    from decimal import ROUND_HALF_UP, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        expected = (Decimal(num) / Decimal(den)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert div_round(num, den, Rounding.HALF_UP) == int(expected)


def test_round_to_places_cents() -> None:
    assert round_to_places(47_650, 2) == 50_000  # 0.04765 -> 0.05
    assert round_to_places(47_650, 4) == 47_700  # 0.04765 -> 0.0477 (PeerEdge example)
    assert round_to_places(47_650, 3) == 48_000
    assert round_to_places(-47_650, 2) == -50_000


@pytest.mark.parametrize("bad", [10.5, 0.1, 1.0, float("nan"), True, False])
def test_parse_refuses_float_and_bool(bad: object) -> None:
    # a float is not an exact decimal and a bool is no amount: never turned into micro-units
    with pytest.raises(MoneyError, match="decimal string"):
        parse_amount(bad)  # type: ignore[arg-type]
    assert parse_amount("10.5") == 10_500_000  # the decimal text still parses
    assert parse_amount(Decimal("0.1")) == 100_000
    assert parse_amount(3) == 3 * MICROS


@given(st.from_regex(r"\A-?[0-9]{1,18}(\.[0-9]{1,6})?\Z"))
def test_plain_text_fast_path_matches_the_decimal_path(text: str) -> None:
    # parse_amount reads plain decimal text with integers; a Decimal takes the general path
    assert parse_amount(text) == parse_amount(Decimal(text))


@pytest.mark.parametrize("text", ["1.0000001", " 1.5", "1e3", "+2", "١٢", "1.", ".5", "--1",
                                  "1234567890123456789.5"])
def test_text_outside_the_fast_path_keeps_the_general_rules(text: str) -> None:
    try:
        expected: int | type[MoneyError] = parse_amount(Decimal(text.strip()))
    except Exception:  # noqa: BLE001 - whatever Decimal makes of it, parse_amount must agree
        expected = MoneyError
    if expected is MoneyError:
        with pytest.raises(MoneyError):
            parse_amount(text)
    else:
        assert parse_amount(text) == expected
