"""What the charging service needs from its collaborators, as Protocols.

The service is written against these three small interfaces so that it can be wired to the
real rating engine (charging/rating), the ledger (charging/ledger.py: store op + journal append
in group commit) and a store (charging/store) without knowing their construction. Adapters for
the real objects live in :mod:`charging.service_wiring`.
"""

from __future__ import annotations

from typing import Any, Protocol

from charging.store.base import AccountView, OpResult


class RatedLike(Protocol):
    """The fields of ``charging.rating.RatedPrice`` the service reads."""

    @property
    def price(self) -> int: ...

    @property
    def currency(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def destination(self) -> str: ...

    @property
    def deck_version(self) -> Any: ...


class Rater(Protocol):
    """Prices usage. Must raise an exception listed in ``ServiceConfig.no_tariff_errors`` when
    no tariff applies."""

    def rate(self, *, deck: str, service: Any, destination: str, origin: str | None,
             at: float, usage: int) -> RatedLike: ...

    def max_units(self, *, deck: str, service: Any, destination: str, origin: str | None,
                  at: float, budget: int) -> int: ...


class Ledger(Protocol):
    """Money operations: each runs ONE atomic idempotent store op and enqueues its journal
    record (with the caller's rating ``fields``). Same key -> same result, nothing new written.
    ``wait=True`` returns once the record is durable; ``wait=False`` once it is enqueued, and
    the caller must ``await wait_durable(position)`` before answering (invariant 3)."""

    @property
    def position(self) -> Any:
        """Journal position after the last record enqueued."""

    async def wait_durable(self, pos: Any) -> None: ...

    async def reserve(self, key: str, account: str, balance: str, reservation: str, amount: int,
                      *, ttl: float, now: float, partial: bool = False,
                      fields: dict[str, Any] | None = None,
                      wait: bool = True) -> OpResult: ...

    async def commit(self, key: str, account: str, balance: str, reservation: str, used: int,
                     *, now: float, release_rest: bool = True,
                     fields: dict[str, Any] | None = None,
                      wait: bool = True) -> OpResult: ...

    async def release(self, key: str, account: str, balance: str, reservation: str, *,
                      now: float, fields: dict[str, Any] | None = None,
                      wait: bool = True) -> OpResult: ...

    async def debit(self, key: str, account: str, balance: str, amount: int, *, now: float,
                    partial: bool = False, fields: dict[str, Any] | None = None,
                      wait: bool = True) -> OpResult: ...

    async def refund(self, key: str, account: str, balance: str, amount: int, *, now: float,
                     fields: dict[str, Any] | None = None,
                      wait: bool = True) -> OpResult: ...

    async def topup(self, key: str, account: str, balance: str, amount: int, *, now: float,
                    fields: dict[str, Any] | None = None,
                      wait: bool = True) -> OpResult: ...

    async def record(self, fields: dict[str, Any], *, now: float, wait: bool = True) -> None:
        """Append a record that moves no money (a note)."""

    def record_many_now(self, records: list[dict[str, Any]], *, now: float) -> None:
        """Enqueue records that move no money (an Rf ACR's ``acct`` record and the rated
        records it causes) in order, in one append; the caller waits for ``position``."""

    # The synchronous per-op path (charging/ledger/sync_ops.py). The service uses it only
    # when the ledger has ``sync_ready`` and it answers True for the balance; a ledger
    # without it is driven through the awaited methods above alone.
    def sync_ready(self, account: str, balance: str) -> bool: ...

    def reserve_now(self, key: str, account: str, balance: str, reservation: str,
                    amount: int, *, ttl: float, now: float,
                    fields: dict[str, Any] | None = None) -> OpResult: ...

    def commit_now(self, key: str, account: str, balance: str, reservation: str, used: int,
                   *, now: float, fields: dict[str, Any] | None = None) -> OpResult: ...

    def commit_reserve_now(self, ckey: str, account: str, balance: str, creservation: str,
                           used: int, cfields: dict[str, Any], rkey: str, rreservation: str,
                           amount: int, *, ttl: float, now: float,
                           rfields: dict[str, Any]) -> tuple[OpResult, OpResult | None]: ...

    # The same pair for a store that suspends but runs it as ONE op (Redis); used only when
    # the ledger has ``sync_ready`` (above) and ``pairs_ops`` is True.
    @property
    def pairs_ops(self) -> bool: ...

    async def commit_reserve(self, ckey: str, account: str, balance: str, creservation: str,
                             used: int, cfields: dict[str, Any], rkey: str,
                             rreservation: str, amount: int, *, ttl: float, now: float,
                             rfields: dict[str, Any]) -> tuple[OpResult, OpResult | None]: ...


class Accounts(Protocol):
    """Read-only account access (the store)."""

    async def resolve(self, identity: str) -> str | None: ...

    async def get(self, account: str) -> AccountView | None: ...
