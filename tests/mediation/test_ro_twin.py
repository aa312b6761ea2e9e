"""Parity: the compiled CCR translation (cython_ext/ro_request.pyx, selected by
mediation.ro.ccr_to_request) and the pure spec (mediation.ro.ccr_to_request_py) give the same
ChargingRequest or the same BadRequest (result code, Failed-AVP bytes, message) for random
valid and malformed CCRs, the real captures and byte mutations of CCR frames.

Under ICX_NO_EXTENSIONS=1 (or without the build) ccr_to_request IS the spec: the tests still
run (and check the spec against itself) except the ones that need the twin.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks._ro_edge import frames as bench_frames
from diameter import DiameterError
from diameter.avp import Avp
from diameter.message import Message, decode_message
from diameter.validate import check_request
from mediation import ro
from mediation.service_map import ServiceMap
from tests.diameter.conftest import CAPTURE_NAMES, data_file
from tests.pcaputil import diameter_messages

A = Avp.new
SMAP = ServiceMap.from_config({"32260@3gpp.org": "voice", "32251@3gpp.org": "data",
                               "32274@3gpp.org": "sms", "32270@3gpp.org": "mms",
                               "content@icx.local": "content"},
                              {"200": "data_time", "300": "sms"}, "")
SMAP_DEFAULT = ServiceMap()  # default service "data" for unknown contexts
twin = pytest.mark.skipif(ro._TWIN is None, reason="ro_request twin not built or disabled")


def outcome(fn: Any, raw: bytes, smap: ServiceMap) -> Any:
    """What *fn* makes of a freshly decoded *raw* CCR, with check_request's verdict (the
    translation runs either way: a peer with validate_requests=False translates unchecked)."""
    try:
        msg = decode_message(raw)
    except DiameterError as exc:
        return ("undecodable", exc.key())
    try:
        check_request(msg)
        verdict = None
    except DiameterError as exc:
        verdict = exc.key()
        msg = decode_message(raw)  # fresh objects: the twin reads untouched bytes
    try:
        return ("ok", verdict, fn(msg, smap))
    except ro.BadRequest as err:
        return ("bad", verdict, err.result_code, err.failed.encode() if err.failed else None,
                err.message)
    except DiameterError as exc:
        return ("diameter", verdict, exc.key())


def same(raw: bytes, smap: ServiceMap = SMAP) -> Any:
    got = outcome(ro.ccr_to_request, raw, smap)
    assert got == outcome(ro.ccr_to_request_py, raw, smap)
    return got


# ------------------------------------------------------------------------- random CCRs
_text = st.sampled_from(["41790000001", "tel:+41791234567", "sip:+4179123@ims;user=phone",
                         "0041791234567", "tel:+0041", "", "internet", "IMS.Apn", "√ü",
                         "tel:+", "00", "+41 79 123-45", "١٢٣"])
_unit_avp = st.sampled_from(["CC-Time", "CC-Total-Octets", "CC-Input-Octets",
                             "CC-Output-Octets", "CC-Service-Specific-Units"])


@st.composite
def _units(draw: Any, name: str) -> Avp:
    kids: list[Avp] = []
    if draw(st.integers(0, 9)) == 0:  # CC-Money (money slice, or a bad one)
        uv = [A("Value-Digits", draw(st.integers(-5, 10**6))),
              A("Exponent", draw(st.integers(-20, 20)))]
        kids.append(A("CC-Money", [A("Unit-Value", uv), A("Currency-Code", 978)]))
    for u in draw(st.lists(_unit_avp, max_size=3, unique=True)):
        kids.append(A(u, draw(st.integers(0, 2**32 - 1))))
    if name == "Used-Service-Unit":
        kids += [A("Reporting-Reason", r) for r in draw(st.lists(st.integers(0, 10),
                                                                   max_size=1))]
    return A(name, kids)


@st.composite
def _mscc(draw: Any) -> Avp:
    kids: list[Avp] = []
    if draw(st.booleans()):
        kids.append(A("Rating-Group", draw(st.sampled_from([1, 10, 100, 200, 300]))))
    if draw(st.integers(0, 3)) == 0:
        kids.append(A("Service-Identifier", draw(st.integers(0, 2**32 - 1))))
    if draw(st.booleans()):
        kids.append(draw(_units("Requested-Service-Unit")))
    kids += draw(st.lists(_units("Used-Service-Unit"), max_size=1))
    kids += [A("Reporting-Reason", r) for r in draw(st.lists(st.integers(0, 9), max_size=1))]
    return A("Multiple-Services-Credit-Control", draw(st.permutations(kids)))


@st.composite
def _service_info(draw: Any) -> Avp:
    kind = draw(st.sampled_from(["ims", "sms", "mms", "ps", "sub", "empty"]))
    if kind == "ims":
        kids = [A("Node-Functionality", 0)]
        if draw(st.booleans()):
            kids.append(A("Calling-Party-Address", draw(_text)))
        if draw(st.booleans()):
            kids.append(A("Called-Party-Address", draw(_text)))
        inner = [A("IMS-Information", kids)]
    elif kind == "sms":
        ris = [A("Recipient-Info", [A("Recipient-Address", [
            A("Address-Type", 1), *([A("Address-Data", draw(_text))] if draw(st.booleans())
                                    else [])])]) for _ in range(draw(st.integers(0, 2)))]
        inner = [A("SMS-Information", ris)]
    elif kind == "mms":
        ras = [A("Recipient-Address", [A("Address-Data", draw(_text))])
               for _ in range(draw(st.integers(0, 2)))]
        inner = [A("MMS-Information", ras)]
    elif kind == "ps":
        inner = [A("PS-Information", [A("Called-Station-Id", draw(_text))]
                   if draw(st.booleans()) else [])]
    elif kind == "sub":
        inner = [A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                       A("Subscription-Id-Data", draw(_text))])]
    else:
        inner = []
    return A("Service-Information", inner)


@st.composite
def ccr_frames(draw: Any) -> bytes:
    avps: list[Avp] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 1, 1, 0, 2]))):
        avps.append(A("Session-Id", draw(st.sampled_from(["pgw;1;1", "pgw;é;2", ""]))))
    avps += [A("Origin-Host", "pgw.test"), A("Origin-Realm", "test"),
             A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4)]
    if draw(st.integers(0, 31)):
        avps.append(A("Service-Context-Id", draw(st.sampled_from([
            "32260@3gpp.org", "32251@3gpp.org", "32274@3gpp.org", "32270@3gpp.org",
            "content@icx.local", "10.32260@3gpp.org", "ext.01.001.8.32251@3gpp.org",
            "nope@x", "32251@3GPP.ORG"]))))
    rtype = draw(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 0, 5]))
    if draw(st.integers(0, 15)):
        avps.append(A("CC-Request-Type", rtype))
    if draw(st.integers(0, 15)):
        avps.append(A("CC-Request-Number", draw(st.integers(0, 2**32 - 1))))
    for _ in range(draw(st.integers(0, 3))):
        avps.append(A("Subscription-Id", [
            A("Subscription-Id-Type", draw(st.integers(0, 4))),
            A("Subscription-Id-Data", draw(_text))]))
    if draw(st.booleans()):
        avps.append(A("Multiple-Services-Indicator", draw(st.integers(0, 1))))
    avps += draw(st.lists(_mscc(), max_size=3))
    if draw(st.booleans()):
        avps.append(draw(_units("Requested-Service-Unit")))
    avps += draw(st.lists(_units("Used-Service-Unit"), max_size=2))
    if draw(st.booleans()):
        avps.append(draw(_service_info()))
    if draw(st.integers(0, 3)) == 0:
        avps.append(A("User-Name", draw(_text)))
    if draw(st.integers(0, 2)) == 0:
        avps.append(A("Requested-Action", draw(st.integers(0, 3))))
    if draw(st.integers(0, 4)) == 0:
        avps.append(A("Service-Identifier", draw(st.integers(0, 99))))
    if draw(st.integers(0, 4)) == 0:
        avps.append(A("Event-Timestamp", draw(st.integers(0, 2**31))))
    if draw(st.integers(0, 4)) == 0:
        avps.append(A("AoC-Request-Type", draw(st.integers(0, 3))))
    if draw(st.integers(0, 4)) == 0:
        avps.append(A("Termination-Cause", draw(st.integers(1, 8))))
    avps = draw(st.permutations(avps))
    return Message.request(272, 4, avps, proxiable=True, hop_by_hop=7, end_to_end=9).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=ccr_frames(), default=st.booleans())
def test_random_ccrs_same_request_or_same_error(raw: bytes, default: bool) -> None:
    same(raw, SMAP_DEFAULT if default else SMAP)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=ccr_frames(), data=st.data())
def test_mutated_ccrs_same_outcome(raw: bytes, data: Any) -> None:
    """Byte mutations past the header: decode/validate/translate agree (fuzz: no crash)."""
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        b[data.draw(st.integers(20, len(b) - 1))] = data.draw(st.integers(0, 255))
    same(bytes(b))


def test_mutations_of_bench_frames() -> None:
    """Seeded mutations of the load harness's CCRs (the shapes the hot path sees)."""
    rng = random.Random(5)
    base = bench_frames(8)
    for _ in range(1500):
        b = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(20, len(b))] = rng.randrange(256)
        same(bytes(b), SMAP_DEFAULT)


def test_real_captures() -> None:
    frames: list[bytes] = []
    for name in CAPTURE_NAMES:
        p = data_file(name)
        if p is not None:
            frames += diameter_messages(p)
    ccrs = [f for f in frames if len(f) >= 20 and int.from_bytes(f[5:8], "big") == 272
            and f[4] & 0x80]
    if not ccrs:
        pytest.skip("no CCR in the available captures")
    for raw in ccrs:
        same(raw, SMAP_DEFAULT)


@twin
def test_twin_answers_the_common_case() -> None:
    """The hot path's CCRs are translated by the twin itself (no silent fallback)."""
    for raw in bench_frames(8):
        msg = decode_message(raw)
        check_request(msg)
        got = ro._TWIN.ccr_to_request(msg, SMAP_DEFAULT)
        assert got is not None
        assert got == ro.ccr_to_request_py(decode_message(raw), SMAP_DEFAULT)


@twin
def test_the_twins_context_memo_follows_the_service_map() -> None:
    """The twin remembers each Service-Context-Id's service for the map it was asked with;
    another map (another config) gets its own answers, in any order."""
    voice = ServiceMap.from_config({"32251@3gpp.org": "voice"}, {}, "")
    data_ccrs = 0
    for raw in bench_frames(4):
        for smap in (SMAP_DEFAULT, voice, SMAP_DEFAULT, voice):
            got = ro._TWIN.ccr_to_request(decode_message(raw), smap)
            assert got == ro.ccr_to_request_py(decode_message(raw), smap)
            if "32251" in got.context:
                data_ccrs += 1
                assert got.service.value == ("voice" if smap is voice else "data")
    assert data_ccrs


@twin
def test_twin_declines_edited_and_python_built_messages() -> None:
    raw = bench_frames(1)[0]
    msg = decode_message(raw)
    msg.avps[0].value = "edited;1"  # an edited AVP: the objects, not the bytes, are the truth
    assert ro._TWIN.ccr_to_request(msg, SMAP_DEFAULT) is None
    assert ro.ccr_to_request(msg, SMAP_DEFAULT).session_id == "edited;1"
    built = Message.request(272, 4, decode_message(raw).avps)
    built.avps.append(A("Multiple-Services-Credit-Control", [A("Rating-Group", 9)]))
    assert ro.ccr_to_request(built, SMAP_DEFAULT) == ro.ccr_to_request_py(built, SMAP_DEFAULT)
