"""Hypothesis: random op sequences against every store, compared with a tiny reference model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charging.store.base import AccountKind, BalanceKind, BalanceSpec, OpStatus

NOW = 1_800_000_000.0


@dataclass
class Model:
    """The contract in its simplest form: one balance, holds by reservation id."""

    amount: int
    credit_limit: int
    holds: dict[str, int] = field(default_factory=dict)
    results: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return self.amount - sum(self.holds.values()) + self.credit_limit

    def apply(self, op: tuple[Any, ...]) -> tuple[Any, ...]:
        name, key = op[0], op[1]
        if key in self.results:
            return self.results[key]
        out = self._apply(name, *op[2:])
        self.results[key] = out
        return out

    def _apply(self, name: str, *a: Any) -> tuple[Any, ...]:
        if name == "reserve":
            res, amt, partial = a
            grant = amt
            if amt > self.available:
                if not partial or self.available <= 0:
                    return ("insufficient", 0)
                grant = self.available
            self.holds[res] = self.holds.get(res, 0) + grant
            return ("ok", grant)
        if name == "commit":
            res, used, release_rest = a
            if res not in self.holds:
                return ("unknown_reservation", 0)
            held = self.holds[res]
            debit = min(used, held + self.available)
            if release_rest:
                del self.holds[res]
            else:
                self.holds[res] = held - min(debit, held)
            self.amount -= debit
            return ("ok", debit)
        if name == "release":
            (res,) = a
            if self.holds.pop(res, None) is None:
                return ("unknown_reservation", 0)
            return ("ok", 0)
        if name == "debit":
            amt, partial = a
            take = amt
            if amt > self.available:
                if not partial or self.available <= 0:
                    return ("insufficient", 0)
                take = self.available
            self.amount -= take
            return ("ok", take)
        (amt,) = a
        self.amount += amt
        return ("ok", amt)


RES = st.sampled_from(["r1", "r2", "r3"])
AMT = st.integers(0, 400)
OPS = st.one_of(
    st.tuples(st.just("reserve"), RES, AMT, st.booleans()),
    st.tuples(st.just("commit"), RES, AMT, st.booleans()),
    st.tuples(st.just("release"), RES),
    st.tuples(st.just("debit"), AMT, st.booleans()),
    st.tuples(st.just("topup"), AMT),
)
# each op gets a key; a "replay" re-sends an earlier op with its key
SEQ = st.lists(st.one_of(OPS, st.integers(0, 30)), min_size=1, max_size=30)


async def call(store: Any, op: tuple[Any, ...]) -> Any:
    name, key, *a = op
    if name == "reserve":
        return await store.reserve(key, "m", "EUR", a[0], a[1], ttl=60, now=NOW, partial=a[2])
    if name == "commit":
        return await store.commit(key, "m", "EUR", a[0], a[1], now=NOW, release_rest=a[2])
    if name == "release":
        return await store.release(key, "m", "EUR", a[0], now=NOW)
    if name == "debit":
        return await store.debit(key, "m", "EUR", a[0], now=NOW, partial=a[1])
    return await store.topup(key, "m", "EUR", a[0], now=NOW)


def _check(harness: Any, amount: int, limit: int, seq: list[Any]) -> None:
    ops: list[tuple[Any, ...]] = []
    for i, item in enumerate(seq):
        if isinstance(item, int):
            if ops:
                ops.append(ops[item % len(ops)])
        else:
            ops.append((item[0], f"k{i}", *item[1:]))

    async def body(store: Any) -> None:
        await store.create_account("m", AccountKind.POSTPAID_PARTNER,
                                   [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", amount, limit)])
        model = Model(amount, limit)
        for op in ops:
            want = model.apply(op)
            got = await call(store, op)
            assert (got.status.value, got.granted) == want, op
            assert got.status is OpStatus.OK or not got.effects
            view = await store.get("m")
            bal = view.balances[0]
            assert (bal.amount, bal.reserved) == (model.amount, sum(model.holds.values()))
            assert bal.available >= 0  # invariant 4

    harness.run(body)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(amount=st.integers(0, 1000), limit=st.integers(0, 300), seq=SEQ)
def test_random_sequences_match_the_model(harness: Any, amount: int, limit: int,
                                          seq: list[Any]) -> None:
    _check(harness, amount, limit, seq)
