"""Build one partner's invoice for a period from settlement buckets (plain, JSON-ready dicts).

An invoice has sections; each section has lines; every amount is a decimal string in the
partner's currency. Sections and their sign:

* ``sell`` (receivable): we bill the partner for traffic we terminated (our sell deck);
* ``buy`` (payable): the partner bills us (their deck = our buy deck); shown so the
  netting statement and the reconciliation have our side of their invoice;
* ``revenue_share`` (payable): the partner's share of content/VAS gross revenue;
* ``commitment`` (receivable or payable): the shortfall charge of a volume commitment;
* ``adjustment``: records that arrived after a period was closed, referencing that invoice.

Rounding (settlement/currency.py): line exact -> line rounded to the minor unit (HALF_UP);
section total = sum of rounded lines; ``rounding`` = total - exact, shown per line and total.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from charging.money import MICROS, Rounding, div_round, format_amount, parse_amount
from settlement.aggregate import KEY_FIELDS, Buckets
from settlement.config import Agreement, Partner, SettlementConfig, ShareTier
from settlement.currency import Period, minor_places, round_invoice
from settlement.fx import FxError, convert, find_rate

UNITS = {"voice": "s", "sms": "event", "mms": "event", "data": "octet", "content": "event"}
RECEIVABLE = ("sell", "commitment_sell", "adjustment_sell")
_SHARE_KINDS = ("share", "guarantee", "cap")
_K = {name: i for i, name in enumerate(KEY_FIELDS)}


class InvoiceError(ValueError):
    """An inconsistency that must stop the run (no agreement, no FX rate, ...)."""


def invoice_number(partner: str, period: Period) -> str:
    """Deterministic invoice number: the same period and partner give the same number."""
    return f"INV-{period}-{partner.upper()}"


@dataclass
class _Line:
    section: str
    agreement: str
    direction: str
    service: str
    destination: str
    deck: str
    kind: str
    currency: str
    fx: tuple[str, str, str]
    count: int = 0
    usage: int = 0
    src_micros: int = 0
    ref: str = ""  # adjustment: the closed invoice it corrects
    ref_period: str = ""


@dataclass
class InvoiceBuilder:
    cfg: SettlementConfig
    partner: Partner
    period: Period
    status: str = "draft"
    issue_date: str | None = None
    problems: list[str] = field(default_factory=list)

    def build(self, buckets: Buckets, late: Iterable[tuple[str, str, tuple[Any, ...],
              list[int]]] = ()) -> dict[str, Any]:
        """*buckets*: this partner's buckets of this period; *late*: (closed invoice no,
        period, key, [count, usage, micros]) for records that arrived after their period closed."""
        p = self.partner
        lines = self._group(buckets)
        for ref, ref_period, key, v in late:
            ln = self._line_for(key, section="adjustment")
            if ln is None:
                continue
            ln.ref, ln.ref_period = ref, ref_period
            ln.count, ln.usage, ln.src_micros = v[0], v[1], v[2]
            lines[(ref, ref_period) + tuple(key)] = ln
        out_lines = [self._render(ln) for _, ln in sorted(lines.items(), key=lambda kv: kv[0])]
        out_lines.sort(key=lambda d: (_SECTION_ORDER[d["section"]], d["direction"], d["service"],
                                      d["destination"], d["deck"], d["kind"], d["currency"],
                                      d["ref"]))
        extra = self._revenue_share(out_lines) + self._commitments(out_lines)
        out_lines.extend(extra)
        for i, d in enumerate(out_lines, 1):
            d["line"] = i
        sections = self._sections(out_lines)
        receivable = sum(s["_total"] for s in sections if s["sign"] == 1)
        payable = sum(s["_total"] for s in sections if s["sign"] == -1)
        places = minor_places(p.currency)
        issue = self.issue_date or self.period.last_day()
        due = (date.fromisoformat(issue) + timedelta(days=p.payment_days)).isoformat()
        for s in sections:
            del s["_total"]
        return {
            "invoice_no": invoice_number(p.id, self.period),
            "status": self.status,
            "issuer": self.cfg.issuer,
            "partner": {"id": p.id, "name": p.name, "currency": p.currency,
                        "address": p.address, "contacts": list(p.contacts),
                        "timezone": p.timezone, "prepaid_account": p.prepaid_account},
            "agreements": [{"id": a.id, "type": a.type, "description": a.description}
                           for a in self.cfg.agreements_of(p.id)],
            "period": str(self.period),
            "issue_date": issue,
            "due_date": due,
            "currency": p.currency,
            "minor_places": places,
            "rounding_policy": ROUNDING_POLICY,
            "lines": out_lines,
            "sections": sections,
            "totals": {
                "receivable": _fmt(receivable, places),
                "payable": _fmt(payable, places),
                "net": _fmt(receivable - payable, places),
                "net_direction": ("partner pays us" if receivable > payable else
                                  "we pay partner" if payable > receivable else "nothing due"),
            },
        }

    # -- grouping -------------------------------------------------------------------------
    def _group(self, buckets: Buckets) -> dict[tuple[Any, ...], _Line]:
        lines: dict[tuple[Any, ...], _Line] = {}
        for key, v in buckets.items():
            ln = self._line_for(key, section=None)
            if ln is None:
                continue
            lk = (ln.section, ln.agreement, ln.direction, ln.service, ln.destination, ln.deck,
                  ln.kind, ln.currency, ln.fx)
            have = lines.get(lk)
            if have is None:
                lines[lk] = have = ln
            have.count += v[0]
            have.usage += v[1]
            have.src_micros += v[2]
        return lines

    def _line_for(self, key: tuple[Any, ...], section: str | None) -> _Line | None:
        direction, service = key[_K["direction"]], key[_K["service"]]
        agreement = self._agreement(service, direction)
        if agreement is None:
            self.problems.append(
                f"partner {self.partner.id!r}: no agreement covers {direction} {service!r} traffic")
            return None
        if agreement.type == "revenue_share":
            # late content records join this period's gross: the share applies to them too
            section = "revenue_share"
        elif section is None:
            section = direction
        elif section == "adjustment":
            section = f"adjustment_{direction}"
        deck = key[_K["deck"]]
        if key[_K["deck_version"]]:
            deck = f"{deck}@{key[_K['deck_version']]}"
        return _Line(section=section, agreement=agreement.id, direction=direction,
                     service=service, destination=key[_K["destination"]], deck=deck,
                     kind=key[_K["kind"]], currency=key[_K["currency"]],
                     fx=(key[_K["fx_from"]], key[_K["fx_rate"]], key[_K["fx_date"]]))

    def _agreement(self, service: str, direction: str) -> Agreement | None:
        mine = self.cfg.agreements_of(self.partner.id)
        for a in mine:
            if a.type == "revenue_share" and service in a.shares:
                return a
        for typ in ("bilateral", "transit"):
            for a in mine:
                if a.type == typ:
                    return a
        return None

    # -- rendering ------------------------------------------------------------------------
    def _render(self, ln: _Line) -> dict[str, Any]:
        ccy = self.partner.currency
        places = minor_places(ccy)
        try:
            # an adjustment line corrects a closed period: its records convert at THAT
            # period's rate (a late November call at the December rate would mix periods)
            conv = find_rate(self.cfg, ln.ref_period or str(self.period), ln.currency, ccy,
                             *ln.fx)
        except FxError as exc:
            self.problems.append(f"partner {self.partner.id!r}: {exc}")
            conv = None
        exact = convert(ln.src_micros, conv) if conv is not None or ln.currency == ccy else 0
        rounded = round_invoice(exact, ccy)
        unit = UNITS.get(ln.service, "unit")
        return {
            "line": 0, "section": ln.section, "agreement": ln.agreement,
            "direction": ln.direction, "service": ln.service, "destination": ln.destination,
            "deck": ln.deck, "kind": ln.kind, "ref": ln.ref, "ref_period": ln.ref_period,
            "count": ln.count, "usage": ln.usage, "unit": unit,
            "minutes": _fmt_frac(Fraction(ln.usage, 60), 2) if unit == "s" else "",
            "avg_rate": _avg_rate(exact, ln.usage, unit),
            "currency": ln.currency, "source_amount": format_amount(ln.src_micros),
            "fx_rate": conv.shown if conv else "", "fx_date": conv.date if conv else "",
            "fx_source": conv.source if conv else "",
            "exact": format_amount(exact), "rounding": format_amount(rounded - exact,
                                                                     min_places=places),
            "amount": _fmt(rounded, places),
            "_exact": exact, "_amount": rounded,
        }

    def _sections(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        places = minor_places(self.partner.currency)
        out = []
        for name in sorted({d["section"] for d in lines}, key=_SECTION_ORDER.__getitem__):
            rows = [d for d in lines if d["section"] == name]
            sign = 1 if name in RECEIVABLE else -1
            # revenue share: the gross lines explain, only the share lines are payable
            paying = [d for d in rows if name != "revenue_share" or d["kind"] in _SHARE_KINDS]
            gross = [d for d in rows if name == "revenue_share" and d["kind"] not in _SHARE_KINDS]
            exact = sum(d["_exact"] for d in paying)
            total = sum(d["_amount"] for d in paying)
            sec = {"section": name, "title": _TITLES[name], "sign": sign,
                   "lines": [d["line"] for d in rows],
                   "exact_total": format_amount(exact), "total": _fmt(total, places),
                   "rounding": format_amount(total - exact, min_places=places),
                   "_total": total}
            if gross:
                sec["gross_exact"] = format_amount(sum(d["_exact"] for d in gross))
            out.append(sec)
        for d in lines:
            d.pop("_exact", None)
            d.pop("_amount", None)
        return out

    # -- revenue share --------------------------------------------------------------------
    def _revenue_share(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        ccy = self.partner.currency
        for a in self.cfg.agreements_of(self.partner.id):
            if a.type != "revenue_share":
                continue
            total_share = 0
            for service in sorted(a.shares):
                gross = sum(d["_exact"] for d in lines
                            if d["agreement"] == a.id and d["service"] == service)
                if not any(d["agreement"] == a.id and d["service"] == service for d in lines):
                    continue
                share, label = share_of(gross, a.shares[service], a.tier_mode)
                total_share += share
                out.append(self._synthetic(a, "revenue_share", "share", service,
                                           f"{label} of gross {format_amount(gross)}", share))
            if a.minimum_guarantee is not None:
                mg = parse_amount(a.minimum_guarantee)
                if total_share < mg:
                    out.append(self._synthetic(a, "revenue_share", "guarantee", "",
                                               f"minimum guarantee {a.minimum_guarantee} {ccy}",
                                               mg - total_share))
                    total_share = mg
            if a.cap is not None:
                cap = parse_amount(a.cap)
                if total_share > cap:
                    out.append(self._synthetic(a, "revenue_share", "cap", "",
                                               f"cap {a.cap} {ccy}", cap - total_share))
        return out

    def _commitments(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for a in self.cfg.agreements_of(self.partner.id):
            if a.type != "commitment":
                continue
            rows = [d for d in lines if d["direction"] == a.direction
                    and d["section"] in ("sell", "buy")
                    and (a.service is None or d["service"] == a.service)]
            if a.committed_minutes is not None and a.shortfall_rate is not None:
                seconds = sum(d["usage"] for d in rows if d["unit"] == "s")
                missing = a.committed_minutes * 60 - seconds
                if missing > 0:
                    f = Fraction(missing, 60) * Fraction(a.shortfall_rate) * MICROS
                    charge = div_round(f.numerator, f.denominator, Rounding.HALF_UP)
                    text = (f"committed {a.committed_minutes} min, carried "
                            f"{_fmt_frac(Fraction(seconds, 60), 2)} min; shortfall "
                            f"{_fmt_frac(Fraction(missing, 60), 2)} min x {a.shortfall_rate}")
                    out.append(self._synthetic(a, f"commitment_{a.direction}", "shortfall", a.service or "",
                                               text, charge, direction=a.direction))
            elif a.committed_amount is not None and a.shortfall_pct is not None:
                carried = sum(d["_exact"] for d in rows)
                missing = parse_amount(a.committed_amount) - carried
                if missing > 0:
                    f = Fraction(missing) * Fraction(a.shortfall_pct) / 100
                    charge = div_round(f.numerator, f.denominator, Rounding.HALF_UP)
                    text = (f"committed {a.committed_amount}, carried {format_amount(carried)}; "
                            f"{a.shortfall_pct}% of shortfall {format_amount(missing)}")
                    out.append(self._synthetic(a, f"commitment_{a.direction}", "shortfall", a.service or "",
                                               text, charge, direction=a.direction))
        return out

    def _synthetic(self, a: Agreement, section: str, kind: str, service: str, text: str,
                   exact: int, direction: str = "buy") -> dict[str, Any]:
        ccy = self.partner.currency
        places = minor_places(ccy)
        rounded = round_invoice(exact, ccy)
        return {
            "line": 0, "section": section, "agreement": a.id, "direction": direction,
            "service": service, "destination": text, "deck": "", "kind": kind, "ref": "",
            "ref_period": "", "count": 0, "usage": 0, "unit": "", "minutes": "",
            "avg_rate": "", "currency": ccy, "source_amount": format_amount(exact),
            "fx_rate": "", "fx_date": "", "fx_source": "", "exact": format_amount(exact),
            "rounding": format_amount(rounded - exact, min_places=places),
            "amount": _fmt(rounded, places), "_exact": exact, "_amount": rounded,
        }


def share_of(gross: int, tiers: tuple[ShareTier, ...], mode: str) -> tuple[int, str]:
    """The partner's share (micro-units, HALF_UP) of *gross* micro-units, and its label.

    ``volume``: the tier whose ``from`` the gross reached applies to the whole gross.
    ``marginal``: each band of the gross gets its own tier's percentage.
    Negative gross (refunds exceeding sales) gives a negative share at the first tier.
    """
    if mode == "volume" or gross <= 0:
        tier = tiers[0]
        for t in tiers:
            if gross >= parse_amount(t.from_amount):
                tier = t
        f = Fraction(gross) * Fraction(tier.share_pct) / 100
        return div_round(f.numerator, f.denominator, Rounding.HALF_UP), f"{tier.share_pct}%"
    total = Fraction(0)
    parts = []
    bounds = [parse_amount(t.from_amount) for t in tiers] + [None]
    for t, lo, hi in zip(tiers, bounds, bounds[1:], strict=False):
        assert lo is not None
        if gross <= lo:
            break
        band = (min(gross, hi) if hi is not None else gross) - lo
        total += Fraction(band) * Fraction(t.share_pct) / 100
        parts.append(f"{t.share_pct}% of {format_amount(band)}")
    return div_round(total.numerator, total.denominator, Rounding.HALF_UP), " + ".join(parts)


ROUNDING_POLICY = (
    "Records are summed exactly in micro-units; a currency conversion rounds the exact line "
    "sum once to micro-units (half up); each line is rounded to the currency's minor unit "
    "(half up) and its rounding shown; a total is the sum of its rounded lines, and its "
    "rounding is total minus the exact sum."
)
_SECTION_ORDER = {"sell": 0, "buy": 1, "revenue_share": 2, "commitment_sell": 3,
                  "commitment_buy": 4, "adjustment_sell": 5, "adjustment_buy": 6}
_TITLES = {
    "sell": "Charges to partner: traffic we terminated for you (our sell deck)",
    "buy": "Charges from partner: traffic you terminated for us (our buy deck)",
    "revenue_share": "Revenue share: content/VAS gross revenue and your share (we pay)",
    "commitment_sell": "Volume commitment shortfall: you committed, you pay",
    "commitment_buy": "Volume commitment shortfall: we committed, we pay",
    "adjustment_sell": "Adjustments to closed invoices: late records we bill",
    "adjustment_buy": "Adjustments to closed invoices: late records billed to us",
}


def _fmt(micros: int, places: int) -> str:
    return format_amount(micros, min_places=places)


def _fmt_frac(f: Fraction, places: int) -> str:
    scaled = f * 10**places
    q = div_round(scaled.numerator, scaled.denominator, Rounding.HALF_UP)
    return str(Decimal(q).scaleb(-places))


def _avg_rate(exact: int, usage: int, unit: str) -> str:
    if usage <= 0 or unit not in ("s", "event"):
        return ""
    per = 60 if unit == "s" else 1
    f = Fraction(exact * per, usage * MICROS)
    return _fmt_frac(f, 6)
