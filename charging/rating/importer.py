"""Import a CSV deck as a new version in the data dir, with a summary of what changed."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from charging.currency import is_iso4217
from charging.rating.csvdeck import ImportOptions, read_deck
from charging.rating.deckdata import DeckData, DeckMeta
from charging.rating.model import Service
from charging.rating.store import DeckStore, check_deck_name


@dataclass(slots=True)
class ImportSummary:
    """What an import did. ``version`` is None when ``ensure_imported`` found the file unchanged."""

    deck: str
    version: int | None
    rows: int = 0
    prefixes: int = 0
    destinations: int = 0
    lines: int = 0
    new: int = 0
    increased: int = 0
    decreased: int = 0
    removed: int = 0
    unchanged: int = 0
    previous_version: int | None = None
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        out = {k: getattr(self, k) for k in self.__slots__ if k != "rejects"}  # type: ignore[attr-defined]
        out["rejected"] = len(self.rejects)
        return out


def source_digest(path: str, options: dict[str, object]) -> str:
    """sha256 of the file bytes and the import options (an identical re-import is a no-op)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(repr(sorted(options.items())).encode())
    return h.hexdigest()


def _unchanged(store: DeckStore, deck: str, digest: str) -> bool:
    """Whether *digest* is that of the latest version of *deck*, or of the newest version
    imported from a configured file (``via == "config"``; versions of older data dirs have no
    ``via``: then only the latest counts)."""
    for i, version in enumerate(reversed(store.versions(deck))):
        meta = store.read_meta(deck, version)
        if meta.source_sha256 == digest:
            return i == 0 or meta.via == "config"
        if meta.via == "config":
            return False
    return False


def _current_rates(data: DeckData) -> dict[tuple[object, ...], tuple[int, int]]:
    """key (service, origin, prefix, band) -> (rate, rate_first) of its latest non-blocked
    row; keys whose latest row is blocked are left out (a closed code counts as removed)."""
    keys = zip(data.service, data.origin, data.prefix, data.band, strict=True)
    if not any(data.blocked):
        simple: dict[tuple[object, ...], tuple[int, int]] = dict(zip(keys, zip(data.rate, data.rate_first, strict=True), strict=False))
        if len(simple) == len(data.prefix):
            return simple  # one row per key: nothing to choose
        keys = zip(data.service, data.origin, data.prefix, data.band, strict=True)
    best: dict[tuple[object, ...], tuple[int, int, int, int]] = {}
    frm, blk, rate, first = data.eff_from, data.blocked, data.rate, data.rate_first
    for i, key in enumerate(keys):
        cur = best.get(key)
        if cur is None or frm[i] > cur[0]:
            best[key] = (frm[i], blk[i], rate[i], first[i])
    return {k: (v[2], v[3]) for k, v in best.items() if not v[1]}


def diff_counts(old: DeckData | None, new: DeckData, distinct_prefixes: int | None = None) -> tuple[int, int, int, int, int]:
    """(new, increased, decreased, removed, unchanged) by service/origin/prefix/band,
    comparing the subsequent-increment rate of each key's latest row."""
    if old is None:
        if not any(new.blocked) and distinct_prefixes == len(new.prefix):
            return len(new.prefix), 0, 0, 0, 0
        return len(_current_rates(new)), 0, 0, 0, 0
    cur_new = _current_rates(new)
    cur_old = _current_rates(old)
    n = inc = dec = same = 0
    get = cur_old.get
    for k, v in cur_new.items():
        o = get(k)
        if o is None:
            n += 1
        elif v[0] > o[0]:
            inc += 1
        elif v[0] < o[0]:
            dec += 1
        else:
            same += 1
    removed = sum(1 for k in cur_old if k not in cur_new)
    return n, inc, dec, removed, same


def import_csv(
    store: DeckStore,
    path: str,
    *,
    deck: str,
    partner: str | None = None,
    direction: str = "sell",
    currency: str = "EUR",
    effective: str | None = None,
    service: Service | str = Service.VOICE,
    timezone: str = "UTC",
    skip_bad: bool = False,
    hyphen: str = "range",
    only_if_changed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Read *path* and store it as the next version of *deck* (atomically: a bad file stores
    nothing and raises DeckError). ``only_if_changed`` (the server's start-up import of a
    configured deck file): return a summary with ``version=None`` when the file did not change
    since the last such import (same bytes and options), even if versions were imported by hand
    since -- re-importing the config file would silently replace their tariff -- or when the
    latest version came from the same bytes and options."""
    started = time.perf_counter()
    check_deck_name(deck)
    if direction not in ("sell", "buy"):
        raise ValueError(f"direction must be 'sell' or 'buy', got {direction!r}")
    if not is_iso4217(currency.upper()):
        raise ValueError(f"currency must be an ISO 4217 code like EUR, got {currency!r}")
    svc = service if isinstance(service, Service) else Service.parse(service)
    options: dict[str, object] = {
        "partner": partner, "direction": direction, "currency": currency.upper(),
        "effective": effective, "service": svc.value, "timezone": timezone, "hyphen": hyphen,
        "skip_bad": skip_bad,
    }
    digest = source_digest(path, options)
    if only_if_changed:
        latest = store.latest(deck)
        if latest is not None and _unchanged(store, deck, digest):
            return ImportSummary(deck=deck, version=None, previous_version=latest)
    opts = ImportOptions(service=svc, timezone=timezone, effective=effective, skip_bad=skip_bad, hyphen=hyphen)
    result = read_deck(path, opts, progress=progress)
    data = result.data
    meta = DeckMeta(
        deck=deck, version=0, currency=currency.upper(), direction=direction, partner=partner,
        timezone=timezone, imported_at=int(time.time()), source=os.path.basename(path),
        source_sha256=digest, via="config" if only_if_changed else "", rows=len(data),
        prefixes=result.distinct_prefixes if result.distinct_prefixes is not None else len(set(data.prefix)),
        destinations=result.distinct_destinations if result.distinct_destinations is not None else len(set(data.dest)),
    )
    with store.locked():
        prev = store.latest(deck)
        old = store.load(deck, prev).data if prev is not None else None
        counts = diff_counts(old, data, meta.prefixes)
        version = store.write_new_version(meta, data)
    return ImportSummary(
        deck=deck, version=version, rows=meta.rows, prefixes=meta.prefixes,
        destinations=meta.destinations, lines=result.lines, new=counts[0], increased=counts[1],
        decreased=counts[2], removed=counts[3], unchanged=counts[4], previous_version=prev,
        rejects=result.rejects, seconds=time.perf_counter() - started,
    )
