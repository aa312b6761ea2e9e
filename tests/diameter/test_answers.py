"""Error answers per RFC 6733 §7, checked on the wire bytes."""

from __future__ import annotations

import struct

import pytest

from diameter.answers import (
    LocalIdentity,
    answer_for,
    answer_from_error,
    error_answer,
    failed_avp,
    patch_hop_by_hop,
)
from diameter.avp import Avp
from diameter.errors import DiameterError
from diameter.message import Message, decode_message
from diameter.validate import check_request

ME = LocalIdentity("ocs.icx.local", "icx.local")


def request(flags_t: bool = False) -> Message:
    msg = Message.request(
        272,
        4,
        [
            Avp.new("Origin-Host", "pgw.example"),  # Session-Id deliberately not first
            Avp.new("Session-Id", "pgw.example;1;2"),
            Avp.new(
                "Proxy-Info", [Avp.new("Proxy-Host", "p1.example"), Avp.new("Proxy-State", b"1")]
            ),
            Avp.new("Origin-Realm", "example"),
            Avp.new(
                "Proxy-Info", [Avp.new("Proxy-Host", "p2.example"), Avp.new("Proxy-State", b"2")]
            ),
        ],
        proxiable=True,
        hop_by_hop=0x01020304,
        end_to_end=0x0A0B0C0D,
    )
    if flags_t:
        msg.flags |= 0x10
    return msg


def header(raw: bytes) -> tuple[int, int, int, int, int, int]:
    w0, w1, app, hbh, e2e = struct.unpack_from("!IIIII", raw)
    return (w0 >> 24, w0 & 0xFFFFFF, w1 >> 24, w1 & 0xFFFFFF, hbh, e2e)


@pytest.mark.parametrize("code", [3001, 3007, 3008, 3009, 3004])
def test_protocol_errors_set_e_bit_and_copy_ids(code: int) -> None:
    raw = error_answer(request(flags_t=True), ME, code).encode()
    version, length, flags, cmd, hbh, e2e = header(raw)
    assert (version, length, cmd) == (1, len(raw), 272)
    assert flags == 0x40 | 0x20  # P copied, E set, R and T clear
    assert (hbh, e2e) == (0x01020304, 0x0A0B0C0D)
    ans = decode_message(raw)
    assert [a.code for a in ans.avps[:4]] == [263, 264, 296, 268]  # generic grammar order
    assert ans.get("Result-Code") == code
    assert ans.get("Origin-Host") == "ocs.icx.local" and ans.get("Origin-Realm") == "icx.local"


def test_proxy_info_copied_in_order_session_first() -> None:
    ans = decode_message(error_answer(request(), ME, 3001).encode())
    assert ans.avps[0].code == 263 and ans.avps[0].value == "pgw.example;1;2"
    proxies = ans.find_all("Proxy-Info")
    assert [p.get("Proxy-Host") for p in proxies] == ["p1.example", "p2.example"]
    assert ans.avps[-2:] == proxies


@pytest.mark.parametrize("code", [5001, 5004, 5005, 5008, 5009, 5011, 5014])
def test_permanent_failures_no_e_bit_with_failed_avp(code: int) -> None:
    bad = Avp.new("CC-Request-Number", 7).encode()
    raw = answer_for(request(), ME, code, failed=bad).encode()
    assert raw[4] == 0x40  # E clear, P copied
    ans = decode_message(raw)
    failed = ans.find("Failed-AVP")
    assert failed is not None and failed.flags == 0x40
    assert failed.data == bad  # the whole offending AVP, byte for byte
    assert failed.value[0].code == 415 and failed.value[0].value == 7


def test_failed_avp_keeps_malformed_bytes_verbatim() -> None:
    # 5014: an AVP whose length is wrong must not be re-decoded, just carried
    broken = struct.pack("!IBBHI", 415, 0x40, 0, 16, 0)  # claims 16 octets, has 12
    avp = failed_avp(broken)
    raw = avp.encode()
    assert raw[:4] == struct.pack("!I", 279) and raw[8:] == broken
    assert int.from_bytes(raw[5:8], "big") == 8 + len(broken)


def test_answer_from_validation_error() -> None:
    req = request()
    req.avps = [a for a in req.avps if a.code != 296]  # Origin-Realm missing
    decoded = decode_message(req.encode())
    with pytest.raises(DiameterError) as info:
        check_request(decoded)
    built = answer_from_error(info.value, ME)
    assert built is not None
    ans = decode_message(built.encode())
    assert ans.get("Result-Code") == 5005 and not ans.is_error
    assert ans.find("Failed-AVP").value[0].code == 296
    assert (ans.hop_by_hop, ans.end_to_end) == (0x01020304, 0x0A0B0C0D)
    assert ans.avps[0].code == 263


def test_no_answer_without_header_or_for_answers() -> None:
    assert answer_from_error(DiameterError(5015, "short", fatal=True), ME) is None
    hdr_of_answer = (1, 0x40, 272, 4, 1, 2)
    assert answer_from_error(DiameterError(5004, "x", header=hdr_of_answer), ME) is None


def test_version_error_answered_as_version_1() -> None:
    raw = bytearray(request().encode())
    raw[0] = 2
    with pytest.raises(DiameterError) as info:
        decode_message(bytes(raw))
    assert info.value.fatal and info.value.result_code == 5011
    ans = answer_from_error(info.value, ME)
    assert ans is not None and ans.encode()[0] == 1 and ans.get("Result-Code") == 5011


def test_patch_hop_by_hop_changes_only_that_field() -> None:
    raw = answer_for(request(), ME, 2001).encode()
    patched = patch_hop_by_hop(raw, 0xCAFEBABE)
    assert patched[12:16] == bytes.fromhex("cafebabe")
    assert patched[:12] == raw[:12] and patched[16:] == raw[16:]


def test_origin_state_id_when_set() -> None:
    me = LocalIdentity("ocs.icx.local", "icx.local", origin_state_id=1234)
    ans = answer_for(request(), me, 2001)
    assert ans.get("Origin-State-Id") == 1234
