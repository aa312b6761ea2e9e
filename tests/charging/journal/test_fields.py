"""Reading only some fields of journal records: the compiled picker against the msgpack spec,
on generated records, on garbage, and through the reader on a real journal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.journal import Journal, JournalReader
from charging.journal import fields as F
from charging.journal.framing import frame
from cython_ext import load

twin = load("journal_fields")
needs_twin = pytest.mark.skipif(twin is None, reason="cython_ext.journal_fields not built "
                                "or ICX_NO_EXTENSIONS=1")

atoms = (st.none() | st.booleans()
         | st.integers(min_value=-(2**63), max_value=2**64 - 1)
         | st.floats(allow_nan=False) | st.text(max_size=40) | st.binary(max_size=40))
values = st.recursive(atoms, lambda inner: st.lists(inner, max_size=6)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                      max_leaves=12)
records = st.dictionaries(st.text(max_size=16), values, max_size=16)


@needs_twin
@settings(max_examples=300, deadline=None)
@given(records, st.lists(st.text(max_size=16), max_size=8), st.booleans())
def test_compiled_pick_matches_msgpack(rec: dict[str, Any], extra: list[str],
                                       float32: bool) -> None:
    payload = msgpack.packb(rec, use_single_float=float32)
    names = tuple(list(rec)[::2] + extra)
    assert twin.pick(payload, names) == F.pick_py(payload, names)
    # and the whole record when every field is wanted
    assert twin.pick(payload, tuple(rec)) == msgpack.unpackb(payload, strict_map_key=False)


@needs_twin
@settings(max_examples=100, deadline=None)
@given(st.lists(records, min_size=1, max_size=6))
def test_compiled_pick_frames_matches_the_spec(recs: list[dict[str, Any]]) -> None:
    buf = b"HEAD" + b"".join(frame(msgpack.packb(r)) for r in recs)
    ends, at = [], 4
    for r in recs:
        at += len(frame(msgpack.packb(r)))
        ends.append(at)
    names = tuple({k for r in recs for k in list(r)[:3]})
    head = len(frame(b""))
    assert twin.pick_frames(buf, ends, 4, head, names) == F.pick_frames_py(buf, ends, 4, head,
                                                                            names)


@needs_twin
@settings(max_examples=400, deadline=None)
@given(records, st.data())
def test_compiled_pick_on_damaged_bytes_fails_clean(rec: dict[str, Any], data: Any) -> None:
    # a cut or flipped record: the picker gives what msgpack gives, or raises ValueError (the
    # reader then decodes the chunk with msgpack); it never crashes or returns something else
    payload = bytearray(msgpack.packb(rec))
    cut = data.draw(st.integers(0, len(payload)))
    if data.draw(st.booleans()):
        payload = payload[:cut]
    elif payload:
        payload[min(cut, len(payload) - 1)] ^= data.draw(st.integers(1, 255))
    names = tuple(rec)[:5]
    try:
        got = twin.pick(bytes(payload), names)
    except ValueError:
        return
    try:
        want = F.pick_py(bytes(payload), names)
    except ValueError:
        return  # e.g. bad UTF-8 in a field the picker steps over (our packer never writes it)
    # compared as bytes: a flipped bit may make a NaN, which is not equal to itself
    assert msgpack.packb(got) == msgpack.packb(want)


@needs_twin
def test_ext_types_and_non_maps_are_left_to_msgpack() -> None:
    with pytest.raises(ValueError):
        twin.pick(msgpack.packb({"a": msgpack.ExtType(1, b"x")}), ("a",))
    with pytest.raises(ValueError):
        twin.pick(msgpack.packb([1, 2]), ("a",))
    with pytest.raises(ValueError):
        twin.pick(msgpack.packb({"a": 1}) + b"\x00", ("a",))


def _journal_of(directory: Path, recs: list[dict[str, Any]]) -> JournalReader:
    async def write() -> None:
        j = await Journal.open(directory)
        for r in recs:
            # packed here: the journal's own packer would write an ExtType as a list
            j.append_nowait(msgpack.packb(r))
        await j.close()

    asyncio.run(write())
    return JournalReader(directory)


@pytest.mark.parametrize("odd", [False, True])
def test_reader_with_fields_gives_those_fields(tmp_path: Path, odd: bool) -> None:
    # odd: one record holds an ext value the picker does not read, so its whole chunk comes
    # back from msgpack in full (a superset of the fields)
    recs = [{"v": 1, "type": "rated", "id": f"t-{i}", "ts": i, "idem": f"ro:s:{i}",
             "price": "0.12", "balance_effects": [], "result": "ok",
             "holds": [{"account": "a", "amount": "0.12", "expires": i}],
             "odd": msgpack.ExtType(5, b"!") if odd and i == 7 else i} for i in range(50)]
    reader = _journal_of(tmp_path, recs)
    full = [r for c in reader.chunks() for r in c.records]
    picked = [r for c in reader.chunks(fields=F.REPLAY_FIELDS) for r in c.records]
    assert len(full) == len(picked) == 50
    for whole, some in zip(full, picked, strict=True):
        assert {k: whole[k] for k in F.REPLAY_FIELDS if k in whole} == \
            {k: some[k] for k in F.REPLAY_FIELDS if k in some}
    if F.PICK_FRAMES is not None and not odd:
        # the compiled picker read these: nothing but the wanted fields
        assert all(set(r) <= set(F.REPLAY_FIELDS) for r in picked)
        assert set(picked[0]) == {"type", "ts", "idem", "result", "balance_effects", "holds"}
    else:
        assert picked == full
