"""Partners, agreements, FX rates and partner-CDR column mappings, loaded from one TOML file.

A caller runs :func:`load_config`; it returns a :class:`SettlementConfig` or raises
:class:`SettlementConfigError` listing *every* problem as ``file:key: reason`` so nothing runs
on an invalid agreement. The file format is documented in ``config/partners.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from settlement.currency import PeriodError, is_currency, zone_of

AGREEMENT_TYPES = ("bilateral", "transit", "revenue_share", "commitment")
TRANSIT_KINDS = ("transit", "hubbing", "refile")
DURATION_ROUNDINGS = ("up", "half_up", "down")


class SettlementConfigError(Exception):
    """Every problem found; ``str()`` gives one ``file:key: reason`` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    currency: str
    timezone: str = "UTC"
    billing_period: str = "monthly"
    contacts: tuple[str, ...] = ()
    payment_days: int = 30
    # Prepaid partners pay from this account: their balance movement must equal the invoice.
    prepaid_account: str | None = None
    cdr_mapping: str | None = None
    address: str = ""


@dataclass(frozen=True, slots=True)
class ShareTier:
    """From this monthly gross volume (major units, inclusive) the partner gets *share* %."""

    from_amount: Decimal
    share_pct: Decimal


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    partner: str
    type: str
    description: str = ""
    # bilateral: deck names shown on invoices (our sell deck, their deck = our buy deck)
    sell_deck: str | None = None
    buy_deck: str | None = None
    # transit/hubbing/refile: the role and the three parties on one record
    kind: str = "transit"
    parties: tuple[str, ...] = ()
    # revenue share: service -> tiers (ascending), tier basis, guarantee and cap (major units)
    shares: dict[str, tuple[ShareTier, ...]] = field(default_factory=dict)
    tier_mode: str = "volume"  # "volume": the tier reached applies to all; "marginal": per band
    minimum_guarantee: Decimal | None = None
    cap: Decimal | None = None
    # commitment: who committed (direction sell = they send us traffic), what, and the charge
    direction: str = "sell"
    service: str | None = None
    committed_minutes: int | None = None
    committed_amount: Decimal | None = None
    shortfall_rate: Decimal | None = None  # per missing minute
    shortfall_pct: Decimal | None = None  # percent of the missing amount


@dataclass(frozen=True, slots=True)
class FxRate:
    period: str
    from_ccy: str
    to_ccy: str
    rate: Decimal
    date: str


@dataclass(frozen=True, slots=True)
class CdrMapping:
    """Column names of a partner's CDR CSV file (their names -> our fields)."""

    a: str
    b: str
    start: str
    duration: str
    amount: str | None = None
    currency: str | None = None
    id: str | None = None
    start_format: str = "iso"  # "iso", "epoch", "epoch_ms" or a strptime pattern
    timezone: str = "UTC"
    delimiter: str = ","
    # The agreement's billing of a duration in seconds: exact durations ("60.7") are rounded
    # to a multiple of billing_increment seconds by duration_rounding (up: a started
    # increment counts, the usual switch convention; half_up; down) before comparing.
    duration_rounding: str = "up"
    billing_increment: int = 1


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    file: str
    home_currency: str
    issuer: str
    partners: dict[str, Partner]
    agreements: tuple[Agreement, ...]
    fx: tuple[FxRate, ...] = ()
    cdr_mappings: dict[str, CdrMapping] = field(default_factory=dict)

    def deck_claims(self) -> dict[str, list[tuple[str, str]]]:
        """deck -> the distinct (partner, direction) whose bilateral agreements name it."""
        out: dict[str, list[tuple[str, str]]] = {}
        for a in self.agreements:
            if a.type == "bilateral":
                for deck, direction in ((a.sell_deck, "sell"), (a.buy_deck, "buy")):
                    if deck and (a.partner, direction) not in out.setdefault(deck, []):
                        out[deck].append((a.partner, direction))
        return out

    def deck_partners(self) -> dict[str, tuple[str, str]]:
        """deck -> (partner, direction) from the bilateral agreements' sell/buy decks, for the
        decks exactly one partner and direction claims: a record that names only its deck
        (the Ro/Rf path) settles there. A shared deck is in :meth:`shared_decks` instead."""
        return {d: c[0] for d, c in self.deck_claims().items() if len(c) == 1}

    def shared_decks(self) -> dict[str, str]:
        """deck -> who claims it, for decks named by several partners or directions (a common
        sell deck): a record with only such a deck cannot be attributed (a problem, never
        silently the last agreement's partner)."""
        return {d: ", ".join(f"{p} ({dr})" for p, dr in sorted(c))
                for d, c in self.deck_claims().items() if len(c) > 1}

    def agreements_of(self, partner: str) -> list[Agreement]:
        return [a for a in self.agreements if a.partner == partner]

    def fx_rate(self, period: str, from_ccy: str, to_ccy: str) -> FxRate | None:
        """The agreement-level period rate, direct or inverted."""
        for r in self.fx:
            if r.period == period and r.from_ccy == from_ccy and r.to_ccy == to_ccy:
                return r
        for r in self.fx:
            if r.period == period and r.from_ccy == to_ccy and r.to_ccy == from_ccy:
                return FxRate(period, from_ccy, to_ccy, Decimal(1) / r.rate, r.date)
        return None


class _Reader:
    """Typed access to a TOML table that records problems instead of raising."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems

    def bad(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.file}:{key}: {reason}")

    def table(self, data: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.bad(key, "expected a table")
            return {}
        for k in sorted(set(data) - allowed):
            self.bad(f"{key}.{k}" if key else k, "unknown key")
        return data

    def str_(self, t: dict[str, Any], key: str, name: str, default: Any = ...) -> Any:
        if name not in t:
            if default is ...:
                self.bad(f"{key}.{name}", "required key is missing")
                return None
            return default
        v = t[name]
        if not isinstance(v, str) or not v:
            self.bad(f"{key}.{name}", "expected a non-empty string")
            return None
        return v

    def int_(self, t: dict[str, Any], key: str, name: str, default: Any = None) -> Any:
        v = t.get(name, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            self.bad(f"{key}.{name}", "expected a non-negative integer")
            return None
        return v

    def dec(self, t: dict[str, Any], key: str, name: str, *, positive: bool = False) -> Any:
        if name not in t:
            return None
        v = t[name]
        if isinstance(v, bool) or not isinstance(v, str | int):
            self.bad(f"{key}.{name}", 'expected a decimal string like "0.12" (never a float)')
            return None
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            self.bad(f"{key}.{name}", f"not a decimal number: {v!r}")
            return None
        if not d.is_finite() or d < 0 or (positive and d == 0):
            self.bad(f"{key}.{name}", f"must be {'positive' if positive else '>= 0'}, got {v!r}")
            return None
        return d

    def strs(self, t: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
        v = t.get(name, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.bad(f"{key}.{name}", "expected an array of strings")
            return ()
        return tuple(v)


_PARTNER_KEYS = {f for f in Partner.__dataclass_fields__} - {"id"}
_AGREEMENT_KEYS = {f for f in Agreement.__dataclass_fields__}
_MAPPING_KEYS = {f for f in CdrMapping.__dataclass_fields__}


def load_config(path: str | Path) -> SettlementConfig:
    """Read and validate a partners/agreements file; raise SettlementConfigError if invalid."""
    p = Path(path)
    file = str(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettlementConfigError([f"{file}:-: file not found"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettlementConfigError([f"{file}:-: invalid TOML: {exc}"]) from exc
    return parse_config(data, file=file)


def parse_config(data: dict[str, Any], *, file: str) -> SettlementConfig:
    """Validate an already-parsed TOML document (see :func:`load_config`)."""
    problems: list[str] = []
    r = _Reader(file, problems)
    top = r.table(data, "", {"settlement", "partners", "agreements", "fx", "cdr_mappings"})
    st = r.table(top.get("settlement", {}), "settlement", {"home_currency", "issuer"})
    home = r.str_(st, "settlement", "home_currency", "EUR")
    if home and not is_currency(home):
        r.bad("settlement.home_currency", f"not an ISO 4217 code: {home!r}")
    issuer = r.str_(st, "settlement", "issuer", "icx operator")

    mappings: dict[str, CdrMapping] = {}
    for name, raw in _items(r, top.get("cdr_mappings", {}), "cdr_mappings"):
        key = f"cdr_mappings.{name}"
        t = r.table(raw, key, _MAPPING_KEYS)
        fields = {k: r.str_(t, key, k) for k in ("a", "b", "start", "duration")}
        opt = {k: r.str_(t, key, k, None) for k in ("amount", "currency", "id")}
        fmt = r.str_(t, key, "start_format", "iso")
        tz = r.str_(t, key, "timezone", "UTC")
        delim = t.get("delimiter", ",")
        if not isinstance(delim, str) or len(delim) != 1:
            r.bad(f"{key}.delimiter", "expected a single character")
            delim = ","
        if tz:
            try:
                zone_of(tz)
            except PeriodError as exc:
                r.bad(f"{key}.timezone", str(exc))
        rounding = r.str_(t, key, "duration_rounding", "up")
        if rounding not in DURATION_ROUNDINGS:
            r.bad(f"{key}.duration_rounding",
                  f"must be one of {', '.join(DURATION_ROUNDINGS)}, got {rounding!r}")
        inc = r.int_(t, key, "billing_increment", 1)
        if inc == 0:
            r.bad(f"{key}.billing_increment", "must be a positive number of seconds")
        if all(fields.values()) and fmt and tz and rounding in DURATION_ROUNDINGS and inc:
            mappings[name] = CdrMapping(**fields, **opt, start_format=fmt, timezone=tz,
                                        delimiter=delim, duration_rounding=rounding,
                                        billing_increment=inc)

    partners: dict[str, Partner] = {}
    for pid, raw in _items(r, top.get("partners", {}), "partners"):
        key = f"partners.{pid}"
        t = r.table(raw, key, _PARTNER_KEYS)
        name = r.str_(t, key, "name", pid)
        ccy = r.str_(t, key, "currency")
        if ccy and not is_currency(ccy):
            r.bad(f"{key}.currency", f"not an ISO 4217 code: {ccy!r}")
        tz = r.str_(t, key, "timezone", "UTC")
        if tz:
            try:
                zone_of(tz)
            except PeriodError as exc:
                r.bad(f"{key}.timezone", str(exc))
        bp = r.str_(t, key, "billing_period", "monthly")
        if bp != "monthly":
            r.bad(f"{key}.billing_period", f"only 'monthly' is supported, got {bp!r}")
        mapping = r.str_(t, key, "cdr_mapping", None)
        if mapping and mapping not in mappings:
            r.bad(f"{key}.cdr_mapping", f"no [cdr_mappings.{mapping}] table")
        days = r.int_(t, key, "payment_days", 30)
        if ccy and tz and name:
            partners[pid] = Partner(
                id=pid, name=name, currency=ccy, timezone=tz, billing_period="monthly",
                contacts=r.strs(t, key, "contacts"), payment_days=days if days is not None else 30,
                prepaid_account=r.str_(t, key, "prepaid_account", None), cdr_mapping=mapping,
                address=r.str_(t, key, "address", ""),
            )

    agreements: list[Agreement] = []
    raw_agreements = top.get("agreements", [])
    if not isinstance(raw_agreements, list):
        r.bad("agreements", "expected an array of tables ([[agreements]])")
        raw_agreements = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_agreements):
        a = _agreement(r, raw, f"agreements[{i}]", partners, seen)
        if a is not None:
            agreements.append(a)

    fx: list[FxRate] = []
    raw_fx = top.get("fx", [])
    if not isinstance(raw_fx, list):
        r.bad("fx", "expected an array of tables ([[fx]])")
        raw_fx = []
    for i, raw in enumerate(raw_fx):
        key = f"fx[{i}]"
        t = r.table(raw, key, {"period", "from", "to", "rate", "date"})
        vals = [r.str_(t, key, k) for k in ("period", "from", "to", "date")]
        rate = r.dec(t, key, "rate", positive=True)
        if "rate" not in t:
            r.bad(f"{key}.rate", "required key is missing")
        for k, v in zip(("from", "to"), vals[1:3], strict=True):
            if v and not is_currency(v):
                r.bad(f"{key}.{k}", f"not an ISO 4217 code: {v!r}")
        if all(vals) and rate is not None:
            fx.append(FxRate(vals[0], vals[1], vals[2], rate, vals[3]))

    if problems:
        raise SettlementConfigError(problems)
    return SettlementConfig(file=file, home_currency=home or "EUR", issuer=issuer or "",
                            partners=partners, agreements=tuple(agreements), fx=tuple(fx),
                            cdr_mappings=mappings)


def _items(r: _Reader, data: Any, key: str) -> list[tuple[str, Any]]:
    if not isinstance(data, dict):
        r.bad(key, "expected a table")
        return []
    return list(data.items())


def _agreement(r: _Reader, raw: Any, key: str, partners: dict[str, Partner],
               seen: set[str]) -> Agreement | None:
    t = r.table(raw, key, _AGREEMENT_KEYS)
    before = len(r.problems)
    aid = r.str_(t, key, "id")
    if aid in seen:
        r.bad(f"{key}.id", f"duplicate agreement id {aid!r}")
    seen.add(aid)
    partner = r.str_(t, key, "partner")
    if partner and partner not in partners:
        r.bad(f"{key}.partner", f"unknown partner {partner!r} (no [partners.{partner}])")
    typ = r.str_(t, key, "type")
    if typ and typ not in AGREEMENT_TYPES:
        r.bad(f"{key}.type", f"must be one of {', '.join(AGREEMENT_TYPES)}, got {typ!r}")
    kw: dict[str, Any] = {"description": r.str_(t, key, "description", "")}
    if typ == "bilateral":
        kw["sell_deck"] = r.str_(t, key, "sell_deck", None)
        kw["buy_deck"] = r.str_(t, key, "buy_deck", None)
    elif typ == "transit":
        kind = r.str_(t, key, "kind", "transit")
        if kind not in TRANSIT_KINDS:
            r.bad(f"{key}.kind", f"must be one of {', '.join(TRANSIT_KINDS)}, got {kind!r}")
        parties = r.strs(t, key, "parties")
        for j, p in enumerate(parties):
            if p != "us" and p not in partners:
                r.bad(f"{key}.parties[{j}]", f"unknown partner {p!r}")
        if parties and len(parties) != 3:
            r.bad(f"{key}.parties", "expected three parties: origin, transit/hub, terminating")
        kw.update(kind=kind, parties=parties)
    elif typ == "revenue_share":
        shares = _shares(r, t.get("shares"), f"{key}.shares")
        kw.update(shares=shares, minimum_guarantee=r.dec(t, key, "minimum_guarantee"),
                  cap=r.dec(t, key, "cap", positive=True))
        mode = r.str_(t, key, "tier_mode", "volume")
        if mode not in ("volume", "marginal"):
            r.bad(f"{key}.tier_mode", f"must be 'volume' or 'marginal', got {mode!r}")
        kw["tier_mode"] = mode
        mg, cap = kw["minimum_guarantee"], kw["cap"]
        if mg is not None and cap is not None and mg > cap:
            r.bad(f"{key}.minimum_guarantee", f"greater than cap ({mg} > {cap})")
    elif typ == "commitment":
        direction = r.str_(t, key, "direction", "sell")
        if direction not in ("sell", "buy"):
            r.bad(f"{key}.direction", f"must be 'sell' or 'buy', got {direction!r}")
        minutes = r.int_(t, key, "committed_minutes")
        amount = r.dec(t, key, "committed_amount", positive=True)
        rate = r.dec(t, key, "shortfall_rate")
        pct = r.dec(t, key, "shortfall_pct")
        if (minutes is None) == (amount is None):
            r.bad(f"{key}.committed_minutes", "give exactly one of committed_minutes or committed_amount")
        if minutes is not None and rate is None:
            r.bad(f"{key}.shortfall_rate", "required with committed_minutes (charge per missing minute)")
        if amount is not None and pct is None:
            r.bad(f"{key}.shortfall_pct", "required with committed_amount (percent of the shortfall)")
        if pct is not None and pct > 100:
            r.bad(f"{key}.shortfall_pct", f"must be <= 100, got {pct}")
        kw.update(direction=direction, service=r.str_(t, key, "service", None),
                  committed_minutes=minutes, committed_amount=amount, shortfall_rate=rate,
                  shortfall_pct=pct)
    if len(r.problems) != before or not (aid and partner and typ):
        return None
    return Agreement(id=aid, partner=partner, type=typ, **kw)


def _shares(r: _Reader, raw: Any, key: str) -> dict[str, tuple[ShareTier, ...]]:
    if not isinstance(raw, dict) or not raw:
        r.bad(key, "expected a table of service = [{from = \"0\", share = \"60\"}, ...]")
        return {}
    out: dict[str, tuple[ShareTier, ...]] = {}
    for service, tiers in raw.items():
        skey = f"{key}.{service}"
        if not isinstance(tiers, list) or not tiers:
            r.bad(skey, "expected a non-empty array of tiers")
            continue
        parsed: list[ShareTier] = []
        for j, tier in enumerate(tiers):
            tk = f"{skey}[{j}]"
            tt = r.table(tier, tk, {"from", "share"})
            lo = r.dec(tt, tk, "from")
            share = r.dec(tt, tk, "share")
            if "share" not in tt:
                r.bad(f"{tk}.share", "required key is missing")
            if share is not None and share > 100:
                r.bad(f"{tk}.share", f"a percentage must be <= 100, got {share}")
            if share is not None:
                parsed.append(ShareTier(lo if lo is not None else Decimal(0), share))
        if parsed and parsed[0].from_amount != 0:
            r.bad(f"{skey}[0].from", "the first tier must start at \"0\"")
        if any(b.from_amount <= a.from_amount for a, b in zip(parsed, parsed[1:], strict=False)):
            r.bad(skey, "tiers must be in strictly ascending 'from' order")
        out[service] = tuple(parsed)
    return out
