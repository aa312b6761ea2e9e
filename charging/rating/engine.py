"""RatingEngine: the rating API the Ro/Rf agent and settlement call.

    engine = RatingEngine.open(data_dir)             # latest version of every deck
    engine.reload_if_changed()                       # one stat(); swaps in new versions
    price = engine.rate(deck="retail", service=Service.VOICE, destination="41791234567",
                        at=time.time(), usage=125)   # RatedPrice, or raises NoTariff
    units = engine.max_units(deck="retail", service=Service.VOICE, destination="4179...",
                             at=time.time(), budget=2_000_000)

Rating is synchronous and does no I/O on the hot path (decks are in memory); the compiled
twin is used when built (``cython_ext.load("rating")``), else the pure reference.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import cython_ext
from charging.fx import FxTable
from charging.money import div_round
from charging.rating.bands import BandCalendar
from charging.rating.deckdata import DeckData, DeckMeta
from charging.rating.importer import ImportSummary, import_csv
from charging.rating.index import BLOCKED, NO_TARIFF, PureDeckIndex, build_groups
from charging.rating.model import (
    RATE_PER_MICRO,
    FxApplied,
    NoTariff,
    RatedPrice,
    RatingError,
    Row,
    Service,
    Tier,
    rate_to_str,
)
from charging.rating.numbers import name_for_prefix, normalise
from charging.rating.price import amount_numerator, price_micros
from charging.rating.store import DeckStore

_CODE_BY_ID = {id(s): s.code for s in Service}  # price()'s service code, by identity

_ext = cython_ext.load("rating")


def extension_active() -> bool:
    """True when the compiled twin is in use (benchmarks print it)."""
    return _ext is not None


def make_index(data: DeckData, *, compiled: bool | None = None) -> Any:
    """The rater over *data*: the compiled twin when available (or forced), else pure."""
    use = (_ext is not None) if compiled is None else compiled
    if use:
        if _ext is None:
            raise RuntimeError("compiled rating extension not available")
        try:
            return _ext.CompiledDeck(data)
        except OverflowError:
            if compiled:
                raise
            # A value beyond the compiled widths (see RowC in rating.pyx): the pure rater
            # prices it exactly, only slower.
    return PureDeckIndex(data, build_groups(data))


EXACT_C_USAGE = 2**36
"""Usages above this are priced by the pure reference: the compiled index truncates prices past
2**63 micro-units to 64 bits (an Unsigned64 report could wrap to a small price); below it a
wrap needs a rate above ~134 major units per unit."""
# Replaced deck versions a running server keeps in force for the calls that began before
# (RatingEngine.reload): a few, for calls that outlive several reloads.
KEEP_SUPERSEDED = 4

@dataclass(slots=True)
class LoadedDeck:
    """One deck version ready to rate: metadata, columns, index."""

    meta: DeckMeta
    data: DeckData
    index: Any
    band_ids: dict[str, int] = field(default_factory=dict)
    _rows: dict[int, tuple[Row, str, str, str]] = field(default_factory=dict)

    def row(self, i: int) -> Row:
        return self.explained(i)[0]

    def explained(self, i: int) -> tuple[Row, str, str, str]:
        """(row, rate string, first-rate string, destination name) of row *i*, cached: the
        Ro agent rates the same few destinations over and over."""
        got = self._rows.get(i)
        if got is None:
            r = self.data.row(i)
            got = (r, rate_to_str(r.rate), rate_to_str(r.rate_first),
                   r.destination or name_for_prefix(r.prefix))
            if len(self._rows) > 100_000:
                self._rows.clear()
            self._rows[i] = got
        return got


class RatingEngine:
    """Rates usage against the versioned decks of one data dir (see module docstring).

    *technical_prefixes* are stripped from destinations (numbers.normalise); *calendar* gives
    the time band for decks with banded rows; *band_mode* ``"start"`` rates a whole call in
    the band at its start, ``"split"`` prices each part of a VOICE/DATA_TIME call in its band;
    *fx* converts when a caller asks for another currency.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        technical_prefixes: Sequence[str] = (),
        calendar: BandCalendar | None = None,
        band_mode: str = "start",
        fx: FxTable | None = None,
        compiled: bool | None = None,
    ) -> None:
        if band_mode not in ("start", "split"):
            raise ValueError(f"band_mode must be 'start' or 'split', got {band_mode!r}")
        self.store = DeckStore(data_dir)
        self.technical_prefixes = tuple(technical_prefixes)
        self.calendar = calendar or BandCalendar()
        self.band_mode = band_mode
        self.fx = fx or FxTable()
        self._compiled = compiled
        self._latest: dict[str, LoadedDeck] = {}
        self._versions: dict[tuple[str, int], LoadedDeck] = {}
        # deck -> [(superseded at, version), ...], newest first: the versions a running server
        # replaced (:meth:`reload`), kept for what started before (see _in_force)
        self._superseded: dict[str, list[tuple[float, LoadedDeck]]] = {}
        self._generation = -1
        self._tp = self.technical_prefixes
        self._band_cache: dict[int, str] = {}
        self._keys: dict[str, str] = {}  # destination -> normalise(destination, tp)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], **kwargs: Any) -> RatingEngine:
        """Create an engine and load the latest version of every deck in *data_dir*."""
        engine = cls(data_dir, **kwargs)
        engine.reload_if_changed()
        return engine

    # -- decks -----------------------------------------------------------------------------

    def reload_if_changed(self) -> bool:
        """Pick up newly imported versions (cheap: one stat when nothing changed).
        Returns True when something was (re)loaded."""
        gen = self.store.generation()
        if gen == self._generation:
            return False
        self._generation = gen
        changed = False
        for name in self.store.decks():
            latest = self.store.latest(name)
            if latest is None:
                continue
            cur = self._latest.get(name)
            if cur is None or cur.meta.version != latest:
                self._latest[name] = self._load(name, latest)
                changed = True
        return changed

    def reload(self, now: float) -> dict[str, tuple[int | None, int]]:
        """For a running server: load the deck versions imported since (as
        :meth:`reload_if_changed`), and keep each version they replace in force for what
        started before *now* (epoch seconds). A call is rated by its total usage with the
        tariff in force at its start (``at``), so a call in progress keeps its tariff to the
        end and calls from the next whole second on get the new one; re-pricing its past
        usage with the new one would charge the difference again. Returns
        ``{deck: (old version or None, new)}``.
        The ``KEEP_SUPERSEDED`` newest replaced versions of each deck are kept."""
        # In force from the next whole second: the compiled charging path caches tariff rows
        # per session-start second (cython_ext/charging_slice.pyx _plan).
        until = float(math.floor(now) + 1)
        before = dict(self._latest)
        self.reload_if_changed()
        changed: dict[str, tuple[int | None, int]] = {}
        for name, d in self._latest.items():
            old = before.get(name)
            if old is d:
                continue
            changed[name] = (None if old is None else old.meta.version, d.meta.version)
            if old is not None:
                history = self._superseded.setdefault(name, [])
                history.insert(0, (until, old))
                del history[KEEP_SUPERSEDED:]
        return changed

    def preload(self) -> int:
        """Load (and index) the deck versions imported since, without using them yet: call it
        in a worker thread before :meth:`reload`, which then only swaps them in. Returns how
        many versions were loaded."""
        n = 0
        for name in self.store.decks():
            latest = self.store.latest(name)
            if latest is not None and (name, latest) not in self._versions:
                self._load(name, latest)
                n += 1
        return n

    def version_in_force(self, deck: str, at: float) -> int | None:
        """The version of *deck* that rates what starts at *at* (None: no such deck)."""
        d = self._latest.get(deck)
        if d is None:
            return None
        return (self._in_force(deck, d, at) if self._superseded else d).meta.version

    def _in_force(self, deck: str, d: LoadedDeck, at: float) -> LoadedDeck:
        """The version of *deck* in force at *at*: *d* (the latest) unless :meth:`reload`
        replaced versions after *at*."""
        for until, old in self._superseded.get(deck, ()):
            if at >= until:
                break
            d = old
        return d

    def _load(self, deck: str, version: int) -> LoadedDeck:
        key = (deck, version)
        got = self._versions.get(key)
        if got is not None:
            return got
        d = self.store.load(deck, version)
        loaded = LoadedDeck(
            meta=d.meta, data=d.data, index=make_index(d.data, compiled=self._compiled),
            band_ids={b: i for i, b in enumerate(d.data.bands) if i},
        )
        self._versions[key] = loaded
        return loaded

    def decks(self) -> list[str]:
        return sorted(self._latest)

    def deck(self, deck: str, version: int | None = None) -> LoadedDeck:
        """A loaded deck version (latest by default): settlement reads rows, tiers, currency.
        Raises NoTariff for an unknown deck or version."""
        if version is None:
            got = self._latest.get(deck)
            if got is None:
                self.reload_if_changed()
                got = self._latest.get(deck)
                if got is None:
                    raise NoTariff(f"no deck {deck!r}")
            return got
        try:
            return self._load(deck, version)
        except FileNotFoundError:
            raise NoTariff(f"no version {version} of deck {deck!r}") from None

    def import_csv(
        self, path: str, *, deck: str, partner: str | None = None, direction: str = "sell",
        currency: str = "EUR", effective: str | None = None, service: Service | str = Service.VOICE,
        timezone: str | None = None, skip_bad: bool = False, hyphen: str = "range",
    ) -> ImportSummary:
        """Import *path* as a new version of *deck* and start using it. DeckError when bad."""
        summary = import_csv(
            self.store, path, deck=deck, partner=partner, direction=direction, currency=currency,
            effective=effective, service=service, timezone=timezone or self.calendar.timezone,
            skip_bad=skip_bad, hyphen=hyphen,
        )
        self.reload_if_changed()
        return summary

    def ensure_imported(
        self, path: str, *, deck: str, partner: str | None = None, direction: str = "sell",
        currency: str = "EUR", effective: str | None = None, service: Service | str = Service.VOICE,
        timezone: str | None = None,
    ) -> ImportSummary:
        """Import *path* unless the latest version of *deck* came from the same bytes and
        options (then ``summary.version`` is None). For server start-up: idempotent."""
        summary = import_csv(
            self.store, path, deck=deck, partner=partner, direction=direction, currency=currency,
            effective=effective, service=service, timezone=timezone or self.calendar.timezone,
            only_if_changed=True,
        )
        self.reload_if_changed()
        return summary

    # -- rating ----------------------------------------------------------------------------

    def _key(self, destination: str) -> str:
        if destination.isdigit() and not self._tp:
            return destination[2:] if destination.startswith("00") else destination
        # APNs / URIs repeat (every data CCR names the same few): normalise each once.
        key = self._keys.get(destination)
        if key is None:
            key = normalise(destination, self._tp)
            if len(self._keys) >= 4096:
                self._keys.clear()
            self._keys[destination] = key
        return key

    def _band_id(self, d: LoadedDeck, at: float) -> tuple[int, str]:
        if not d.band_ids:
            return 0, ""
        # Band rules are whole local minutes and zone offsets whole minutes, so the band is
        # constant within a UTC minute: cache by minute (batches share a few minutes).
        minute = math.floor(at) // 60
        name = self._band_cache.get(minute)
        if name is None:
            name = self.calendar.band_at(at)
            if len(self._band_cache) > 65536:
                self._band_cache.clear()
            self._band_cache[minute] = name
        return d.band_ids.get(name, -1), name

    def _find(self, d: LoadedDeck, service: Service, key: str, origin: str, at: float) -> tuple[int, str]:
        band, band_name = self._band_id(d, at)
        i: int = d.index.find(service.code, key, origin, math.floor(at), band)
        if i < 0:
            raise NoTariff(f"deck {d.meta.deck!r} v{d.meta.version}: no {service.value} tariff for {key!r}")
        if d.data.blocked[i]:
            raise NoTariff(f"deck {d.meta.deck!r} v{d.meta.version}: {key!r} is closed (prefix {d.data.prefix[i]!r})")
        return i, band_name

    def lookup(
        self, *, deck: str, service: Service, destination: str, origin: str | None = None,
        at: float, version: int | None = None,
    ) -> Row:
        """The tariff row that prices this destination at *at* (NoTariff when none)."""
        d = self.deck(deck, version)
        if version is None and self._superseded:
            d = self._in_force(deck, d, at)
        i, _ = self._find(d, service, self._key(destination), self._key(origin) if origin else "", at)
        return d.row(i)

    def price(self, deck: str, service: Service, destination: str, at: float, usage: int,
              origin: str = "") -> int:
        """Fast path: the price in micro-units only (no explanation object). NoTariff when none."""
        d = self._latest.get(deck) or self.deck(deck)
        if self._superseded:
            d = self._in_force(deck, d, at)
        if usage > EXACT_C_USAGE or (self.band_mode == "split" and d.band_ids and usage > 0
                                     and service in (Service.VOICE, Service.DATA_TIME)):
            # split pricing is rate()'s path; the index prices in one band only
            return self.rate(deck=deck, service=service, destination=destination,
                             origin=origin or None, at=at, usage=usage).price
        band = self._band_id(d, at)[0] if d.band_ids else 0
        # Service.code is a property over an Enum-keyed dict (a Python-level hash per call)
        code = _CODE_BY_ID.get(id(service))
        p: int = d.index.price(service.code if code is None else code, self._key(destination),
                               math.floor(at), usage, self._key(origin) if origin else "", band)
        if p < 0:
            raise NoTariff(f"deck {deck!r}: no {service.value} tariff for {destination!r}"
                           + (" (closed)" if p == BLOCKED else ""))
        return p

    def price_plan(self, deck: str, service: Service, destination: str, at: float,
                   origin: str = "") -> tuple[LoadedDeck, Any, int] | None:
        """What :meth:`price` looks up before it prices, for a caller that prices many usages
        of one (deck, service, destination, at, origin) -- a charging session's grant:
        ``(d, index, row)`` such that ``index.price_row(row, usage)[0] == price(deck, service,
        destination, at, usage, origin)`` for ``0 < usage <= EXACT_C_USAGE`` as long as
        ``self._latest.get(deck) is d`` (a new deck version voids it: the caller checks).
        None when that shortcut does not apply (split band pricing, no tariff, a closed
        destination): call :meth:`price`. Raises what :meth:`price` raises for a missing deck."""
        d = self._latest.get(deck) or self.deck(deck)
        if self._superseded:
            d = self._in_force(deck, d, at)
        if self.band_mode == "split" and d.band_ids and service in (Service.VOICE,
                                                                    Service.DATA_TIME):
            return None
        if not hasattr(d.index, "price_row"):
            return None
        band = self._band_id(d, at)[0] if d.band_ids else 0
        code = _CODE_BY_ID.get(id(service))
        row: int = d.index.find(service.code if code is None else code, self._key(destination),
                                self._key(origin) if origin else "", math.floor(at), band)
        if row < 0 or d.data.blocked[row]:
            return None
        return d, d.index, row

    def rate(
        self, *, deck: str, service: Service, destination: str, origin: str | None = None,
        at: float, usage: int, version: int | None = None, currency: str | None = None,
    ) -> RatedPrice:
        """Price one usage record and say why (RatedPrice). Raises NoTariff.

        *usage* is in the service's unit (seconds, events, octets); *version* re-rates against
        an older deck version; *currency* converts the price with the engine's FX table.
        """
        if usage < 0:
            raise RatingError(f"usage must be >= 0, got {usage}")
        d = self.deck(deck, version)
        if version is None and self._superseded:
            d = self._in_force(deck, d, at)
        key = self._key(destination)
        okey = self._key(origin) if origin else ""
        i, band_name = self._find(d, service, key, okey, at)
        row, rate_s, first_s, name = d.explained(i)
        if (self.band_mode == "split" and d.band_ids and usage > 0
                and service in (Service.VOICE, Service.DATA_TIME)):
            price, billed, exact, band_name = self._split_price(d, service, key, okey, at, usage, row)
        elif usage > EXACT_C_USAGE:
            price, billed = price_micros(usage, row)  # the compiled index would wrap at 2**63
            exact = _exact(billed, row)
        else:
            price, billed = d.index.price_row(i, usage)
            exact = _exact(billed, row)
        return self._explain(d, service, row, band_name, usage, price, billed, exact, at, currency,
                             rate_s, first_s, name)

    def _explain(self, d: LoadedDeck, service: Service, row: Row, band: str, usage: int, price: int,
                 billed: int, exact: tuple[int, int], at: float, currency: str | None,
                 rate_s: str, first_s: str, name: str) -> RatedPrice:
        fx = None
        cur = d.meta.currency
        if currency and currency.upper() != cur:
            on = dt.datetime.fromtimestamp(at, dt.UTC).date()
            try:
                converted, q = self.fx.convert(price, cur, currency, on)
            except KeyError as exc:  # str(KeyError) quotes its message
                raise RatingError(exc.args[0] if exc.args else "no fx rate") from None
            fx = FxApplied(cur, currency.upper(), str(q.rate), q.date.isoformat(), price)
            price, cur = converted, currency.upper()
        return RatedPrice(
            price=price, currency=cur, deck=d.meta.deck, deck_version=d.meta.version,
            service=service, prefix=row.prefix, destination=name, origin=row.origin,
            band=band, usage=usage, billed_units=billed, increments=(row.inc_first, row.inc_next),
            rate=rate_s, rate_first=first_s,
            rate_unit=row.rate_unit, connection_fee=row.connection_fee if billed else 0,
            minimum_charge=row.minimum_charge, exact_num=exact[0], exact_den=exact[1], fx=fx,
            tiers=row.tiers,
        )

    def _split_price(self, d: LoadedDeck, service: Service, key: str, okey: str, at: float,
                     usage: int, row: Row) -> tuple[int, int, tuple[int, int], str]:
        """Split mode: billed seconds from the start row's increments, each second priced by
        the row of the band it falls in (the first ``inc_first`` seconds at that row's first
        rate); fee and minimum of the start row; one rounding of the exact sum."""
        from charging.rating.price import billed_units

        billed = billed_units(usage, row.inc_first, row.inc_next)
        total = Fraction(0)
        t, done = float(at), 0
        names: list[str] = []
        while done < billed:
            nxt = self.calendar.next_change(t)
            seg = billed - done if nxt is None else min(billed - done, max(1, math.ceil(nxt - t)))
            i, band_name = self._find(d, service, key, okey, t)
            r = d.row(i)
            first = max(0, min(seg, row.inc_first - done))
            total += Fraction(first * r.rate_first + (seg - first) * r.rate, r.rate_unit * RATE_PER_MICRO)
            if not names or names[-1] != band_name:
                names.append(band_name)
            done += seg
            t += seg
        amount = div_round(total.numerator, total.denominator)
        price = max(row.connection_fee + amount, row.minimum_charge)
        exact = total + row.connection_fee
        if exact < row.minimum_charge:
            exact = Fraction(row.minimum_charge)
        return price, billed, (exact.numerator, exact.denominator), "+".join(names)

    def max_units(
        self, *, deck: str, service: Service, destination: str, origin: str | None = None,
        at: float, budget: int, version: int | None = None,
    ) -> int:
        """The most usage units (on an increment boundary) whose price, connection fee
        included, fits in *budget* micro-units; 0 if not even the first increment fits.
        A free tariff returns UNLIMITED_UNITS (clamp it). Raises NoTariff."""
        d = self.deck(deck, version)
        if version is None and self._superseded:
            d = self._in_force(deck, d, at)
        key = self._key(destination)
        okey = self._key(origin) if origin else ""
        i, _ = self._find(d, service, key, okey, at)
        units: int = d.index.max_units_row(i, budget)
        if (self.band_mode == "split" and d.band_ids
                and service in (Service.VOICE, Service.DATA_TIME)):
            # Split mode prices each second in its own band (as price() does): the start
            # band's answer is wrong once the call would cross a band change.
            return self._split_max_units(d, service, key, okey, at, budget, d.row(i))
        return units

    def _split_max_units(self, d: LoadedDeck, service: Service, key: str, okey: str,
                         at: float, budget: int, row: Row) -> int:
        """max_units in split mode: the largest increment boundary (the start row's
        increments, as :meth:`_split_price` bills) whose split price fits *budget*. The
        price never falls as usage grows, so: doubling, then bisection over boundaries."""
        first, step = max(1, row.inc_first), max(1, row.inc_next)

        def units_of(k: int) -> int:  # k-th boundary: 0, first, first + step, ...
            return 0 if k <= 0 else first + (k - 1) * step

        def fits(k: int) -> bool:
            if k <= 0:
                return True
            return self._split_price(d, service, key, okey, at, units_of(k), row)[0] <= budget

        if not fits(1):
            return 0
        # Searched up to SPLIT_SEARCH_CAP seconds: pricing walks every band change, and no
        # grant comes near a month (the service clamps to its max quota anyway).
        top = max(1, (SPLIT_SEARCH_CAP - first) // step + 1)
        lo, hi = 1, 2
        while hi <= top and fits(hi):  # lo fits; hi does not, or is past the cap
            lo, hi = hi, hi * 2
        if hi > top:
            if fits(top):
                return units_of(top)
            hi = top
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid
        return units_of(lo)

    def tiers(self, *, deck: str, service: Service, destination: str, at: float,
              origin: str | None = None, version: int | None = None) -> tuple[Tier, ...]:
        """The volume tiers of the matching row (settlement applies them per period)."""
        return self.lookup(deck=deck, service=service, destination=destination, origin=origin,
                           at=at, version=version).tiers

    def rate_batch(
        self, deck: str, service: Service, destinations: Sequence[str], usages: Sequence[int],
        ats: Sequence[int], *, origins: Sequence[str] | None = None, version: int | None = None,
        normalised: bool = True,
    ) -> tuple[array[int], array[int]]:
        """Rate many usages (``ats`` integer epoch seconds). Returns (prices, rows): prices
        in micro-units or NO_TARIFF (-1) / BLOCKED (-2); rows the matched row index (-1)
        of the version that rated it. With ``normalised=False`` destinations are normalised
        first (slower). Without *version*, each usage is rated by the version in force at
        its ``at`` (as :meth:`rate`: a server's :meth:`reload` keeps replaced versions for
        what started before it)."""
        d = self.deck(deck, version)
        keys = destinations if normalised else [self._key(x) for x in destinations]
        okeys = None if origins is None else [self._key(o) if o else "" for o in origins]
        if version is None and self._superseded.get(deck):
            return self._rate_batch_by_version(deck, d, service, keys, usages, ats, okeys)
        return self._rate_batch_one(d, service, keys, usages, ats, okeys)

    def _rate_batch_by_version(
        self, deck: str, latest: LoadedDeck, service: Service, keys: Sequence[str],
        usages: Sequence[int], ats: Sequence[int], okeys: list[str] | None,
    ) -> tuple[array[int], array[int]]:
        """rate_batch when a reload replaced versions: each version rates its own usages."""
        n = len(keys)
        groups: dict[int, tuple[LoadedDeck, list[int]]] = {}
        for i in range(n):
            d = self._in_force(deck, latest, ats[i])
            groups.setdefault(d.meta.version, (d, []))[1].append(i)
        if len(groups) == 1:
            (d, _), = groups.values()
            return self._rate_batch_one(d, service, keys, usages, ats, okeys)
        prices = array("q", bytes(8 * n))
        rows = array("q", bytes(8 * n))
        for d, idx in groups.values():
            p, r = self._rate_batch_one(
                d, service, [keys[i] for i in idx], [usages[i] for i in idx],
                [ats[i] for i in idx], None if okeys is None else [okeys[i] for i in idx])
            for j, i in enumerate(idx):
                prices[i] = p[j]
                rows[i] = r[j]
        return prices, rows

    def _rate_batch_one(
        self, d: LoadedDeck, service: Service, keys: Sequence[str], usages: Sequence[int],
        ats: Sequence[int], okeys: list[str] | None,
    ) -> tuple[array[int], array[int]]:
        n = len(keys)
        bands = None
        if d.band_ids:
            bands = array("q", (self._band_id(d, a)[0] for a in ats))
        prices = array("q", bytes(8 * n))
        rows = array("q", bytes(8 * n))
        u = usages if isinstance(usages, array) and usages.typecode == "q" else array("q", usages)
        a = ats if isinstance(ats, array) and ats.typecode == "q" else array("q", ats)
        d.index.rate_batch(service.code, keys, u, a, prices, rows, okeys, bands)
        return prices, rows


SPLIT_SEARCH_CAP = 31 * 86_400
"""Split-mode max_units answers at most this many seconds (see _split_max_units)."""


def _exact(billed: int, row: Row) -> tuple[int, int]:
    """(numerator, denominator) of the exact price in micro-units before the rounding."""
    if billed == 0:
        return 0, 1
    den = row.rate_unit * RATE_PER_MICRO
    num = amount_numerator(billed, row) + row.connection_fee * den
    if num < row.minimum_charge * den:
        return row.minimum_charge, 1
    return num, den


__all__ = ["RatingEngine", "LoadedDeck", "make_index", "extension_active", "NO_TARIFF", "BLOCKED"]
