"""Remembered answers leave the cyclic collector's sight (cython_ext/gc_untrack.pxi).

The server keeps every answer for retransmits; tracked, ~20,000 of them made each young
collection take 20-65 ms (the paced p99 of benchmarks.ro). ``ResultUntracker`` untracks a
result, its units tuple and each UnitsResult -- only when they are exactly the plain classes,
whose fields cannot close a cycle. Anything else stays tracked; a cycle through an
untracked object is never freed early (the collector counts it as referenced from outside).
"""

from __future__ import annotations

import dataclasses
import gc
import weakref

import pytest

import cython_ext
from charging.requests import ChargingResult, Outcome, UnitKind, UnitsResult

gcutil = cython_ext.load("gcutil")
pytestmark = pytest.mark.skipif(gcutil is None, reason="cython_ext.gcutil not built (or disabled)")


def _result(n: int = 2) -> ChargingResult:
    units = tuple(UnitsResult(rating_group=i, unit=UnitKind.TIME, granted=60) for i in range(n))
    return ChargingResult(outcome=Outcome.SUCCESS, units=units, currency="EUR", cost=120_000)


def test_the_plain_result_and_its_units_are_untracked() -> None:
    untrack = gcutil.ResultUntracker(ChargingResult, UnitsResult)
    r = _result()
    assert gc.is_tracked(r) and gc.is_tracked(r.units)
    untrack(r)
    assert not gc.is_tracked(r) and not gc.is_tracked(r.units)
    assert not any(gc.is_tracked(u) for u in r.units)
    untrack(r)  # twice is harmless
    assert r == _result() and hash(r) == hash(_result())  # the value is unchanged


def test_other_shapes_stay_tracked() -> None:
    untrack = gcutil.ResultUntracker(ChargingResult, UnitsResult)

    @dataclasses.dataclass(slots=True, kw_only=True, unsafe_hash=True)
    class Sub(ChargingResult):
        pass

    sub = Sub(outcome=Outcome.SUCCESS, units=_result().units)
    untrack(sub)
    assert gc.is_tracked(sub) and all(gc.is_tracked(u) for u in sub.units)
    odd = ChargingResult(outcome=Outcome.SUCCESS, units=(_result().units[0], object()))  # type: ignore[arg-type]
    untrack(odd)  # an item of another class: nothing is untracked
    assert gc.is_tracked(odd) and gc.is_tracked(odd.units) and gc.is_tracked(odd.units[0])
    listed = ChargingResult(outcome=Outcome.SUCCESS, units=list(_result().units))  # type: ignore[arg-type]
    untrack(listed)
    assert gc.is_tracked(listed)
    untrack(None)
    untrack(42)


def test_a_cycle_through_an_untracked_result_is_kept_not_freed_early() -> None:
    """The contract's failure mode is a leak, never a use-after-free: the collector treats
    references held by untracked objects as outside references."""
    untrack = gcutil.ResultUntracker(ChargingResult, UnitsResult)

    class Box:
        pass

    box = Box()
    r = ChargingResult(outcome=Outcome.SUCCESS, units=_result().units, message="x")
    untrack(r)
    object.__setattr__(r, "failed_field", box)  # a caller breaking the contract
    box.result = r  # type: ignore[attr-defined]
    alive = weakref.ref(box)
    del box, r
    gc.collect()
    assert alive() is not None  # kept (leaked), still valid
    assert alive().result.message == "x"  # type: ignore[union-attr]
    alive().result = None  # type: ignore[union-attr]  # break the cycle: freed by refcount
    assert alive() is None


def test_a_list_of_atomic_tuples_is_untracked_with_its_tuples() -> None:
    # built at run time (constant tuples are untracked already)
    rows = [(i, "acct", "EUR", f"r{i}") for i in range(100)] + [tuple([1.5, None, b"x"])]
    assert gc.is_tracked(rows) and all(gc.is_tracked(t) for t in rows)
    assert gcutil.untrack_atomic_rows(rows) is True
    assert not gc.is_tracked(rows) and not any(gc.is_tracked(t) for t in rows)
    assert gcutil.untrack_atomic_rows([]) is True


@pytest.mark.parametrize("odd", [[1, 2], ("a", ["nested"]), ("a", {"k": 1}), (object(),)])
def test_a_list_holding_anything_else_stays_tracked(odd: object) -> None:
    rows = [tuple([1, "a"]), odd, tuple([2, "b"])]
    assert gcutil.untrack_atomic_rows(rows) is False
    assert gc.is_tracked(rows) and gc.is_tracked(rows[0]) and gc.is_tracked(rows[2])
