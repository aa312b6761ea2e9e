"""One deck version in memory: columnar arrays (compact, fast to save/load, easy to hand to
the compiled twin) plus the deck's metadata.

Row *i* is spread over the columns; :meth:`DeckData.row` builds a :class:`Row` for it when a
caller needs the whole row (explanations, settlement); the hot path reads the columns.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from charging.rating.model import Row, Service, Tier


@dataclass(slots=True)
class DeckMeta:
    """What a deck version is: who it belongs to, its currency, where it came from."""

    deck: str
    version: int
    currency: str
    direction: str = "sell"  # sell: we bill the partner; buy: the partner bills us
    partner: str | None = None
    timezone: str = "UTC"
    imported_at: int = 0  # epoch seconds
    source: str = ""  # file name
    source_sha256: str = ""  # of the file bytes + import options (idempotent ensure_imported)
    via: str = ""  # "config": imported at start from a [[rating.decks]] file; "": by hand
    rows: int = 0
    prefixes: int = 0
    destinations: int = 0

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]

    @staticmethod
    def from_dict(d: dict[str, object]) -> DeckMeta:
        known = set(DeckMeta.__slots__)  # type: ignore[attr-defined]
        return DeckMeta(**{k: v for k, v in d.items() if k in known})  # type: ignore[arg-type]


def _q() -> array[int]:
    return array("q")


def _b() -> array[int]:
    return array("b")


@dataclass(slots=True)
class DeckData:
    """Columnar rows of one deck version. All lists/arrays have one entry per row."""

    service: array[int] = field(default_factory=_b)  # Service.code
    prefix: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    dest: array[int] = field(default_factory=lambda: array("i"))  # index into names
    band: array[int] = field(default_factory=_b)  # index into bands (0 = "" any time)
    blocked: array[int] = field(default_factory=_b)
    rate: array[int] = field(default_factory=_q)
    rate_first: array[int] = field(default_factory=_q)
    inc_first: array[int] = field(default_factory=_q)
    inc_next: array[int] = field(default_factory=_q)
    rate_unit: array[int] = field(default_factory=_q)
    fee: array[int] = field(default_factory=_q)
    min_charge: array[int] = field(default_factory=_q)
    eff_from: array[int] = field(default_factory=_q)
    eff_to: array[int] = field(default_factory=_q)
    names: list[str] = field(default_factory=lambda: [""])
    bands: list[str] = field(default_factory=lambda: [""])
    tiers: dict[int, tuple[Tier, ...]] = field(default_factory=dict)
    _name_ix: dict[str, int] = field(default_factory=lambda: {"": 0})
    _band_ix: dict[str, int] = field(default_factory=lambda: {"": 0})

    def __len__(self) -> int:
        return len(self.prefix)

    def name_index(self, name: str) -> int:
        ix = self._name_ix.get(name)
        if ix is None:
            ix = self._name_ix[name] = len(self.names)
            self.names.append(name)
        return ix

    def band_index(self, band: str) -> int:
        ix = self._band_ix.get(band)
        if ix is None:
            if len(self.bands) >= 127:
                raise ValueError("too many time bands (max 126)")
            ix = self._band_ix[band] = len(self.bands)
            self.bands.append(band)
        return ix

    def append(self, row: Row) -> None:
        """Add a row (slow path: tests, small decks; the CSV importer fills columns directly)."""
        self.service.append(row.service.code)
        self.prefix.append(row.prefix)
        self.origin.append(row.origin)
        self.dest.append(self.name_index(row.destination))
        self.band.append(self.band_index(row.band))
        self.blocked.append(1 if row.blocked else 0)
        self.rate.append(row.rate)
        self.rate_first.append(row.rate_first)
        self.inc_first.append(row.inc_first)
        self.inc_next.append(row.inc_next)
        self.rate_unit.append(row.rate_unit)
        self.fee.append(row.connection_fee)
        self.min_charge.append(row.minimum_charge)
        self.eff_from.append(row.eff_from)
        self.eff_to.append(row.eff_to)
        if row.tiers:
            self.tiers[len(self.prefix) - 1] = row.tiers

    def row(self, i: int) -> Row:
        """The whole row *i*."""
        return Row(
            service=Service.from_code(self.service[i]),
            prefix=self.prefix[i],
            destination=self.names[self.dest[i]],
            rate=self.rate[i],
            rate_first=self.rate_first[i],
            inc_first=self.inc_first[i],
            inc_next=self.inc_next[i],
            rate_unit=self.rate_unit[i],
            connection_fee=self.fee[i],
            minimum_charge=self.min_charge[i],
            eff_from=self.eff_from[i],
            eff_to=self.eff_to[i],
            origin=self.origin[i],
            band=self.bands[self.band[i]],
            blocked=bool(self.blocked[i]),
            tiers=self.tiers.get(i, ()),
        )

    def rows(self) -> list[Row]:
        return [self.row(i) for i in range(len(self))]

    @property
    def has_bands(self) -> bool:
        return len(self.bands) > 1

    @staticmethod
    def from_rows(rows: list[Row]) -> DeckData:
        d = DeckData()
        for r in rows:
            d.append(r)
        return d

    def rebuild_indexes(self) -> None:
        """Recreate the name/band lookup dicts after loading from disk."""
        self._name_ix = {n: i for i, n in enumerate(self.names)}
        self._band_ix = {n: i for i, n in enumerate(self.bands)}


@dataclass(frozen=True, slots=True)
class Deck:
    """A loaded deck version: metadata and rows."""

    meta: DeckMeta
    data: DeckData
