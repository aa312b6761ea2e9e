"""The compiled fast path of ``ChargingService.decide`` (cython_ext/charging_slice.pyx) against
the Python path it twins (charging/service*.py, the executable spec): random online traffic
through two real stacks (embedded store, real journal) -- one with the twin, one with
``svc._fast = None`` -- must give equal answers, equal journal records (same keys in the same
order, same bytes; record ids aside: each ledger has its own boot prefix), equal balances and
holds, equal service counters and ledger stats.

The traffic covers what the twin must hand back to the Python path or finish through its
continuation: voice / data / SMS / money slices, several rating groups, accounts running dry
(FUI, then 4012), an unknown subscriber, an MMS without tariff (5031), retransmits, UPDATEs
without RSU or without usage, an unknown session, retries of the same request number, holds
expired by supervision (the commit finds no hold: partial debit) and an INITIAL for an open
session id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.journal import JournalReader
from charging.requests import ChargingRequest, ChargingResult, ServiceKind, ServiceUnits, Verb
from charging.service import ChargingService
from charging.sessions import Grant, Session
from icx.charging_app import ChargingApp, build_charging
from icx.settings import AccountsSection, load_settings
from tests.charging.journal_view import records_without_ids, same_tags
from tests.charging.test_service import ROOT, T0

UNTRACKS_ANSWERS = cython_ext.load("gcutil") is not None
pytestmark = pytest.mark.skipif(cython_ext.load("charging_slice") is None,
                                reason="cython_ext.charging_slice not built (or disabled)")

ACCOUNTS = """
[[range]]
first = "41790000001"
last = "41790000004"
amount = "50.00"
[[account]]
id = "41790000100"
amount = "0.30"
[[account]]
id = "41790000101"
amount = "0.07"
"""
SUBSCRIBERS = ["41790000001", "41790000002", "41790000003", "41790000004", "41790000100",
               "41790000101"]

# service -> (destination, typical quanta)
SERVICES: dict[ServiceKind, tuple[str, list[int]]] = {
    ServiceKind.VOICE: ("41791234567", [0, 30, 60, 61, 500]),
    ServiceKind.DATA: ("internet", [0, 1000, 999_999, 5_000_000]),
    ServiceKind.SMS: ("41791234567", [0, 1, 2]),
    ServiceKind.MMS: ("4915112345678", [0, 1]),  # no tariff: 5031
    ServiceKind.DATA_TIME: ("internet", [0, 60, 120]),
}


def _req(verb: Verb, sid: str, n: int, sub: str, service: ServiceKind,
         units: tuple[ServiceUnits, ...]) -> ChargingRequest:
    dest = SERVICES[service][0]
    return ChargingRequest(verb=verb, session_id=sid, request_number=n, service=service,
                           subscriber=sub, destination=dest, origin="41790000001",
                           units=units, multiple_services=True, idem_key=f"ro:{sid}:{n}",
                           peer_host="pgw.test", peer_realm="test")


def _traffic(seed: int) -> list[tuple[str, Any, float]]:
    """(kind, request or None, now) steps: kind "req" decides, "tick" runs supervise(now)."""
    rnd = random.Random(seed)
    per_session: list[list[tuple[str, Any, float]]] = []
    for s in range(rnd.randint(3, 7)):
        sid = f"f{seed}-{s}"
        sub = rnd.choice(SUBSCRIBERS + ["41799999999"])  # (last: unknown subscriber)
        service = rnd.choice(list(SERVICES))
        quanta = SERVICES[service][1]
        money = rnd.random() < 0.15
        rgs = [1] if rnd.random() < 0.8 else [1, 2]
        t = T0 + s

        def units(requested: bool, used: bool, *, rgs: list[int] = rgs, money: bool = money,
                  quanta: list[int] = quanta) -> tuple[ServiceUnits, ...]:
            return tuple(ServiceUnits(
                rating_group=rg,
                requested=(rnd.choice([0] + quanta) if not money else rnd.choice(
                    [0, 10_000, 500_000])) if requested else None,
                used=(rnd.choice(quanta) if not money else rnd.choice([0, 5_000, 60_000]))
                if used else 0,
                used_present=used, money=money) for rg in rgs)

        steps: list[tuple[str, Any, float]] = [
            ("req", _req(Verb.INITIAL, sid, 0, sub, service, units(True, False)), t)]
        n = 0
        for _ in range(rnd.randint(0, 5)):
            n += 1
            t += rnd.choice([5, 30, 60])
            kind = rnd.random()
            if kind < 0.1:
                u = units(False, True)  # no RSU: debit, grant nothing new
            elif kind < 0.15:
                u = units(True, False)  # no usage reported
            else:
                u = units(True, True)
            req = _req(Verb.UPDATE, sid, n, sub, service, u)
            steps.append(("req", req, t))
            r = rnd.random()
            if r < 0.15:
                steps.append(("req", req, t + 1))  # retransmit
            elif r < 0.2:
                steps.append(("tick", None, t + 1300))  # Tcc: the hold goes away
            elif r < 0.25:
                # a new INITIAL for the open session id (refused: 5004, nothing changes)
                n += 1
                steps.append(("req", _req(Verb.INITIAL, sid, n, sub, service,
                                          units(True, True)), t + 2))
        n += 1
        t += 3
        steps.append(("req", _req(Verb.TERMINATE, sid, n, sub, service,
                                  units(False, rnd.random() < 0.9)), t))
        if rnd.random() < 0.1:
            steps.append(("req", _req(Verb.UPDATE, sid, n + 1, sub, service,
                                      units(True, True)), t + 1))  # after the end: 5002
        if rnd.random() < 0.15:  # an INITIAL of it after the end: the first one again (its
            # answer still cached), or another number (not cached: a late one, 5002)
            steps.append(("req", _req(Verb.INITIAL, sid, rnd.choice([0, n + 2]), sub, service,
                                      units(True, False)), t + 2))
        per_session.append(steps)
    merged: list[tuple[str, Any, float]] = []
    while per_session:
        q = rnd.choice(per_session)
        merged.append(q.pop(0))
        if not q:
            per_session.remove(q)
    return merged


async def _run(app: ChargingApp, traffic: list[tuple[str, Any, float]],
               fast: bool) -> dict[str, Any]:
    svc = app.service
    if isinstance(svc, ChargingService):  # (a shim: its maker did it, see same_tags)
        same_tags(svc)
    if fast:
        assert svc._fast is not None
    else:
        svc._fast = None
    results: list[Any] = []
    for kind, req, now in traffic:
        if kind == "tick":
            results.append(sorted(await svc.supervise(now)))
        elif kind == "import":  # a new version of the retail deck (req: its CSV path)
            svc.rater.import_csv(str(req), deck="retail", currency="EUR",
                                 effective="2026-01-01")
            results.append(None)
        else:
            results.append(await svc.handle(req, now=now))
    await svc.wait_durable(svc.durable_mark())
    await app.journal.flush()
    confirm = None
    if not app.ledger.embedded:
        # every op the journal holds is confirmed to Redis (none left for a recovery to
        # replay): each was tracked for its confirmation and booked after its group commit
        await asyncio.sleep(0)
        await app.ledger.flush_confirmations()
        confirm = (len(await app.store.pending_ops()), len(app.ledger._unconfirmed),
                   len(app.ledger._enq), app.ledger._inflight)
        assert confirm == (0, 0, 0, 0)
        # ... each tracked (the confirmed checkpoint advances past it): as many as records
        confirm += (app.ledger._seq,)
    # the twin allocates sessions, grants and results itself: the collector must see them
    # as it sees objects made by object.__new__
    assert all(gc.is_tracked(s) and all(gc.is_tracked(g) for g in s.grants)
               for s in svc.sessions)
    # ... but not the answers they remember (cython_ext/gc_untrack.pxi): kept for
    # retransmits, they leave the collector's sight on both paths alike
    charged = [r for r in results if isinstance(r, ChargingResult)]
    untracked = UNTRACKS_ANSWERS
    assert all(gc.is_tracked(r) is not untracked
               and all(gc.is_tracked(u) is not untracked for u in r.units)
               and (not r.units or gc.is_tracked(r.units) is not untracked)
               for r in charged)
    # record ids: the ledger's prefix and its counter, in journal order (the twin writes
    # them by hand; the parity views blank them)
    prefix = app.ledger._ids._prefix
    ids = [rec["id"] for _pos, rec in JournalReader(app.journal.directory).iter_from(None)
           if str(rec.get("id", "")).startswith(prefix)]
    numbers = [int(i[len(prefix):]) for i in ids]
    assert ids == [f"{prefix}{n}" for n in numbers] and numbers == sorted(set(numbers))
    records = records_without_ids(app.journal.directory)
    balances = []
    for acct in SUBSCRIBERS:
        view = await app.store.get(acct)
        assert view is not None
        balances.append([(b.amount, b.reserved) for b in view.balances])
    # every slot of the open sessions and their grants (the twin builds them without their
    # __init__ and writes their slots at their offsets), but the twin's own rating
    # shortcut
    sessions = sorted(
        ([(k, getattr(s, k)) for k in Session.__slots__ if k != "grants"],
         [[(k, getattr(g, k)) for k in Grant.__slots__ if k != "plan"]
          for g in s.grants])
        for s in svc.sessions)
    return {"results": results, "records": records, "balances": balances,
            "sessions": sessions, "counters": dict(svc.counters),
            "stats": dict(app.ledger.stats), "answers": list(svc._answers.items()),
            "answer_order": list(svc._answer_order), "confirm": confirm,
            "busy": dict(svc._busy),
            # the ended sessions' record (its keys, expiries and end order)
            "ended": list(svc._ended.until.items())}


def _config(tmp: Path, store_url: str | None,
            cluster: list[tuple[str, int]] | None) -> Any:
    """The shipped config with this suite's accounts; on a Redis store (*store_url*) or
    Cluster (*cluster*: its masters), flushed first."""
    accounts = tmp / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    cfg = load_settings(ROOT / "config" / "icx.toml")
    cfg = dataclasses.replace(cfg, accounts=AccountsSection(files=(str(accounts),)))
    if store_url is not None:
        redis.Redis.from_url(store_url).flushall()
    if cluster is not None:
        for host, port in cluster:
            redis.Redis(host=host, port=port).flushall()
        cfg = dataclasses.replace(cfg, store=dataclasses.replace(
            cfg.store, backend="redis-cluster",
            cluster_nodes=tuple(f"{h}:{p}" for h, p in cluster)))
    return cfg


def _stack_run(tmp: Path, traffic: list[tuple[str, Any, float]], fast: bool,
               store_url: str | None = None,
               cluster: list[tuple[str, int]] | None = None) -> Any:
    """One stack (embedded store, a fresh Redis at *store_url*, or a fresh Redis Cluster of
    the *cluster* masters) decides *traffic*."""
    tmp.mkdir()
    cfg = _config(tmp, store_url, cluster)

    async def main() -> Any:
        app = await build_charging(cfg, tmp / "data", admin=False, store_url=store_url)
        try:
            return await _run(app, traffic, fast)
        finally:
            await app.close()

    return asyncio.run(main())


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32))
def test_fast_path_equals_python_path(tmp_path_factory: pytest.TempPathFactory,
                                      seed: int) -> None:
    traffic = _traffic(seed)
    tmp = tmp_path_factory.mktemp("fast")
    fast = _stack_run(tmp / "fast", traffic, fast=True)
    py = _stack_run(tmp / "py", traffic, fast=False)
    for part in ("results", "records", "balances", "sessions", "counters", "stats",
                 "answers", "confirm", "busy", "ended"):
        assert fast[part] == py[part], part


@pytest.mark.parametrize("store", ["embedded", "redis", "redis-unix", "cluster"])
def test_fast_path_is_taken_and_equal_on_plain_sessions(tmp_path: Path, store: str,
                                                        request: pytest.FixtureRequest) -> None:
    """Plain voice/data sessions (the benchmark's mix): the twin decides them (no Python
    path), with the same answers and journal bytes -- on the embedded store (synchronous
    ops: a result) and on Redis (awaited ops: a coroutine of the twin's own), over TCP (the
    store's FastPipe), over a unix socket (its Batcher, as TLS) and on a Redis Cluster."""
    store_url = (None if store in ("embedded", "cluster") else request.getfixturevalue(
        "redis_url" if store == "redis" else "redis_unix_url"))
    cluster = request.getfixturevalue("redis_cluster_nodes") if store == "cluster" else None
    traffic: list[tuple[str, Any, float]] = []
    for i in range(6):
        sid = f"p{i}"
        service = ServiceKind.VOICE if i % 2 else ServiceKind.DATA
        q = 60 if i % 2 else 1_000_000
        sub = SUBSCRIBERS[i % 4]
        traffic.append(("req", _req(Verb.INITIAL, sid, 0, sub, service,
                                    (ServiceUnits(rating_group=1, requested=q),)), T0))
        for n in (1, 2):
            traffic.append(("req", _req(Verb.UPDATE, sid, n, sub, service, (ServiceUnits(
                rating_group=1, requested=q, used=q, used_present=True),)), T0 + 60 * n))
        traffic.append(("req", _req(Verb.TERMINATE, sid, 3, sub, service, (ServiceUnits(
            rating_group=1, used=q // 2, used_present=True),)), T0 + 200))
    taken: list[bool] = []

    async def main(tmp: Path) -> None:
        cfg = _config(tmp, store_url, cluster)
        app = await build_charging(cfg, tmp / "data", admin=False, store_url=store_url)
        try:
            # the first request of each account goes the Python way (account lookup; on
            # Redis the ledger's balance metadata too)
            for sub in SUBSCRIBERS[:4]:
                found = await app.service._account(sub)
                await app.ledger._ensure_meta(found[0], found[1])
            fast = app.service._fast

            def spy(svc: Any, req: Any, now: float) -> Any:
                out = fast(svc, req, now)
                taken.append(out is not None and (
                    isinstance(out, ChargingResult) if store == "embedded"
                    else asyncio.iscoroutine(out)))
                return out

            app.service._fast = spy
            for _kind, req, now in traffic:
                assert (await app.service.handle(req, now=now)).ok
        finally:
            await app.close()

    asyncio.run(main(tmp_path))
    assert taken and all(taken)
    fast = _stack_run(tmp_path / "a", traffic, fast=True, store_url=store_url, cluster=cluster)
    py = _stack_run(tmp_path / "b", traffic, fast=False, store_url=store_url, cluster=cluster)
    assert fast == py


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32))
def test_fast_path_equals_python_path_over_redis(tmp_path_factory: pytest.TempPathFactory,
                                                 redis_url: str, seed: int) -> None:
    """The twin's awaited ops (a store that suspends: Redis; the commit and the next reserve
    as one op) against the Python path on the same Redis: the same random traffic -- FUI and
    4012, holds gone after Tcc (partial debits), retransmits, unknown sessions and
    subscribers -- gives the same answers, records, balances, sessions and counters."""
    _same_on_both_paths(tmp_path_factory.mktemp("fast-redis"), _traffic(seed),
                        store_url=redis_url)


def _same_on_both_paths(tmp: Path, traffic: list[tuple[str, Any, float]],
                        **store: Any) -> None:
    """The twin and the Python path decide *traffic* alike on the same kind of store."""
    fast = _stack_run(tmp / "fast", traffic, fast=True, **store)
    py = _stack_run(tmp / "py", traffic, fast=False, **store)
    for part in ("results", "records", "balances", "sessions", "counters", "stats",
                 "answers", "confirm", "busy", "ended"):
        assert fast[part] == py[part], part


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32))
def test_fast_path_equals_python_path_over_a_redis_cluster(
        tmp_path_factory: pytest.TempPathFactory, redis_cluster_nodes: list[tuple[str, int]],
        seed: int) -> None:
    """The same on a 3-master Redis Cluster (each account's ops in its own hash slot)."""
    _same_on_both_paths(tmp_path_factory.mktemp("fast-cluster"), _traffic(seed),
                        cluster=redis_cluster_nodes)


# ---------------------------------------------------------------------- record bytes

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.text(max_size=40), st.floats(allow_nan=False),
                    st.text(min_size=30, max_size=300))
_keys = st.one_of(st.sampled_from(["session", "result", "type", "v", "id", "holds", "price",
                                   "granted", "usage", "end", "a", "b"]), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _scalar, max_size=24), st.sampled_from(["commit", "reserve",
                                                                        "debit", "other"]),
       st.lists(st.tuples(st.sampled_from(["a1", "41790000001"]), st.sampled_from(["EUR", "min"]),
                          st.integers(-10**12, 10**12)), max_size=3),
       st.lists(st.tuples(st.sampled_from(["a1", "41790000001"]), st.sampled_from(["EUR", "min"]),
                          st.text(max_size=40), st.integers(-10**12, 10**12),
                          st.one_of(st.none(), st.floats(0, 4e9))), max_size=3),
       st.sampled_from(["ok", "insufficient", "unknown_reservation"]),
       st.one_of(st.none(), st.integers(0, 2**62)), st.integers(0, 2**60), st.text(max_size=60))
def test_record_bytes_equal_msgpack_of_the_record_dict(
        fields: dict[str, Any], op: str, effects: list[Any], holds: list[Any], status: str,
        granted: int | None, ts: int, key: str) -> None:
    from charging.journal.records import op_record_into
    from charging.store.base import Effect, Hold, OpResult, OpStatus

    mod: Any = cython_ext.load("charging_slice")
    res = OpResult(key=key, status=OpStatus(status),
                   effects=tuple(Effect(a, b, x) for a, b, x in effects),
                   holds=tuple(Hold(a, b, r, x, e) for a, b, r, x, e in holds),
                   granted=granted)
    meta = {("41790000001", "EUR"): (True, "EUR"), ("a1", "min"): (False, None)}
    before = dict(fields)
    packed = mod.pack_record(fields, op, res, "icx-x-1", ts, meta)
    assert fields == before  # the caller's fields are left alone
    ref = op_record_into(dict(fields), op, res, "icx-x-1", ts, lambda a, b: meta.get(
        (a, b), (True, None)))
    try:
        expect = msgpack.Packer(use_bin_type=True).pack(ref)
    except (OverflowError, ValueError):
        assert packed is None  # msgpack refuses it: the encoder leaves it to the dict path
        return
    if packed is not None:
        assert packed == expect
    else:  # only values outside str/int/bool/None/float (none here) or > 64-bit ints
        assert any(type(v) is int and not -2**63 <= v < 2**64 for v in fields.values())


# ---------------------------------------------------------------------- typed field access


def test_the_ledger_fields_are_read_by_offset(tmp_path: Path) -> None:
    """The fast path reads the ledger's per-request fields (Ledger.__slots__) at their
    offsets; a ledger that lost those slots silently falls back to names: this says so."""
    async def main() -> None:
        app = await build_charging(_config(tmp_path, None, None), tmp_path / "data",
                                   admin=False)
        try:
            fast: Any = app.service._fast
            assert fast.__self__.layouts_known() == {"Ledger": True}
        finally:
            await app.close()

    asyncio.run(main())


def test_every_layout_is_read_by_offset() -> None:
    """charging_slots.pxi reads the fields of the online path's objects at their offsets; a
    class whose layout could not be read silently falls back to attribute names (correct but
    slow): this says which one, should a class change shape."""
    mod: Any = cython_ext.load("charging_slice")
    known = mod.layouts_known()
    assert all(by_offset for by_offset, _ in known.values()), known
    # the classes the fast path builds itself must be built whole (every slot filled)
    assert all(known[c][1] for c in ("Session", "Grant", "UnitsResult", "ChargingResult"))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet="abc.;-_0123456789", max_size=300)),
       st.one_of(st.integers(-2**70, 2**70), st.integers(-1, 1000)),
       st.one_of(st.integers(-2**70, 2**70), st.integers(0, 1000)))
def test_hold_id_is_the_f_string(sid: str, key: int, n: int) -> None:
    """Grant.hold_id's format, written by hand for ASCII ids and 64-bit parts."""
    mod: Any = cython_ext.load("charging_slice")
    assert mod.hold_id(sid, key, n) == f"{sid}|{key}|{n}"


_VARS = (("request", 8), ("usage", 9), ("price", 10), ("end", 11))  # charging_slice V_*
_results_st = st.tuples(
    st.lists(st.tuples(st.sampled_from(["a1", "41790000001"]), st.sampled_from(["EUR", "min"]),
                       st.integers(-10**12, 10**12)), max_size=2),
    st.lists(st.tuples(st.sampled_from(["a1", "41790000001"]), st.sampled_from(["EUR", "min"]),
                       st.text(max_size=40), st.integers(-10**12, 10**12),
                       st.one_of(st.none(), st.floats(0, 4e9), st.floats(-1e17, 1e17))),
             max_size=2),
    st.sampled_from(["ok", "insufficient", "unknown_reservation"]),
    st.one_of(st.none(), st.integers(0, 2**62)))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _scalar, max_size=16), st.booleans(),
       st.one_of(st.none(), st.dictionaries(_keys, _scalar, max_size=4)),
       st.sampled_from(["commit", "reserve", "other"]), _results_st, st.integers(0, 2**60),
       st.lists(_scalar, min_size=4, max_size=4),
       st.one_of(st.none(), st.dictionaries(_keys, _scalar, max_size=16)))
def test_template_bytes_equal_the_dict_records(
        d1: dict[str, Any], with_vars: bool, d2: dict[str, Any] | None, op: str,
        result: Any, ts: int, values: list[Any], other: dict[str, Any] | None) -> None:
    """A record template (the shape packed once, values written per record) gives the bytes
    of the same fields as a dict -- the Python path's record -- or None (the dict path);
    a record of another shape never gets the template's bytes."""
    from charging.store.base import Effect, Hold, OpResult, OpStatus

    effects, holds, status, granted = result
    mod: Any = cython_ext.load("charging_slice")
    res = OpResult(key="k", status=OpStatus(status),
                   effects=tuple(Effect(a, b, x) for a, b, x in effects),
                   holds=tuple(Hold(a, b, r, x, e) for a, b, r, x, e in holds),
                   granted=granted)
    meta = {("41790000001", "EUR"): (True, "EUR"), ("a1", "min"): (False, None)}
    var = _VARS if with_vars else ()
    vals = dict(zip((k for k, _ in _VARS), values, strict=True))
    merged = dict(d1)
    for k, _ in var:
        merged[k] = vals[k]
    merged.update(d2 or {})
    args = ("icx-x-1", ts, meta, vals["request"], vals["usage"], vals["price"], vals["end"])
    packed = mod.template_record(d1, var, d2, op, res, *args)
    if packed is not None:
        assert packed == mod.pack_record(merged, op, res, "icx-x-1", ts, meta)
    if other is not None:  # a record of another first dict, by the same template
        again = mod.template_record(d1, var, d2, op, res, *args, other1=other, other2=d2)
        if again is not None:
            assert list(other) == list(d1)  # same keys, same order: the same shape
            merged2 = dict(other)
            for k, _ in var:
                merged2[k] = vals[k]
            merged2.update(d2 or {})
            assert again == mod.pack_record(merged2, op, res, "icx-x-1", ts, meta)


def test_the_online_shapes_are_templated() -> None:
    """The commit record's shape (rated fields, request/usage/price/end, tariff fields) and
    the reserve record's are templates: same bytes as their dict records."""
    from charging.store.base import Hold, OpResult, OpStatus

    mod: Any = cython_ext.load("charging_slice")
    rated = {"session": "s;1", "service": "voice", "unit": "s", "a": "41790000001",
             "b": "41791234567", "account": "41790000001", "deck": "retail",
             "currency": "EUR", "result": "ok", "start": 1_700_000_000_000_000}
    tariff = {"deck_version": "1", "prefix": "41", "destination": "Switzerland"}
    res = OpResult(key="ro:s;1:1:0:c", status=OpStatus.OK,
                   holds=(Hold("41790000001", "EUR", "s;1|100|0", -120_000, None),),
                   granted=60_000)
    meta = {("41790000001", "EUR"): (True, "EUR")}
    for d2 in (tariff, None):
        packed = mod.template_record(rated, _VARS, d2, "commit", res, "icx-x-1", 5, meta,
                                     "1", 60, "0.06", 7)
        merged = {**rated, "request": "1", "usage": 60, "price": "0.06", "end": 7, **(d2 or {})}
        assert packed is not None
        assert packed == mod.pack_record(merged, "commit", res, "icx-x-1", 5, meta)
    fields = {"session": "s;1", "request": "1", "service": "voice", "price": "0.12"}
    packed = mod.template_record(fields, (), None, "reserve", res, "icx-x-2", 5, meta,
                                 None, None, None, None)
    assert packed is not None
    assert packed == mod.pack_record(dict(fields), "reserve", res, "icx-x-2", 5, meta)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-10**8, 10**8),
                 st.sampled_from([0, 1, -1, 10, 500_000, 1_000_000, -1_000_000, 1_230_000])))
def test_money_text_is_format_amount(v: int) -> None:
    """The record packer writes a money amount's text by hand (no str, no cache lookup):
    the same text as money.format_amount (records.amount_text)."""
    from charging.money import format_amount

    mod: Any = cython_ext.load("charging_slice")
    assert mod.money_text(v) == format_amount(v)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=12), st.one_of(st.text(max_size=40), st.none()),
       st.text(max_size=20), _results_st, st.integers(0, 2**60))
def test_reserve_template_bytes_equal_the_hold_fields_record(
        sid: str, request: str, service: str | None, price: str, result: Any, ts: int) -> None:
    """The reserve record is packed from its four values without the _hold_fields dict: the
    same bytes as the record of that dict (session, request, service, price)."""
    from charging.store.base import Effect, Hold, OpResult, OpStatus

    effects, holds, status, granted = result
    mod: Any = cython_ext.load("charging_slice")
    res = OpResult(key="k:0:r", status=OpStatus(status),
                   effects=tuple(Effect(a, b, x) for a, b, x in effects),
                   holds=tuple(Hold(a, b, r, x, e) for a, b, r, x, e in holds),
                   granted=granted)
    meta = {("41790000001", "EUR"): (True, "EUR"), ("a1", "min"): (False, None)}
    fields = {"session": sid, "request": request, "service": service, "price": price}
    packed = mod.reserve_record(sid, request, service, price, res, "icx-x-9", ts, meta)
    # (None for both: a value msgpack cannot write, e.g. an expiry beyond 64 bits of us)
    assert packed == mod.pack_record(fields, "reserve", res, "icx-x-9", ts, meta)


# Mon 2026-09-21 19:00 Europe/Zurich: peak ends (config/icx.toml [rating.bands])
T_BAND = T0 + 10_000
BANDED = ("service,prefix,destination,rate,band,billing,connection fee\n"
          "voice,41,Switzerland,0.60,peak,1/1,0\nvoice,41,Switzerland,0.30,offpeak,1/1,0\n"
          "voice,41,Switzerland,0.12,weekend,1/1,0\nvoice,*,Rest of world,0.50,,60/60,0\n"
          "data,*,Any APN,0.03,,1000/1000,0\n")


def test_shared_plans_follow_deck_versions_and_bands(tmp_path: Path) -> None:
    """Price plans are shared by sessions with the same deck version, service, destination,
    origin and start second. A deck re-imported mid-session (the open sessions' next
    reports price by the new version, as the Python path's price() does), a session started
    in the same second under the new version, sessions started either side of a time-band
    boundary and reporting after it, and the old deck imported back: the compiled path
    answers, journals and books exactly what the Python path does."""
    banded = tmp_path / "banded.csv"
    banded.write_text(BANDED)
    original = ROOT / "config" / "decks" / "retail.csv"
    voice, data = ServiceKind.VOICE, ServiceKind.DATA
    traffic: list[tuple[str, Any, float]] = []

    def initial(sid: str, sub: str, svc: ServiceKind, t: float) -> None:
        q = 60 if svc is voice else 1_000_000
        traffic.append(("req", _req(Verb.INITIAL, sid, 0, sub, svc,
                                    (ServiceUnits(rating_group=1, requested=q),)), t))

    def update(sid: str, n: int, sub: str, svc: ServiceKind, t: float, used: int,
               verb: Verb = Verb.UPDATE) -> None:
        q = 60 if svc is voice else 1_000_000
        traffic.append(("req", _req(verb, sid, n, sub, svc, (ServiceUnits(
            rating_group=1, requested=None if verb is Verb.TERMINATE else q, used=used,
            used_present=True),)), t))

    subs = {"v1": "41790000001", "v2": "41790000002", "d1": "41790000003",
            "v3": "41790000004", "v4": "41790000001", "d2": "41790000002"}
    kinds = {"v1": voice, "v2": voice, "d1": data, "v3": voice, "v4": voice, "d2": data}
    for i, sub in enumerate(SUBSCRIBERS[:4]):  # each account seen once (then: fast path)
        initial(f"w{i}", sub, data, T0 + i)
        update(f"w{i}", 1, sub, data, T0 + i + 1, 10, Verb.TERMINATE)
    initial("v1", subs["v1"], voice, T_BAND - 2.0)
    initial("v2", subs["v2"], voice, T_BAND - 1.9)  # same second: v1's plan
    initial("d1", subs["d1"], data, T_BAND - 1.8)
    traffic.append(("import", banded, T_BAND - 1.7))
    initial("v3", subs["v3"], voice, T_BAND - 1.6)  # same second, the new deck version
    initial("d2", subs["d2"], data, T_BAND - 1.5)
    initial("v4", subs["v4"], voice, T_BAND + 0.5)  # off-peak
    for sid in subs:
        update(sid, 1, subs[sid], kinds[sid], T_BAND + 30, 60 if kinds[sid] is voice
               else 700_000)
    traffic.append(("import", original, T_BAND + 40))  # the old rates, a third version
    for sid in subs:
        update(sid, 2, subs[sid], kinds[sid], T_BAND + 60, 45 if kinds[sid] is voice
               else 1_000_000)
    for sid in subs:
        update(sid, 3, subs[sid], kinds[sid], T_BAND + 90, 20 if kinds[sid] is voice
               else 10, Verb.TERMINATE)
    fast = _stack_run(tmp_path / "a", traffic, fast=True)
    py = _stack_run(tmp_path / "b", traffic, fast=False)
    assert fast == py
    # the versions and bands did price differently (the case is not vacuous): each first
    # report commits what its reservation priced -- v1 the original 0.12/min, v3 (same
    # start second, the banded version) peak 0.60/min, v4 (after 19:00) off-peak 0.30/min
    results = [r for r in fast["results"] if isinstance(r, ChargingResult)]
    assert all(r.ok for r in results)

    def first_report(sid: str) -> int:
        got = [r for (kind, req, _now), r in zip(traffic, fast["results"], strict=True)
               if kind == "req" and req.session_id == sid]
        return int(got[1].units[0].used_cost)

    assert [first_report(s) for s in ("v1", "v3", "v4")] == [120_000, 600_000, 300_000]


def test_the_price_plans_the_twin_keeps_are_out_of_the_collectors_sight(
        tmp_path: Path) -> None:
    """A grant's price plan (charging_slice._Plan, one per session start) is not tracked by
    the cyclic collector: it refers to the rating engine's objects only (no cycle)."""
    async def main() -> None:
        app = await build_charging(dataclasses.replace(
            load_settings(ROOT / "config" / "icx.toml"),
            accounts=AccountsSection(files=(str(tmp_path / "accounts.toml"),))),
            tmp_path / "data", admin=False)
        try:
            svc = app.service
            for i, sub in enumerate(SUBSCRIBERS[:2]):
                for n in range(2):  # the second session of an account: the twin's
                    sid = f"plan{i}-{n}"
                    assert (await svc.handle(_req(Verb.INITIAL, sid, 0, sub, ServiceKind.VOICE, (
                        ServiceUnits(rating_group=1, requested=60),)), now=T0)).ok
                    assert (await svc.handle(_req(Verb.UPDATE, sid, 1, sub, ServiceKind.VOICE, (
                        ServiceUnits(rating_group=1, requested=60, used=60,
                                     used_present=True),)), now=T0 + 60)).ok
            plans = [g.plan for s in svc.sessions for g in s.grants]
            assert plans and all(type(p).__name__ == "_Plan" for p in plans)
            assert not any(gc.is_tracked(p) for p in plans)
        finally:
            await app.close()

    (tmp_path / "accounts.toml").write_text(ACCOUNTS)
    asyncio.run(main())
