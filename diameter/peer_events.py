"""Events returned by :meth:`diameter.peer.PeerConnection.receive_data` and ``handle_timer``.

Like h2/h11 events these are plain records: the caller reacts (hand a request to the
application, log, close the transport) and the peer object never calls back into the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from diameter.peer_states import PeerState
from diameter.watchdog import WatchdogState

if TYPE_CHECKING:
    from diameter.errors import DiameterError
    from diameter.message import Message


class Event:
    """Base class of every peer event."""

    __slots__ = ()


@dataclass(slots=True)
class CapabilitiesExchanged(Event):
    """CER/CEA completed: the connection is open (R-Open or I-Open)."""

    peer_host: str
    peer_realm: str
    applications: frozenset[int]  # negotiated (common) application ids; relay = 0xFFFFFFFF
    cer: Message | None = None  # the peer's CER (responder) or CEA (initiator)


@dataclass(slots=True)
class RequestReceived(Event):
    """An application request the caller must answer with ``send_answer`` (exactly once)."""

    message: Message
    received_at: float = 0.0


@dataclass(slots=True)
class AnswerReceived(Event):
    """An answer to one of our ``send_request`` calls (matched by Hop-by-Hop)."""

    message: Message
    request: Message | None = None


@dataclass(slots=True)
class WatchdogStateChanged(Event):
    """RFC 3539 state change: OKAY/SUSPECT/DOWN/REOPEN (SUSPECT: route traffic elsewhere)."""

    old: WatchdogState
    new: WatchdogState


@dataclass(slots=True)
class PeerClosing(Event):
    """A DPR was received (and answered) or sent; *cause* is the Disconnect-Cause."""

    disconnect_cause: int
    by_peer: bool


@dataclass(slots=True)
class ConnectionTerminated(Event):
    """The connection is finished: the caller must close the transport after flushing
    ``data_to_send()``. *abort*: framing was lost, an RST is appropriate (facts A6)."""

    reason: str
    abort: bool = False


@dataclass(slots=True)
class ProtocolErrorEvent(Event):
    """The peer sent something wrong; it was answered (or dropped) as RFC 6733 §7 says."""

    error: DiameterError | None
    description: str
    answered: bool = False


@dataclass(slots=True)
class StateChanged(Event):
    """The RFC 6733 §5.6 state changed (mostly for logs and tests)."""

    old: PeerState
    new: PeerState
    extra: dict[str, object] = field(default_factory=dict)
