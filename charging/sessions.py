"""The charging-session table: compact per-session state and Tcc supervision driven by ``now``.

RFC 4006 §7 (server state machine, facts B5): a session is *Open* from a successful INITIAL
until TERMINATE, a failed UPDATE, or Tcc expiry. Tcc is restarted by every request; a silent
session is closed by :meth:`SessionTable.expired` (the caller releases its reservations and
writes a record). No timers live here: the owner calls ``expired(now)`` periodically, so tests
drive time explicitly (aioquic style).

Memory: 100,000 open sessions must fit in a few hundred MB, so :class:`Session` and
:class:`Grant` use ``__slots__`` and the table is one insertion-ordered dict kept in
last-activity order (``touch`` moves a session to the end), which makes expiry O(expired).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from charging.requests import ServiceKind, UnitKind


class Grant:
    """The quota state of one rating group (or service id) inside a session."""

    __slots__ = ("key", "service", "unit", "granted", "used_total", "cost_total", "held",
                 "held_n", "final", "svc", "rsvc", "priced_u", "priced_c", "fields", "tariff",
                 "undo", "plan", "hold_key")

    def __init__(self, key: int, service: ServiceKind, unit: UnitKind) -> None:
        self.key = key  # rating group / service id; -1 for command-level units
        self.service = service
        self.unit = unit
        self.granted = 0  # units currently granted and not yet reported
        self.used_total = 0  # units reported as used over the whole session
        self.cost_total = 0  # micro-units committed over the whole session
        self.held = 0  # micro-units currently held for this grant
        self.held_n = -1  # request number that placed the current hold (-1 = none)
        self.final = False  # the last grant the balance allows was given (FUI sent)
        # Per-grant caches of the charging service (built once per session, not per op):
        self.svc = service.value  # journal `service`
        self.rsvc: Any = None  # the rater's service object (set by the service)
        self.priced_u = -1  # cumulative units last priced (at the session start) ...
        self.priced_c = 0  # ... and their price, micro-units
        self.fields: dict[str, Any] | None = None  # constant fields of its rated records
        self.tariff: dict[str, str] | None = None  # deck_version / prefix / destination
        # (slice key, held_n, used_total, cost_total, held, granted, hold_key) before the last
        # commit: a retry of that request (it failed later, answered 5012) starts from this
        # state, so its commit replays by key instead of charging the usage a second time
        self.undo: tuple[str, int, int, int, int, int, str | None] | None = None
        # The compiled fast path's rating shortcut (cython_ext/charging_slice.pyx: the tariff
        # row its prices come from, see RatingEngine.price_plan); None = not looked up yet.
        self.plan: Any = None
        # The idempotency key of the reserve op that placed the current hold (None = none):
        # what the server's own release of that hold is keyed by (ServiceCore._release_all).
        # Unlike Session-Id + rating group + held_n it names one hold only: a reserve that
        # placed a hold was a new op (a replayed key places none), so a Session-Id reused for
        # another session never gets its release answered from the first session's record.
        # (The embedded store keeps this very str as the op's key: a pointer per grant.)
        self.hold_key: str | None = None

    def hold_id(self, session_id: str, number: int | None = None) -> str:
        """Store reservation id of the hold placed by request *number* (default: current).
        Ids are derived, not stored, to keep 100,000 sessions small."""
        return f"{session_id}|{self.key}|{self.held_n if number is None else number}"


class Session:
    """One open charging session (Ro) or accounting session (Rf)."""

    __slots__ = ("id", "account", "balance", "currency", "service", "subscriber", "destination",
                 "origin", "peer_host", "peer_realm", "deck", "started", "expires", "last_number",
                 "grants", "offline", "seen", "context", "answer_n", "answer", "answer_key",
                 "killed", "counters", "tag")

    def __init__(
        self,
        *,
        session_id: str,
        account: str | None,
        balance: str | None,
        currency: str | None,
        service: ServiceKind,
        subscriber: str | None,
        destination: str | None,
        origin: str | None,
        peer_host: str,
        peer_realm: str,
        deck: str,
        started: float,
        expires: float,
        offline: bool = False,
        context: str = "",
        tag: str = "",
    ) -> None:
        self.id = session_id
        self.account = account
        self.balance = balance
        self.currency = currency
        self.service = service
        self.subscriber = subscriber
        self.destination = destination
        self.origin = origin
        self.peer_host = peer_host
        self.peer_realm = peer_realm
        self.deck = deck
        self.started = started
        self.expires = expires
        self.last_number = 0
        self.grants: list[Grant] = []  # usually one: a list is smaller than a dict
        self.offline = offline
        # Rf: record numbers seen (duplicates are dropped); Ro leaves it None.
        self.seen: set[int] | None = set() if offline else None
        self.context = context
        self.answer_n = -1  # CC-Request-Number of the last answered request
        self.answer: Any = None  # its ChargingResult (retransmits get it back)
        self.answer_key = ""  # its idempotency key (where the answer moves when replaced)
        # Operator kill answered ASA 2001: when the service releases the hold itself if no
        # CCR-T comes first (epoch seconds); None = not killed.
        self.killed: float | None = None
        # Rf: the RFC 7155 octet counters as read so far, [input counted before the last
        # reset, last input reading, output counted before its last reset, last output
        # reading] (charging/service_offline.py); None until a record carries them. Replaced
        # whole, never changed in place (a checkpoint being written may hold the old list).
        self.counters: list[int] | None = None
        # Ro: this session's own mark ("~" + hex, ServiceCore._new_tag: unique across
        # restarts), fixed at its INITIAL and put into every op key of it (the slice part,
        # ``ro:<Session-Id>:<n>:<slice>~<tag>:<op>``) and its ro_end record's: a client
        # reusing the Session-Id for a new session after this one ended (and was forgotten,
        # [store] session_retention) gets keys of its own, not this session's (which the
        # store may still remember: each op of the new session would be answered from this
        # one's record, nothing charged). "" for Rf sessions and events.
        self.tag = tag

    @property
    def reserved(self) -> int:
        """Micro-units currently held for this session."""
        return sum(g.held for g in self.grants)

    @property
    def cost_total(self) -> int:
        grants = self.grants
        if len(grants) == 1:
            return grants[0].cost_total
        return sum(g.cost_total for g in grants)

    def grant(self, key: int) -> Grant | None:
        for g in self.grants:
            if g.key == key:
                return g
        return None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view for the operator API (amounts as integer micro-units)."""
        return {
            "session_id": self.id,
            "account": self.account,
            "subscriber": self.subscriber,
            "service": self.service.value,
            "destination": self.destination,
            "peer": self.peer_host,
            "offline": self.offline,
            "started": self.started,
            "expires": self.expires,
            "last_request": self.last_number,
            "reserved_micros": self.reserved,
            "cost_micros": self.cost_total,
            "currency": self.currency,
            "killed": self.killed is not None,
            "grants": [
                {"key": g.key, "unit": g.unit.value, "granted": g.granted, "used": g.used_total,
                 "final": g.final}
                for g in self.grants
            ],
        }


class SessionTable:
    """Open sessions by Session-Id, kept in last-activity order for O(expired) supervision.

    The caller must :meth:`touch` a session with its new expiry after every request, and
    :meth:`pop` it when it ends. Limits are the caller's (``len(table)`` vs a setting).
    """

    __slots__ = ("_sessions",)

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def getter(self) -> Callable[[str], Session | None]:
        """:meth:`get` as the table's bound ``dict.get`` (no Python frame per lookup); valid
        for the table's lifetime (the dict is never replaced)."""
        return self._sessions.get

    def add(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        self._sessions[session.id] = session

    def touch(self, session: Session, expires: float) -> None:
        """Restart the session's Tcc: it now expires at *expires* (moves it to the end).

        Expiries must be non-decreasing in call order (one Tcc value per table) for
        :meth:`expired` to stay O(expired); a shorter Tcc only delays expiry by a sweep.
        """
        session.expires = expires
        sessions = self._sessions
        if sessions.get(session.id) is session:
            del sessions[session.id]
            sessions[session.id] = session

    def pop(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def expired(self, now: float, limit: int = 10_000) -> list[Session]:
        """Remove and return up to *limit* sessions whose Tcc ran out at *now*."""
        out: list[Session] = []
        sessions = self._sessions
        for session in sessions.values():
            if session.expires > now or len(out) >= limit:
                break
            out.append(session)
        for session in out:
            del sessions[session.id]
        return out

    def reserved_total(self) -> int:
        """Micro-units held over every open session (for /metrics)."""
        return sum(s.reserved for s in self._sessions.values())


# EndedSessions keys: the Session-Id's hash, 60 bits (an int of two 30-bit digits: 32 bytes)
ENDED_KEY_MASK = (1 << 60) - 1


class EndedSessions:
    """Session-Ids of online sessions that ended recently (a CCR-T, a failed UPDATE, Tcc, an
    operator kill), each remembered until a time the caller gives (its end + ``[store]
    session_retention``): a CCR-I for one of them within that is a late one -- its session
    no longer exists (OnlineCharging._refused_initial answers it 5002) -- not a new session
    to open around a hold already given back.

    Compact, as there are many: 100,000 sessions ending a minute (10,000 CCR/s) kept 300 s
    is 500,000 entries. One dict from the Session-Id's hash (``hash(sid) & ENDED_KEY_MASK``:
    the id itself, ~90 bytes, is not kept) to the entry's expiry rounded UP to the whole
    second, so the entries of one second share one float. Measured (tracemalloc, 500,000
    entries): 74 bytes an entry (the int 32, the dict's share ~42) -- 37 MB for the example;
    at most ``limit`` entries (the oldest forgotten first: a shorter window under a flood).
    Two ids whose hashes agree in 60 bits are one entry: a new session refused with
    probability ~ entries / 2**60 (1e-12 at 10**6 entries); the hash is keyed per process.

    The dict is kept in end order (an id ending again moves to the end), so :meth:`forget`
    is O(expired). The compiled fast path (cython_ext/charging_slice.pyx) reads ``until`` and
    adds to it the same way; this class is its spec."""

    __slots__ = ("until", "limit", "_stamp")

    def __init__(self, limit: int = 1_000_000) -> None:
        self.until: dict[int, float] = {}  # hash key -> expiry (epoch seconds, whole)
        self.limit = limit
        self._stamp = 0.0  # the last expiry given out (shared by the entries of its second)

    def __len__(self) -> int:
        return len(self.until)

    def add(self, session_id: str, until: float) -> None:
        """Remember *session_id* until *until* (at least; at most a second more)."""
        stamp = self._stamp
        if not stamp - 1.0 < until <= stamp:  # not this second's: the next whole second
            stamp = self._stamp = float(math.ceil(until))
        k = hash(session_id) & ENDED_KEY_MASK
        d = self.until
        if k in d:
            del d[k]  # (ended again: to the end, end order)
        d[k] = stamp
        if len(d) > self.limit:
            self.trim()

    def ended(self, session_id: str, now: float) -> bool:
        """Whether *session_id* ended and is still remembered at *now*."""
        t = self.until.get(hash(session_id) & ENDED_KEY_MASK)
        return t is not None and t > now

    def forget(self, now: float) -> int:
        """Drop the entries expired at *now* (the oldest first); returns how many."""
        d = self.until
        gone = []
        for k, t in d.items():
            if t > now:
                break
            gone.append(k)
        for k in gone:
            del d[k]
        return len(gone)

    def trim(self) -> None:
        """Past ``limit``: drop the oldest eighth of it (one pass, not one per add)."""
        d = self.until
        excess = len(d) - self.limit
        if excess <= 0:
            return
        drop = []
        for k in d:
            drop.append(k)
            if len(drop) >= excess + self.limit // 8:
                break
        for k in drop:
            del d[k]
