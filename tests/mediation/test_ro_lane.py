"""cython_ext/ro_lane.pyx's durability callback against its spec: the metrics it records
(mediation.metrics.Metrics.observe) and the reply it hands to a peer that is not a
PeerProtocol (peer.reply). The end-to-end answers of the twin are covered by the agent and
server tests, which run it whenever it is built."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediation.agent import _LANE, _RC_BY_ID
from mediation.metrics import BUCKETS, Metrics
from mediation.ro import OUTCOME_RESULT_CODE

pytestmark = pytest.mark.skipif(_LANE is None, reason="cython_ext/ro_lane is not built")

# seconds half-way between bucket bounds. The callback measures its own elapsed time (from
# the t0 it is given to when it runs), which can only be longer than *seconds*: the test
# allows for that (no timed assertion), see the bucket check below.
_MIDS = [b / 2 for b in BUCKETS[:1]] + [
    (a + b) / 2 for a, b in zip(BUCKETS, BUCKETS[1:], strict=False)] + [BUCKETS[-1] * 2]


class _Peer:
    def __init__(self) -> None:
        self.replies: list[tuple[Any, Any, int]] = []

    def reply(self, request: Any, answer: Any, t0: int = 0) -> None:
        self.replies.append((request, answer, t0))


@settings(max_examples=40, deadline=None)
@given(obs=st.lists(st.tuples(st.sampled_from(sorted(OUTCOME_RESULT_CODE, key=str)),
                              st.sampled_from(_MIDS)), min_size=1, max_size=30))
def test_durable_records_what_metrics_observe_records(obs: list[tuple[Any, float]]) -> None:
    twin_metrics, spec = Metrics(), Metrics()
    agent = SimpleNamespace(smap=None, peers={}, clock=time.time, metrics=twin_metrics)
    resp = _LANE.Responder(agent, spec=None, twin=None, encode=None, rc_by_id=_RC_BY_ID,
                           resume=None, buckets=BUCKETS)
    peer = _Peer()
    start = time.perf_counter_ns()
    for i, (outcome, seconds) in enumerate(obs):
        t0 = time.perf_counter_ns() - int(seconds * 1e9)
        _LANE.Durable(resp, peer, f"req{i}", None, b"answer", t0, outcome)(None)
        spec.observe("CCR", OUTCOME_RESULT_CODE[outcome], seconds)
    assert twin_metrics.requests == spec.requests
    twin_h, spec_h = twin_metrics._hist["CCR"], spec._hist["CCR"]
    assert len(twin_h) == len(spec_h) == len(BUCKETS) + 1 and sum(twin_h) == sum(spec_h)
    # each observation lands in the spec's bucket or a later one (it ran later, never
    # earlier): counted from the top, the twin has at least as many at or above each bound
    for k in range(len(spec_h)):
        assert sum(twin_h[k:]) >= sum(spec_h[k:])
    assert twin_metrics._sum["CCR"] >= spec._sum["CCR"] - 1e-6
    # and no later than the spec's bucket of seconds + the whole loop's duration (a bound on
    # any delay, measured after the fact): counted from the bottom, at least as many
    late = (time.perf_counter_ns() - start) * 1e-9
    bound = Metrics()
    for outcome, seconds in obs:
        bound.observe("CCR", OUTCOME_RESULT_CODE[outcome], seconds + late)
    bound_h = bound._hist["CCR"]
    for k in range(1, len(bound_h) + 1):
        assert sum(twin_h[:k]) >= sum(bound_h[:k])
    assert [r[0] for r in peer.replies] == [f"req{i}" for i in range(len(obs))]
    assert all(r[1] == b"answer" for r in peer.replies)
