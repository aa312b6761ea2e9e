"""CCR -> ChargingRequest and ChargingResult -> CCA (pure translation, real codec)."""

from __future__ import annotations

import pytest

from charging.requests import (
    ChargingResult,
    EventAction,
    Outcome,
    ServiceKind,
    UnitKind,
    UnitsResult,
    Verb,
)
from diameter.avp import Avp
from diameter.message import decode_message
from mediation.ro import (
    BadRequest,
    ccr_to_request,
    ccr_to_request_py,
    error_cca,
    normalise_address,
    result_to_cca,
)
from mediation.service_map import ServiceMap
from tests.mediation.conftest import A, ccr, ims, rsu, sms_info, usu, values

SMAP = ServiceMap.from_config({"32260@3gpp.org": "voice", "32251@3gpp.org": "data",
                               "32274@3gpp.org": "sms"}, {"200": "data_time"}, "")


def test_voice_initial_with_mscc() -> None:
    msg = ccr(msccs=[[rsu(CC_Time=120), A("Rating-Group", 10)]],
              extra=[ims("sip:+41791234567@ims.test;user=phone")])
    req = ccr_to_request(msg, SMAP)
    assert req.verb is Verb.INITIAL and req.request_number == 0
    assert req.service is ServiceKind.VOICE
    assert req.subscriber == "41790000001"
    assert req.destination == "41791234567" and req.origin == "41790000001"
    assert req.multiple_services and req.units[0].requested == 120
    assert req.units[0].rating_group == 10 and req.idem_key == "ro:pgw.test;1;1:0"


@pytest.mark.parametrize(("msccs", "extra", "verb", "per_mscc", "n_units"), [
    ([[rsu(CC_Time=60), A("Rating-Group", 10)]], [], 1, True, 1),  # MSCCs: per MSCC
    (None, [], 1, True, 0),                                        # MSI only: nothing asked
    (None, [rsu(CC_Time=60)], 1, False, 1),                        # command-level RSU
    (None, [A("Requested-Action", 0)], 4, False, 1),               # event: its default unit
])
def test_multiple_services_means_answer_per_mscc(msccs: list[list[Avp]] | None,
                                                 extra: list[Avp], verb: int,
                                                 per_mscc: bool, n_units: int) -> None:
    """``multiple_services``: the CCR has MSCCs, or MSI=1 and no units at all; units taken
    from the command level are answered there even with MSI=1 (both translators)."""
    msi = [] if msccs else [A("Multiple-Services-Indicator", 1)]  # (ccr() adds it with MSCCs)
    msg = ccr(rtype=verb, msccs=msccs, extra=[*msi, *extra])
    for translate in (ccr_to_request, ccr_to_request_py):
        req = translate(msg, SMAP)
        assert req.multiple_services is per_mscc and len(req.units) == n_units


def test_update_reports_usage_and_reason() -> None:
    msg = ccr(rtype=2, number=1, msccs=[[usu(CC_Time=60), A("Rating-Group", 10),
                                         A("Reporting-Reason", 3)]],
              extra=[ims("tel:0041791234567")])
    req = ccr_to_request(msg, SMAP)
    s = req.units[0]
    assert req.verb is Verb.UPDATE and s.used == 60 and s.used_present
    assert s.requested is None and int(s.reporting_reasons[0]) == 3
    assert req.destination == "41791234567"


def test_sms_recipient_and_data_rating_group_override() -> None:
    req = ccr_to_request(ccr(context="32274@3gpp.org", rtype=4,
                             extra=[sms_info("+44 7700 900123"),
                                    A("Requested-Action", 0), rsu(CC_Service_Specific_Units=1)]),
                         SMAP)
    assert req.service is ServiceKind.SMS and req.destination == "447700900123"
    assert req.action is EventAction.DIRECT_DEBITING and req.units[0].requested == 1
    data = ccr_to_request(ccr(context="8.32251@3gpp.org",
                              msccs=[[rsu(CC_Time=0), A("Rating-Group", 200)],
                                     [rsu(CC_Total_Octets=5), A("Rating-Group", 1)]]), SMAP)
    assert [u.service for u in data.units] == [ServiceKind.DATA_TIME, ServiceKind.DATA]
    assert [u.requested for u in data.units] == [0, 5]


@pytest.mark.parametrize("dropped,code", [("CC-Request-Number", 415), ("Session-Id", 263),
                                          ("Service-Context-Id", 461)])
def test_missing_mandatory_avp_is_5005_with_zero_filled_example(dropped: str, code: int) -> None:
    msg = ccr(drop=(dropped,))
    with pytest.raises(BadRequest) as exc:
        ccr_to_request(msg, SMAP)
    assert exc.value.result_code == 5005 and exc.value.failed.code == code
    cca = decode_message(error_cca(msg, exc.value, origin_host="ocs", origin_realm="r").encode())
    v = values(cca.avps)
    assert v["Result-Code"] == 5005 and not cca.is_error
    assert v["Failed-AVP"][0].code == code
    assert cca.hop_by_hop == 7 and cca.end_to_end == 9


def test_unknown_context_is_5031_and_bad_request_type_5004() -> None:
    with pytest.raises(BadRequest) as exc:
        ccr_to_request(ccr(context="nope@x"), SMAP)
    assert exc.value.result_code == 5031
    # B6: 5031 requires Failed-AVP (the bad rating input: here the Service-Context-Id).
    assert exc.value.failed is not None and exc.value.failed.code == 461
    with pytest.raises(BadRequest) as exc:
        ccr_to_request(ccr(rtype=9), SMAP)
    assert exc.value.result_code == 5004
    assert exc.value.failed is not None and exc.value.failed.code == 416
    msg = ccr(rtype=9, number=4)
    cca = decode_message(error_cca(msg, exc.value, origin_host="ocs", origin_realm="r").encode())
    v = values(cca.avps)
    assert not cca.is_error and v["Result-Code"] == 5004 and v["Auth-Application-Id"] == 4
    assert v["CC-Request-Type"] == 9 and v["CC-Request-Number"] == 4  # echoed as received
    assert v["Failed-AVP"][0].code == 416


def test_cca_echoes_and_carries_per_mscc_results() -> None:
    msg = ccr(rtype=2, number=3, msccs=[[rsu(CC_Time=60), A("Rating-Group", 1)],
                                        [rsu(CC_Time=60), A("Rating-Group", 2)]],
              extra=[ims("tel:+41791234567"), A("AoC-Request-Type", 1)])
    req = ccr_to_request(msg, SMAP)
    res = ChargingResult(outcome=Outcome.SUCCESS, cost=120_000, currency="EUR", units=(
        UnitsResult(rating_group=1, unit=UnitKind.TIME, granted=60, validity_time=600,
                    final_unit=True),
        UnitsResult(rating_group=2, unit=UnitKind.TIME, outcome=Outcome.CREDIT_LIMIT_REACHED)))
    cca = decode_message(result_to_cca(msg, req, res, origin_host="ocs.icx.local",
                                       origin_realm="icx.local").encode())
    assert cca.avps[0].name == "Session-Id" and cca.avps[0].value == "pgw.test;1;1"
    assert cca.get("CC-Request-Type") == 2 and cca.get("CC-Request-Number") == 3
    assert cca.get("Result-Code") == 2001 and cca.get("Auth-Application-Id") == 4
    m1, m2 = cca.find_all("Multiple-Services-Credit-Control")
    assert m1.find("Granted-Service-Unit").get("CC-Time") == 60
    assert m1.get("Result-Code") == 2001 and m1.get("Validity-Time") == 600
    assert m1.find("Final-Unit-Indication").get("Final-Unit-Action") == 0
    assert m2.get("Result-Code") == 4012 and m2.find("Granted-Service-Unit") is None
    cost = cca.find("Cost-Information")
    assert cost.find("Unit-Value").get("Value-Digits") == 12
    assert cost.find("Unit-Value").get("Exponent") == -2
    assert cost.get("Currency-Code") == 978


def test_normalise_address() -> None:
    assert normalise_address("sip:+41 79 123@x;user=phone") == "4179123"
    assert normalise_address("tel:0041791") == "41791"
    assert normalise_address("internet.APN") == "internet.apn"


def _money_rsu(digits: int, exponent: int) -> Avp:
    return A("Requested-Service-Unit", [A("CC-Money", [
        A("Unit-Value", [A("Value-Digits", digits), A("Exponent", exponent)]),
        A("Currency-Code", 978)])])


def test_money_units_are_exact_micro_units() -> None:
    req = ccr_to_request(ccr(extra=[_money_rsu(125, -2)]), SMAP)  # 1.25 -> 1_250_000 micro
    assert req.units[0].money and req.units[0].requested == 1_250_000


@pytest.mark.parametrize("digits,exponent", [(-5, -2), (1, 2_000_000_000), (1, -2_000_000_000)])
def test_negative_or_absurd_money_is_5004_not_a_credit_or_a_stall(digits: int,
                                                                  exponent: int) -> None:
    with pytest.raises(BadRequest) as exc:
        ccr_to_request(ccr(extra=[_money_rsu(digits, exponent)]), SMAP)
    assert exc.value.result_code == 5004
    assert exc.value.failed is not None and exc.value.failed.code == 413  # CC-Money


@pytest.mark.parametrize("unix", [1_800_000_000, 2_300_000_000])  # 2027 and 2042 (NTP era 1)
def test_event_timestamp_is_unix_seconds_either_side_of_2040(unix: int) -> None:
    req = ccr_to_request(ccr(extra=[A("Event-Timestamp", unix)]), SMAP)
    assert req.at == unix
