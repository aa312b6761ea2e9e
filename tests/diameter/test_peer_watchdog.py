"""RFC 3539 watchdog on a fake clock: OKAY -> SUSPECT -> DOWN, failback, REOPEN needs 3 DWAs."""

from __future__ import annotations

import pytest

from diameter.watchdog import Watchdog, WatchdogAction, WatchdogState


def fixed(x: float):  # noqa: ANN201 - tiny helper
    return lambda: x


def test_tw_minimum_is_enforced() -> None:
    with pytest.raises(ValueError):
        Watchdog(5.0)


@pytest.mark.parametrize(("r", "expected"), [(0.0, 28.0), (0.5, 30.0), (0.999999, 32.0)])
def test_jitter_is_plus_minus_two_seconds(r: float, expected: float) -> None:
    wd = Watchdog(30.0, rng=fixed(r))
    wd.connection_up(100.0)
    assert wd.deadline == pytest.approx(100.0 + expected, abs=1e-4)


def test_okay_suspect_down() -> None:
    wd = Watchdog(30.0, rng=fixed(0.5))
    assert wd.connection_up(0.0) == []
    assert wd.state is WatchdogState.OKAY
    assert wd.expire(30.0) == [WatchdogAction.SEND_DWR]
    assert wd.pending
    assert wd.expire(60.0) == []
    assert wd.state is WatchdogState.SUSPECT
    assert wd.expire(90.0) == [WatchdogAction.CLOSE]
    assert wd.state is WatchdogState.DOWN
    assert wd.deadline is None


def test_traffic_postpones_the_dwr_and_suspect_fails_back() -> None:
    wd = Watchdog(30.0, rng=fixed(0.5))
    wd.connection_up(0.0)
    wd.received(20.0, is_dwa=False)
    assert wd.deadline == 50.0
    wd.expire(50.0)
    wd.expire(80.0)
    assert wd.state is WatchdogState.SUSPECT
    wd.received(81.0, is_dwa=True)
    assert wd.state is WatchdogState.OKAY and not wd.pending


def test_reopen_needs_three_good_exchanges() -> None:
    wd = Watchdog(6.0, rng=fixed(0.5))
    assert wd.connection_up(0.0, reopen=True) == [WatchdogAction.SEND_DWR]
    assert wd.state is WatchdogState.REOPEN
    for i in range(2):
        wd.received(1.0 + i, is_dwa=True)
        assert wd.state is WatchdogState.REOPEN
        assert wd.expire(wd.deadline or 0) == [WatchdogAction.SEND_DWR]
    wd.received(20.0, is_dwa=False)  # ordinary traffic does not count in REOPEN
    assert wd.state is WatchdogState.REOPEN
    wd.received(21.0, is_dwa=True)
    assert wd.state is WatchdogState.OKAY


def test_reopen_missing_answers_close() -> None:
    wd = Watchdog(6.0, rng=fixed(0.5))
    wd.connection_up(0.0, reopen=True)
    assert wd.expire(6.0) == []  # one missed DWA: one more Tw
    assert wd.expire(12.0) == [WatchdogAction.CLOSE]
    assert wd.state is WatchdogState.DOWN
