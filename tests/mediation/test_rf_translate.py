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


def acr(*extra: Avp, context: str | None = "32260@3gpp.org", rtype: int = 2,
        number: int = 0) -> Message:
    avps: list[Avp] = [
        A("Session-Id", "cscf.test;1;1"), A("Origin-Host", "cscf.test"),
        A("Origin-Realm", "test"), A("Destination-Realm", "icx.local"),
        A("Accounting-Record-Type", rtype), A("Accounting-Record-Number", number),
        A("Acct-Application-Id", 3),
    ]
    if context is not None:
        avps.append(A("Service-Context-Id", context))
    avps.extend(extra)
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


DATA = ServiceMap.from_config({"32251@3gpp.org": "data"}, {}, "")


def test_the_top_level_octet_counters_are_read_as_received() -> None:
    """Accounting-Input-Octets / Accounting-Output-Octets at command level (RFC 7155
    §4.6.1/4.6.2) -> ``session_octets`` (input, output), one alone with the other None; none ->
    None. Inside an MSCC's USU they are not these counters (the USU's CC-*-Octets are read as
    units, as before). Which counts is the engine's decision: both are handed over."""
    big = 5 * 2 ** 32 + 7  # Unsigned64: past 32 bits
    req = acr_to_request(acr(A("Accounting-Input-Octets", big),
                             A("Accounting-Output-Octets", 2_000_000),
                             context="32251@3gpp.org", rtype=3, number=1), DATA)
    assert req.session_octets == (big, 2_000_000) and req.units == ()
    req = acr_to_request(acr(A("Accounting-Output-Octets", 9), context="32251@3gpp.org",
                             rtype=4, number=2), DATA)
    assert req.session_octets == (None, 9)
    usu = A("Multiple-Services-Credit-Control", [
        A("Used-Service-Unit", [A("CC-Input-Octets", 4), A("CC-Output-Octets", 6)]),
        A("Rating-Group", 1)])
    req = acr_to_request(acr(usu, A("Accounting-Input-Octets", 30), context="32251@3gpp.org",
                             rtype=3, number=1), DATA)
    assert req.session_octets == (30, None)
    assert [(u.used, u.used_present) for u in req.units] == [(10, True)]
    assert acr_to_request(acr(context="32251@3gpp.org"), DATA).session_octets is None
