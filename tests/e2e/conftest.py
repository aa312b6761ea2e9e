"""A real `icx serve` stack (Diameter listener + charging + admin HTTP) on ephemeral ports,
run in a background thread with its own event loop so tests can drive it from outside
(python-diameter subprocess, our client, HTTP).

The stack serves on the embedded store. A test marked ``@pytest.mark.stores`` (or a module with
``pytestmark = pytest.mark.stores``) whose server comes from the ``server`` /
``quick_tcc_server`` fixtures runs once per store kind instead -- ``embedded``, ``redis`` (a
private redis-server), ``redis-cluster`` (a private 3-master Redis Cluster): the same body, the
same expected balances, journal records and answers (architecture invariant 6). Beyond what the
body asserts, each Redis run must leave the transcript its embedded run left: every answer the
test's clients got, every journal record, every e2e account's balance (``_same_as_embedded``).
The servers are the session-scoped fixtures of tests/redis_servers.py, flushed before each test;
without ``redis-server`` those variants skip with the reason (a failure under CI).
``@pytest.mark.stores("embedded", "redis")`` names the kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalReader
from icx.charging_app import RunningServer, start_server
from icx.settings import AccountsSection, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PYD = ROOT / ".venv-pydiameter" / "bin" / "python"

# Destination-Realm / Destination-Host of the CCRs in the real captures (../shared/data/diameter)
CAPTURE_REALMS = ("comverse.com", "magma.com")
CAPTURE_HOSTS = ("dgu2.comverse.com", "tvm-vocs.magma.com", "magma-fedgw.magma.com")

ACCOUNTS = """
[[range]]
first = "41790000001"
last = "41790000020"
amount = "50.00"

[[account]]
id = "41790000000"
amount = "0.00"

# Subscribers of the real captures in ../shared/data/diameter (replay tests).
[[account]]
id = "919080000016"          # nDPI Comverse CCR I/U/T, Subscription-Id E164
amount = "50.00"

[[account]]
id = "1234567810"            # magma Gy, Subscription-Id E164 (IMSI 999991234567810)
identities = ["1234567810", "999991234567810"]
amount = "50.00"
"""


# The store kinds a test marked ``stores`` runs on (the ``[store] backend`` values).
STORES = ("embedded", "redis", "redis-cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("stores")
    if marker is not None and "store_kind" in metafunc.fixturenames:
        kinds = marker.args or STORES
        assert set(kinds) <= set(STORES), kinds
        metafunc.parametrize("store_kind", kinds, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """The ``[store] backend`` the test's server runs on: "embedded" unless marked ``stores``."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def store(store_kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """``[store]`` settings for *store_kind* (none for the embedded store): a private Redis /
    Redis Cluster, flushed, so each test starts from the provisioned accounts only."""
    if store_kind == "embedded":
        return {}
    import redis

    if store_kind == "redis":
        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as r:
            r.flushall()
        return {"backend": "redis", "redis_url": url}
    nodes = request.getfixturevalue("redis_cluster_nodes")
    for host, port in nodes:
        with redis.Redis(host=host, port=port) as r:
            r.flushall()
    return {"backend": "redis-cluster",
            "cluster_nodes": tuple(f"{host}:{port}" for host, port in nodes)}


class Server:
    """Handle on the running stack: ports, a way to run coroutines on its loop, the journal."""

    def __init__(self, loop: asyncio.AbstractEventLoop, running: RunningServer,
                 data_dir: Path) -> None:
        self.loop = loop
        self.running = running
        self.data_dir = data_dir

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.running.charging.admin_port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def balance(self, account: str) -> tuple[int, int]:
        view = self.call(self.running.charging.store.get(account))
        b = view.balances[0]
        return b.amount, b.reserved

    def journal(self) -> list[dict[str, Any]]:
        self.call(self.running.charging.journal.flush())
        return [r for _, r in JournalReader(self.data_dir / "journal").iter_from(None)]


def e2e_settings(tmp_path: Path, store: dict[str, Any] | None = None, **ro: Any) -> Settings:
    """The demo config with the e2e accounts (and the capture realms/hosts), *store* replacing
    [store] settings (the ``store`` fixture's), *ro* replacing [ro] settings."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = load_settings(ROOT / "config" / "icx.toml")
    settings = dataclasses.replace(settings, accounts=AccountsSection(files=(str(accounts),)))
    # the real captures (test_capture_replay) name their own OCS: this server stands in for it
    settings = dataclasses.replace(settings, diameter=dataclasses.replace(
        settings.diameter, realms=CAPTURE_REALMS, hosts=CAPTURE_HOSTS))
    if store:
        section = dataclasses.replace(settings.store, **store)
        assert not section.validate(), section.validate()
        settings = dataclasses.replace(settings, store=section)
    if ro:
        settings = dataclasses.replace(settings, ro=dataclasses.replace(settings.ro, **ro))
    return settings


@contextlib.contextmanager
def serving(settings: Settings, data_dir: Path) -> Iterator[Server]:
    """Run *settings* on ephemeral ports in a background thread until the block ends."""
    loop = asyncio.new_event_loop()
    started: Future[RunningServer] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            running = await start_server(settings, data_dir, port=0, admin_port=0)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(running)
        await stop.wait()
        await running.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    running = started.result(60)
    try:
        yield Server(loop, running, data_dir)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


@pytest.fixture
def server(tmp_path: Path, store: dict[str, Any],
           request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from serve(tmp_path, store, compare=request)


@pytest.fixture
def quick_tcc_server(tmp_path: Path, store: dict[str, Any],
                     request: pytest.FixtureRequest) -> Iterator[Server]:
    """The same stack with Tcc 1 s, checked every 50 ms: supervision really runs."""
    yield from serve(tmp_path, store, compare=request, tcc_seconds=1.0,
                     supervision_interval=0.05)


def serve(tmp_path: Path, store: dict[str, Any] | None = None, *,
          compare: pytest.FixtureRequest | None = None, **ro: Any) -> Iterator[Server]:
    """Run the stack (the demo config, the e2e accounts, *store* replacing [store] settings,
    *ro* replacing [ro] settings) for the duration of a fixture. With *compare* (the fixture's
    request) a test marked ``stores`` must leave the same transcript on every store."""
    with serving(e2e_settings(tmp_path, store, **ro), tmp_path / "data") as srv:
        if compare is None or compare.node.get_closest_marker("stores") is None:
            yield srv
            return
        with _answers_recorded() as answers:
            yield srv
        if compare.node.stash.get(_FAILED, False):
            return  # (its own failure says what went wrong)
        got = _transcript(srv, answers)
    _same_as_embedded(compare, got)


# --------------------------------------------------------------------------- one transcript
# What a test marked ``stores`` left: every answer its clients got, the journal, every e2e
# account's balances. The first store kind's run of a test (embedded) records it; every other
# kind's run of the same test (same other parameters) must leave the same.
_TRANSCRIPTS: dict[tuple[str, str], tuple[str, Any]] = {}
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@contextlib.contextmanager
def _answers_recorded() -> Iterator[list[bytes]]:
    """Every answer frame a ``ClientPeer`` (icx.diameter_client: the tests' clients, the CLI's)
    receives while the block runs, cut from the stream by a framer of its own per peer."""
    from diameter.framing import FrameBuffer
    from icx.diameter_client import ClientPeer

    answers: list[bytes] = []
    framers: dict[ClientPeer, FrameBuffer] = {}
    receive = ClientPeer.data_received

    def recording(self: ClientPeer, data: bytes) -> None:
        framer = framers.setdefault(self, FrameBuffer(16 * 1024 * 1024))
        answers.extend(f for f in framer.feed(data) if not f[4] & 0x80)  # (R bit: requests)
        receive(self, data)

    ClientPeer.data_received = recording  # type: ignore[method-assign]
    try:
        yield answers
    finally:
        ClientPeer.data_received = receive  # type: ignore[method-assign]


def _account_ids() -> list[str]:
    import tomllib

    doc = tomllib.loads(ACCOUNTS)
    ids = [a["id"] for a in doc["account"]]
    for r in doc["range"]:
        width = len(r["first"])
        ids += [str(n).zfill(width) for n in range(int(r["first"]), int(r["last"]) + 1)]
    return sorted(ids)


# What differs between two runs of one test whatever the store: a journal record's id, its
# write time ``ts`` (the op's ``now``) and the usage ``start``/``end`` (wall clock: only whether
# they are there is compared; a hold's ``expires`` is compared as its offset from ``ts`` in ms,
# the TTL the store applied), the server's Origin-State-Id (its start time), the Session-Ids
# `icx ccr` makes (time + random), the admin API's top-up keys (admin:<uuid>), and the tag
# of an Ro session in its op keys (Session.tag: from the server's clock at start).
_WALL_CLOCK = ("id", "ts", "start", "end")
_ORIGIN_STATE_ID = 278
_GENERATED = (re.compile(r"icx-ccr\.[^;']*;\d+;\d+"),
              re.compile(r"admin:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"))
_SESSION_TAG = re.compile(r"(?<=\d)~[0-9a-f]+")  # (one name for all: ops of a batch reorder)


def _timeless(record: dict[str, Any]) -> list[tuple[str, Any]]:
    ts = record["ts"]

    def held(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: round((v - ts) / 1000) if k == "expires" and isinstance(v, int) else
                    held(v) for k, v in value.items()}
        if isinstance(value, list):
            return [held(v) for v in value]
        return value

    return sorted((k, "<time>" if k in _WALL_CLOCK else held(v)) for k, v in record.items())


def _transcript(srv: Server, answers: list[bytes]) -> dict[str, Any]:
    """The answers in order (flags, command, application, AVPs: the Hop-by-Hop and
    End-to-End ids are the client's), the journal records as a multiset (the order of ops in
    one Redis batch is the batch's), every e2e account's balances (amount, reserved,
    available); what :data:`_GENERATED` matches is named by order of first appearance."""
    from diameter.message import decode_message

    views = [srv.call(srv.running.charging.store.get(a)) for a in _account_ids()]
    names: dict[str, str] = {}

    def named(text: str) -> str:
        for pattern in _GENERATED:
            text = pattern.sub(lambda m: names.setdefault(m[0], f"<generated {len(names)}>"),
                               text)
        return _SESSION_TAG.sub("~<tag>", text)

    out = []
    for frame in answers:
        m = decode_message(frame)
        out.append((frame[4], m.code, m.app_id,
                    [named(repr(a)) for a in m.avps if a.code != _ORIGIN_STATE_ID]))
    records = [named(repr(_timeless(r))) for r in srv.journal()]
    return {
        "answers": out,
        "journal": sorted(records),
        "balances": [(v.account, [(b.id, b.amount, b.reserved, b.available)
                                  for b in v.balances]) for v in views],
    }


def _same_as_embedded(request: pytest.FixtureRequest, got: dict[str, Any]) -> None:
    callspec = getattr(request.node, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    kind = params.pop("store_kind", "embedded")
    key = (request.node.module.__name__ + "::" + request.node.originalname,
           repr(sorted(params.items())))
    first = _TRANSCRIPTS.setdefault(key, (kind, got))
    if first[0] == kind:
        return
    expected = first[1]
    for part in ("answers", "journal", "balances"):
        if got[part] != expected[part]:
            import difflib

            diff = "\n".join(difflib.unified_diff(
                [repr(x) for x in expected[part]], [repr(x) for x in got[part]],
                first[0], kind, lineterm="", n=1))
            pytest.fail(f"{part} on the {kind} store differ from the {first[0]} store's:\n"
                        f"{diff}", pytrace=False)
