"""Parity: the compiled result classes (cython_ext/store_results.pyx) vs base.py's dataclasses.

base.py selects the compiled Effect / Hold / OpResult when the extension is built; callers
(the ledger, the journal, the Ro path) must not be able to tell: same constructor (positional
and keyword, same defaults), fields, ``ok``, ``==`` (dataclass rules: same class and equal
fields), ``hash``, ``repr``, pickling, and no assignment (base.py: never assign to a field).
"""

from __future__ import annotations

import copy
import gc
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.store import base
from charging.store.base import OpStatus
from cython_ext import load

_results = load("store_results")
pytestmark = pytest.mark.skipif(_results is None,
                                reason="cython_ext.store_results not built or ICX_NO_EXTENSIONS=1")

atoms = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.text(max_size=5),
                  st.floats(allow_nan=False))
names = st.text(max_size=6)


@st.composite
def results(draw: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Constructor arguments of an OpResult: raw atoms for effects/holds (built per class)."""
    effects = draw(st.lists(st.tuples(names, names, st.integers(-10**6, 10**6)), max_size=2))
    holds = draw(st.lists(st.tuples(names, names, names, st.integers(-10**6, 10**6),
                                    st.one_of(st.none(), st.floats(0, 2e9))), max_size=2))
    rest = draw(st.tuples(st.integers(0, 10**9), atoms, atoms, st.booleans(), st.booleans(),
                          st.sampled_from([(), ("low_balance",)])))
    n_pos = draw(st.integers(2, 10))
    return (draw(names), draw(st.sampled_from(list(OpStatus))), effects, holds, *rest), {
        "n_pos": n_pos}


def build(cls_r: Any, cls_h: Any, cls_e: Any, args: tuple[Any, ...], n_pos: int) -> Any:
    key, status, effects, holds, *rest = args
    values = [key, status, tuple(cls_e(*e) for e in effects), tuple(cls_h(*h) for h in holds),
              *rest]
    fields = _results.FIELDS["OpResult"]
    return cls_r(*values[:n_pos], **dict(zip(fields[n_pos:], values[n_pos:], strict=True)))


@settings(max_examples=200, deadline=None)
@given(results(), results())
def test_compiled_results_behave_like_the_dataclasses(a: Any, b: Any) -> None:
    (args_a, kw_a), (args_b, _) = a, b
    fast = build(_results.OpResult, _results.Hold, _results.Effect, args_a, kw_a["n_pos"])
    ref = build(base.PyOpResult, base.PyHold, base.PyEffect, args_a, kw_a["n_pos"])
    other_fast = build(_results.OpResult, _results.Hold, _results.Effect, args_b, 10)
    other_ref = build(base.PyOpResult, base.PyHold, base.PyEffect, args_b, 10)
    assert repr(fast) == repr(ref)
    assert hash(fast) == hash(ref)
    assert fast.ok is ref.ok
    for name in _results.FIELDS["OpResult"]:
        if name not in ("effects", "holds"):
            assert getattr(fast, name) is getattr(ref, name)
    assert (fast == other_fast) is (ref == other_ref)
    assert (fast != other_fast) is (ref != other_ref)
    assert fast == build(_results.OpResult, _results.Hold, _results.Effect, args_a, 10)
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert copy.deepcopy(fast) == fast


def test_the_store_classes_are_the_compiled_ones_and_defaults_match() -> None:
    assert base.OpResult is _results.OpResult and base.Hold is _results.Hold
    assert base.Effect is _results.Effect
    for fast, ref in ((base.OpResult("k", OpStatus.UNKNOWN_ACCOUNT),
                       base.PyOpResult("k", OpStatus.UNKNOWN_ACCOUNT)),):
        assert repr(fast) == repr(ref)
        assert not fast.ok
    for cls in (_results.Effect, _results.Hold, _results.OpResult):
        fields = _results.FIELDS[cls.__name__]
        py = getattr(base, "Py" + cls.__name__)
        assert tuple(f.name for f in py.__dataclass_fields__.values()) == fields


def test_comparisons_across_classes_follow_the_dataclass_rules() -> None:
    fast = _results.Effect("a", "EUR", -5)
    ref = base.PyEffect("a", "EUR", -5)
    assert fast != ref and not fast == ref  # different classes: NotImplemented both ways
    assert fast == _results.Effect("a", "EUR", -5) and fast != _results.Effect("a", "EUR", -4)
    assert {fast: 1}[_results.Effect("a", "EUR", -5)] == 1
    assert fast.__eq__(ref) is NotImplemented


def test_fields_are_read_only() -> None:
    r = _results.OpResult("k", OpStatus.OK)
    h = _results.Hold("a", "b", "r", 1, None)
    with pytest.raises(AttributeError):
        r.granted = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        h.amount = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        _results.OpResult("k")  # status is required
    with pytest.raises(TypeError):
        _results.Hold("a", "b", "r", 1)  # expires_at is required (no default in base.py)


def test_results_are_outside_the_cyclic_gc() -> None:
    """They hold atoms and tuples of each other only: the GC never tracks them, so a cache of
    millions costs collections nothing."""
    h = _results.Hold("a", "b", "r", 1, None)
    r = _results.OpResult("k", OpStatus.OK, (), (h,), 1)
    assert not gc.is_tracked(r) and not gc.is_tracked(h)
    assert not gc.is_tracked(_results.Effect("a", "b", 1))


def test_the_dataclasses_functions_work_as_on_the_reference() -> None:
    """dataclasses.fields / replace / asdict / astuple / is_dataclass and match statements:
    callers written against base.py's dataclasses keep working on the compiled classes."""
    import dataclasses

    fast = _results.OpResult("k", OpStatus.OK, (_results.Effect("a", "EUR", -5),),
                             (_results.Hold("a", "EUR", "r", -5, None),), 5, 10, 20)
    ref = base.PyOpResult("k", OpStatus.OK, (base.PyEffect("a", "EUR", -5),),
                          (base.PyHold("a", "EUR", "r", -5, None),), 5, 10, 20)
    assert dataclasses.is_dataclass(fast) and dataclasses.is_dataclass(_results.Hold)
    assert [f.name for f in dataclasses.fields(fast)] == [f.name for f in dataclasses.fields(ref)]
    assert dataclasses.asdict(fast) == dataclasses.asdict(ref)
    assert dataclasses.astuple(fast) == dataclasses.astuple(ref)
    replayed = dataclasses.replace(fast, replayed=True)
    assert type(replayed) is _results.OpResult
    assert repr(replayed) == repr(dataclasses.replace(ref, replayed=True))
    match fast:
        case _results.OpResult(key, status, effects):
            assert (key, status, len(effects)) == ("k", OpStatus.OK, 1)
        case _:
            raise AssertionError("no match")
