"""The prefix index of one deck version and the pure-Python rater: the executable spec of
the compiled twin ``cython_ext/rating.pyx`` (same constructor, same methods, same results).

Matching (protocol-facts G1): among the rows of the service that are *active* at ``at``
(``eff_from <= at < eff_to``), whose origin prefix is a prefix of the A-number key and whose
band is "" or the band in force, take the one with the **longest destination prefix**; on a
tie the longest origin, then a specific band over "", then the latest ``eff_from``. A
matched blocked row (a closed code) prices nothing: ``BLOCKED``.

Return codes of :meth:`price` (also the compiled twin's): ``>= 0`` a price in micro-units,
:data:`NO_TARIFF` (-1), :data:`BLOCKED` (-2).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from charging.rating.deckdata import DeckData
from charging.rating.model import RATE_PER_MICRO, UNLIMITED_UNITS

NO_TARIFF = -1
BLOCKED = -2
ANY_BAND = 0


def build_groups(data: DeckData) -> list[dict[str, list[int]]]:
    """Per service code: prefix -> row indices in preference order (see module docstring)."""
    groups: list[dict[str, list[int]]] = [{} for _ in range(8)]
    service, prefix = data.service, data.prefix
    for i in range(len(prefix)):
        g = groups[service[i]]
        p = prefix[i]
        lst = g.get(p)
        if lst is None:
            g[p] = [i]
        else:
            lst.append(i)
    origin, band, eff_from = data.origin, data.band, data.eff_from
    for g in groups:
        for lst in g.values():
            if len(lst) > 1:
                lst.sort(key=lambda i: (-len(origin[i]), band[i] == ANY_BAND, -eff_from[i], i))
    return groups


class PureDeckIndex:
    """Pure-Python rater over one deck version."""

    def __init__(self, data: DeckData, groups: list[dict[str, list[int]]] | None = None) -> None:
        self.data = data
        self.groups = groups if groups is not None else build_groups(data)
        self.maxlen = [max((len(p) for p in g), default=0) for g in self.groups]
        d = data
        self._cols = (d.eff_from, d.eff_to, d.origin, d.band)

    def find(self, svc: int, key: str, origin: str, at: int, band: int) -> int:
        """Row index of the match, or -1."""
        g = self.groups[svc]
        if not g:
            return -1
        eff_from, eff_to, origins, bands = self._cols
        n = len(key)
        top = self.maxlen[svc]
        for length in range(n if n < top else top, -1, -1):
            rows = g.get(key[:length])
            if rows is None:
                continue
            for i in rows:
                if eff_from[i] <= at < eff_to[i]:
                    o = origins[i]
                    if o and not origin.startswith(o):
                        continue
                    b = bands[i]
                    if b != ANY_BAND and b != band:
                        continue
                    return i
        return -1

    def price_row(self, i: int, usage: int) -> tuple[int, int]:
        """(price micro-units, billed units) of *usage* under row *i* (see price.py)."""
        if usage <= 0:
            return 0, 0
        d = self.data
        a = d.inc_first[i]
        if usage <= a:
            billed = a
        else:
            b = d.inc_next[i]
            billed = a + -(-(usage - a) // b) * b
        num = a * d.rate_first[i] + (billed - a) * d.rate[i]
        den = d.rate_unit[i] * RATE_PER_MICRO
        total = d.fee[i] + (2 * num + den) // (2 * den)
        m = d.min_charge[i]
        return (total if total >= m else m), billed

    def price(self, svc: int, key: str, at: int, usage: int, origin: str = "", band: int = 0) -> int:
        """Price in micro-units, or NO_TARIFF / BLOCKED."""
        i = self.find(svc, key, origin, at, band)
        if i < 0:
            return NO_TARIFF
        if self.data.blocked[i]:
            return BLOCKED
        return self.price_row(i, usage)[0]

    def max_units_row(self, i: int, budget: int) -> int:
        """See charging.rating.price.max_units (same arithmetic on the columns)."""
        d = self.data
        if d.min_charge[i] > budget:
            return 0
        m = budget - d.fee[i]
        if m < 0:
            return 0
        den = d.rate_unit[i] * RATE_PER_MICRO
        limit = (2 * m + 1) * den - 1
        a = d.inc_first[i]
        base = 2 * a * d.rate_first[i]
        if base > limit:
            return 0
        step = 2 * d.inc_next[i] * d.rate[i]
        if step <= 0:
            return UNLIMITED_UNITS
        units = a + ((limit - base) // step) * d.inc_next[i]
        return units if units < UNLIMITED_UNITS else UNLIMITED_UNITS

    def rate_batch(
        self,
        svc: int,
        keys: Sequence[str],
        usages: Sequence[int],
        ats: Sequence[int],
        prices: array[int],
        rows: array[int],
        origins: Sequence[str] | None = None,
        bands: Sequence[int] | None = None,
    ) -> int:
        """Rate ``len(keys)`` usages into *prices* (micro-units, or NO_TARIFF/BLOCKED) and
        *rows* (matched row or -1); both pre-sized. Returns how many got a price."""
        ok = 0
        blocked = self.data.blocked
        find, price_row = self.find, self.price_row
        for j in range(len(keys)):
            i = find(svc, keys[j], origins[j] if origins is not None else "", ats[j],
                     bands[j] if bands is not None else 0)
            rows[j] = i
            if i < 0:
                prices[j] = NO_TARIFF
            elif blocked[i]:
                prices[j] = BLOCKED
            else:
                prices[j] = price_row(i, usages[j])[0]
                ok += 1
        return ok
