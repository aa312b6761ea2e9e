"""The compiled allocator (cython_ext/journal_alloc.pyx) against its spec
(charging.journal.writer._Allocator): random sequences of add / add_many / rotate / take /
renew over small segments give the same positions, bytes, parts and attributes, and a record
that cannot be packed leaves both in the same state (all or nothing per call)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal.framing import HEADER_LEN
from charging.journal.segments import Position
from charging.journal.writer import _Allocator, new_allocator

compiled = pytest.mark.skipif(cython_ext.load("journal_alloc") is None,
                              reason="cython_ext.journal_alloc not built (or disabled)")

_record = st.one_of(
    st.binary(min_size=0, max_size=300),
    st.dictionaries(st.sampled_from(["op", "id", "amount", "ts", "session"]),
                    st.one_of(st.integers(-2**40, 2**40), st.text(max_size=40)),
                    max_size=5),
)
_step = st.one_of(
    st.tuples(st.just("add"), _record),
    st.tuples(st.just("add_many"), st.lists(_record, max_size=6), st.booleans()),
    st.tuples(st.just("rotate")),
    st.tuples(st.just("take")),
    st.tuples(st.just("renew")),
    st.tuples(st.just("bad"), st.lists(_record, max_size=3)),  # an unpackable record last
)


def _state(a: Any) -> tuple[Any, ...]:
    return (a.segment, a.offset, tuple(a.last), type(a.last), bytes(a.buf),
            [(s, bytes(b)) for s, b in a.parts], a.segment_bytes, a.rotate_seconds)


def _run(a: Any, step: tuple[Any, ...]) -> Any:
    kind = step[0]
    try:
        if kind == "add":
            p = a.add(step[1])
            return ("pos", type(p), tuple(p))
        if kind == "add_many":
            ps = a.add_many(list(step[1]), step[2])
            return ("many", [(type(p), tuple(p)) for p in ps])
        if kind == "rotate":
            return ("rotate", a.rotate())
        if kind == "take":
            return ("take", [(s, bytes(b)) for s, b in a.take()])
        if kind == "renew":
            return ("renew", bytes(a.renew()))
        return ("bad", a.add_many([*step[1], object()]))
    except Exception as exc:  # noqa: BLE001 -- compared, not swallowed
        return ("raised", type(exc))


@compiled
@settings(max_examples=300, deadline=None)
@given(seg_bytes=st.integers(HEADER_LEN + 40, 2_000), start=st.integers(0, 200),
       steps=st.lists(_step, max_size=40))
def test_compiled_allocator_matches_the_spec(seg_bytes: int, start: int,
                                             steps: list[tuple[Any, ...]]) -> None:
    spec = _Allocator(3, start, seg_bytes, 0.0)
    twin = new_allocator(3, start, seg_bytes, 0.0)
    assert type(twin) is not _Allocator
    assert _state(twin) == _state(spec)
    for step in steps:
        assert _run(twin, step) == _run(spec, step), step
        assert _state(twin) == _state(spec), step


@compiled
def test_time_rotation_follows_started() -> None:
    """``started`` is public and on time.monotonic()'s clock, as the spec's: moving it back
    past rotate_seconds makes the next add rotate first (the idle check's test relies on it)."""
    twin = new_allocator(1, 0, 1 << 20, 60.0)
    assert abs(twin.started - time.monotonic()) < 1.0
    twin.add(b"x")
    assert twin.segment == 1 and not twin._due()
    twin.started -= 120.0
    assert twin._due()
    pos = twin.add(b"y")
    assert isinstance(pos, Position) and pos.segment == 2
    # segment 1's bytes, the rotation's (empty) opening of 2, then 2's bytes: as the spec
    assert [(s, len(b) > 0) for s, b in twin.take()] == [(1, True), (2, False), (2, True)]
