"""Dispute records opened by reconciliation for what exceeds tolerance.

One file per partner and period, ``<data-dir>/settlement/disputes/DSP-<period>-<PARTNER>.json``,
rewritten deterministically on each reconciliation. Ids are stable for the same pair
(``class`` + our record id + their CDR id); durations are seconds (a JSON number, or a
decimal string such as ``"60.7"`` when not whole); and an operator's status change (``open`` ->
``accepted`` / ``rejected`` / ``resolved``) on an existing id is kept across re-runs.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from charging.money import format_amount
from settlement.currency import Period
from settlement.writers import to_json, write_atomic

REASONS = {
    "mismatch": "paired call differs beyond tolerance (duration or amount)",
    "only_ours": "call in our journal, missing from the partner's CDRs",
    "only_theirs": "call in the partner's CDRs, not in our journal",
}


def _duration(d: Any) -> int | str:
    """Whole seconds as a JSON number; a sub-second duration exactly, as a decimal string."""
    if d == int(d):
        return int(d)
    return format(Decimal(d).normalize(), "f")


def disputes_path(data_dir: Path, partner: str, period: Period) -> Path:
    return data_dir / "settlement" / "disputes" / f"DSP-{period}-{partner.upper()}.json"


def open_disputes(data_dir: Path, partner: str, period: Period, pairs: list[Any],
                  summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Write the dispute file for *pairs* (reconcile.Pair); return the dispute records."""
    path = disputes_path(data_dir, partner, period)
    previous: dict[str, str] = {}
    if path.exists():
        for d in json.loads(path.read_text(encoding="utf-8")).get("disputes", []):
            previous[d["key"]] = d.get("status", "open")
    out = []
    for n, pr in enumerate(pairs, 1):
        key = f"{pr.cls}:{pr.ours.id if pr.ours else ''}:{pr.theirs.id if pr.theirs else ''}"
        out.append({
            "id": f"DSP-{period}-{partner.upper()}-{n:05d}", "key": key,
            "status": previous.get(key, "open"), "class": pr.cls, "reason": REASONS[pr.cls],
            "our_id": pr.ours.id if pr.ours else None,
            "their_id": pr.theirs.id if pr.theirs else None,
            "our_duration": _duration(pr.ours.duration) if pr.ours else None,
            "their_duration": _duration(pr.theirs.duration) if pr.theirs else None,
            "our_amount": format_amount(pr.ours.amount) if pr.ours and pr.ours.amount is not None
            else None,
            "their_amount": format_amount(pr.theirs.amount)
            if pr.theirs and pr.theirs.amount is not None else None,
            "variance": format_amount(pr.variance),
        })
    doc = {"partner": partner, "period": str(period), "currency": summary["currency"],
           "total_variance": format_amount(sum(p.variance for p in pairs)), "disputes": out}
    write_atomic(path, to_json(doc))
    return out
