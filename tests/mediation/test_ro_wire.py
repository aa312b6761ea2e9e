"""The pre-encoded CCA writer (mediation/ro_wire.py) is byte-identical to the Message path
(mediation.ro.result_to_cca), and declines what it does not cover."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.requests import ChargingResult, Outcome, UnitKind, UnitsResult
from diameter.avp import Avp
from diameter.message import Message, decode_message
from mediation import ro
from mediation.ro_wire import CcaWriter
from mediation.service_map import ServiceMap
from tests.mediation.conftest import A, ccr, rsu

SMAP = ServiceMap.from_config({"32260@3gpp.org": "voice", "32251@3gpp.org": "data"},
                              {}, "")
WRITER = CcaWriter("ocs.icx.local", "icx.local")

u32 = st.integers(0, 2**32 - 1)
units = st.builds(
    UnitsResult,
    rating_group=st.none() | u32, service_id=st.none() | u32,
    outcome=st.sampled_from(list(Outcome)),
    unit=st.sampled_from([UnitKind.TIME, UnitKind.OCTETS, UnitKind.EVENTS]),
    granted=st.none() | st.integers(0, 2**32 - 1),
    validity_time=st.none() | u32, final_unit=st.booleans(),
    quota_holding_time=st.none() | st.integers(0, 2**32 - 1),
    quota_threshold=st.none() | st.integers(0, 2**32 - 1))


def slow(msg: Message, result: ChargingResult) -> bytes:
    req = ro.ccr_to_request(msg, SMAP)
    return ro.result_to_cca(msg, req, result, origin_host="ocs.icx.local",
                            origin_realm="icx.local").encode()


@settings(max_examples=300, deadline=None)
@given(results=st.lists(units, max_size=3), outcome=st.sampled_from(list(Outcome)),
       rtype=st.sampled_from([1, 2, 3]), number=u32, sid=st.text(min_size=1, max_size=40),
       proxiable=st.booleans(), hbh=u32, e2e=u32)
def test_writer_matches_result_to_cca(results: list[UnitsResult], outcome: Outcome, rtype: int,
                                      number: int, sid: str, proxiable: bool, hbh: int,
                                      e2e: int) -> None:
    msg = ccr(sid=sid, rtype=rtype, number=number,
              msccs=[[A("Rating-Group", 100), rsu(CC_Time=60)]])
    msg.flags = 0x80 | (0x40 if proxiable else 0)
    msg.hop_by_hop, msg.end_to_end = hbh, e2e
    result = ChargingResult(outcome=outcome, units=tuple(results), currency="EUR")
    req = ro.ccr_to_request(msg, SMAP)
    fast = WRITER.encode(msg, req, result)
    assert fast is not None
    assert fast == slow(msg, result)
    assert decode_message(fast).get("Session-Id") == sid


def test_writer_declines_what_it_does_not_cover() -> None:
    msg = ccr(msccs=[[A("Rating-Group", 100), rsu(CC_Time=60)]])
    req = ro.ccr_to_request(msg, SMAP)
    money = UnitsResult(unit=UnitKind.MONEY, granted=1_000_000, rating_group=1)
    assert WRITER.encode(msg, req, ChargingResult(outcome=Outcome.SUCCESS,
                                                  units=(money,))) is None
    assert WRITER.encode(msg, req, ChargingResult(outcome=Outcome.SUCCESS,
                                                  enough_credit=True)) is None
    bad = ChargingResult(outcome=Outcome.USER_UNKNOWN, failed_field="Subscription-Id")
    assert WRITER.encode(msg, req, bad) is None
    proxied = ccr(msccs=[[A("Rating-Group", 100)]], extra=[
        Avp.new("Proxy-Info", [Avp.new("Proxy-Host", "p.test"),
                               Avp.new("Proxy-State", b"x")])])
    assert WRITER.encode(proxied, ro.ccr_to_request(proxied, SMAP),
                         ChargingResult(outcome=Outcome.SUCCESS)) is None
    single = ccr()  # no MSCC: the single-service grammar stays on the Message path
    assert WRITER.encode(single, ro.ccr_to_request(single, SMAP),
                         ChargingResult(outcome=Outcome.SUCCESS)) is None
    # out of range for the codec (Unsigned32 Validity-Time): declined, not mis-encoded
    huge = UnitsResult(unit=UnitKind.TIME, granted=60, validity_time=2**32)
    assert WRITER.encode(msg, req, ChargingResult(outcome=Outcome.SUCCESS,
                                                  units=(huge,))) is None


# --- the compiled twin (cython_ext/ro_cca.pyx) against the Python writer, its spec ----------
wide = st.none() | st.integers(-2, 2**64 + 1) | st.sampled_from([0, 1, 2**32 - 1, 2**32, True])
wide_units = st.builds(
    UnitsResult,
    rating_group=wide, service_id=wide, outcome=st.sampled_from(list(Outcome)),
    unit=st.sampled_from(list(UnitKind)), granted=wide, validity_time=wide,
    final_unit=st.booleans(), quota_holding_time=wide, quota_threshold=wide)


@settings(max_examples=150, deadline=None)
@given(results=st.lists(wide_units, max_size=40), outcome=st.sampled_from(list(Outcome)),
       rtype=st.sampled_from([1, 2, 3, 4]), number=st.integers(-1, 2**32),
       sid=st.text(min_size=1, max_size=3000), multiple=st.booleans(),
       enough=st.none() | st.booleans(), failed=st.none() | st.just("Subscription-Id"))
def test_twin_matches_python_writer(results: list[UnitsResult], outcome: Outcome, rtype: int,
                                    number: int, sid: str, multiple: bool,
                                    enough: bool | None, failed: str | None) -> None:
    msg = ccr(sid=sid, rtype=rtype, msccs=[[A("Rating-Group", 100)]] if multiple else None)
    req = ro.ccr_to_request(msg, SMAP)
    req = dataclasses.replace(req, request_number=number)
    result = ChargingResult(outcome=outcome, units=tuple(results), currency="EUR",
                            enough_credit=enough, failed_field=failed)
    assert WRITER.encode(msg, req, result) == WRITER.encode_py(msg, req, result)


def test_twin_is_selected_when_built() -> None:
    from mediation import ro_wire

    assert (WRITER.encode != WRITER.encode_py) == (ro_wire._TWIN is not None)


def test_twin_reads_the_result_fields_by_offset() -> None:
    """The twin reads the request's and results' fields at their slot offsets
    (cython_ext/slot_layout.pxi); a class that changed shape falls back to names silently
    (correct but slow): this says which."""
    from mediation import ro_wire

    if ro_wire._TWIN is None:
        pytest.skip("compiled twin not built (ICX_NO_EXTENSIONS=1 or no build)")
    known = WRITER.encode.__self__.layouts_known()  # type: ignore[attr-defined]
    assert known == {"ChargingRequest": True, "ChargingResult": True, "UnitsResult": True}

