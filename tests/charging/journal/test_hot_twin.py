"""The compiled per-request base of Journal (cython_ext/journal_hot.pyx: append_nowait,
append_many_nowait, call_when_durable) against its spec (writer._JournalHot): the same random
traffic through a Journal on each base gives the same positions, groups handed out, callback
order and arguments, the same bytes on disk, and the same refusals and failure callbacks once
a group commit failed or the journal is closed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import Journal, JournalError, JournalReader
from charging.journal.writer import _JournalHot

compiled = pytest.mark.skipif(cython_ext.load("journal_hot") is None,
                              reason="cython_ext.journal_hot not built (or disabled)")

# Journal on the spec's base: the same class body, the pure per-request methods
_SpecJournal: Any = type("SpecJournal", (_JournalHot,),
                         {k: v for k, v in Journal.__dict__.items()
                          if k not in ("__dict__", "__weakref__")})

_rec = st.one_of(st.binary(min_size=1, max_size=120),
                 st.fixed_dictionaries({"id": st.integers(0, 10**6), "s": st.text(max_size=30)}))
_op = st.one_of(
    st.tuples(st.just("one"), _rec),
    st.tuples(st.just("many"), st.lists(_rec, max_size=5), st.booleans(), st.booleans()),
    st.tuples(st.just("when"), st.integers(-3, 3)),
    st.tuples(st.just("turn")),
)


async def _drive(cls: Any, path: Path, ops: list[tuple[Any, ...]]) -> tuple[list[Any], bytes]:
    j = await cls.open(path, segment_bytes=1_500, eager_bytes=300, writer_threads=0)
    seen: list[Any] = []
    groups: dict[int, int] = {}  # id(group future) -> order first seen (shared per group)

    def gid(g: Any) -> Any:
        return None if g is None else groups.setdefault(id(g), len(groups))

    try:
        for n, op in enumerate(ops):
            kind = op[0]
            try:
                if kind == "one":
                    pos, g = j.append_nowait(op[1])
                    seen.append(("one", tuple(pos), gid(g)))
                elif kind == "many":
                    recs = op[1] if op[3] else iter(op[1])  # a list, or any iterable
                    out, g = j.append_many_nowait(recs, positions=op[2])
                    seen.append(("many", [tuple(p) for p in out], gid(g)))
                elif kind == "when":
                    seg, off = j.position
                    pos = type(j.position)(seg, max(0, off + op[1] * 40))
                    j.call_when_durable(pos, lambda exc, n=n: seen.append(
                        ("cb", n, type(exc).__name__, str(exc))))
                else:  # a turn of the loop: groups dispatched and completed, callbacks run
                    await j.flush()
            except JournalError as exc:
                seen.append(("refused", kind, str(exc), type(exc.__cause__).__name__))
        seen.append(("records", j.records))
        await j.flush()
        seen.append(("durable", tuple(j.durable)))
        # then as a failed group commit leaves it, with a record pending: refusals, and the
        # callback of a position not durable gets the failure
        j.append_nowait(b"pending")
        j._failed = OSError(5, "disk gone")
        for call in (lambda: j.append_nowait(b"x"), lambda: j.append_many_nowait([b"y"])):
            try:
                call()
            except JournalError as exc:
                seen.append(("refused", str(exc), type(exc.__cause__).__name__))
        j.call_when_durable(j.position, lambda exc: seen.append(
            ("failed", type(exc).__name__, str(exc))))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        j._failed = None
        j._dispatch()  # (the pending record: the test's failure was not a real one)
    finally:
        await j.close()
    data = b"".join(bytes(r) for _, r in JournalReader(path).iter_raw())
    return seen, data


@compiled
@settings(max_examples=40, deadline=None)
@given(ops=st.lists(_op, max_size=30))
def test_compiled_base_matches_the_spec(tmp_path_factory: Any, ops: list[tuple[Any, ...]]
                                        ) -> None:
    assert Journal.__mro__[1].__module__ == "cython_ext.journal_hot"
    a = tmp_path_factory.mktemp("twin")
    b = tmp_path_factory.mktemp("spec")
    got = asyncio.run(_drive(Journal, a, ops))
    want = asyncio.run(_drive(_SpecJournal, b, ops))
    assert got == want
    assert [e for e in got[0] if e[0] == "failed"] == [
        ("failed", "JournalError", "journal write failed: OSError(5, 'disk gone')")]


@compiled
def test_closed_journal_refuses_on_both_bases(tmp_path: Path) -> None:
    async def main(cls: Any, path: Path) -> list[str]:
        j = await cls.open(path, writer_threads=0)
        await j.close()
        out = []
        for call in (lambda: j.append_nowait(b"x"), lambda: j.append_many_nowait([b"x"])):
            with pytest.raises(JournalError) as info:
                call()
            out.append(str(info.value))
        return out

    assert asyncio.run(main(Journal, tmp_path / "a")) == asyncio.run(
        main(_SpecJournal, tmp_path / "b")) == ["journal is closed or failed"] * 2
