from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from icx.cli import main
from settlement.config import SettlementConfigError, load_config, parse_config

from .conftest import DEMO


def test_demo_file_loads(cfg) -> None:
    assert set(cfg.partners) == {"orange-fr", "att-us", "globalhub", "gamesco", "mvno-uk",
                                "carrier_a"}
    types = {a.type for a in cfg.agreements}
    assert types == {"bilateral", "transit", "revenue_share", "commitment"}
    rs = next(a for a in cfg.agreements if a.type == "revenue_share")
    assert [str(t.share_pct) for t in rs.shares["content"]] == ["50", "60"]
    assert cfg.partners["mvno-uk"].prepaid_account == "partner:mvno-uk"
    assert cfg.fx_rate("2026-11", "USD", "EUR") is not None  # inverted lookup


def _problems(doc: dict) -> list[str]:
    with pytest.raises(SettlementConfigError) as ei:
        parse_config(doc, file="p.toml")
    return ei.value.problems


BASE = {"partners": {"x": {"currency": "EUR"}}}


@pytest.mark.parametrize(
    "agreement, expected",
    [
        ({"id": "a", "partner": "nobody", "type": "bilateral"},
         "p.toml:agreements[0].partner: unknown partner 'nobody'"),
        ({"id": "a", "partner": "x", "type": "barter"}, "p.toml:agreements[0].type: must be one of"),
        ({"id": "a", "partner": "x", "type": "revenue_share",
          "shares": {"content": [{"from": "100", "share": "50"}]}},
         "p.toml:agreements[0].shares.content[0].from: the first tier must start"),
        ({"id": "a", "partner": "x", "type": "revenue_share",
          "shares": {"content": [{"from": "0", "share": "150"}]}},
         "p.toml:agreements[0].shares.content[0].share: a percentage must be <= 100"),
        ({"id": "a", "partner": "x", "type": "revenue_share", "minimum_guarantee": "10",
          "cap": "5", "shares": {"content": [{"from": "0", "share": "50"}]}},
         "p.toml:agreements[0].minimum_guarantee: greater than cap"),
        ({"id": "a", "partner": "x", "type": "commitment", "committed_minutes": 10},
         "p.toml:agreements[0].shortfall_rate: required with committed_minutes"),
        ({"id": "a", "partner": "x", "type": "commitment", "committed_minutes": 10,
          "committed_amount": "5", "shortfall_rate": "0.1", "shortfall_pct": "5"},
         "p.toml:agreements[0].committed_minutes: give exactly one"),
        ({"id": "a", "partner": "x", "type": "commitment", "committed_amount": 5.5,
          "shortfall_pct": "5"},
         "p.toml:agreements[0].committed_amount: expected a decimal string"),
        ({"id": "a", "partner": "x", "type": "transit", "kind": "teleport"},
         "p.toml:agreements[0].kind: must be one of"),
        ({"id": "a", "partner": "x", "type": "bilateral", "colour": "red"},
         "p.toml:agreements[0].colour: unknown key"),
    ],
)
def test_invalid_agreement_is_reported_with_file_and_key(agreement: dict, expected: str) -> None:
    problems = _problems({**BASE, "agreements": [agreement]})
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_listed_at_once() -> None:
    problems = _problems({"partners": {"x": {"currency": "euro", "timezone": "Mars/Base"}},
                          "agreements": [{"id": "a", "partner": "x"}]})
    assert "p.toml:partners.x.currency: not an ISO 4217 code: 'euro'" in problems
    assert "p.toml:partners.x.timezone: unknown timezone 'Mars/Base'" in problems
    assert "p.toml:agreements[0].type: required key is missing" in problems


def test_duplicate_agreement_ids_and_bad_fx() -> None:
    problems = _problems({**BASE, "agreements": [
        {"id": "a", "partner": "x", "type": "bilateral"},
        {"id": "a", "partner": "x", "type": "bilateral"}],
        "fx": [{"period": "2026-11", "from": "EUR", "to": "usd", "rate": "0", "date": "d"}]})
    assert "p.toml:agreements[1].id: duplicate agreement id 'a'" in problems
    assert any(p.startswith("p.toml:fx[0].rate: must be positive") for p in problems)
    assert any(p.startswith("p.toml:fx[0].to: not an ISO 4217") for p in problems)


def test_cli_refuses_to_run_on_invalid_agreements(tmp_path: Path) -> None:
    bad = tmp_path / "partners.toml"
    bad.write_text(DEMO.read_text().replace('shortfall_rate = "0.0020"', ""))
    res = CliRunner().invoke(main, ["settle", "--period", "2026-11", "--partners", str(bad),
                                    "--data-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert f"{bad}:agreements[1].shortfall_rate: required with committed_minutes" in res.output
    assert not (tmp_path / "settlement").exists()


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[partners\n")
    with pytest.raises(SettlementConfigError) as ei:
        load_config(bad)
    assert ei.value.problems[0].startswith(f"{bad}:-: invalid TOML")
