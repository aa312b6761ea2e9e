"""The ledger's synchronous path (charging/ledger/sync_ops.py: commit + next reserve of an
UPDATE in one call, one journal append) against the awaited path (one ``_run`` per op):
random session traffic through two real stacks -- one whose store is wrapped so the ledger
cannot use the sync ops -- must give equal answers, equal journal records (same keys in the
same order, same bytes, record ids aside) and equal balances. Also: the positional result
builders equal the dataclass constructors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging.requests import (
    ChargingResult,
    Outcome,
    UnitKind,
    UnitsResult,
    Verb,
    charging_result,
    units_result,
)
from icx.charging_app import ChargingApp, build_charging
from icx.settings import AccountsSection, load_settings
from tests.charging.journal_view import records_without_ids, same_tags
from tests.charging.test_service import ACCOUNTS, ROOT, T0, voice


class _Forward:
    """Forwards every attribute to the real store: the ledger sees no ``reserve_sync`` on
    its class, so it takes the awaited path."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _traffic(seed: int) -> list[tuple[Any, float]]:
    """Interleaved sessions: INITIAL, UPDATEs (with/without RSU, used over the grant, quota
    beyond the balance), retransmits, TERMINATE, on a rich and a poor account."""
    rnd = random.Random(seed)
    out: list[tuple[Any, float]] = []
    t = T0
    for s in range(6):
        sid = f"s{seed}-{s}"
        sub = "41790000100" if s % 3 == 2 else f"4179000000{1 + s % 5}"
        n = 0
        out.append((voice(Verb.INITIAL, n, sid=sid, sub=sub,
                          requested=rnd.choice([0, 30, 60, 3600])), t))
        for _ in range(rnd.randint(0, 4)):
            n += 1
            t += 7
            req = voice(Verb.UPDATE, n, sid=sid, sub=sub,
                        used=rnd.choice([0, 30, 60, 61, 500]),
                        requested=rnd.choice([None, 0, 60, 3600]))
            out.append((req, t))
            if rnd.random() < 0.2:
                out.append((req, t + 1))  # retransmit
        n += 1
        t += 3
        out.append((voice(Verb.TERMINATE, n, sid=sid, sub=sub, used=rnd.choice([0, 10, 90])),
                    t))
    # interleave the sessions, each keeping its own order
    rnd.shuffle(out)
    out.sort(key=lambda x: (x[0].session_id, x[0].request_number))
    by_sid: dict[str, list[tuple[Any, float]]] = {}
    for item in out:
        by_sid.setdefault(item[0].session_id, []).append(item)
    merged: list[tuple[Any, float]] = []
    queues = list(by_sid.values())
    while queues:
        q = rnd.choice(queues)
        merged.append(q.pop(0))
        if not q:
            queues.remove(q)
    return merged


async def _run(app: ChargingApp, traffic: list[tuple[Any, float]],
               awaited: bool) -> tuple[list[Any], list[bytes], list[tuple[int, int]]]:
    svc = app.service
    same_tags(svc)
    if awaited:
        svc.ledger.store = _Forward(app.store)
        assert not svc.ledger.sync_ready("41790000001", "EUR")
    results = [await svc.handle(req, now=now) for req, now in traffic]
    await svc.wait_durable(svc.durable_mark())
    await app.journal.flush()
    records = records_without_ids(app.journal.directory)
    balances = []
    for acct in ("41790000001", "41790000002", "41790000003", "41790000100"):
        view = await app.store.get(acct)
        assert view is not None
        balances.append((view.balances[0].amount, view.balances[0].reserved))
    return results, records, balances


def _stack_run(tmp: Path, traffic: list[tuple[Any, float]], awaited: bool) -> Any:
    accounts = tmp / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = load_settings(ROOT / "config" / "icx.toml")
    settings = dataclasses.replace(settings, accounts=AccountsSection(files=(str(accounts),)))

    async def main() -> Any:
        app = await build_charging(settings, tmp / "data", admin=False)
        try:
            assert app.ledger.sync_ready("41790000001", "EUR")  # the real stack: sync path
            return await _run(app, traffic, awaited)
        finally:
            await app.close()

    return asyncio.run(main())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sync_path_equals_awaited_path(tmp_path: Path, seed: int) -> None:
    traffic = _traffic(seed)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sync_res, sync_recs, sync_bal = _stack_run(tmp_path / "a", traffic, awaited=False)
    aw_res, aw_recs, aw_bal = _stack_run(tmp_path / "b", traffic, awaited=True)
    assert sync_res == aw_res
    assert sync_recs == aw_recs
    assert sync_bal == aw_bal
    outcomes = {r.outcome for r in sync_res}
    # the traffic reaches both the plain path and the refusals (the poor account)
    assert Outcome.SUCCESS in outcomes
    assert any(u.final_unit or u.outcome is not Outcome.SUCCESS
               for r in sync_res for u in r.units)


opt_int = st.one_of(st.none(), st.integers(0, 2**40))


@settings(max_examples=100, deadline=None)
@given(opt_int, opt_int, st.sampled_from(list(Outcome)), st.sampled_from(list(UnitKind)),
       opt_int, opt_int, st.booleans(), st.integers(0, 2**53), opt_int, opt_int)
def test_units_result_builder(rg: int | None, sid: int | None, outcome: Outcome,
                              unit: UnitKind, granted: int | None, vt: int | None,
                              final: bool, used_cost: int, qht: int | None,
                              qt: int | None) -> None:
    built = units_result(rg, sid, outcome, unit, granted, vt, final, used_cost, qht, qt)
    ref = UnitsResult(rating_group=rg, service_id=sid, outcome=outcome, unit=unit,
                      granted=granted, validity_time=vt, final_unit=final, used_cost=used_cost,
                      quota_holding_time=qht, quota_threshold=qt)
    assert built == ref and hash(built) == hash(ref) and repr(built) == repr(ref)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(Outcome)), st.one_of(st.none(), st.sampled_from(["EUR", "USD"])),
       opt_int, opt_int, st.booleans(), st.one_of(st.none(), st.text(max_size=5)))
def test_charging_result_builder(outcome: Outcome, currency: str | None, cost: int | None,
                                 vt: int | None, final: bool, failed: str | None) -> None:
    units = (UnitsResult(granted=60),)
    built = charging_result(outcome, units, currency, cost, vt, final, failed)
    ref = ChargingResult(outcome=outcome, units=units, currency=currency, cost=cost,
                         validity_time=vt, final_unit=final, failed_field=failed)
    assert built == ref and hash(built) == hash(ref) and repr(built) == repr(ref)
