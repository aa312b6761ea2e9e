"""The dictionary as data: lookups, grammars, enums, Result-Codes, and a cross-check of our
AVP codes against python-diameter 0.9.0's constants (read as text from its own venv; never
imported in-process because it clashes with our package name)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from diameter import dictionary
from diameter.dictionary.model import MRule
from diameter.result_codes import ResultCode, e_bit, result_class
from diameter.types import AvpType

ROOT = Path(__file__).resolve().parents[2]
# Any python3.x of the venv: a hard-coded minor version would turn a rebuilt venv into a skip.
PD_CONSTANTS = next(
    ROOT.glob(".venv-pydiameter/lib/python3*/site-packages/diameter/message/constants.py"),
    ROOT / ".venv-pydiameter/lib/python3/site-packages/diameter/message/constants.py",
)


def test_lookups() -> None:
    d = dictionary.avp(456)
    assert d is not None and d.name == "Multiple-Services-Credit-Control" and d.type == AvpType.GROUPED
    assert dictionary.avp_by_name("Reporting-Reason").key == (872, 10415)
    assert dictionary.avp_type(416) == AvpType.ENUMERATED
    assert dictionary.avp_type(9999) is None
    assert dictionary.enum_name(416, 0, 2) == "UPDATE_REQUEST"
    assert dictionary.enum_value("Subscription-Id-Type", "END_USER_E164") == 0
    with pytest.raises(KeyError):
        dictionary.enum_value("CC-Request-Type", "NOPE")


def test_flag_rules() -> None:
    assert dictionary.avp_by_name("Product-Name").m_rule == MRule.MUST_NOT
    assert dictionary.avp_by_name("Product-Name").default_flags == 0x00
    assert dictionary.avp_by_name("3GPP-Charging-Id").m_rule == MRule.MAY
    assert dictionary.avp_by_name("3GPP-Charging-Id").default_flags == 0xC0
    assert dictionary.avp_by_name("PS-Information").default_flags == 0xC0


def test_commands_and_grammars() -> None:
    ccr = dictionary.command(272, 4)
    assert ccr is not None and ccr.request_abbrev == "CCR" and ccr.proxiable
    first = ccr.request.rules[0]
    assert first.name == "Session-Id" and first.fixed
    mscc = ccr.request.by_key[(456, 0)]
    assert (mscc.min, mscc.max) == (0, -1)
    assert dictionary.command(258, 4) is not None  # RAR: any application
    assert dictionary.command(272, 16777238) is not None  # Gx CCR decodes
    assert dictionary.command(316, 16777251) is not None  # S6a ULR
    assert dictionary.command(272, 99) is None and dictionary.command_known(272)
    cer = dictionary.command(257, 0)
    assert cer is not None and cer.request.by_key[(283, 0)].max == 0  # no Destination-Realm
    for abbrev in ("CER", "CEA", "DWR", "DWA", "DPR", "DPA", "CCR", "CCA", "ACR", "ACA", "RAR", "RAA", "ASR", "ASA", "STR", "STA"):
        assert any(abbrev in (c.request_abbrev, c.answer_abbrev) for c in dictionary.COMMANDS.values())


def test_grouped_grammars_from_protocol_facts() -> None:
    g = dictionary.avp_by_name("Subscription-Id").grammar
    assert g is not None and [(r.name, r.min, r.max) for r in g.rules] == [
        ("Subscription-Id-Type", 1, 1), ("Subscription-Id-Data", 1, 1)
    ]
    tqm = dictionary.avp_by_name("Time-Quota-Mechanism").grammar
    assert tqm is not None and not tqm.any_avp


def test_result_codes_as_data() -> None:
    assert ResultCode.DIAMETER_SUCCESS == 2001 and ResultCode(5031).name == "DIAMETER_RATING_FAILED"
    assert e_bit(3008) and not e_bit(4010) and not e_bit(5001)
    assert result_class(9001) == 5 and result_class(2002) == 2


def test_codes_agree_with_python_diameter() -> None:
    if not PD_CONSTANTS.is_file():
        msg = f"python-diameter constants not found at {PD_CONSTANTS}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)  # a CI run must not hide the cross-check behind a skip
        pytest.skip(msg)
    src = PD_CONSTANTS.read_text()
    consts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(AVP_[A-Z0-9_]+)\s*=\s*(\d+)", src, re.M)}
    checked = 0
    for d in dictionary.AVPS.values():
        base = d.name.upper().replace("-", "_")
        names = (["AVP_TGPP_" + base, "AVP_TGPP_" + base.replace("3GPP_", "TGPP_")] if d.vendor else ["AVP_" + base])
        found = [consts[n] for n in names if n in consts]
        if found:
            checked += 1
            assert found[0] == d.code, (d.name, d.code, found[0])
    assert checked > 250
