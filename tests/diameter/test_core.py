"""Core codec API: AVP/message round trips, builders, framing, the error contract."""

from __future__ import annotations

import ipaddress

import pytest

from diameter import Avp, DiameterError, FrameBuffer, Message, check_request, decode_message
from diameter.types import RawAddress, ntp_to_unix, unix_to_ntp


def _cer() -> Message:
    return Message.request(
        257,
        0,
        [
            Avp.new("Origin-Host", "client.example.com"),
            Avp.new("Origin-Realm", "example.com"),
            Avp.new("Host-IP-Address", ipaddress.ip_address("127.0.0.1")),
            Avp.new("Vendor-Id", 0),
            Avp.new("Product-Name", "t"),
            Avp.new("Auth-Application-Id", 4),
        ],
        hop_by_hop=7,
        end_to_end=9,
    )


def test_message_roundtrip_and_access() -> None:
    raw = _cer().encode()
    m = decode_message(raw)
    assert m.encode() == raw
    assert m.is_request and not m.is_proxiable and not m.is_error
    assert m["Origin-Host"] == "client.example.com"
    assert m.get("Host-IP-Address") == ipaddress.IPv4Address("127.0.0.1")
    assert m.get("Session-Id") is None
    assert m.find(258).value == 4  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        m["Session-Id"]
    check_request(m)


def test_answer_copies_ids_and_p_bit() -> None:
    req = Message.request(272, 4, [], proxiable=True, hop_by_hop=1, end_to_end=2)
    ans = req.answer([Avp.new("Result-Code", 2001)])
    assert (ans.hop_by_hop, ans.end_to_end, ans.is_proxiable, ans.is_request) == (1, 2, True, False)
    assert req.answer(error=True).is_error


def test_grouped_lazy_and_modification() -> None:
    mscc = Avp.new(
        "Multiple-Services-Credit-Control",
        [Avp.new("Rating-Group", 9), Avp.new("Used-Service-Unit", [Avp.new("CC-Total-Octets", 5)])],
    )
    m = Message.request(272, 4, [mscc], proxiable=True)
    raw = m.encode()
    d = decode_message(raw)
    g = d.find("Multiple-Services-Credit-Control")
    assert g is not None and g["Rating-Group"] == 9
    assert g.find("Used-Service-Unit")["CC-Total-Octets"] == 5  # type: ignore[union-attr]
    assert d.encode() == raw
    g.find("Rating-Group").value = 10  # type: ignore[union-attr]
    d2 = decode_message(d.encode())
    assert d2.find("Multiple-Services-Credit-Control")["Rating-Group"] == 10  # type: ignore[index]


def test_vendor_avp_flags() -> None:
    a = Avp.new("Reporting-Reason", 2)
    assert a.vendor == 10415 and a.flags == 0xC0
    assert a.encode() == bytes.fromhex("00000368c0000010000028af00000002")


def test_time_rollover_rfc2030() -> None:
    assert ntp_to_unix(0x80000000) == 0x80000000 - 2208988800
    # 2036-02-07 06:28:16 UTC is NTP 0 of era 1
    assert ntp_to_unix(0) == 2085978496
    for t in (0, 1_700_000_000, 2085978495, 2085978496, 4_000_000_000):
        assert ntp_to_unix(unix_to_ntp(t)) == t
    a = Avp.new("Event-Timestamp", 2085978500)
    assert decode_message(Message.request(271, 3, [a]).encode()).get("Event-Timestamp") == 2085978500


def test_address_families() -> None:
    v6 = Avp.new("Host-IP-Address", ipaddress.ip_address("::1"))
    e164 = Avp.new("Host-IP-Address", RawAddress(8, b"491701234"))
    m = decode_message(Message.request(257, 0, [v6, e164]).encode())
    vals = [a.value for a in m.avps]
    assert vals == [ipaddress.IPv6Address("::1"), RawAddress(8, b"491701234")]


def test_framebuffer_byte_at_a_time() -> None:
    raw = _cer().encode()
    fb = FrameBuffer(4096)
    out: list[bytes] = []
    for b in raw + raw:
        out += fb.feed(bytes([b]))
    assert out == [raw, raw] and fb.buffered == 0


def test_framebuffer_refuses_oversize_from_header() -> None:
    fb = FrameBuffer(100)
    with pytest.raises(DiameterError) as ei:
        fb.feed(b"\x01\x00\x10\x00")
    assert ei.value.fatal and ei.value.result_code == 5015
    with pytest.raises(DiameterError):
        fb.feed(b"")


@pytest.mark.parametrize(
    ("head", "code"), [(b"\x02\x00\x00\x14", 5011), (b"\x01\x00\x00\x10", 5015), (b"\x01\x00\x00\x15", 5015)]
)
def test_framebuffer_bad_headers(head: bytes, code: int) -> None:
    with pytest.raises(DiameterError) as ei:
        FrameBuffer(4096).feed(head + bytes(16))
    assert ei.value.result_code == code and ei.value.fatal


def test_truncated_avp_is_5014_with_header_and_partial() -> None:
    sid = Avp.new("Session-Id", "s;1")
    raw = bytearray(Message.request(272, 4, [sid, Avp.new("CC-Request-Number", 1)], hop_by_hop=5).encode())
    n = len(raw)
    raw[n - 7 : n - 4] = (200).to_bytes(3, "big")  # CC-Request-Number claims 200 octets
    with pytest.raises(DiameterError) as ei:
        decode_message(bytes(raw))
    e = ei.value
    assert e.result_code == 5014 and not e.fatal and not e.e_bit
    assert e.header is not None and e.header[4] == 5
    assert e.partial is not None and e.partial.get("Session-Id") == "s;1"
    assert e.failed_avp == bytes.fromhex("0000019f4000000c00000000")


def test_read_grouped_keeps_odd_received_padding() -> None:
    # A Grouped AVP whose last member has no padding inside the group, followed by non-zero
    # padding bytes: reading the group must not change the re-encoded bytes.
    inner = Avp.new("Subscription-Id-Data", "12345").encode()[:13]  # 13 octets, unpadded
    t = Avp.new("Subscription-Id-Type", 0).encode()
    n = 8 + len(t) + len(inner)
    grp = (443).to_bytes(4, "big") + bytes([0x40]) + n.to_bytes(3, "big") + t + inner + b"\xaa\xbb\xcc"
    raw = Message.request(272, 4, []).encode()
    raw = ((1 << 24) | (20 + len(grp))).to_bytes(4, "big") + raw[4:] + grp
    m = decode_message(raw)
    sub = m.find("Subscription-Id")
    assert sub is not None and sub["Subscription-Id-Data"] == "12345"
    assert m.encode() == raw
    sub.find("Subscription-Id-Type").value = 1  # type: ignore[union-attr]
    assert decode_message(m.encode()).find("Subscription-Id")["Subscription-Id-Type"] == 1  # type: ignore[index]


def test_dump_names_enums_and_groups() -> None:
    from diameter.dump import dump

    m = Message.request(
        272,
        4,
        [
            Avp.new("CC-Request-Type", 2),
            Avp.new("Multiple-Services-Credit-Control", [Avp.new("Rating-Group", 7)]),
            Avp(9999, b"\x01", flags=0),
            Avp.new("User-Name", b"\xff"),
        ],
        proxiable=True,
    )
    text = dump(decode_message(m.encode()))
    assert text.splitlines() == [
        "CCR code=272 app=4 flags=RP hbh=0x00000000 e2e=0x00000000",
        "  CC-Request-Type = 2 (UPDATE_REQUEST)",
        "  Multiple-Services-Credit-Control",
        "    Rating-Group = 7",
        "  AVP-9999 = 01",
        "  User-Name <undecodable: 5004 AVP 1/0: invalid UTF-8: invalid start byte>",
    ]


@pytest.mark.parametrize("split", [1, 2, 3, 4, 5, 19, 20, 21])
def test_framebuffer_any_split_point(split: int) -> None:
    a = _cer().encode()
    b = Message.request(280, 0, [Avp.new("Origin-Host", "x")]).encode()
    data = a + b + a
    for cut in range(0, len(data), split):
        fb = FrameBuffer(1024)
        out = fb.feed(data[:cut]) + fb.feed(data[cut:])
        assert out == [a, b, a] and fb.buffered == 0 and fb.frames_total == 3
