"""``ChargingService.decide_now`` (the synchronous entry of the compiled fast path) and
``answer_when_durable``: random online traffic driven through ``decide_now`` (falling back to
the ``decide`` coroutine when it returns None), each answer released by
``answer_when_durable``, must give the same answers, journal records, balances, sessions,
counters and ledger stats as the Python path (``svc._fast = None``) -- the traffic of
tests/charging/test_service_fast_path.py. Without the extensions decide_now is always None.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.requests import ServiceKind, ServiceUnits, Verb
from icx.charging_app import ChargingApp, build_charging
from icx.settings import AccountsSection, load_settings
from tests.charging import test_service_fast_path as fp
from tests.charging.journal_view import same_tags
from tests.charging.test_service import ROOT, T0

compiled = pytest.mark.skipif(cython_ext.load("charging_slice") is None,
                              reason="cython_ext.charging_slice not built (or disabled)")


async def _now_run(app: ChargingApp, traffic: list[tuple[str, Any, float]]) -> dict[str, Any]:
    """fp._run's checks, each request through decide_now (else decide) + answer_when_durable."""
    svc = app.service
    loop = asyncio.get_running_loop()
    taken = 0

    async def handle(req: Any, now: float) -> Any:
        nonlocal taken
        result = svc.decide_now(req, now)
        if result is None:
            result = await svc.decide(req, now=now)
        else:
            taken += 1
        done: asyncio.Future[Any] = loop.create_future()
        svc.answer_when_durable(done.set_result)
        assert await done is None  # the journal did not fail
        assert svc.durable_mark() <= app.journal.durable
        return result

    class Shim:
        """svc with handle() replaced (fp._run reads everything else off it)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(svc, name)

        async def handle(self, req: Any, *, now: float) -> Any:
            return await handle(req, now)

    shim_app = dataclasses.replace(app, service=Shim())
    out = await fp._run(shim_app, traffic, fast=True)
    out["taken"] = taken
    return out


def _stack(tmp: Path, traffic: list[tuple[str, Any, float]], now_entry: bool) -> Any:
    tmp.mkdir()
    accounts = tmp / "accounts.toml"
    accounts.write_text(fp.ACCOUNTS)
    cfg = load_settings(ROOT / "config" / "icx.toml")
    cfg = dataclasses.replace(cfg, accounts=AccountsSection(files=(str(accounts),)))

    async def main() -> Any:
        app = await build_charging(cfg, tmp / "data", admin=False)
        same_tags(app.service)  # (fp._run cannot through the shim)
        try:
            if now_entry:
                return await _now_run(app, traffic)
            return await fp._run(app, traffic, fast=False)
        finally:
            await app.close()

    return asyncio.run(main())


@compiled
@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32))
def test_decide_now_equals_python_path(tmp_path_factory: pytest.TempPathFactory,
                                       seed: int) -> None:
    traffic = fp._traffic(seed)
    tmp = tmp_path_factory.mktemp("now")
    now = _stack(tmp / "now", traffic, now_entry=True)
    py = _stack(tmp / "py", traffic, now_entry=False)
    for part in ("results", "records", "balances", "sessions", "counters", "stats",
                 "answers", "ended"):
        assert now[part] == py[part], part


@compiled
def test_decide_now_takes_plain_sessions(tmp_path: Path) -> None:
    """Plain voice sessions after the account's first lookup: decide_now decides them."""
    sub = fp.SUBSCRIBERS[0]
    units = (ServiceUnits(rating_group=1, requested=60, used=0, used_present=False),)
    used = (ServiceUnits(rating_group=1, requested=60, used=60, used_present=True),)
    traffic: list[tuple[str, Any, float]] = []
    for s in range(4):
        sid = f"plain-{s}"
        traffic += [("req", fp._req(Verb.INITIAL, sid, 0, sub, ServiceKind.VOICE, units),
                     T0 + s),
                    ("req", fp._req(Verb.UPDATE, sid, 1, sub, ServiceKind.VOICE, used),
                     T0 + s + 60),
                    ("req", fp._req(Verb.TERMINATE, sid, 2, sub, ServiceKind.VOICE,
                                    (dataclasses.replace(used[0], requested=None),)),
                     T0 + s + 120)]
    now = _stack(tmp_path / "now", traffic, now_entry=True)
    py = _stack(tmp_path / "py", traffic, now_entry=False)
    assert now["results"] == py["results"] and now["records"] == py["records"]
    assert now["taken"] >= 9  # all but the account's first INITIAL (and its lookups)


def test_decide_now_is_none_without_the_fast_path(tmp_path: Path) -> None:
    """Pure mode (or _fast disabled): None, nothing changed; decide then decides."""
    traffic = fp._traffic(7)

    async def main() -> None:
        (tmp_path / "d").mkdir()
        accounts = tmp_path / "d" / "accounts.toml"
        accounts.write_text(fp.ACCOUNTS)
        cfg = load_settings(ROOT / "config" / "icx.toml")
        cfg = dataclasses.replace(cfg, accounts=AccountsSection(files=(str(accounts),)))
        app = await build_charging(cfg, tmp_path / "d" / "data", admin=False)
        try:
            svc = app.service
            svc._fast = None
            for kind, req, now in traffic:
                if kind != "req":
                    continue
                mark = svc.durable_mark()
                assert svc.decide_now(req, now) is None
                assert svc.durable_mark() == mark
                await svc.handle(req, now=now)
        finally:
            await app.close()

    asyncio.run(main())
