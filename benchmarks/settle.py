"""Settlement throughput: settle N generated journal records vs merely reading them.

    python -m benchmarks.settle [--records N] [--repeat R] [--dir DIR] [--keep]

Generates N records of mixed demo traffic (settlement/generate.py, config/partners.toml) into
a journal once (reused when ``--dir`` already holds N records), then, in the same run:

* baseline: read and unpack the whole journal with ``JournalReader.chunks()`` (the journal's
  own fast path: bulk CRC check + one msgpack pass per segment);
* value: a full ``settle`` run of period 2026-11 (aggregation + invoices + files).

Both run in fresh child processes, so each peak RSS (VmHWM) is its own; the compiled path
splits big journals over worker processes (``ICX_SETTLE_WORKERS``, default min(cpus, 4)):
``cpu_seconds`` and the ``*_per_cpu_second`` rates include the workers' CPU time.

Prints one JSON line; medians of ``--repeat`` runs. Target (issue 6): >= 1,000,000 records/s
and >= 50 % of the baseline rate. ``ext`` tells whether the compiled aggregator ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTNERS = ROOT / "config" / "partners.toml"
POOL = 200_000


def _count_file(d: Path) -> Path:
    return d / "bench-records.txt"


def generate(d: Path, n: int) -> float:
    """Fill *d* with *n* records unless it already holds exactly that; return seconds spent."""
    from settlement.currency import Period
    from settlement.generate import TrafficGenerator, write_journal, write_journal_cycled

    cf = _count_file(d)
    if cf.exists() and cf.read_text().strip() == str(n):
        return 0.0
    if d.exists():
        shutil.rmtree(d)
    t = time.perf_counter()
    gen = TrafficGenerator(Period(2026, 11), seed=42)
    if n <= POOL:
        write_journal(str(d / "journal"), gen.records(n))
    else:  # distinct records up to POOL, then cycled with fresh ids (see write_journal_cycled)
        write_journal_cycled(str(d / "journal"), gen, n, pool=POOL)
    cf.write_text(str(n))
    return time.perf_counter() - t


def read_baseline(journal: Path) -> tuple[float, int]:
    from charging.journal import JournalReader

    t = time.perf_counter()
    n = 0
    for chunk in JournalReader(journal).chunks():
        n += len(chunk.records)
    return time.perf_counter() - t, n


def _vm_hwm_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss would include the parent's RSS at fork
    time (Linux keeps it across execve), which made the baseline's memory look like ours."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_settle(journal: Path, work: Path) -> None:
    """One settle run (in a child process); prints its JSON measurements."""
    import resource

    from settlement import fastagg
    from settlement.config import load_config
    from settlement.currency import Period
    from settlement.run import settle
    from settlement.source import JournalSource

    cfg = load_config(PARTNERS)
    source = JournalSource(journal)
    t = time.perf_counter()
    c = time.process_time()
    report = settle(cfg, source, data_dir=work, period=Period(2026, 11), out_dir=work / "out")
    dt = time.perf_counter() - t
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c + kids.ru_utime + kids.ru_stime
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "records": report.records_read,
                      "fast": source.fast, "ext": fastagg.available(),
                      "workers": report.workers,
                      "problems": len(report.problems), "peak_rss_mb": _vm_hwm_mb(),
                      "worker_peak_rss_mb": round(kids.ru_maxrss / 1024, 1)}))


def _baseline_child(journal: Path) -> None:
    c = time.process_time()
    dt, n = read_baseline(journal)
    print(json.dumps({"seconds": dt, "cpu_seconds": time.process_time() - c, "records": n,
                      "peak_rss_mb": _vm_hwm_mb()}))


def _child(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT,
                         env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-repeat", type=int, default=None,
                    help="baseline repetitions (default --repeat; 1 saves minutes at 10M)")
    ap.add_argument("--dir", default=None, help="journal dir to (re)use; default a temp dir")
    ap.add_argument("--keep", action="store_true", help="keep the generated journal")
    ap.add_argument("--child-settle", nargs=2, metavar=("JOURNAL", "WORK"), help=argparse.SUPPRESS)
    ap.add_argument("--child-read", metavar="JOURNAL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_settle:
        child_settle(Path(args.child_settle[0]), Path(args.child_settle[1]))
        return 0
    if args.child_read:
        _baseline_child(Path(args.child_read))
        return 0

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="icx-bench-settle-"))
    try:
        gen_s = generate(base, args.records)
        journal = base / "journal"
        read_s: list[float] = []
        read_cpu: list[float] = []
        settle_s: list[float] = []
        settle_cpu: list[float] = []
        rss: list[float] = []
        wrss: list[float] = []
        child: dict = {}
        base_reps = args.repeat if args.baseline_repeat is None else args.baseline_repeat
        for i in range(max(1, args.repeat)):
            if i < max(1, base_reps):
                base = _child([sys.executable, "-m", "benchmarks.settle", "--child-read",
                               str(journal)])
                assert base["records"] == args.records, (base, args.records)
                read_s.append(base["seconds"])
                read_cpu.append(base["cpu_seconds"])
            work = Path(tempfile.mkdtemp(prefix="icx-bench-settle-work-"))
            try:
                child = _child([sys.executable, "-m", "benchmarks.settle", "--child-settle",
                                str(journal), str(work)])
            finally:
                shutil.rmtree(work, ignore_errors=True)
            assert child["records"] == args.records and child["problems"] == 0, child
            settle_s.append(child["seconds"])
            settle_cpu.append(child["cpu_seconds"])
            rss.append(child["peak_rss_mb"])
            wrss.append(child["worker_peak_rss_mb"])
        value = args.records / statistics.median(settle_s)
        baseline = args.records / statistics.median(read_s)
        result = {
            "bench": "settle", "unit": "records/s", "value": round(value),
            "baseline": {"name": "journal read+unpack (JournalReader.chunks)",
                         "value": round(baseline)},
            "ratio": round(value / baseline, 3), "ext": bool(child["ext"] and child["fast"]),
            "records": args.records, "repeat": len(settle_s),
            "settle_seconds": [round(s, 3) for s in settle_s],
            "read_seconds": [round(s, 3) for s in read_s],
            "peak_rss_mb": max(rss), "worker_peak_rss_mb": max(wrss),
            "workers": child["workers"],
            "value_per_cpu_second": round(args.records / statistics.median(settle_cpu)),
            "baseline_per_cpu_second": round(args.records / statistics.median(read_cpu)),
            "generate_seconds": round(gen_s, 1),
            "distinct_records": min(args.records, POOL),
            "target": {"value": 1_000_000, "ratio": 0.5},
            "meets_target": value >= 1_000_000 and value / baseline >= 0.5,
            "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        }
        print(json.dumps(result))
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
