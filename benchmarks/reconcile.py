"""Reconciliation: read one partner's calls from the journal, compiled vs pure, in one run.

    python -m benchmarks.reconcile [--records N] [--repeat R] [--whole-repeat W]

Generates N records of mixed demo traffic (settlement/generate.py) into a temporary journal,
plus orange-fr's CDR file (``write_partner_cdrs``), then measures, in this process:

* value: ``journal_calls(..., fast=True)`` -- ``cython_ext/settle_agg.pyx`` ``select_calls``
  (CRC-checked frames, only orange-fr's plain records of 2026-11 decoded);
* baseline: ``journal_calls(..., fast=False)`` -- ``JournalReader.chunks()`` + ``our_cdrs``
  (the pure spec, the path ``icx reconcile`` took before);
* and, for context, a whole ``reconcile_journal`` on each path (partner CSV parsing and
  matching included; ``--whole-repeat`` runs, default 1).

Times are CPU seconds (``time.process_time``), medians of ``--repeat`` runs; wall medians are
printed next to them (the machine is shared). Prints one JSON line; ``ext`` tells whether the
compiled module is built and enabled (without it the value is the pure path again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _measure(fn: Any, repeat: int) -> tuple[float, float, Any]:
    cpu, wall = [], []
    out = None
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--whole-repeat", type=int, default=1,
                    help="runs of the whole reconcile on each path (context figure)")
    args = ap.parse_args()

    import cython_ext
    from settlement.config import load_config
    from settlement.currency import Period
    from settlement.generate import TrafficGenerator, write_journal
    from settlement.recon_source import journal_calls
    from settlement.reconcile import reconcile_journal, write_partner_cdrs

    cfg = load_config(ROOT / "config" / "partners.toml")
    period = Period(2026, 11)
    partner = "orange-fr"
    p = cfg.partners[partner]
    mapping = cfg.cdr_mappings[p.cdr_mapping or ""]
    lo, hi = period.bounds_us(p.timezone)
    ext = cython_ext.load("settle_agg") is not None
    with tempfile.TemporaryDirectory(prefix="icx-recon-bench-") as tmp:
        d = Path(tmp)
        kept: list[dict[str, Any]] = []

        def records() -> Any:
            for rec in TrafficGenerator(period, seed=42).records(args.records):
                if rec.get("partner") == partner or rec.get("legs"):
                    kept.append(rec)
                yield rec

        write_journal(str(d / "journal"), records())
        cdrs = d / "orange.csv"
        rows = write_partner_cdrs(cdrs, kept, mapping, partner=partner, seed=42)

        def calls(fast: bool) -> Any:
            return journal_calls(d / "journal", partner, lo, hi, mapping=mapping,
                                 deck_partners=cfg.deck_partners(), fast=fast)

        f_cpu, f_wall, f_calls = _measure(lambda: calls(ext), args.repeat)
        p_cpu, p_wall, p_calls = _measure(lambda: calls(False), args.repeat)
        key = lambda c: (c.start_us, c.id, c.amount or 0)  # noqa: E731
        same = sorted(f_calls, key=key) == sorted(p_calls, key=key)

        def whole(fast: bool) -> Any:
            return reconcile_journal(cfg, d / "journal", partner=partner, period=period,
                                     their_cdrs=cdrs, fast=fast)

        rf_cpu, rf_wall, _ = _measure(lambda: whole(ext), args.whole_repeat)
        rp_cpu, rp_wall, _ = _measure(lambda: whole(False), args.whole_repeat)
    print(json.dumps({
        "bench": "reconcile", "unit": "cpu_seconds_journal_read", "value": round(f_cpu, 4),
        "baseline": {"name": "pure JournalReader.chunks + our_cdrs", "value": round(p_cpu, 4)},
        "ratio": round(p_cpu / f_cpu, 2) if f_cpu else None, "ext": ext,
        "records": args.records, "calls_selected": len(f_calls), "same_calls": same,
        # "value" is the compiled path when ext is true, else the pure path again
        "wall_seconds": {"value": round(f_wall, 4), "baseline": round(p_wall, 4)},
        "reconcile_total_cpu_seconds": {"value": round(rf_cpu, 4), "baseline": round(rp_cpu, 4)},
        "reconcile_total_wall_seconds": {"value": round(rf_wall, 4),
                                         "baseline": round(rp_wall, 4)},
        "partner_cdr_rows": rows, "repeat": args.repeat, "whole_repeat": args.whole_repeat,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
