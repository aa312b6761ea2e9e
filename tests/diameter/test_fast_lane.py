"""The per-request fast lane (issue 5): what it skips must not change what the peer sees.

- DuplicateCache.claim == lookup + begin-on-MISS, on random operation sequences (with time
  going backwards too), against a plain model of the cache; the expiry shortcut never keeps
  an entry the full walk would drop;
- a request refused with 3004 leaves no duplicate-cache entry, and a retransmission of an
  answered request still gets the stored answer while the peer is at its in-flight limit;
- an application request on an open connection still pushes the watchdog deadline;
- check_request's command memo stays bounded however many (code, app) pairs a peer names,
  and the header checks keep their documented order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter import validate
from diameter.duplicates import DuplicateCache, Lookup
from diameter.errors import DiameterError
from diameter.message import Message, decode_message
from diameter.peer_events import AnswerReceived, RequestReceived
from tests.diameter.peer_helpers import SERVER, ccr, of
from tests.diameter.test_peer_pair import open_pair


class _Model:
    """The cache as documented, written the slow obvious way (walk the head every time)."""

    def __init__(self, lifetime: float, max_entries: int) -> None:
        self.lifetime, self.max = lifetime, max_entries
        self.e: OrderedDict[tuple[str, int], tuple[float, bytes | None]] = OrderedDict()

    def lookup(self, k: tuple[str, int], now: float) -> Lookup | bytes:
        while self.e:
            k0, (t, _) = next(iter(self.e.items()))
            if t > now - self.lifetime:
                break
            del self.e[k0]
        hit = self.e.get(k)
        if hit is None:
            return Lookup.MISS
        return Lookup.PENDING if hit[1] is None else hit[1]

    def begin(self, k: tuple[str, int], now: float) -> None:
        if self.lifetime <= 0:
            return
        self.e[k] = (now, None)
        self.e.move_to_end(k)
        while len(self.e) > self.max:
            self.e.popitem(last=False)

    def complete(self, k: tuple[str, int], ans: bytes) -> None:
        if k in self.e:
            self.e[k] = (self.e[k][0], ans)

    def abandon(self, k: tuple[str, int]) -> None:
        if k in self.e and self.e[k][1] is None:
            del self.e[k]


_OPS = st.lists(
    st.tuples(st.sampled_from(["claim", "lookup", "begin", "complete", "abandon"]),
              st.integers(0, 6), st.floats(-2.0, 6.0, allow_nan=False)),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(ops=_OPS, lifetime=st.sampled_from([0.0, 1.0, 3.0]), cap=st.integers(1, 5))
def test_claim_matches_lookup_then_begin(ops: list[tuple[str, int, float]], lifetime: float,
                                         cap: int) -> None:
    cache, model = DuplicateCache(lifetime, cap), _Model(lifetime, cap)
    now = 0.0
    for op, e2e, dt in ops:
        now += dt  # mostly forwards, sometimes backwards (a clock is an argument)
        k = ("c", e2e)
        if op == "claim":
            want = model.lookup(k, now)
            if want is Lookup.MISS:
                model.begin(k, now)
            assert cache.claim(k, now) == want
        elif op == "lookup":
            assert cache.lookup(k, now) == model.lookup(k, now)
        elif op == "begin":
            cache.begin(k, now)
            model.begin(k, now)
        elif op == "complete":
            cache.complete(k, b"a%d" % e2e)
            model.complete(k, b"a%d" % e2e)
        else:
            cache.abandon(k)
            model.abandon(k)
        assert list(cache._entries.items()) == list(model.e.items())
        assert list(cache._order) == list(cache._entries)


def test_refused_3004_leaves_no_cache_entry_and_duplicates_still_answered() -> None:
    p = open_pair(server_cfg=replace(SERVER, max_inflight=1))
    p.client.send_request(ccr(session="pgw.client.example;1;0"), p.now)
    p.pump()
    (first,) = of(p.take("server"), RequestReceived)
    p.server.send_answer(first.message.answer([]), p.now)  # answered: cached
    p.pump()
    p.take("client")
    p.client.send_request(ccr(session="pgw.client.example;1;1"), p.now)
    p.pump()
    (held,) = of(p.take("server"), RequestReceived)  # in flight: the limit is reached
    before = len(p.server._dups)
    busy = ccr(session="pgw.client.example;1;2")
    p.client.send_request(busy, p.now)
    p.pump()
    (ans,) = of(p.take("client"), AnswerReceived)
    assert ans.message.get("Result-Code") == 3004
    assert len(p.server._dups) == before  # the refused request was never begun
    # a retransmission of the answered first request: its stored answer, even when busy
    again = decode_message(first.message.encode())
    again.flags |= 0x10
    p.server.receive_data(again.encode(), p.now)
    assert p.server.duplicates_answered == 1 and p.server.data_to_send()
    # the refused request may be sent again later and is then processed
    p.server.send_answer(held.message.answer([]), p.now)
    assert len(of(p.server.receive_data(busy.encode(), p.now), RequestReceived)) == 1


def test_application_request_pushes_the_watchdog_deadline() -> None:
    p = open_pair()
    wd = p.server._watchdog
    assert wd is not None and wd.deadline is not None
    old = wd.deadline
    p.now += 7.0
    p.client.send_request(ccr(session="pgw.client.example;2;0"), p.now)
    p.pump()
    assert wd.deadline == pytest.approx(old + 7.0)  # Tw from the request's arrival


def test_command_memo_is_bounded() -> None:
    base = ccr()
    for app in range(3 * validate._COMMANDS_MAX):
        m = Message.request(272, 100_000 + app, base.avps, proxiable=True)
        with pytest.raises(DiameterError):
            validate.check_request(m)  # CCR outside Ro: 3007 or a grammar error
    assert len(validate._COMMANDS) <= validate._COMMANDS_MAX


@pytest.mark.parametrize(("flags", "version", "code", "want"), [
    (0xC0, 2, 272, 5011),  # version first
    (0x40, 1, 272, 3008),  # R clear
    (0xE0, 1, 272, 3008),  # E set
    (0xC0, 1, 999, 3001),  # unknown command
    (0x80, 1, 257, 3007),  # CER in application 4
])
def test_header_errors_in_order(flags: int, version: int, code: int, want: int) -> None:
    m = Message.request(code, 4, ccr().avps)
    m.flags, m.version = flags, version
    for _ in range(2):  # the second time the command may be remembered: same answer
        with pytest.raises(DiameterError) as exc:
            validate.check_request(m)
        assert exc.value.result_code == want
