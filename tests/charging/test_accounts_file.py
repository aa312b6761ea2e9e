"""Accounts files: exact money only (decimal strings or integers), errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from charging.accounts_file import AccountsFileError, load_accounts, load_accounts_files


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


@pytest.mark.parametrize(("body", "message"), [
    # a typo must not provision 0.00 (or no account at all) in silence
    ('[[account]]\nid = "a1"\nammount = "5"\n', r"account\[0\]\.ammount: unknown key"),
    ('[[acount]]\nid = "a1"\n', r"accounts\.toml:acount: unknown key"),
    ('[[range]]\nfirst = "1"\nlast = "2"\ncurency = "USD"\n', r"range\[0\]\.curency: unknown key"),
    # wrong types: a string of identities is not three one-letter identities
    ('[[account]]\nid = "a1"\nidentities = "abc"\n', r"account\[0\]\.identities: expected an array"),
    ('[[account]]\nid = 5\n', r"account\[0\]\.id: expected a string"),
    ("range = 5\n", r"accounts\.toml:range: expected an array of tables"),
    # amounts an operator typed: plain decimals in the currency's minor unit
    ('[[account]]\nid = "a1"\namount = "12.3.4"\n', r"account\[0\]\.amount: not a plain decimal"),
    ('[[account]]\nid = "a1"\namount = "1e3"\n', r"account\[0\]\.amount: not a plain decimal"),
    ('[[account]]\nid = "a1"\namount = "0.001"\n', r"account\[0\]\.amount: more decimals than EUR"),
    ('[[account]]\nid = "a1"\ncurrency = "JPY"\namount = "5.5"\n', r"more decimals than JPY has \(0\)"),
    # invariant 4: no balance below its credit limit, not even the opening one
    ('[[account]]\nid = "a1"\namount = "-5"\n', r"account\[0\]\.amount: -5 is below -credit_limit"),
    ('[[account]]\nid = "a1"\ncredit_limit = "-5"\n', r"account\[0\]\.credit_limit: must not be neg"),
    ('[[range]]\nfirst = "0000000000"\nlast = "9999999999"\n', r"range\[0\]\.last: a range holds at most"),
    ("[[account]\n", r"accounts\.toml:1: invalid TOML"),
])
def test_bad_entries_are_refused_naming_file_and_key(tmp_path: Path, body: str,
                                                      message: str) -> None:
    p = write(tmp_path, body)
    with pytest.raises(AccountsFileError, match=message):
        load_accounts(p)


def test_negative_opening_balance_within_the_credit_limit_is_kept(tmp_path: Path) -> None:
    p = write(tmp_path, '[[account]]\nid = "a1"\namount = "-5"\ncredit_limit = "10"\n'
                        'currency = "KWD"\n')
    (bal,) = load_accounts(p)[0].balances
    assert (bal.amount, bal.credit_limit) == (-5_000_000, 10_000_000)


def test_an_account_or_identity_defined_twice_is_refused(tmp_path: Path) -> None:
    """Both would be created concurrently at start: one opening balance won at random and the
    start failed after journaling the others."""
    p = write(tmp_path, '[[range]]\nfirst = "1"\nlast = "5"\n[[account]]\nid = "3"\n')
    with pytest.raises(AccountsFileError, match=r"account\[0\]: account '3' is defined twice "
                                                r"\(first at .*range\[0\]\)"):
        load_accounts(p)
    p = write(tmp_path, '[[account]]\nid = "a"\n[[account]]\nid = "b"\nidentities = ["a"]\n')
    with pytest.raises(AccountsFileError, match=r"account\[1\]\.identities: identity 'a' already"):
        load_accounts(p)
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text('[[account]]\nid = "x"\n')
    two.write_text('[[account]]\nid = "x"\namount = "5"\n')
    with pytest.raises(AccountsFileError, match=r"two\.toml:account\[0\]: account 'x' is defined "
                                                r"twice \(first at .*one\.toml:account\[0\]\)"):
        load_accounts_files([one, two])
    assert [s.account for s in load_accounts_files([one])] == ["x"]
