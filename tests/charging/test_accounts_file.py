"""Accounts files: exact money only (decimal strings or integers), errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from charging.accounts_file import AccountsFileError, load_accounts


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "accounts.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_decimal_strings_and_integers_are_exact_micro_units(tmp_path: Path) -> None:
    p = write(tmp_path, '[[account]]\nid = "a1"\namount = "0.1"\ncredit_limit = 3\n')
    (spec,) = load_accounts(p)
    (bal,) = spec.balances
    assert (bal.amount, bal.credit_limit) == (100_000, 3_000_000)


@pytest.mark.parametrize("key", ["amount", "credit_limit"])
def test_a_toml_float_is_refused_naming_the_key(tmp_path: Path, key: str) -> None:
    p = write(tmp_path, f'[[account]]\nid = "a1"\n{key} = 0.1\n')
    with pytest.raises(AccountsFileError, match=rf"accounts\.toml:account\[0\]\.{key}: .*decimal string"):
        load_accounts(p)


def test_a_bad_credit_limit_names_credit_limit(tmp_path: Path) -> None:
    p = write(tmp_path, '[[range]]\nfirst = "1"\nlast = "2"\ncredit_limit = "1.0000001"\n')
    with pytest.raises(AccountsFileError, match=r"range\[0\]\.credit_limit: more than 6 decimals"):
        load_accounts(p)


def test_a_currency_iso_4217_does_not_know_is_refused_naming_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, '[[account]]\nid = "a1"\namount = "1"\ncurrency = "EUX"\n')
    with pytest.raises(AccountsFileError, match=r"account\[0\]\.currency: 'EUX' is not an ISO 4217"):
        load_accounts(p)
    p = write(tmp_path, '[[account]]\nid = "a1"\namount = "1"\ncurrency = "AUD"\n')
    assert load_accounts(p)[0].balances[0].currency == "AUD"
