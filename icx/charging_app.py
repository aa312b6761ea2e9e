"""Composition of the charging stack for `icx serve` (called from icx/wiring.py).

rating engine (decks imported into the data dir) + balance store (embedded by default) +
journal + ledger (recovered before serving) + demo accounts + charging service + Ro/Rf agent +
admin HTTP. No business logic: settings in, objects out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

import cython_ext
from charging.accounts_file import load_accounts_files, provision
from charging.journal import Journal
from charging.ledger import Ledger
from charging.rating import RatingEngine, RatingError, Service
from charging.requests import ServiceKind, UnitKind
from charging.service import ChargingService, ServiceConfig
from charging.store import open_store as open_backend
from charging.store.common import DEFAULT_RETENTION
from icx.commands.rates import engine_from_settings, import_configured_decks
from icx.config_loader import ConfigError
from icx.loop_health import LoopHealth
from icx.prom_text import journal_sync_lines
from icx.settings import Settings
from mediation.admin_http import build_app, start_admin
from mediation.agent import ChargingAgent
from mediation.metrics import Metrics
from mediation.service_map import ServiceMap

log = structlog.get_logger("icx.charging")


@dataclass
class ChargingApp:
    """Everything the Ro/Rf side of `icx serve` runs. ``await app.close()`` to stop."""

    engine: RatingEngine
    store: Any
    journal: Journal
    ledger: Ledger
    service: ChargingService
    agent: ChargingAgent
    admin: Any = None  # aiohttp AppRunner
    admin_port: int | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    health: LoopHealth | None = None  # loop lag and GC pauses for /metrics
    rf_dir: Path | None = None  # Rf state checkpoints (charging/offline_state.py)

    async def close(self) -> None:
        if self.health is not None:
            self.health.stop()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.admin is not None:
            await self.admin.cleanup()
        if self.rf_dir is not None and not self.journal.failed:
            # the next start then reads (almost) nothing of the journal for the Rf state
            try:
                await self.service.checkpoint_offline(self.rf_dir)
            except Exception:  # the journal holds it all: only the next start is slower
                log.exception("rf_checkpoint_failed")
        await self.ledger.close()
        await self.journal.close()
        await self.store.close()


def service_config(settings: Settings) -> ServiceConfig:
    ro = settings.ro
    return ServiceConfig(
        deck=ro.deck,
        default_quota={UnitKind.TIME: ro.default_time_quota,
                       UnitKind.OCTETS: ro.default_octet_quota,
                       UnitKind.EVENTS: ro.default_event_quota,
                       UnitKind.MONEY: 1_000_000},  # CC-Money RSU left empty: 1.00
        max_quota={UnitKind.TIME: ro.max_time_quota, UnitKind.OCTETS: ro.max_octet_quota,
                   UnitKind.EVENTS: ro.max_event_quota, UnitKind.MONEY: 100_000_000},
        validity_time=ro.validity_time,
        tcc=ro.tcc_seconds,
        offline_deck=settings.rf.deck,
        offline_timeout=settings.rf.session_timeout,
        offline_usage_reports=settings.rf.usage_reports,
        offline_retention=getattr(getattr(settings, "store", None), "session_retention", 300.0),
        session_retention=getattr(getattr(settings, "store", None), "session_retention", 300.0),
        kill_grace=ro.kill_grace_seconds,
        quota_holding_time=ro.quota_holding_time or None,
        quota_threshold_percent=ro.quota_threshold_percent or None,
        max_sessions=ro.max_sessions,
        currency=ro.currency,
        no_tariff_errors=(RatingError,),
        node=settings.diameter.origin_host,
    )


_RATING_SERVICE = {k: Service(k.value) for k in ServiceKind}
_rating_service = _RATING_SERVICE.__getitem__  # ServiceKind -> charging.rating.Service


async def open_store(settings: Settings, data_dir: Path, url: str | None = None) -> Any:
    """The balance store: *url* (``redis://...``) or the [store] section when it names Redis,
    else the embedded store."""
    st = getattr(settings, "store", None)
    backend = "redis" if url is not None else getattr(st, "backend", "embedded")
    return open_backend(
        backend, redis_url=str(url or getattr(st, "redis_url", "redis://127.0.0.1:6379/0")),
        cluster_nodes=getattr(st, "cluster_nodes", ()),
        max_connections=getattr(st, "max_connections", 64),
        retention=getattr(st, "idempotency_retention", DEFAULT_RETENTION),
        session_retention=getattr(st, "session_retention", None))


async def build_charging(settings: Settings, data_dir: Path, *, admin: bool = True,
                         admin_port: int | None = None,
                         store_url: str | None = None) -> ChargingApp:
    """Build, recover and start the charging stack. Caller serves Diameter with
    ``app.agent.handle`` as the request handler and awaits ``app.close()`` at shutdown.

    Bad input raises before the store and the journal open: AccountsFileError (``file:key:
    ...``) for an accounts file, DeckError (``file:line: ...`` problems) for a deck,
    ConfigError for an [ro]/[rf] deck the server does not have or a [rating] band no deck
    prices."""
    # Read the accounts files before anything is written: a bad one (AccountsFileError)
    # refuses the start with no deck imported, no journal opened.
    specs = load_accounts_files(settings.account_files())
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine_from_settings(settings, data_dir)
    for summary in import_configured_decks(settings, engine):
        if summary.version is not None:
            log.info("deck_imported", deck=summary.deck, version=summary.version,
                     rows=summary.rows)
    missing = settings.missing_decks(engine.decks()) + settings.unknown_bands(
        {name: engine.deck(name).data.bands for name in engine.decks()})
    if missing:
        raise ConfigError(missing)
    store = await open_store(settings, data_dir, store_url)
    jcfg = settings.journal
    journal = await Journal.open(
        data_dir / "journal", segment_bytes=jcfg.segment_bytes,
        rotate_seconds=jcfg.rotate_seconds, fsync=jcfg.fsync,
        group_window=jcfg.group_window_ms / 1000.0, preallocate=jcfg.preallocate,
        writer_threads=jcfg.writer_threads,
    )
    ledger = Ledger(store, journal, node=settings.diameter.origin_host,
                    snapshot_dir=data_dir / "snapshots",
                    snapshot_records=jcfg.snapshot_records,
                    snapshot_seconds=jcfg.snapshot_seconds,
                    snapshot_mode=jcfg.snapshot_mode,
                    expiry_interval=jcfg.expiry_interval)
    report = await ledger.recover(now=time.time())
    log.info("ledger_recovered", replayed=report.replayed, expired=report.expired,
             snapshot=str(report.snapshot))
    created = await provision(ledger, store, specs, now=time.time())
    log.info("accounts_provisioned", created=created)
    ledger.start()
    service = ChargingService(rater=engine, ledger=ledger, accounts=store,
                              config=service_config(settings), rating_service=_rating_service)
    # Rf accounting sessions open (and closed ones still remembered) when the server stopped
    # or died: their usage, record numbers and expiry, from the journal (before serving)
    rf_dir = data_dir / "rf"
    rf = await service.recover_offline(journal.directory, rf_dir, now=time.time())
    log.info("rf_recovered", checkpoint=str(rf.checkpoint), records=rf.records,
             applied=rf.applied, open=rf.open, closed=rf.closed, rewritten=rf.rewritten,
             problems=list(rf.problems))
    # online sessions that ended within [store] session_retention before the stop: a late
    # CCR-I of one is still refused (5002), not opened again and charged (from the journal)
    ended = service.recover_ended(journal.directory, now=time.time())
    log.info("ended_sessions_recovered", start=str(ended.start), records=ended.records,
             ended=ended.ended, open_tags=ended.open_tags)
    smap = ServiceMap.from_config(settings.ro.contexts, settings.ro.rating_groups,
                                  settings.ro.default_service)
    metrics = Metrics()
    agent = ChargingAgent(service, smap, origin_host=settings.diameter.origin_host,
                          origin_realm=settings.diameter.origin_realm, metrics=metrics,
                          rf_enabled=settings.rf.enabled,
                          when_durable=getattr(journal, "call_when_durable", None),
                          eager=_never_suspends(store))
    metrics.gauge("icx_active_sessions", "Open online charging sessions.",
                  lambda: len(service.sessions))
    metrics.gauge("icx_offline_sessions", "Open offline (Rf) accounting sessions.",
                  lambda: len(service.offline))
    metrics.gauge("icx_reserved_micros", "Micro-units held by open sessions.",
                  service.sessions.reserved_total)
    metrics.gauge("icx_journal_lag_bytes", "Journal bytes appended but not yet durable.",
                  lambda: _lag(journal))
    sync_stats = getattr(journal, "sync_stats", None)
    if sync_stats is not None:  # the event-loop journal (a SyncJournal has no group commits)
        metrics.collector(lambda: journal_sync_lines(sync_stats))
    metrics.counter("icx_snapshots_total", "Embedded-store snapshots written since start.",
                    lambda: ledger.stats["snapshots"])
    metrics.counter("icx_snapshot_failures_total",
                    "Embedded-store snapshots that failed since start (see the log).",
                    lambda: ledger.stats["snapshot_failures"])
    arena = cython_ext.load("arena")
    if arena is not None and arena.region()[1]:
        # the huge-page heap is on (icx serve, [server] huge_page_heap): after each snapshot,
        # rebuild the huge pages its copy-on-write split, or the next fork copies 4 KiB
        # entries again (measured on 860 MB: 22.6 ms -> 2.2 ms; the collapse took 0.3 s)
        ledger.after_fork_snapshot = arena.collapse
    metrics.gauge("icx_snapshot_fork_seconds",
                  "How long the event loop stopped for the last snapshot's fork.",
                  lambda: ledger.stats["snapshot_fork_us"] / 1e6)
    metrics.gauge("icx_snapshot_fork_seconds_max",
                  "The longest stop of the event loop for a snapshot's fork since start.",
                  lambda: ledger.stats["snapshot_fork_us_max"] / 1e6)
    health = LoopHealth()
    metrics.collector(health.render)
    app = ChargingApp(engine=engine, store=store, journal=journal, ledger=ledger,
                      service=service, agent=agent, health=health, rf_dir=rf_dir)
    tune_gc()
    health.start()
    app.tasks.append(asyncio.ensure_future(_supervise(service, settings.ro.supervision_interval)))
    app.tasks.append(asyncio.ensure_future(_rf_checkpoints(
        service, journal, rf_dir, jcfg.snapshot_seconds, now=rf.records > 0)))
    if admin and settings.admin.enabled:
        web_app = build_app(service=service, agent=agent, accounts=store, ledger=ledger)
        port = settings.admin.listen_port if admin_port is None else admin_port
        app.admin = await start_admin(web_app, settings.admin.listen_host, port)
        app.admin_port = _bound_port(app.admin) or port
    return app


# Young-generation threshold while serving. Every CCR allocates a few hundred short-lived
# objects (decoded AVPs, request/result objects, journal records) that die young; with the
# default 700 the collector ran gen-1/gen-2 passes over the whole heap (open sessions, the
# store's accounts, the rating tables) so often that GC took about a third of the CPU per
# request (measured with gc.callbacks in benchmarks/_ro_inproc.py). Cycles are still collected.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Move everything built at start (decks, accounts, dictionaries) to the permanent
    generation and raise the collection thresholds: the server's steady state keeps few
    cyclic objects, so full passes over the long-lived heap are wasted work."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _never_suspends(store: Any) -> bool:
    """The embedded store answers without awaiting I/O, so the agent may start decisions
    eagerly; the Redis stores await the network under asyncio.timeout (needs a Task)."""
    from charging.store.memory import MemoryStore

    return isinstance(store, MemoryStore)


def _lag(journal: Journal) -> float:
    pos, durable = journal.position, journal.durable
    if pos[0] != durable[0]:
        return float(pos[1])
    return float(pos[1] - durable[1])


def _bound_port(runner: Any) -> int | None:
    for site in getattr(runner, "sites", []):
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or []:
            return int(sock.getsockname()[1])
    return None


async def _supervise(service: ChargingService, interval: float) -> None:
    """Tcc supervision: close silent sessions (RFC 4006 §5.1.2)."""
    while True:
        await asyncio.sleep(interval)
        try:
            closed = await service.supervise(time.time())
            if closed:
                log.info("sessions_expired", count=len(closed))
        except Exception:  # keep supervising; one failure is logged, not fatal
            log.exception("supervision_failed")


async def _rf_checkpoints(service: ChargingService, journal: Journal, directory: Path,
                          interval: float, *, now: bool) -> None:
    """A checkpoint of the Rf state every *interval* ([journal] snapshot_seconds) while the
    journal moves, so a restart reads at most that much of the journal to rebuild it (*now*:
    one at once, after a recovery that read some)."""
    last = None if now else journal.position
    while True:
        if journal.position != last:
            try:
                last = await service.checkpoint_offline(directory)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving: the journal holds everything
                log.exception("rf_checkpoint_failed")
        await asyncio.sleep(interval)


@dataclass
class RunningServer:
    """`icx serve` minus the signal handling: the Diameter listener and the charging app."""

    charging: ChargingApp
    diameter: Any  # diameter.adapter.DiameterServer

    @property
    def port(self) -> int:
        return int(self.diameter.port)

    async def close(self) -> None:
        await self.diameter.close()
        await self.charging.close()


async def start_server(settings: Settings, data_dir: Path, *, port: int | None = None,
                       admin_port: int | None = None,
                       store_url: str | None = None) -> RunningServer:
    """Like ``icx.wiring.start`` but with explicit ports (0 = ephemeral) and an optional Redis
    store URL: what the e2e tests and benchmarks/ro.py run."""
    import dataclasses

    from icx import wiring

    charging = await build_charging(settings, data_dir, admin_port=admin_port,
                                    store_url=store_url)
    charging.agent.sender = wiring.server_request_sender(settings)
    if port is not None:
        settings = dataclasses.replace(
            settings, diameter=dataclasses.replace(settings.diameter, listen_port=port))
    server = wiring.build_server(settings, charging.agent.handle,
                                 responder=charging.agent.respond)
    wiring.count_protocol_answers(charging.agent.metrics, server)
    charging.agent.find_peer = wiring.peer_finder(server)
    try:
        await server.start()
    except BaseException:
        await charging.close()
        raise
    return RunningServer(charging, server)
