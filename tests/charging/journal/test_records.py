"""op_record: the fast rewrite produces the very bytes of the original (schema v1 unchanged)."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.journal.records import OP_TYPES, SCHEMA_VERSION, amount_text, op_record
from charging.money import format_amount
from charging.store.base import Effect, Hold, OpResult, OpStatus


def _reference_op_record(*, op: str, result: Any, record_id: str, ts_us: int, meta: Any,
                         fields: Any = None) -> dict[str, Any]:
    """op_record as first written (commit 'journal' of round 1): the executable spec."""
    rec: dict[str, Any] = dict(fields) if fields else {}
    rec.setdefault("type", OP_TYPES.get(op, "rated"))
    effects = []
    for e in result.effects:
        is_money, currency = meta(e.account, e.balance)
        effects.append({"account": e.account, "balance": e.balance, "currency": currency,
                        "amount": format_amount(e.amount) if is_money else str(e.amount)})
    holds = []
    for h in result.holds:
        is_money, _cur = meta(h.account, h.balance)
        holds.append({"account": h.account, "balance": h.balance, "reservation": h.reservation,
                      "amount": format_amount(h.amount) if is_money else str(h.amount),
                      "expires": None if h.expires_at is None
                      else int(round(h.expires_at * 1_000_000))})
    rec.update(v=SCHEMA_VERSION, id=record_id, ts=ts_us, idem=result.key, op=op,
               result=result.status.value, granted=result.granted,
               balance_effects=effects, holds=holds)
    return rec


names = st.text(min_size=1, max_size=6)
amounts = st.integers(-(2**53 - 1), 2**53 - 1)
effects = st.builds(Effect, names, names, amounts)
holds = st.builds(Hold, names, names, names, amounts,
                  st.one_of(st.none(), st.floats(0, 4e9, allow_nan=False)))
results = st.builds(OpResult, names, st.sampled_from(list(OpStatus)),
                    st.lists(effects, max_size=3).map(tuple),
                    st.lists(holds, max_size=3).map(tuple), amounts)
field_values = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.text(max_size=8),
                         st.booleans())
fields = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["type", "session", "service", "usage", "price", "v", "id", "holds", "op",
                     "result", "a", "b", "recovered"]), field_values, max_size=8))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(OP_TYPES) + ["other"]), results, fields,
       st.dictionaries(st.tuples(names, names), st.tuples(st.booleans(),
                       st.one_of(st.none(), st.sampled_from(["EUR", "USD"]))), max_size=4))
def test_op_record_parity(op: str, result: OpResult, flds: dict[str, Any] | None,
                          meta_map: dict[tuple[str, str], tuple[bool, str | None]]) -> None:
    def meta(account: str, balance: str) -> tuple[bool, str | None]:
        return meta_map.get((account, balance), (True, None))

    args = dict(op=op, result=result, record_id="icx-x-1", ts_us=1_800_000_000_000_001,
                meta=meta, fields=flds)
    new = op_record(**args)
    old = _reference_op_record(**args)
    assert list(new) == list(old)  # same keys in the same order
    assert msgpack.packb(new) == msgpack.packb(old)  # byte-identical journal payload


def test_amount_text_cache_is_exact() -> None:
    for x in (0, -1, 1, -60_000, 123_456_789, -(2**53 - 1), 10**6, -10**6):
        for _ in range(2):  # second call served from the cache
            assert amount_text(x, True) == format_amount(x)
            assert amount_text(x, False) == str(x)
