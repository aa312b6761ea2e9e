"""Byte-exact third-party vectors: go-diameter's CER and scapy's Diameter unit tests.

go-diameter's CER (BSD-3-Clause) ships in tests/fixtures/diameter; scapy's vectors (GPL-2.0)
are read from ../shared/data at run time and never copied into the tree.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from diameter import Avp, DiameterError, FrameBuffer, Message, check_request, decode_message
from diameter.avp import decode_avps
from tests.diameter.conftest import go_diameter_cer


@pytest.fixture(scope="module")
def vectors(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "diameter" / "diameter_encoding_test_vectors.json").read_text())


def _scapy(vectors: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(v["expected_hex"]) for v in vectors["scapy_vectors"]["vectors"]]


def test_go_diameter_cer_decodes_as_documented() -> None:
    raw = go_diameter_cer()
    m = decode_message(raw)
    assert (m.code, m.flags, m.app_id, m.hop_by_hop, m.end_to_end) == (257, 0x80, 0, 0xA8CC407D, 0xA8C1B2B4)
    # go-diameter prints the padded length
    assert [(a.code, a.flags, len(a.encode())) for a in m.avps] == [
        (264, 0x40, 12), (296, 0x40, 20), (257, 0x40, 16), (266, 0x40, 12), (269, 0x00, 20),
        (278, 0x40, 12), (265, 0x40, 12), (265, 0x40, 12), (258, 0x40, 12), (299, 0x40, 12),
        (260, 0x40, 32), (267, 0x00, 12),
    ]
    assert m["Origin-Host"] == "test" and m["Origin-Realm"] == "localhost"
    assert m["Host-IP-Address"] == ipaddress.IPv4Address("10.1.0.1")
    assert m["Product-Name"] == "go-diameter" and m["Origin-State-Id"] == 1397760650
    assert [a.value for a in m.find_all("Supported-Vendor-Id")] == [10415, 13]
    vsai = m.find("Vendor-Specific-Application-Id")
    assert vsai is not None and (vsai["Auth-Application-Id"], vsai["Vendor-Id"]) == (4, 10415)
    assert m.encode() == raw
    check_request(m)


def test_go_diameter_cer_built_programmatically() -> None:
    raw = go_diameter_cer()
    m = Message.request(
        257,
        0,
        [
            Avp.new("Origin-Host", "test"),
            Avp.new("Origin-Realm", "localhost"),
            Avp.new("Host-IP-Address", ipaddress.ip_address("10.1.0.1")),
            Avp.new("Vendor-Id", 13),
            Avp.new("Product-Name", "go-diameter"),
            Avp.new("Origin-State-Id", 1397760650),
            Avp.new("Supported-Vendor-Id", 10415),
            Avp.new("Supported-Vendor-Id", 13),
            Avp.new("Auth-Application-Id", 4),
            Avp.new("Inband-Security-Id", 0),
            Avp.new(
                "Vendor-Specific-Application-Id",
                [Avp.new("Auth-Application-Id", 4), Avp.new("Vendor-Id", 10415)],
            ),
            Avp.new("Firmware-Revision", 1),
        ],
        hop_by_hop=0xA8CC407D,
        end_to_end=0xA8C1B2B4,
    )
    assert m.encode() == raw


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
def test_scapy_avp_vectors_roundtrip(vectors: dict[str, Any], index: int) -> None:
    raw = _scapy(vectors)[index]
    if index == 11:  # "Altering the length of the Destination-Realm AVP": 33 > 28 octets
        with pytest.raises(DiameterError) as ei:
            decode_avps(raw)
        assert ei.value.result_code == 5014
        assert ei.value.failed_avp == bytes.fromhex("0000011b40000008")  # header + empty payload
        return
    avps = decode_avps(raw)
    assert len(avps) == 1
    assert avps[0].encode() == raw


def test_scapy_avp_values(vectors: dict[str, Any]) -> None:
    v = _scapy(vectors)
    assert decode_avps(v[1])[0].value == "aaa.test.orange.fr;1428128;644587"
    assert decode_avps(v[2])[0].value == 1  # NO_STATE_MAINTAINED
    assert decode_avps(v[3])[0].value == ipaddress.IPv4Address("192.168.0.1")
    assert decode_avps(v[4])[0].value == ipaddress.IPv6Address("::1")
    assert decode_avps(v[5])[0].value == 0
    # building the same AVPs from values gives the vector bytes
    assert Avp.new("Session-Id", "aaa.test.orange.fr;1428128;644587").encode() == v[1]
    assert Avp.new("Auth-Session-State", 1).encode() == v[2]
    assert Avp.new("CG-Address", ipaddress.ip_address("192.168.0.1")).encode() == v[3]
    assert Avp.new("CG-Address", "::1").encode() == v[4]
    assert Avp.new("Auth-Application-Id", 0).encode() == v[5]
    assert Avp(0x2BD, bytes.fromhex("01f1"), vendor=10415, flags=0xC0).encode() == v[6]
    assert Avp(0x1FA, b"test", vendor=10415, flags=0xC0).encode() == v[7]
    assert Avp(0x1FA, "testé", vendor=10415, flags=0xC0).encode() == v[8]
    assert Avp(601, "sip:+0123456789@aaa.test.orange.fr", vendor=98765432, flags=0).encode() == v[12]


def test_scapy_grouped_vectors(vectors: dict[str, Any]) -> None:
    v = _scapy(vectors)
    sf = decode_avps(v[13])[0]  # Supported-Features is not in our dictionary: raw bytes
    assert isinstance(sf.value, bytes)
    members = decode_avps(sf.data)
    assert [(a.code, a.flags) for a in members] == [(559, 0x40), (264, 0xBB)]
    assert Avp(628, members, vendor=10415, flags=0x80).encode() == v[13]
    # Experimental-Result (297) wrapping the over-long Destination-Realm: 5014 on access
    er = decode_avps(v[14])[0]
    with pytest.raises(DiameterError) as ei:
        er.value  # noqa: B018
    assert ei.value.result_code == 5014
    assert er.encode() == v[14]
    big = decode_avps(v[16])[0]
    assert [a.code for a in decode_avps(big.data)] == [263, 629, 628, 603]
    assert big.encode() == v[16]


def _msg(raw: bytes) -> Message:
    return decode_message(raw)


def test_scapy_message_vectors(vectors: dict[str, Any]) -> None:
    v = _scapy(vectors)
    cer = _msg(v[17])
    assert (cer.code, cer.is_request, cer.hop_by_hop, cer.end_to_end) == (257, True, 1234, 5678)
    assert Message.request(257, 0, hop_by_hop=1234, end_to_end=5678).encode() == v[17]
    cea = _msg(v[23])
    assert not cea.is_request and cea.encode() == v[23]
    assert _msg(v[17]).answer().encode() == v[23]
    for i in (18, 19, 21, 22, 25):
        assert _msg(v[i]).encode() == v[i]
    with pytest.raises(DiameterError) as ei:
        check_request(_msg(v[17]))  # empty CER
    assert ei.value.result_code == 5005 and ei.value.failed_avp == bytes.fromhex("0000010840000008")
    with pytest.raises(DiameterError) as ei:
        check_request(_msg(v[18]))  # R bit clear
    assert ei.value.result_code == 3008 and ei.value.e_bit
    with pytest.raises(DiameterError) as ei:
        check_request(_msg(v[19]))  # command 0
    assert ei.value.result_code == 3001 and ei.value.e_bit
    with pytest.raises(DiameterError) as ei:
        check_request(_msg(v[25]))  # Multimedia-Auth (Cx) is not ours
    assert ei.value.result_code == 3001


@pytest.mark.parametrize("index", [20, 24])
def test_scapy_bad_header_lengths_are_fatal(vectors: dict[str, Any], index: int) -> None:
    raw = _scapy(vectors)[index]
    with pytest.raises(DiameterError) as ei:
        decode_message(raw)
    assert ei.value.result_code == 5015 and ei.value.fatal
    with pytest.raises(DiameterError) as ei:
        FrameBuffer(4096).feed(raw)
    assert ei.value.result_code == 5015 and ei.value.fatal


def test_scapy_bad_avp_flags_is_3009(vectors: dict[str, Any]) -> None:
    raw = _scapy(vectors)[10]  # Origin-Host with flags 0xbb
    m = Message.request(280, 0, decode_avps(raw))
    with pytest.raises(DiameterError) as ei:
        check_request(decode_message(m.encode()))
    assert ei.value.result_code == 3009 and ei.value.e_bit and ei.value.failed_avp == raw


def test_scapy_overlong_avp_in_message_is_5014(vectors: dict[str, Any]) -> None:
    v = _scapy(vectors)
    body = v[1] + v[11]
    raw = Message.request(272, 4, decode_avps(v[1]), proxiable=True).encode()
    raw = (1 << 24 | (len(raw) + 28)).to_bytes(4, "big") + raw[4:] + v[11]
    assert len(raw) == 20 + len(body)
    with pytest.raises(DiameterError) as ei:
        decode_message(raw)
    e = ei.value
    assert e.result_code == 5014 and not e.fatal
    assert e.partial is not None and e.partial.get("Session-Id") == "aaa.test.orange.fr;1428128;644587"
