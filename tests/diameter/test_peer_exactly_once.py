"""Property: whatever mix of originals, retransmissions (T flag) and answer timings a client
produces, the handler sees each (Origin-Host, End-to-End-Id) once, and every copy the client
sends gets either the handler's answer (same bytes after the Hop-by-Hop) or nothing (a copy
that arrived while the original was still being processed — RFC 6733 §6.2: its answer is on
its way)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from diameter.answers import answer_for
from diameter.avp import Avp
from diameter.message import decode_message
from diameter.peer_events import AnswerReceived, RequestReceived
from tests.diameter.peer_helpers import Pair, ccr, of

# an operation: ("send", request index, T flag) or ("answer", -1, False): the handler answers
# the oldest request it holds
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("answer"), st.just(-1), st.just(False)),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(ops=OPS)
def test_handler_runs_once_per_end_to_end(ops: list[tuple[str, int, bool]]) -> None:
    p = Pair()
    p.pump()
    p.take("client"), p.take("server")
    originals = [ccr(session=f"pgw.client.example;1;{i}", number=i) for i in range(4)]
    for i, m in enumerate(originals):
        m.end_to_end = 1000 + i
    raw = [m.encode() for m in originals]
    handled: list[int] = []
    holding: list = []
    answers: dict[int, bytes] = {}  # e2e -> answer bytes after the H-b-H
    for op, idx, t_flag in ops:
        if op == "send":
            copy = decode_message(raw[idx])
            if t_flag:
                copy.flags |= 0x10
            p.client.send_request(copy, p.now)
        elif holding:
            req = holding.pop(0)
            ans = answer_for(
                req, p.server.me, 2001, [Avp.new("CC-Request-Number", req["CC-Request-Number"])]
            )
            p.server.send_answer(ans, p.now)
        p.pump()
        for ev in of(p.take("server"), RequestReceived):
            handled.append(ev.message.end_to_end)
            holding.append(ev.message)
        for ev in of(p.take("client"), AnswerReceived):
            body = ev.message.encode()[16:]
            e2e = ev.message.end_to_end
            assert answers.setdefault(e2e, body) == body  # every answer to one E2E is identical
    assert len(handled) == len(set(handled))  # the handler never saw a duplicate
    assert p.server.inflight == len(holding)
