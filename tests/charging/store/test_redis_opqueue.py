"""The op queue's hot half (charging/store/redis_codec.OpQueueCore) and its compiled twin
(cython_ext/redis_codec.pyx): for any sequence of ops -- accounts of several slots, epochs that
change, args of every kind, long ones, ones that cannot be sent -- both queue the same bytes
(the batch command's pieces once joined), cut the same groups, ask the pipe for the same early
writes and kicks, and refuse the same ops without leaving a piece behind (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.store import redis_codec as ref
from cython_ext import load

ext = load("redis_codec")


class _Pipe:
    """What the core asks of a FastPipe; records the early writes and kicks, and an early
    write takes the queued group as FastPipe's write would (PipeOps.emit)."""

    def __init__(self) -> None:
        self._scheduled = False
        self.core: Any = None
        self.log: list[Any] = []

    def kick(self) -> None:
        self._scheduled = True
        self.log.append("kick")

    def flush_early(self) -> None:
        self.log.append(("early", _take(self.core)))


def _take(core: Any) -> list[Any]:
    """The queued groups as bytes (cut ones first, then the current) and empty the queue."""
    out = [(g[0], g[1], b"".join(g[2]), b"".join(g[3]), len(g[4]), g[5]) for g in core._cut]
    if core._futs:
        out.append((core._ix, core._ep, b"".join(core._kparts), b"".join(core._aparts),
                    len(core._futs), core._nvar))
    core._cut = []
    core._kparts, core._aparts, core._futs, core._nvar = [], [], [], 0
    return out


def _run(cls: Any, ops: list[tuple[Any, ...]], early: int, ticks: list[bool]) -> list[Any]:
    loop = asyncio.new_event_loop()
    try:
        pipe = _Pipe()
        core = pipe.core = cls(pipe, early)
        core._loop = loop
        for (letter, acct, slot, bal, ep, var), tick in zip(ops, ticks, strict=True):
            keys = (f"{{acct:{acct}}}:a", f"{{{slot}}}:ix:x", f"{{{slot}}}:unj")
            try:
                fut = core.bop(letter, keys, acct, bal, ep, var)
                pipe.log.append(("fut", fut.get_loop() is loop and not fut.done()))
            except Exception as exc:  # both must refuse the same way
                pipe.log.append(("raise", type(exc)))
            if tick:
                pipe._scheduled = False
        pipe.log.append(("end", _take(core)))
        return pipe.log
    finally:
        loop.close()


arg_st = st.one_of(st.integers(min_value=-(2**70), max_value=2**70),
                   st.integers(min_value=0, max_value=2**53), st.text(max_size=30),
                   st.binary(max_size=30), st.text(min_size=300, max_size=400),
                   st.sampled_from([None, 1.5, True]))
op_st = st.tuples(st.sampled_from([b"r", b"R", b"c", b"k", b"l", b"d", b"D", b"t"]),
                  st.sampled_from(["a1", "a2", "b\u00e9", "c" * 200]),
                  st.sampled_from(["0", "0", "0", "7"]), st.sampled_from(["EUR", "MIN"]),
                  st.sampled_from([5, 5, 5, 6, 2**40]),
                  st.lists(arg_st, min_size=1, max_size=5).map(tuple))


@pytest.mark.skipif(ext is None, reason="cython_ext.redis_codec not built or ICX_NO_EXTENSIONS=1")
@given(st.lists(st.tuples(op_st, st.booleans()), max_size=40), st.integers(1, 20))
@settings(max_examples=300, deadline=None)
def test_twin_queues_what_the_reference_queues(ops: list[Any], early: int) -> None:
    seq = [o for o, _ in ops]
    ticks = [t for _, t in ops]
    assert _run(ext.OpQueueCore, seq, early, ticks) == _run(ref.OpQueueCore, seq, early, ticks)


def test_reference_batch_bytes_by_hand() -> None:
    log = _run(ref.OpQueueCore, [(b"r", "a1", "0", "EUR", 5, ("|k", "s", 100, 7, 3)),
                                 (b"c", "a1", "0", "EUR", 5, ("|k2", "s", 50)),
                                 (b"t", "a2", "7", "EUR", 5, ("|k3", 1))], 16, [False] * 3)
    assert log[:2] == ["kick", ("fut", True)]
    groups = log[-1][1]
    assert groups == [
        (b"$8\r\n{0}:ix:x\r\n$7\r\n{0}:unj\r\n", 5,
         b"$11\r\n{acct:a1}:a\r\n" * 2,
         b"$1\r\nr\r\n$2\r\na1\r\n$4\r\nEUR|\r\n$2\r\n|k\r\n$1\r\ns\r\n$3\r\n100\r\n$1\r\n7\r\n"
         b"$1\r\n3\r\n$1\r\nc\r\n$2\r\na1\r\n$4\r\nEUR|\r\n$3\r\n|k2\r\n$1\r\ns\r\n$2\r\n50\r\n",
         2, 8),
        (b"$8\r\n{7}:ix:x\r\n$7\r\n{7}:unj\r\n", 5, b"$11\r\n{acct:a2}:a\r\n",
         b"$1\r\nt\r\n$2\r\na2\r\n$4\r\nEUR|\r\n$3\r\n|k3\r\n$1\r\n1\r\n", 1, 2)]


def test_a_refused_op_leaves_no_piece() -> None:
    for cls in (ref.OpQueueCore, ext.OpQueueCore) if ext is not None else (ref.OpQueueCore,):
        log = _run(cls, [(b"r", "a1", "0", "EUR", 5, ("|k", None)),
                         (b"t", "a1", "0", "EUR", 5, ("|k3", 1))], 16, [False, False])
        assert log[0] == ("raise", TypeError)
        assert log[-1][1][0][4:] == (1, 2)  # one op, its 2 var args: nothing of the refused
