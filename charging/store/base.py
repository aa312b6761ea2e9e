"""The balance-store contract shared by the embedded store and the Redis store.

Amounts are integers: micro-units for money balances, plain units (seconds, events, octets)
for unit buckets. Every mutating operation is atomic and idempotent by its caller-given
``key``: calling it again with the same key returns the first result (``replayed=True``) and
changes nothing. A balance never goes below ``-credit_limit`` (invariant 4, no overdraw):
``available = amount - reserved + credit_limit`` is never negative.

Callers (the ledger in charging/ledger.py) must journal an operation's ``effects`` and
``holds`` before answering the network (invariant 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from cython_ext import load


class AccountKind(str, Enum):
    PREPAID_SUBSCRIBER = "prepaid_subscriber"
    PREPAID_PARTNER = "prepaid_partner"
    POSTPAID_PARTNER = "postpaid_partner"


class BalanceKind(str, Enum):
    MONEY = "money"
    SECONDS = "seconds"
    EVENTS = "events"  # SMS / MMS / content items
    OCTETS = "octets"


class OpStatus(str, Enum):
    OK = "ok"
    INSUFFICIENT = "insufficient"  # would pass the credit limit
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_BALANCE = "unknown_balance"
    UNKNOWN_RESERVATION = "unknown_reservation"  # never existed, committed, released or expired
    EXPIRED = "expired"  # the bucket has expired
    OUT_OF_RANGE = "out_of_range"  # the result would leave the exact range (|x| <= MAX_AMOUNT)


MAX_AMOUNT = 2**53 - 1
"""Largest magnitude any amount, balance, hold or ``amount + credit_limit`` may reach.

Lua numbers in Redis are doubles; every integer up to 2**53 is exact there, so both stores keep
every stored quantity and every intermediate sum within +/-MAX_AMOUNT. An op whose result would
pass it answers OUT_OF_RANGE (cached like any result); an argument outside [0, MAX_AMOUNT]
raises ValueError before anything is touched.
"""


def to_us(t: float) -> int:
    """Epoch seconds -> integer epoch microseconds (how both stores keep expiry times)."""
    return int(round(t * 1_000_000))


@dataclass(frozen=True, slots=True)
class BalanceSpec:
    """A balance to create on an account."""

    id: str  # unique within the account: "EUR", "voice-seconds", ...
    kind: BalanceKind
    currency: str | None = None  # ISO 4217 for money balances, None for unit buckets
    amount: int = 0
    credit_limit: int = 0  # postpaid: may go down to -credit_limit
    priority: int = 0  # lower is consumed first when a caller picks among buckets
    expires_at: float | None = None  # epoch seconds; an expired bucket refuses new holds
    low_threshold: int | None = None  # crossing below raises a LowBalance event


@dataclass(frozen=True, slots=True)
class BalanceView:
    """A balance as it stands. ``available = amount - reserved + credit_limit``."""

    id: str
    kind: BalanceKind
    currency: str | None
    amount: int
    reserved: int
    credit_limit: int
    priority: int
    expires_at: float | None

    @property
    def available(self) -> int:
        return self.amount - self.reserved + self.credit_limit


@dataclass(frozen=True, slots=True)
class AccountView:
    account: str
    kind: AccountKind
    balances: tuple[BalanceView, ...]
    identities: tuple[str, ...] = ()


# Effect, Hold and OpResult are built on every money operation: they are slots dataclasses
# WITHOUT frozen=True because a frozen dataclass costs ~5x more to construct (object.__setattr__
# per field; measured 3.1 us vs 0.6 us for OpResult here), which alone would cap the embedded
# store far below its 200k pairs/s target. Treat them as immutable: never assign to a field.
# unsafe_hash keeps them hashable by value, as the frozen versions were.
@dataclass(slots=True, unsafe_hash=True)
class Effect:
    """A settled money/unit movement (debit negative). Journaled as ``balance_effects``."""

    account: str
    balance: str
    amount: int


@dataclass(slots=True, unsafe_hash=True)
class Hold:
    """A reservation change: ``amount`` > 0 places a hold, < 0 removes (part of) it.

    ``expires_at`` is the reservation's expiry after the change; ``None`` means the reservation
    is gone (committed with release_rest, released, expired). Replaying holds in journal order
    (``apply_record``) rebuilds the reservations exactly.
    """

    account: str
    balance: str
    reservation: str
    amount: int
    expires_at: float | None


@dataclass(slots=True, unsafe_hash=True)
class OpResult:
    """What an operation did. The same key always returns the same result."""

    key: str
    status: OpStatus
    effects: tuple[Effect, ...] = ()
    holds: tuple[Hold, ...] = ()
    granted: int = 0  # reserve: units held; debit: units debited; commit: units debited
    balance_after: int | None = None  # amount after the op (None when unknown account)
    available_after: int | None = None
    replayed: bool = False
    low_balance: bool = False  # this op took the balance below its low threshold
    events: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status is OpStatus.OK


class BalanceStore(Protocol):
    """The contract. Every method is a coroutine; ``now`` is epoch seconds (tests pass it)."""

    async def create_account(
        self,
        account: str,
        kind: AccountKind,
        balances: list[BalanceSpec],
        identities: list[str] = ...,
    ) -> None:
        """Create (or replace, when absent) an account. Idempotent for identical input."""

    async def resolve(self, identity: str) -> str | None:
        """Map an identity (E.164, IMSI, SIP URI, SMPP system_id) to an account id."""

    async def get(self, account: str) -> AccountView | None: ...

    async def reserve(
        self, key: str, account: str, balance: str, reservation: str, amount: int,
        *, ttl: float, now: float, partial: bool = False,
    ) -> OpResult:
        """Hold ``amount`` (or, with ``partial``, as much as is available, possibly 0 -> OK
        with granted=0 only if amount==0, else INSUFFICIENT). Re-reserving an existing
        reservation id adds to it and refreshes its expiry."""

    async def commit(
        self, key: str, account: str, balance: str, reservation: str, used: int,
        *, now: float, release_rest: bool = True,
    ) -> OpResult:
        """Debit ``used`` against the reservation; release the rest when ``release_rest``.
        ``used`` beyond the hold is debited too as far as the credit limit allows; what
        cannot be covered is reported via granted < used."""

    async def release(
        self, key: str, account: str, balance: str, reservation: str, *, now: float
    ) -> OpResult: ...

    async def debit(
        self, key: str, account: str, balance: str, amount: int,
        *, now: float, partial: bool = False,
    ) -> OpResult: ...

    async def refund(
        self, key: str, account: str, balance: str, amount: int, *, now: float
    ) -> OpResult: ...

    async def topup(
        self, key: str, account: str, balance: str, amount: int, *, now: float
    ) -> OpResult: ...

    async def expire_reservations(self, *, now: float, limit: int = 1000) -> list[OpResult]:
        """Release every reservation whose TTL has passed; each result is to be journaled."""

    async def pending_ops(self) -> list[OpResult]:
        """Ops that changed the store but were never confirmed journaled (crash recovery).
        Redis keeps them in per-slot ``{T}:unj`` sets; the embedded store always answers []."""

    async def confirm_journaled(self, keys: list[tuple[str, str]]) -> None:
        """Forget (account, op key) pairs once their journal records are durable."""

    async def close(self) -> None: ...


# The compiled twins of Effect / Hold / OpResult (cython_ext/store_results.pyx): same
# constructor, fields, ``ok``, ==, hash and repr (tests/charging/store/test_result_classes.py),
# built from a free list and freed without the cyclic GC -- building and freeing the dataclass
# instances above was a quarter of the embedded store's cost per reserve+commit pair. The
# dataclasses stay the reference (PyEffect / PyHold / PyOpResult) and are what
# ICX_NO_EXTENSIONS=1 or an unbuilt tree uses. Type checkers see the dataclasses.
PyEffect, PyHold, PyOpResult = Effect, Hold, OpResult
if not TYPE_CHECKING:
    _results = load("store_results")
    if _results is not None:
        _results.bind(OpStatus.OK, PyEffect, PyHold, PyOpResult)
        Effect, Hold, OpResult = _results.Effect, _results.Hold, _results.OpResult
