"""The compiled fast path (cython_ext/charging_slice.pyx) against the Python path when a
journal append fails part way through the traffic (invariant 3: the store moved money the
journal does not have -> the ledger stops; 5012 for the request, and every later one), and
with out-of-range quantities (usage or requested units past 2^53 on money grants: the store
refuses the amount with ValueError). Both paths must raise at the same requests, leave the same
balances, the same sessions (every slot of every grant: the undo record a retry after 5012
replays) and the same counters and ledger stats.

(test_service_fast_path.py covers the traffic without failures; this reuses its stacks.)
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.requests import ServiceKind, ServiceUnits, Verb
from charging.sessions import Grant, Session
from tests.charging import test_service_fast_path as fp
from tests.charging.journal_view import same_tags

pytestmark = pytest.mark.skipif(cython_ext.load("charging_slice") is None,
                                reason="cython_ext.charging_slice not built (or disabled)")

_BIG = [0, 1, 60, 2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1]


def _traffic(seed: int) -> list[tuple[str, Any, float]]:
    rnd = random.Random(seed)
    per: list[list[tuple[str, Any, float]]] = []
    for s in range(rnd.randint(2, 5)):
        sid = f"x{seed}-{s}"
        sub = rnd.choice(fp.SUBSCRIBERS)
        service = rnd.choice([ServiceKind.VOICE, ServiceKind.DATA, ServiceKind.SMS])
        quanta = fp.SERVICES[service][1] + _BIG
        money = rnd.random() < 0.3
        t = fp.T0 + s

        def units(requested: bool, used: bool, *, money: bool = money,
                  quanta: list[int] = quanta) -> tuple[ServiceUnits, ...]:
            return (ServiceUnits(
                rating_group=1,
                requested=rnd.choice([0, 10_000, 2**53, 2**63] if money else [0, *quanta])
                if requested else None,
                used=rnd.choice([0, 5_000, 2**53 + 1] if money else quanta) if used else 0,
                used_present=used, money=money),)

        steps: list[tuple[str, Any, float]] = [
            ("req", fp._req(Verb.INITIAL, sid, 0, sub, service, units(True, False)), t)]
        n = 0
        for _ in range(rnd.randint(0, 5)):
            n += 1
            t += rnd.choice([1, 30, 60])
            req = fp._req(Verb.UPDATE, sid, n, sub, service, units(True, True))
            steps.append(("req", req, t))
            if rnd.random() < 0.3:
                steps.append(("req", req, t + 1))  # the retry of a request (5012 or not)
        steps.append(("req", fp._req(Verb.TERMINATE, sid, n + 1, sub, service,
                                     units(False, True)), t + 3))
        per.append(steps)
    merged: list[tuple[str, Any, float]] = []
    while per:
        q = rnd.choice(per)
        merged.append(q.pop(0))
        if not q:
            per.remove(q)
    return merged


def _failing(fn: Any, calls: list[int], fail_at: int) -> Any:
    def append(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] >= fail_at:
            raise OSError(5, "injected journal write failure")
        return fn(*args, **kwargs)
    return append


async def _run(app: Any, traffic: list[tuple[str, Any, float]], fast: bool,
               fail_at: int) -> dict[str, Any]:
    svc = app.service
    same_tags(svc)
    if not fast:
        svc._fast = None
    journal = app.journal
    calls = [0]
    # the instance attributes: the fast path calls ledger.journal.append*_nowait as well
    orig = journal.append_nowait, journal.append_many_nowait
    journal.append_nowait = _failing(orig[0], calls, fail_at)
    journal.append_many_nowait = _failing(orig[1], calls, fail_at)
    results: list[Any] = []
    try:
        for _kind, req, now in traffic:
            try:
                results.append(await svc.handle(req, now=now))
            except Exception as exc:  # noqa: BLE001 -- compared between the two paths
                results.append(("raised", type(exc).__name__))
    finally:
        journal.append_nowait, journal.append_many_nowait = orig
    balances = []
    for acct in fp.SUBSCRIBERS:
        view = await app.store.get(acct)
        assert view is not None
        balances.append([(b.amount, b.reserved) for b in view.balances])
    sessions = sorted(
        ([(k, getattr(s, k)) for k in Session.__slots__ if k != "grants"],
         [[(k, getattr(g, k)) for k in Grant.__slots__ if k != "plan"] for g in s.grants])
        for s in svc.sessions)
    return {"results": results, "balances": balances, "sessions": sessions,
            "counters": dict(svc.counters), "stats": dict(app.ledger.stats),
            "failed": type(app.ledger._failed).__name__}


def _same_when_the_journal_fails(tmp: Path, seed: int, fail_at: int, **store: Any) -> None:
    traffic = _traffic(seed)
    out = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fp, "_run", lambda app, t, fast: _run(app, t, fast, fail_at))
        for fast in (True, False):
            out.append(fp._stack_run(tmp / ("fast" if fast else "py"), traffic, fast, **store))
    fast_out, py_out = out
    for part in fast_out:
        assert fast_out[part] == py_out[part], part


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 14))
def test_fast_path_equals_python_path_when_the_journal_fails(
        tmp_path_factory: pytest.TempPathFactory, seed: int, fail_at: int) -> None:
    _same_when_the_journal_fails(Path(tmp_path_factory.mktemp("fail")), seed, fail_at)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 14))
def test_fast_path_equals_python_path_when_the_journal_fails_over_redis(
        tmp_path_factory: pytest.TempPathFactory, redis_url: str, seed: int,
        fail_at: int) -> None:
    """The same on Redis (the twin's awaited ops): the op whose record could not be appended
    ran in Redis on both paths alike, and both fail closed at the same request."""
    _same_when_the_journal_fails(Path(tmp_path_factory.mktemp("fail-redis")), seed, fail_at,
                                 store_url=redis_url)


def test_the_failure_is_reached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The injection really fails the ledger (not a run that never appends)."""
    traffic = [("req", fp._req(Verb.INITIAL, "s1", 0, fp.SUBSCRIBERS[0], ServiceKind.VOICE,
                               (ServiceUnits(rating_group=1, requested=60),)), fp.T0)]
    traffic.append(("req", dataclasses.replace(traffic[0][1], verb=Verb.UPDATE,
                                               request_number=1, idem_key="ro:s1:1",
                                               units=(ServiceUnits(rating_group=1,
                                                                   requested=60, used=60,
                                                                   used_present=True),)),
                    fp.T0 + 60))
    monkeypatch.setattr(fp, "_run", lambda app, t, fast: _run(app, t, fast, 2))
    for fast in (True, False):
        got = fp._stack_run(tmp_path / str(fast), traffic, fast)
        assert got["failed"] == "OSError", got
        assert got["results"][-1] == ("raised", "OSError"), got["results"]


def test_the_failure_is_reached_over_redis(tmp_path: Path, redis_url: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """On Redis too, through the twin's coroutine: the request whose records cannot be
    appended raises, the ledger fails closed, and the next request is refused."""
    traffic = [("req", fp._req(Verb.INITIAL, f"r{i}", 0, fp.SUBSCRIBERS[0],
                               ServiceKind.VOICE, (ServiceUnits(rating_group=1,
                                                                requested=60),)), fp.T0 + i)
               for i in (1, 2, 3)]
    monkeypatch.setattr(fp, "_run", lambda app, t, fast: _run(app, t, fast, 2))
    got = fp._stack_run(tmp_path / "fast", traffic, True, store_url=redis_url)
    assert got["failed"] == "OSError", got
    assert got["results"][1:] == [("raised", "OSError"), ("raised", "JournalError")], got
