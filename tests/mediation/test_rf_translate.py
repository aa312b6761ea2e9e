"""ACR -> ChargingRequest and the ACA error answers (pure translation, real codec)."""

from __future__ import annotations

import pytest

from diameter.avp import Avp
from diameter.message import Message, decode_message
from mediation.rf import acr_to_request, error_aca
from mediation.ro import BadRequest
from mediation.service_map import ServiceMap
from tests.mediation.conftest import A, values

NO_DEFAULT = ServiceMap.from_config({"32260@3gpp.org": "voice"}, {}, "")


def acr(*, context: str | None = "32260@3gpp.org", rtype: int = 2, number: int = 0) -> Message:
    avps: list[Avp] = [
        A("Session-Id", "cscf.test;1;1"), A("Origin-Host", "cscf.test"),
        A("Origin-Realm", "test"), A("Destination-Realm", "icx.local"),
        A("Accounting-Record-Type", rtype), A("Accounting-Record-Number", number),
        A("Acct-Application-Id", 3),
    ]
    if context is not None:
        avps.append(A("Service-Context-Id", context))
    return decode_message(Message.request(271, 3, avps, proxiable=True,
                                          hop_by_hop=5, end_to_end=6).encode())


def test_missing_context_without_default_is_5005_with_example() -> None:
    msg = acr(context=None)
    with pytest.raises(BadRequest) as exc:
        acr_to_request(msg, NO_DEFAULT)
    assert exc.value.result_code == 5005
    assert exc.value.failed is not None and exc.value.failed.code == 461
    aca = decode_message(error_aca(msg, exc.value, origin_host="ocs", origin_realm="r").encode())
    v = values(aca.avps)
    assert aca.avps[0].name == "Session-Id" and not aca.is_error and not aca.is_request
    assert v["Result-Code"] == 5005 and v["Failed-AVP"][0].code == 461
    assert v["Accounting-Record-Type"] == 2 and v["Accounting-Record-Number"] == 0
    assert aca.hop_by_hop == 5 and aca.end_to_end == 6


def test_unknown_context_is_5004_naming_the_context() -> None:
    with pytest.raises(BadRequest) as exc:
        acr_to_request(acr(context="nope@x"), NO_DEFAULT)
    assert exc.value.result_code == 5004
    assert exc.value.failed is not None and exc.value.failed.code == 461


def test_bad_record_type_is_5004() -> None:
    with pytest.raises(BadRequest) as exc:
        acr_to_request(acr(rtype=9), NO_DEFAULT)
    assert exc.value.result_code == 5004 and exc.value.failed is not None
    assert exc.value.failed.code == 480
