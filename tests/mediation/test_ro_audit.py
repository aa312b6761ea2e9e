"""Currency-Code in Cost-Information / CC-Money: the amount's own ISO 4217 numeric code
(RFC 4006 §8.7, §8.11; facts B4). Found by the round-13 audit: a 10-entry table sent every
other currency as 978 (EUR)."""

from __future__ import annotations

import pytest

from charging.currency import NO_CURRENCY, currency_numeric, is_iso4217
from mediation import avp_codes as C
from mediation.ro import money_avps


@pytest.mark.parametrize(("currency", "numeric"), [
    ("EUR", 978), ("AUD", 36), ("INR", 356), ("ZAR", 710), ("JPY", 392), ("KWD", 414),
    ("CHF", 756), ("XOF", 952), (None, 978),  # no currency given: the demo's EUR
])
def test_cost_information_currency_code_is_the_amounts_own(currency: str | None,
                                                           numeric: int) -> None:
    avps = money_avps(1_230_000, currency)
    code = next(a for a in avps if a.code == C.CURRENCY_CODE)
    assert code.value == numeric


def test_a_code_iso_4217_does_not_know_is_never_sent_as_another_currency() -> None:
    assert currency_numeric("EUX") == NO_CURRENCY == 999  # ISO 4217 XXX: no currency
    code = next(a for a in money_avps(1, "EUX") if a.code == C.CURRENCY_CODE)
    assert code.value == 999


@pytest.mark.parametrize(("code", "ok"), [("EUR", True), ("AUD", True), ("eur", False),
                                          ("EUX", False), ("EURO", False), ("", False)])
def test_is_iso4217(code: str, ok: bool) -> None:
    assert is_iso4217(code) is ok
