"""Every Diameter message in the real captures decodes and re-encodes to identical bytes.

Captures (../shared/data/diameter, see its SOURCES.md): nDPI Comverse CCR/CCA over TCP,
magma Gy/Gx/S6a pcapng, Arkime synthetic CER/CEA, Gx, S6a and ACR/ACA (TCP and SCTP).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from diameter import Avp, DiameterError, check_request, decode_message
from diameter.validate import check_answer
from tests.diameter.conftest import data_file, require
from tests.pcaputil import diameter_messages

CAPTURES = {
    "ndpi_diameter_dcca_ccr_cca.pcap": 6,
    "magma_gx_gy_combined_03.pcapng": 124,
    "arkime_diameter_synthetic.pcap": 8,
}


def _deep(avps: list[Avp]) -> int:
    """Decode every value of every AVP, recursing into Grouped; returns the AVP count."""
    n = 0
    for a in avps:
        v: Any = a.value
        n += 1
        if isinstance(v, list):
            n += _deep(v)
    return n


class _Captures(dict[str, list[bytes]]):
    def __missing__(self, name: str) -> list[bytes]:
        frames = diameter_messages(require(name))
        self[name] = frames
        return frames


@pytest.fixture(scope="module")
def captures() -> dict[str, list[bytes]]:
    """name -> frames, read on first use; a test whose capture is absent is skipped."""
    return _Captures()


def test_permissive_captures_ship_with_the_tests() -> None:
    for name in ("magma_gx_gy_combined_03.pcapng", "arkime_diameter_synthetic.pcap", "go_diameter_cer.json"):
        p = data_file(name)
        assert p is not None and "fixtures" in p.parts


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_every_message_roundtrips_byte_exact(captures: dict[str, list[bytes]], name: str) -> None:
    frames = captures[name]
    assert len(frames) == CAPTURES[name]
    for raw in frames:
        m = decode_message(raw)
        assert m.encode() == raw
        assert _deep(m.avps) > 0
        assert m.encode() == raw  # still identical after every Grouped was materialised


def _kinds(frames: list[bytes]) -> Counter[tuple[int, int, bool, Any]]:
    c: Counter[tuple[int, int, bool, Any]] = Counter()
    for raw in frames:
        m = decode_message(raw)
        c[(m.code, m.app_id, m.is_request, m.get("CC-Request-Type"))] += 1
    return c


def test_magma_counts(captures: dict[str, list[bytes]]) -> None:
    c = _kinds(captures["magma_gx_gy_combined_03.pcapng"])
    assert c[(272, 4, True, 1)] == 1 and c[(272, 4, True, 2)] == 12 and c[(272, 4, True, 3)] == 1
    assert c[(272, 4, False, 1)] == 1 and c[(272, 4, False, 2)] == 12 and c[(272, 4, False, 3)] == 1
    assert c[(280, 0, True, None)] == 43 and c[(280, 0, False, None)] == 43
    assert c[(272, 16777238, True, 1)] == 1 and c[(272, 16777238, True, 3)] == 1
    for code in (316, 318, 321):
        assert c[(code, 16777251, True, None)] == 1 and c[(code, 16777251, False, None)] == 1


def test_magma_gy_values_and_validation(captures: dict[str, list[bytes]]) -> None:
    msgs = [decode_message(r) for r in captures["magma_gx_gy_combined_03.pcapng"]]
    gy = [m for m in msgs if m.app_id == 4]
    ccr_i = next(m for m in gy if m.is_request and m["CC-Request-Type"] == 1)
    assert ccr_i["Session-Id"] == "string;490;022;IMSI999991234567810"
    assert ccr_i["Service-Context-Id"] == "32251@3gpp.org"
    rgs = [g["Rating-Group"] for g in ccr_i.find_all("Multiple-Services-Credit-Control")]
    assert rgs == [9, 3, 2, 1]
    rsu = ccr_i.find("Multiple-Services-Credit-Control").find("Requested-Service-Unit")  # type: ignore[union-attr]
    assert rsu is not None and rsu["CC-Total-Octets"] == 200000
    ps = ccr_i.find("Service-Information", 10415).find("PS-Information", 10415)  # type: ignore[union-attr]
    assert ps is not None and ps["Called-Station-Id"] == "internet"
    cca_i = next(m for m in gy if not m.is_request and m["CC-Request-Type"] == 1)
    for g in cca_i.find_all("Multiple-Services-Credit-Control"):
        assert g["Validity-Time"] == 86400 and g["Result-Code"] == 2001
        assert g.find("Granted-Service-Unit")["CC-Total-Octets"] == 2000  # type: ignore[index]
    ccr_t = next(m for m in gy if m.is_request and m["CC-Request-Type"] == 3)
    assert ccr_t["CC-Request-Number"] == 13
    for m in gy:  # every Gy request passes the RFC 6733 §7 checks against our dictionary
        if m.is_request:
            check_request(m)
    for m in msgs:  # and so does every DWR (base protocol)
        if m.code == 280 and m.is_request:
            check_request(m)


def test_ndpi_comverse_values(captures: dict[str, list[bytes]]) -> None:
    msgs = [decode_message(r) for r in captures["ndpi_diameter_dcca_ccr_cca.pcap"]]
    assert [(m.is_request, m["CC-Request-Type"], m["CC-Request-Number"]) for m in msgs] == [
        (True, 1, 0), (False, 1, 0), (True, 2, 1), (False, 2, 1), (True, 3, 2), (False, 3, 2),
    ]
    for m in msgs:
        assert m["Session-Id"] == "nxl;api;1263278878147"
        if m.is_request:
            assert m["Service-Context-Id"] == "Comverse.DCI"
            sub = m.find("Subscription-Id")
            assert sub is not None and (sub["Subscription-Id-Type"], sub["Subscription-Id-Data"]) == (0, "919080000016")
            check_request(m)
        else:
            assert m["Result-Code"] == 2001
            if m["CC-Request-Type"] != 3:  # the CCA-T grants nothing
                assert m["Validity-Time"] == 5
                money = m.find("Granted-Service-Unit").find("CC-Money")  # type: ignore[union-attr]
                assert money is not None and money["Currency-Code"] == 356
                assert money.find("Unit-Value")["Value-Digits"] == 2  # type: ignore[index]
            check_answer(m)
    assert (msgs[0].hop_by_hop, msgs[0].end_to_end) == (msgs[1].hop_by_hop, msgs[1].end_to_end)


def test_arkime_synthetic_messages(captures: dict[str, list[bytes]]) -> None:
    msgs = [decode_message(r) for r in captures["arkime_diameter_synthetic.pcap"]]
    cer = msgs[0]
    assert (cer.code, cer.is_request) == (257, True)
    assert cer["Origin-Host"] == "client.example.com" and cer["Vendor-Id"] == 12345
    assert cer["Product-Name"] == "TestClient"
    acr = next(m for m in msgs if m.code == 271 and m.is_request)
    assert acr["Accounting-Record-Type"] == 1 and acr["Accounting-Record-Number"] == 1
    assert acr["User-Name"] == "john.doe@isp.com"
    aca = next(m for m in msgs if m.code == 271 and not m.is_request)
    assert aca["Result-Code"] == 2001
    # The synthetic CER sets the P bit, which CER must not carry (RFC 6733 §5.3.1).
    with pytest.raises(DiameterError) as ei:
        check_request(cer)
    assert ei.value.result_code == 3008 and ei.value.e_bit


def test_unknown_mbit_avps_in_s6a_are_5001(captures: dict[str, list[bytes]]) -> None:
    """S6a AVPs are not in our dictionary: decoding works, validation reports 5001."""
    msgs = [decode_message(r) for r in captures["magma_gx_gy_combined_03.pcapng"]]
    ulr = next(m for m in msgs if m.code == 316 and m.is_request)
    with pytest.raises(DiameterError) as ei:
        check_request(ulr)
    e = ei.value
    assert e.result_code == 5001 and e.failed_avp is not None
    bad = next(a for a in ulr.avps if a.encode() == e.failed_avp)
    assert bad.flags & 0x40 and bad.vendor == 10415
