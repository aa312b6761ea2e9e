"""The Redis client codec (charging/store/redis_codec.py) and its compiled twin
(cython_ext/redis_codec.pyx): RESP packing agrees with hiredis, record decoding agrees with the
general record decoder, and the twin agrees with the reference on any input (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hiredis import pack_command
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.store import redis_codec as ref
from charging.store.redis_store import _record
from cython_ext import load

ext = load("redis_codec")
if ext is not None:
    ext.bind(ref._OK, ref._LOW_EVENTS, ref.OpResult, ref.Hold, ref.Effect)
needs_ext = pytest.mark.skipif(ext is None,
                               reason="cython_ext.redis_codec not built or ICX_NO_EXTENSIONS=1")

args_st = st.lists(st.one_of(st.integers(min_value=-(2**70), max_value=2**70),
                             st.integers(min_value=-(2**53), max_value=2**53),
                             st.text(max_size=40), st.binary(max_size=40)), max_size=12)
num_st = st.one_of(st.integers(min_value=-(2**53), max_value=2**53).map(lambda n: b"%d" % n),
                   st.integers(min_value=-(10**25), max_value=10**25).map(lambda n: b"%d" % n),
                   st.sampled_from([b"", b"-", b"+5", b" 7", b"1_0", b"08", b"x", b"-0", b"1e3"]))


def _outcome(fn: Any, *a: Any) -> Any:
    try:
        return ("ok", fn(*a))
    except Exception as exc:  # both must fail the same way
        return ("raise", type(exc))


@given(args_st)
@settings(max_examples=300, deadline=None)
def test_pack_args_is_hiredis_without_the_header(args: list[Any]) -> None:
    t = tuple(args)
    want = pack_command(("X", *t)) if t else b"*1\r\n$1\r\nX\r\n"
    got = ref.pack_args(t)
    assert b"*%d\r\n$1\r\nX\r\n" % (len(t) + 1) + got == want
    if ext is not None:
        assert ext.pack_args(t) == got


@pytest.mark.parametrize("bad", [1.5, True, None, bytearray(b"x")])
def test_pack_args_refuses_what_is_not_bytes_str_int(bad: Any) -> None:
    with pytest.raises(TypeError):
        ref.pack_args(("a", bad))
    if ext is not None:
        with pytest.raises(TypeError):
            ext.pack_args(("a", bad))


@given(st.lists(num_st, min_size=8, max_size=8), st.sampled_from([b"ok", b"insufficient", b"o"]),
       st.sampled_from([b"0", b"1", b"2", b""]), st.text(max_size=8).map(str.encode))
@settings(max_examples=400, deadline=None)
def test_decoders_twin_and_reference_agree(nums: list[bytes], status: bytes, low: bytes,
                                           tail: bytes) -> None:
    rec = b"|".join([b"7", status, nums[0], nums[1], nums[2], low, nums[3], nums[4], nums[5],
                     b"1", b"EUR", tail])
    for r in (rec, rec[: len(rec) // 2], b"", rec.decode("latin-1")):
        a = _outcome(ref.reserve_ok, r, "k", "a", "EUR", "s", 1.5)
        c = _outcome(ref.commit_ok, r, "k", "a", "EUR", "s")
        if ext is not None:
            assert _outcome(ext.reserve_ok, r, "k", "a", "EUR", "s", 1.5) == a
            assert _outcome(ext.commit_ok, r, "k", "a", "EUR", "s") == c


def test_decoders_agree_with_the_general_record_decoder() -> None:
    rec = b"7|ok|100|999|899|1|0|100|1800000030000000|1|EUR|s|1"
    want = _record("k", "a", rec, False)
    for mod in (ref, ext) if ext is not None else (ref,):
        got = mod.reserve_ok(rec, "k", "a", "EUR", "s|1", 1_800_000_030.0)
        assert got == want and got.low_balance and got.events == ("low_balance",)
    rec = b"7|ok|60|940|940|0|-60|-100|-1|1|EUR|s"
    want = _record("k", "a", rec, False)
    for mod in (ref, ext) if ext is not None else (ref,):
        got = mod.commit_ok(rec, "k", "a", "EUR", "s")
        assert got == want and got.effects[0].amount == -60 and got.holds[0].amount == -100
        assert mod.commit_ok(b"7|ok|0|940|940|0|0|-100|-1|1|EUR|s", "k", "a", "EUR",
                             "s").effects == ()
        assert mod.reserve_ok(b"7|insufficient|0|1|1|0|0|0|0|0|EUR|s", "k", "a", "EUR", "s",
                              1.0) is None
        assert mod.reserve_ok([b"7|ok|1|1|1|0|0|1|1|1|EUR|s"], "k", "a", "EUR", "s", 1.0) is None


@needs_ext
def test_twin_is_selected() -> None:
    assert ref.select()[0] is ext.pack_args  # type: ignore[union-attr]


@given(st.lists(st.text(max_size=40), max_size=120))
@settings(max_examples=100, deadline=None)
def test_the_stores_confirm_packing_is_hiredis(members: list[str]) -> None:
    from charging.store.redis_store import _pack

    cmd = (b"SREM", "{ix}:unj", *members)
    assert _pack(cmd) == pack_command(cmd)
