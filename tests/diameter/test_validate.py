"""RFC 6733 §7 request checks: one test per Result-Code, with the Failed-AVP contents."""

from __future__ import annotations

import ipaddress

import pytest

from diameter import Avp, DiameterError, Message, check_request, decode_message
from diameter.avp import example
from diameter.types import RawAddress


def _ccr(*extra: Avp, drop: str | None = None, flags: int | None = None, app: int = 4, code: int = 272) -> Message:
    avps = [
        Avp.new("Session-Id", "pgw;1;2"),
        Avp.new("Origin-Host", "pgw.example.net"),
        Avp.new("Origin-Realm", "example.net"),
        Avp.new("Destination-Realm", "icx.local"),
        Avp.new("Auth-Application-Id", 4),
        Avp.new("Service-Context-Id", "32251@3gpp.org"),
        Avp.new("CC-Request-Type", 1),
        Avp.new("CC-Request-Number", 0),
    ]
    avps = [a for a in avps if a.name != drop] + list(extra)
    m = Message.request(code, app, avps, proxiable=True, hop_by_hop=1, end_to_end=2)
    if flags is not None:
        m.flags = flags
    return decode_message(m.encode())  # validate what came off the wire


def _err(m: Message) -> DiameterError:
    with pytest.raises(DiameterError) as ei:
        check_request(m)
    return ei.value


def test_valid_ccr_passes() -> None:
    check_request(_ccr())


def test_unknown_command_3001() -> None:
    e = _err(_ccr(code=999))
    assert (e.result_code, e.e_bit, e.failed_avp) == (3001, True, None)
    assert e.header is not None and e.header[4:] == (1, 2)


def test_unknown_application_3007() -> None:
    assert _err(_ccr(app=77)).result_code == 3007


@pytest.mark.parametrize("flags", [0xE0, 0x40, 0xF0])
def test_bad_header_bits_3008(flags: int) -> None:
    e = _err(_ccr(flags=flags))
    assert e.result_code == 3008 and e.e_bit


def test_p_bit_on_cer_3008() -> None:
    m = Message.request(257, 0, [], proxiable=True)
    assert _err(decode_message(m.encode())).result_code == 3008


def test_unknown_m_avp_5001_and_unknown_non_m_ignored() -> None:
    ignored = Avp(9999, b"x", vendor=12345, flags=0x80)
    check_request(_ccr(ignored))
    bad = Avp(9998, b"abc", flags=0x40)
    e = _err(_ccr(ignored, bad))
    assert (e.result_code, e.e_bit, e.failed_avp) == (5001, False, bad.encode())


def test_unknown_m_avp_inside_group_5001() -> None:
    bad = Avp(7777, b"", vendor=10415, flags=0xC0)
    mscc = Avp.new("Multiple-Services-Credit-Control", [Avp.new("Rating-Group", 1), bad])
    e = _err(_ccr(mscc))
    assert e.result_code == 5001 and e.failed_avp == bad.encode()


@pytest.mark.parametrize("flags", [0x41, 0x48, 0x50])
def test_reserved_avp_flag_bits_3009(flags: int) -> None:
    bad = Avp.new("User-Name", "u", flags=flags)
    e = _err(_ccr(bad))
    assert (e.result_code, e.e_bit, e.failed_avp) == (3009, True, bad.encode())


def test_m_bit_on_must_not_avp_is_3009_only_when_strict() -> None:
    m = _ccr(Avp.new("Error-Message", "x", flags=0x40))
    check_request(m)  # python-diameter sends Product-Name with M: accepted by default
    with pytest.raises(DiameterError) as ei:
        check_request(m, strict=True)
    assert ei.value.result_code == 3009 and ei.value.e_bit


def test_3gpp_29061_avps_accept_m_either_way() -> None:
    for flags in (0x80, 0xC0):
        ps = Avp.new("PS-Information", [Avp.new("3GPP-Charging-Id", 7, flags=flags), Avp.new("3GPP-PDP-Type", 0, flags=flags)])
        check_request(_ccr(Avp.new("Service-Information", [ps])))


def test_3gpp_charging_id_four_octets_both_ways() -> None:
    a = Avp.new("3GPP-Charging-Id", 0x01020304)
    assert a.encode()[-4:] == b"\x01\x02\x03\x04"
    m = decode_message(Message.request(272, 4, [a]).encode())
    assert m.find("3GPP-Charging-Id", 10415).value == 0x01020304  # type: ignore[union-attr]
    odd = decode_message(Message.request(272, 4, [Avp.new("3GPP-Charging-Id", b"\x01\x02")]).encode())
    assert odd.find("3GPP-Charging-Id", 10415).value == b"\x01\x02"  # type: ignore[union-attr]


def test_enum_out_of_range_5004() -> None:
    bad = Avp.new("CC-Request-Type", 9)
    m = _ccr(bad, drop="CC-Request-Type")
    e = _err(m)
    assert (e.result_code, e.failed_avp) == (5004, bad.encode())


def test_bad_utf8_5004() -> None:
    bad = Avp.new("User-Name", b"\xff\xfe")
    e = _err(_ccr(bad))
    assert (e.result_code, e.failed_avp) == (5004, bad.encode())


def test_bad_address_5004() -> None:
    bad = Avp.new("Host-IP-Address", b"\x00\x01\x0a\x00")  # IPv4 with 2 octets
    m = decode_message(Message.request(280, 0, [Avp.new("Origin-Host", "a"), Avp.new("Origin-Realm", "b"), bad]).encode())
    e = _err(m)
    assert (e.result_code, e.failed_avp) == (5004, bad.encode())
    fam0 = Avp.new("Host-IP-Address", RawAddress(0, b"x"))
    assert _err(decode_message(Message.request(280, 0, [fam0]).encode())).result_code == 5004


def test_missing_required_5005_with_zero_filled_example() -> None:
    e = _err(_ccr(drop="CC-Request-Number"))
    assert (e.result_code, e.e_bit) == (5005, False)
    assert e.failed_avp == bytes.fromhex("0000019f4000000c00000000") == example("CC-Request-Number")


def test_missing_inside_group_5005() -> None:
    sub = Avp.new("Subscription-Id", [Avp.new("Subscription-Id-Type", 0)])
    e = _err(_ccr(sub))
    assert e.result_code == 5005 and e.failed_avp == example("Subscription-Id-Data")
    assert e.failed_avp == bytes.fromhex("000001bc40000008")


def test_not_allowed_5008() -> None:
    dr = Avp.new("Destination-Realm", "x")
    m = Message.request(280, 0, [Avp.new("Origin-Host", "a"), Avp.new("Origin-Realm", "b"), dr])
    e = _err(decode_message(m.encode()))
    assert (e.result_code, e.failed_avp) == (5008, dr.encode())


def test_too_many_5009_reports_first_over_limit() -> None:
    second = Avp.new("CC-Request-Number", 5)
    e = _err(_ccr(second))
    assert (e.result_code, e.failed_avp) == (5009, second.encode())


def test_vsai_needs_exactly_one_application() -> None:
    base = [Avp.new("Origin-Host", "a"), Avp.new("Origin-Realm", "b"), Avp.new("Host-IP-Address", ipaddress.ip_address("127.0.0.1")),
            Avp.new("Vendor-Id", 1), Avp.new("Product-Name", "p")]
    both = Avp.new("Vendor-Specific-Application-Id", [Avp.new("Vendor-Id", 10415), Avp.new("Auth-Application-Id", 4), Avp.new("Acct-Application-Id", 3)])
    e = _err(decode_message(Message.request(257, 0, [*base, both]).encode()))
    assert e.result_code == 5009 and e.failed_avp == Avp.new("Acct-Application-Id", 3).encode()
    neither = Avp.new("Vendor-Specific-Application-Id", [Avp.new("Vendor-Id", 10415)])
    e = _err(decode_message(Message.request(257, 0, [*base, neither]).encode()))
    assert e.result_code == 5005
    check_request(decode_message(Message.request(257, 0, base).encode()))


def test_wrong_fixed_length_5014_carries_the_avp() -> None:
    bad = Avp(415, b"\x00\x00\x01", flags=0x40, type=1)  # CC-Request-Number with 3 octets
    m = _ccr(bad, drop="CC-Request-Number")
    e = _err(m)
    assert (e.result_code, e.failed_avp) == (5014, bad.encode())


def test_broken_grouped_payload_5014() -> None:
    inner = bytearray(Avp.new("Rating-Group", 1).encode())
    inner[5:8] = (40).to_bytes(3, "big")  # claims more than the group holds
    bad = Avp(456, bytes(inner), flags=0x40, type=1)
    e = _err(_ccr(bad))
    assert e.result_code == 5014
    assert e.failed_avp == bytes.fromhex("000001b04000000c00000000")


def test_version_5011() -> None:
    raw = bytearray(_ccr().encode())
    raw[0] = 2
    with pytest.raises(DiameterError) as ei:
        decode_message(bytes(raw))
    assert ei.value.result_code == 5011 and ei.value.fatal



_COUNTERS = {363: "Accounting-Input-Octets", 364: "Accounting-Output-Octets",
             365: "Accounting-Input-Packets", 366: "Accounting-Output-Packets"}


def _raw_avp(code: int, payload: bytes, flags: int = 0x40) -> bytes:
    """An AVP's wire bytes built by hand (no dictionary: the test holds without it)."""
    head = code.to_bytes(4, "big") + bytes([flags]) + (8 + len(payload)).to_bytes(3, "big")
    return head + payload + bytes(-len(payload) % 4)


def _acr_with(*raw: bytes) -> Message:
    avps = [Avp.new("Session-Id", "pgw;1;3"), Avp.new("Origin-Host", "pgw.example.net"),
            Avp.new("Origin-Realm", "example.net"), Avp.new("Destination-Realm", "icx.local"),
            Avp.new("Accounting-Record-Type", 3), Avp.new("Accounting-Record-Number", 1),
            Avp.new("Acct-Application-Id", 3)]
    wire = Message.request(271, 3, avps, proxiable=True, hop_by_hop=1, end_to_end=2).encode()
    wire += b"".join(raw)
    return decode_message(wire[:1] + len(wire).to_bytes(3, "big") + wire[4:])


def test_acr_with_the_rfc7155_accounting_counters_passes() -> None:
    """RFC 7155 §4.6.1-4.6.4: Accounting-Input/Output-Octets/-Packets (363-366), Unsigned64,
    M bit MUST be set. An ACR carrying them (as NASREQ-style clients send them, M set) is
    valid -- not 5001 for an unknown M-bit AVP -- and they decode as integers; one of the
    wrong length is 5014 (its type is known)."""
    msg = _acr_with(*(_raw_avp(code, (10 ** 10 + code).to_bytes(8, "big")) for code in _COUNTERS))
    check_request(msg)
    for code, name in _COUNTERS.items():
        assert msg.get(name) == 10 ** 10 + code
    assert _err(_acr_with(_raw_avp(363, (5).to_bytes(4, "big")))).result_code == 5014
