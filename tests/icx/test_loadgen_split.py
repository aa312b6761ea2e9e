"""How `icx bench diameter` shares its totals among worker processes: connections, sessions
and the request rate each add up to what was asked, the remainder going to the first workers
(``--rate 10001`` over 2 processes paced 5000.5 + 5000.5 requests/s, and each process sent
whole requests only: 10,000 a second instead of 10,001)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from icx.loadgen import LoadConfig, plan_split, split_evenly, split_rate


def test_split_evenly_gives_the_remainder_to_the_first() -> None:
    assert split_evenly(10001, 2) == [5001, 5000]
    assert split_evenly(7, 3) == [3, 2, 2]
    assert split_evenly(4, 4) == [1, 1, 1, 1]
    assert split_evenly(0, 3) == [0, 0, 0]


@given(st.integers(0, 10**9), st.integers(1, 64))
def test_split_evenly_adds_up(total: int, parts: int) -> None:
    shares = split_evenly(total, parts)
    assert len(shares) == parts and sum(shares) == total
    assert max(shares) - min(shares) <= 1 and shares == sorted(shares, reverse=True)


def test_split_rate_in_whole_requests_per_second() -> None:
    assert split_rate(10001.0, 2) == [5001.0, 5000.0]
    assert split_rate(2000.0, 3) == [667.0, 667.0, 666.0]
    assert split_rate(2.5, 2) == [1.5, 1.0]  # the fraction goes to the first worker
    assert split_rate(0.5, 1) == [0.5]
    assert split_rate(0.0, 3) == [0.0, 0.0, 0.0]  # closed loop everywhere


@given(st.integers(1, 10**6), st.integers(0, 99), st.integers(1, 16))
def test_split_rate_adds_up_exactly(whole: int, cents: int, parts: int) -> None:
    rate = whole + cents / 100
    parts = min(parts, whole)
    shares = split_rate(rate, parts)
    assert sum(shares) == rate and all(s >= 1 for s in shares)
    assert all(s == int(s) for s in shares[1:])  # only the first carries a fraction


def test_the_plan_never_gives_a_worker_nothing_to_do() -> None:
    """No more processes than connections, sessions, or requests per second (a rate share
    of 0 would be a closed loop: as fast as answered)."""
    plan = plan_split(LoadConfig(connections=5, processes=2, rate=10001, sessions=3))
    assert plan == [(3, 2, 5001.0), (2, 1, 5000.0)]
    assert plan_split(LoadConfig(connections=8, processes=4, rate=2.5)) == [
        (4, 0, 1.5), (4, 0, 1.0)]
    assert plan_split(LoadConfig(connections=8, processes=4, rate=0.5)) == [(8, 0, 0.5)]
    assert plan_split(LoadConfig(connections=3, processes=8, rate=0)) == [
        (1, 0, 0.0), (1, 0, 0.0), (1, 0, 0.0)]
