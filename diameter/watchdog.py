"""The RFC 3539 §3.4 transport watchdog, as required by RFC 6733 §5.5 (sans-IO, time is an argument).

One :class:`Watchdog` belongs to one transport connection. The owner
(:class:`diameter.peer.PeerConnection`) calls :meth:`connection_up` once the capabilities
exchange is done, :meth:`received` for every message from the peer, and :meth:`expire` when
``now >= deadline``; each call returns the :class:`WatchdogAction` values to perform (send a DWR,
close the connection). State changes are reported through :attr:`state`.

RFC 3539 states: INITIAL -> OKAY <-> SUSPECT -> DOWN -> REOPEN -> OKAY. DOWN and the reconnect
attempt (AttemptOpen) live in the adapter's client, which reconnects every Tc and builds a new
connection with ``reopen=True``; REOPEN then needs three good DWR/DWA exchanges before the link
is trusted again (RFC 3539 §3.4.1, RFC 6733 §5.5.4).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

TWINIT_MIN = 6.0  # RFC 3539 §3.4.1 / RFC 4006 §5.7: Tw must not be set below 6 s
JITTER = 2.0  # RFC 3539 §3.4.1: each interval is TWINIT ± up to 2 s
REOPEN_GOOD_DWA = 3  # RFC 3539 §3.4.1 / RFC 6733 §5.5.4


class WatchdogState(enum.Enum):
    INITIAL = "initial"
    OKAY = "okay"
    SUSPECT = "suspect"
    DOWN = "down"
    REOPEN = "reopen"


class WatchdogAction(enum.Enum):
    SEND_DWR = "send-dwr"
    CLOSE = "close"


class Watchdog:
    """Tw watchdog for one connection; call :meth:`expire` at :attr:`deadline`."""
    # Slots: the compiled lane re-arms the watchdog at the field's offset (slot_layout.pxi).
    __slots__ = (
        "_rng", "deadline", "num_dwa", "pending", "state", "twinit",
    )


    def __init__(self, twinit: float, rng: Callable[[], float] | None = None) -> None:
        """*twinit* seconds (>= 6); *rng* returns a float in [0, 1) (tests pass a fixed one)."""
        if twinit < TWINIT_MIN:
            raise ValueError(f"Tw must be at least {TWINIT_MIN} s (RFC 3539 §3.4.1), got {twinit}")
        self.twinit = twinit
        self._rng = rng or random.random
        self.state = WatchdogState.INITIAL
        self.pending = False
        self.num_dwa = 0
        self.deadline: float | None = None

    def _set_watchdog(self, now: float) -> None:
        # SetWatchdog(): Tw = TWINIT + a random jitter in [-2, +2] s (RFC 3539 §3.4.1), so peers
        # that started together do not send their DWRs in lock-step.
        self.deadline = now + self.twinit - JITTER + 2 * JITTER * self._rng()

    def connection_up(self, now: float, *, reopen: bool = False) -> list[WatchdogAction]:
        """The connection is open (CER/CEA done). *reopen*: it replaces one that failed."""
        if reopen:
            self.state = WatchdogState.REOPEN
            self.num_dwa = 0
            self.pending = True
            self._set_watchdog(now)
            return [WatchdogAction.SEND_DWR]
        self.state = WatchdogState.OKAY
        self.num_dwa = 0
        self.pending = False
        self._set_watchdog(now)
        return []

    def received(self, now: float, *, is_dwa: bool) -> list[WatchdogAction]:
        """Any message arrived from the peer (a DWA, or anything else)."""
        st = self.state
        if st is WatchdogState.OKAY:
            if is_dwa:
                self.pending = False
            self._set_watchdog(now)
        elif st is WatchdogState.SUSPECT:
            # Failback: any traffic proves the link is alive again.
            if is_dwa:
                self.pending = False
            self.state = WatchdogState.OKAY
            self._set_watchdog(now)
        elif st is WatchdogState.REOPEN:
            if is_dwa:
                self.pending = False
                self.num_dwa += 1
                if self.num_dwa >= REOPEN_GOOD_DWA:
                    self.state = WatchdogState.OKAY
                    self._set_watchdog(now)
            # non-DWA traffic in REOPEN: "Throwaway" — it does not count towards trust.
        return []

    def expire(self, now: float) -> list[WatchdogAction]:
        """The deadline passed: send a DWR, go SUSPECT, or give up (close)."""
        st = self.state
        if st is WatchdogState.OKAY:
            self._set_watchdog(now)
            if not self.pending:
                self.pending = True
                return [WatchdogAction.SEND_DWR]
            self.state = WatchdogState.SUSPECT  # Failover: no answer within Tw
            return []
        if st is WatchdogState.SUSPECT:
            self.state = WatchdogState.DOWN
            self.deadline = None
            return [WatchdogAction.CLOSE]
        if st is WatchdogState.REOPEN:
            self._set_watchdog(now)
            if not self.pending:
                self.pending = True
                return [WatchdogAction.SEND_DWR]
            if self.num_dwa < 0:
                self.state = WatchdogState.DOWN
                self.deadline = None
                return [WatchdogAction.CLOSE]
            self.num_dwa = -1  # one missed answer: one more Tw, then close
            return []
        return []

    def connection_down(self) -> None:
        """The transport went away."""
        self.state = WatchdogState.DOWN
        self.deadline = None
