"""The server's settings: frozen, typed, validated at start (see icx/config_loader.py).

Each TOML table maps to one section dataclass below. Areas add their own section here; the
composition root (icx/wiring.py) turns sections into the objects each package needs, so the
packages themselves never import icx.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from charging.currency import is_iso4217
from icx.config_loader import (
    ConfigError,
    ConfigProblem,
    build,
    check,
    in_range,
    non_empty,
    read_toml,
)


def _iso4217(value: str) -> str | None:
    """A settings check: None when *value* is an ISO 4217 currency code (any case)."""
    return None if is_iso4217(value.upper()) else "must be an ISO 4217 currency code like EUR"

@dataclass(frozen=True, slots=True)
class ServerSection:
    """[server]: process-wide settings."""

    data_dir: str = "data"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Python's object heap in one huge-page region (cython_ext/arena.pyx): a snapshot's fork
    # then copies 512x fewer page-table entries (~20 ms per GB of RSS -> ~4 ms per GB).
    huge_page_heap: bool = True
    # MiB of that region kept populated past what is in use, by a native thread: the first
    # touch of memory costs ~1 ms per MiB on a VM, a stall of the event loop while the heap
    # grows (cython_ext/arena.pyx). Counts in RSS from the start. 0 = off.
    heap_populate_ahead_mb: int = field(default=8, metadata=check(in_range(0, 4096)))


@dataclass(frozen=True, slots=True)
class DiameterSection:
    """[diameter]: our identity, the listener and the protocol limits (RFC 6733)."""

    origin_host: str = field(default="ocs.icx.local", metadata=check(non_empty))
    origin_realm: str = field(default="icx.local", metadata=check(non_empty))
    listen_host: str = "127.0.0.1"
    listen_port: int = field(default=3868, metadata=check(in_range(0, 65535)))
    transport: Literal["tcp", "sctp"] = "tcp"
    vendor_id: int = 0
    product_name: str = "icx"
    # Largest message we accept; a bigger Message Length claim is refused before buffering.
    max_message_size: int = field(default=65536, metadata=check(in_range(20, 16 * 1024 * 1024)))
    # Requests in flight per peer before we answer DIAMETER_TOO_BUSY (3004).
    max_inflight_per_peer: int = field(default=1024, metadata=check(in_range(1, 1_000_000)))
    # Tw of RFC 3539; RFC 4006 §5.7 / RFC 3539 put the minimum at 6 s.
    watchdog_seconds: float = field(default=30.0, metadata=check(in_range(6, 3600)))
    # Close an accepted connection whose first message (a CER) does not arrive in time.
    cer_timeout_seconds: float = field(default=10.0, metadata=check(in_range(0.1, 3600)))
    # How long a server-initiated RAR/ASR waits for its RAA/ASA (RFC 6733 §5.5.4 leaves Tx to
    # the node); the admin call that sent it (top-up with reauth, sessions kill) waits as long.
    answer_timeout_seconds: float = field(default=10.0, metadata=check(in_range(0.1, 600)))
    # Origin-Host + End-to-End-Id duplicate cache lifetime (RFC 6733 §6.2: >= 4 min uniqueness).
    duplicate_cache_seconds: float = field(default=240.0, metadata=check(in_range(0, 86400)))
    # ...and its size bound (oldest evicted first); ~0.3 KiB per entry with the stored answer.
    duplicate_cache_entries: int = field(default=100_000, metadata=check(in_range(1, 50_000_000)))
    # Empty = accept any peer; otherwise CER from others gets 3010 and a close.
    allowed_peers: tuple[str, ...] = ()
    # One `diameter.request` log line per answered request (at INFO). Costs CPU per request
    # at log_level "info"; false turns only this line off.
    request_log: bool = True
    # Destination-Realm values served here besides origin_realm; a request naming another
    # realm gets 3003 DIAMETER_REALM_NOT_SERVED, one whose Destination-Host is neither
    # origin_host nor in `hosts` 3002 DIAMETER_UNABLE_TO_DELIVER (RFC 6733 §6.1: icx routes
    # nowhere). check_destination = false takes every request as ours.
    realms: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    check_destination: bool = True


@dataclass(frozen=True, slots=True)
class AdminSection:
    """[admin]: the operator HTTP API (/healthz, /metrics, JSON API)."""

    listen_host: str = "127.0.0.1"
    listen_port: int = field(default=8080, metadata=check(in_range(0, 65535)))
    enabled: bool = True


_SERVICES = ("voice", "data", "data_time", "sms", "mms", "content")
# [store] idempotency_retention floor for the Redis backends (see StoreSection)
REDIS_MIN_RETENTION = 86400.0


def _service_map(value: dict[str, str]) -> str | None:
    bad = [k for k, v in value.items() if v not in _SERVICES]
    return f"unknown service for {bad[0]!r}; use one of {', '.join(_SERVICES)}" if bad else None


@dataclass(frozen=True, slots=True)
class RoSection:
    """[ro]: online charging (RFC 4006 / TS 32.299): service mapping, quotas, supervision."""

    deck: str = field(default="retail", metadata=check(non_empty))
    # Service-Context-Id suffix (the "NNNNN@3gpp.org" part, facts C2) -> service.
    contexts: dict[str, str] = field(default_factory=lambda: {
        "32260@3gpp.org": "voice", "32276@3gpp.org": "voice", "32275@3gpp.org": "voice",
        "32251@3gpp.org": "data", "32274@3gpp.org": "sms", "32270@3gpp.org": "mms",
        "content@icx.local": "content",
    }, metadata=check(_service_map))
    # Rating-Group (decimal string) -> service, overriding the context (e.g. time-metered data).
    rating_groups: dict[str, str] = field(default_factory=lambda: {"200": "data_time"},
                                          metadata=check(_service_map))
    # Service used when the Service-Context-Id matches nothing above ("" = answer 5031).
    default_service: str = field(default="data", metadata=check(
        lambda v: None if v in ("", *_SERVICES) else
        f"unknown service {v!r}; use one of {', '.join(_SERVICES)} or \"\""))
    validity_time: int = field(default=600, metadata=check(in_range(0, 86400)))
    # Tcc (RFC 4006 §13): a session silent this long is closed and its reservations released.
    tcc_seconds: float = field(default=1200.0, metadata=check(in_range(1, 7 * 86400)))
    # After an operator kill answered ASA 2001, how long to wait for the client's CCR-T (which
    # debits the usage) before releasing the hold (protocol-facts D: keep the session until the
    # CCR-T arrives or Tcc runs out; this bounds it further).
    kill_grace_seconds: float = field(default=30.0, metadata=check(in_range(1, 7 * 86400)))
    default_time_quota: int = field(default=300, metadata=check(in_range(1, 86400)))
    default_octet_quota: int = field(default=10_000_000, metadata=check(in_range(1, 2**40)))
    default_event_quota: int = field(default=1, metadata=check(in_range(1, 10_000)))
    max_time_quota: int = field(default=3600, metadata=check(in_range(1, 86400)))
    max_octet_quota: int = field(default=1_000_000_000, metadata=check(in_range(1, 2**50)))
    max_event_quota: int = field(default=100, metadata=check(in_range(1, 1_000_000)))
    quota_holding_time: int = field(default=0, metadata=check(in_range(0, 86400)))  # 0 = omit
    quota_threshold_percent: int = field(default=0, metadata=check(in_range(0, 99)))  # 0 = omit
    max_sessions: int = field(default=1_000_000, metadata=check(in_range(1, 100_000_000)))
    currency: str = field(default="EUR", metadata=check(_iso4217))
    supervision_interval: float = field(default=5.0, metadata=check(in_range(0.05, 3600)))

    def validate(self) -> list[tuple[str, str]]:
        """A Rating-Group is an Unsigned32 (RFC 4006 §8.29): "abc" passed check-config and
        failed the start with ValueError after the accounts were journaled (exit 1); "-5"
        or "0200" beside "200" named no group, or one twice (the last silently won)."""
        out: list[tuple[str, str]] = []
        seen: dict[int, str] = {}
        for key in self.rating_groups:
            if not (key.isascii() and key.isdigit()) or int(key) > 0xFFFFFFFF:
                out.append((f"rating_groups.{key}", f"{key!r} is no Rating-Group: use a "
                                                    "decimal number 0..4294967295"))
                continue
            if int(key) in seen:
                out.append((f"rating_groups.{key}",
                            f"Rating-Group {int(key)} is also {seen[int(key)]!r}"))
            seen.setdefault(int(key), key)
        # Tcc shorter than the Validity-Time a grant carries would close sessions (and give
        # their holds back) while the client still uses valid quota: its next report gets
        # 5002 and that usage is never charged. RFC 4006 §13 / facts B5: Tcc may be twice
        # the Validity-Time.
        if self.validity_time and self.tcc_seconds < self.validity_time:
            out.append(("tcc_seconds", f"{self.tcc_seconds:g} s is shorter than validity_time "
                                       f"({self.validity_time} s): sessions would be closed "
                                       "while their quota is still valid; use at least "
                                       "validity_time (2 x is usual)"))
        return out


@dataclass(frozen=True, slots=True)
class RfSection:
    """[rf]: offline charging (ACR/ACA): records are rated and journaled, no balance check."""

    enabled: bool = True
    deck: str = field(default="retail", metadata=check(non_empty))
    # An open accounting session silent this long is closed with the usage seen so far.
    session_timeout: float = field(default=7200.0, metadata=check(in_range(1, 7 * 86400)))
    # What an INTERIM/STOP's Used-Service-Units mean: "incremental" -- the usage since the
    # record before (TS 32.299 containers; the call's usage is their sum) -- or "cumulative"
    # -- the call's usage so far (RFC 6733 style running totals; the call's usage is the
    # highest total reported: a lower one is kept out and logged). docs/charging.md. Not the
    # ACR's top-level Accounting-Input/Output-Octets: RFC 7155 running totals either way.
    usage_reports: Literal["incremental", "cumulative"] = "incremental"


@dataclass(frozen=True, slots=True)
class AccountsSection:
    """[accounts]: demo/provisioning accounts created at start (idempotent), from TOML files.

    ``files`` named here must exist; left out, ``accounts.toml`` beside the config is read
    when there is one (:meth:`Settings.account_files`)."""

    files: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class JournalSection:
    """[journal]: the crash-safe journal (charging/journal) and the ledger's snapshots.

    Files live in ``<data_dir>/journal`` (segments) and ``<data_dir>/snapshots``.
    """

    # Rotate a segment before it would pass this size (bytes).
    segment_bytes: int = field(default=64 * 1024 * 1024,
                               metadata=check(in_range(4096, 4 * 1024 * 1024 * 1024)))
    # Also seal a segment this old (s), even when idle, so settlement sees it; 0 = size only.
    rotate_seconds: float = field(default=300.0, metadata=check(in_range(0, 86400)))
    # fdatasync each group commit. false loses the exactly-once guarantee: tests/benchmarks only.
    fsync: bool = True
    # Wait this long (ms) before dispatching a group when the writer is idle; 0 = next loop turn.
    group_window_ms: float = field(default=0.0, metadata=check(in_range(0, 100)))
    # Keep the open segment preallocated at full size with real zeros (the next one prepared
    # in the background), so a group commit's sync writes data only, never ext4 metadata.
    # false: append to a growing file (slower, bigger p99; for disks short of space).
    preallocate: bool = True
    # GIL-free native writer threads = group commits in flight (cython_ext/journal_io); 0 =
    # the Python writer thread (also what runs without the compiled extensions).
    writer_threads: int = field(default=2, metadata=check(in_range(0, 4)))
    # Embedded store: cut a snapshot after this many journaled ops (then after as many as
    # were journaled in all: the spacing doubles) or this many seconds, whichever first.
    snapshot_records: int = field(default=100_000, metadata=check(in_range(1, 10**9)))
    snapshot_seconds: float = field(default=300.0, metadata=check(in_range(1, 86400)))
    # How a snapshot is written: "live" (the loop dumps it in small steps, ~1 us per cached
    # op spread out; no fork) or "fork" (a child dumps a frozen copy; the loop pays the fork
    # and the copy-on-write faults after it: p99 43-101 ms against 14-25 ms at 10k CCR/s).
    # docs/balances-and-journal.md.
    snapshot_mode: Literal["fork", "live"] = "live"
    # How often expired reservations are released (s).
    expiry_interval: float = field(default=1.0, metadata=check(in_range(0.01, 3600)))


@dataclass(frozen=True, slots=True)
class StoreSection:
    """[store]: where balances live (charging/store). Snapshot and TTL-sweep intervals are in
    [journal] (the ledger drives both)."""

    # "embedded": in-process, durable through the journal + snapshots (the default);
    # "redis": one redis-server; "redis-cluster": a Redis Cluster (same scripts, {acct:ID} slots).
    backend: Literal["embedded", "redis", "redis-cluster"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # "host:port" of some cluster nodes (backend = "redis-cluster").
    cluster_nodes: tuple[str, ...] = ()
    # Pool size for the Redis store (concurrent pipelined batches in flight).
    max_connections: int = field(default=64, metadata=check(in_range(1, 10_000)))
    # Reservation TTL (s) when a caller gives none; Ro uses its own validity time.
    default_ttl: float = field(default=300.0, metadata=check(in_range(1, 86400)))
    # How long an idempotency key is remembered (s); a replay after that acts again.
    # Embedded store: top-up keys (a payment system's or operator's, retried for hours). The
    # Redis stores: every key, and they need >= 24 h, because an op Redis applied before a
    # crash is journaled at recovery from its kept result, and a result pruned first would
    # leave money moved with no record.
    idempotency_retention: float = field(default=172800.0,
                                         metadata=check(in_range(600, 30 * 86400)))
    # Embedded store only: how long the keys of every other op are remembered (s): reserve,
    # commit, release, debit, refund, ~1.5 per CCR, each kept 1-2 x this long at ~540 bytes.
    # Diameter peers retry within seconds to minutes (RFC 4006 Tx, RFC 6733 5.5.4 failover),
    # so 300 s covers them: ~0.25-0.5 GB per 1,000 CCR/s. (48 h for these meant 130-260 GB.)
    session_retention: float = field(default=300.0, metadata=check(in_range(60, 86400)))

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if self.backend == "redis-cluster" and not self.cluster_nodes:
            problems.append(("cluster_nodes", 'backend "redis-cluster" needs at least one node'))
        for i, node in enumerate(self.cluster_nodes):
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                problems.append((f"cluster_nodes[{i}]", f"expected host:port, got {node!r}"))
        if self.backend == "redis" and not self.redis_url.startswith(("redis://", "unix://")):
            problems.append(("redis_url", f"expected redis://host:port/db, got {self.redis_url!r}"))
        if self.session_retention > self.idempotency_retention:
            problems.append(("session_retention",
                             f"must not exceed idempotency_retention "
                             f"({self.idempotency_retention:g}), got {self.session_retention:g}"))
        if self.backend != "embedded" and self.idempotency_retention < REDIS_MIN_RETENTION:
            problems.append(("idempotency_retention",
                             f"backend {self.backend!r} needs >= {REDIS_MIN_RETENTION:.0f} s "
                             "(ops Redis applied before a crash are journaled at recovery "
                             f"from their kept results), got {self.idempotency_retention:g}"))
        return problems


def _deck_name(value: str) -> str | None:
    """A settings check: None when *value* can name a deck in the data dir."""
    from charging.rating.store import check_deck_name

    try:
        check_deck_name(value)
    except ValueError as exc:
        return str(exc)
    return None


def _deck_date(value: str | None) -> str | None:
    """A settings check: None when *value* is a date a deck import reads (or None)."""
    from charging.rating.csvcells import BadCell, Dates

    try:
        if value is not None:
            Dates("UTC").parse(value)
    except BadCell as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class RatingDeckFile:
    """One entry of [[rating.decks]]: a CSV deck imported at start when new or changed."""

    file: str = field(metadata=check(non_empty))
    deck: str = field(metadata=check(_deck_name))
    service: Literal["voice", "sms", "mms", "data", "data_time", "content"] = "voice"
    partner: str | None = None
    direction: Literal["sell", "buy"] = "sell"
    currency: str = field(default="EUR", metadata=check(_iso4217))
    # start date of rows without one; refused here, not as the deck's "file:--effective:"
    effective: str | None = field(default=None, metadata=check(_deck_date))


@dataclass(frozen=True, slots=True)
class RatingSection:
    """[rating]: rate decks, number normalisation, time bands (charging/rating)."""

    # Timezone of deck dates (effective at local midnight) and of the band calendar.
    timezone: str = "UTC"
    # Stripped from destinations before matching, longest first (e.g. "1010", "#31#").
    technical_prefixes: tuple[str, ...] = ()
    # A call crossing a band change: rated at its "start" band, or "split" per band.
    band_mode: Literal["start", "split"] = "start"
    # band name -> rules like "mon-fri 08:00-19:00" (local time); first match wins.
    bands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    holidays: tuple[str, ...] = ()  # ISO dates rated in holiday_band
    holiday_band: str = "weekend"
    default_band: str = "offpeak"
    decks: tuple[RatingDeckFile, ...] = ()

    def validate(self) -> list[tuple[str, str]]:
        import datetime as dt
        from zoneinfo import ZoneInfo

        from charging.rating.bands import parse_rule

        out: list[tuple[str, str]] = []
        try:
            ZoneInfo(self.timezone)
        except Exception:
            out.append(("timezone", f"unknown timezone {self.timezone!r}"))
        for band, rules in self.bands.items():
            for i, rule in enumerate(rules):
                try:
                    parse_rule(band, rule)
                except ValueError as exc:
                    out.append((f"bands.{band}[{i}]", str(exc)))
        first: dict[str, int] = {}
        for i, entry in enumerate(self.decks):
            # two files for one deck: each start imported both, the later as a new version
            # of the same deck (carrier_a_sell priced with the buy rates)
            j = first.setdefault(entry.deck, i)
            if j != i:
                out.append((f"decks[{i}].deck",
                            f"deck {entry.deck!r} is also rating.decks[{j}]; one file per deck"))
        for i, day in enumerate(self.holidays):
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                out.append((f"holidays[{i}]", f"not an ISO date: {day!r}"))
        return out


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `icx serve` needs; built only by :func:`load_settings`."""

    server: ServerSection = field(default_factory=ServerSection)
    diameter: DiameterSection = field(default_factory=DiameterSection)
    admin: AdminSection = field(default_factory=AdminSection)
    ro: RoSection = field(default_factory=RoSection)
    rf: RfSection = field(default_factory=RfSection)
    accounts: AccountsSection = field(default_factory=AccountsSection)
    journal: JournalSection = field(default_factory=JournalSection)
    rating: RatingSection = field(default_factory=RatingSection)
    store: StoreSection = field(default_factory=StoreSection)
    # Directory of the config file; relative paths inside the config resolve against it.
    base_dir: str = "."
    # The config file itself, for problems found after loading (derived, like base_dir).
    config_file: str = "-"

    def validate(self) -> list[tuple[str, str]]:
        """Files the config names must exist (their contents are checked when read)."""
        named = [(f"accounts.files[{i}]", f) for i, f in enumerate(self.accounts.files or ())]
        named += [(f"rating.decks[{i}].file", d.file) for i, d in enumerate(self.rating.decks)]
        return [(key, f"file not found: {self.resolve(f)}") for key, f in named
                if f and not self.resolve(f).is_file()]

    def missing_decks(self, have: list[str]) -> list[ConfigProblem]:
        """``[ro] deck`` / ``[rf] deck`` naming none of the decks the server *has* (imported
        from [[rating.decks]] or by `icx rates import`): a typo that would answer every
        request 5031. Checked only when the config lists decks (a bare config may run
        without)."""
        if not self.rating.decks:
            return []
        named = [("ro.deck", self.ro.deck)] + ([("rf.deck", self.rf.deck)] if self.rf.enabled
                                               else [])
        return [ConfigProblem(self.config_file, key, f"no deck {deck!r}; the server has "
                                                     f"{', '.join(sorted(have)) or 'none'}")
                for key, deck in named if deck not in have]

    def unknown_bands(self, deck_bands: Mapping[str, Iterable[str]]) -> list[ConfigProblem]:
        """``[rating] default_band``, ``holiday_band`` (when ``holidays`` lists a date) and the
        band names of ``[rating.bands]`` that no deck prices. *deck_bands* maps each deck the
        server has (the latest version) to the bands of its rows ("" = any time).

        A band the calendar gives that a deck lacks matches only that deck's rows without a
        band (5031 where it has none), so a typo (``"ofpeak"``) silently changed prices. A band
        only some decks price is fine: the others may price that time by rows without a band.
        Checked only when some deck has banded rows (otherwise the calendar is never asked);
        ``""`` names no band on purpose (only rows without a band match)."""
        priced = {band.lower() for bands in deck_bands.values() for band in bands if band}
        if not priced:
            return []
        r = self.rating
        named = [("rating.default_band", r.default_band)]
        if r.holidays:
            named.append(("rating.holiday_band", r.holiday_band))
        named += [(f"rating.bands.{band}", band) for band in r.bands]
        have = ", ".join(sorted(priced))
        return [ConfigProblem(self.config_file, key,
                              f"no deck prices band {band!r}; the decks' bands are {have}")
                for key, band in named if band and band.lower() not in priced]

    def account_files(self) -> list[Path]:
        """The accounts files to provision: ``[accounts] files``, else ``accounts.toml`` beside
        the config when it exists."""
        if self.accounts.files is not None:
            return [self.resolve(f) for f in self.accounts.files]
        default = self.resolve("accounts.toml")
        return [default] if default.is_file() else []

    def resolve(self, path: str) -> Path:
        """Resolve a path named in the config relative to the config file's directory."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def data_dir(self, override: str | None = None) -> Path:
        """The data dir: ``--data-dir``, else env ICX_DATA_DIR, else [server].data_dir."""
        chosen = override or os.environ.get("ICX_DATA_DIR")
        if chosen:
            return Path(chosen)
        return self.resolve(self.server.data_dir)


def load_settings(path: str | Path) -> Settings:
    """Read and validate a TOML config file; raise ConfigError with every problem found."""
    p = Path(path)
    data = read_toml(p)
    # base_dir and config_file are derived, never written by an operator: one written in the
    # file was silently replaced (relative paths did not resolve against it)
    written = [ConfigProblem(str(path), key, "unknown key (derived from the file's location)")
               for key in _DERIVED if key in data]
    if written:
        raise ConfigError(written)
    data = {**data, "base_dir": str(p.resolve().parent), "config_file": str(path)}
    return build(Settings, data, file=str(path))


_DERIVED = ("base_dir", "config_file")
