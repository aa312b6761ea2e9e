"""`icx journal verify | dump | stats`: operator verbs over <data-dir>/journal.

Exit codes: 0 all good; 1 a check failed (corruption, quarantined or missing segments) or a
runtime error; 2 bad input (no such data dir, bad --from).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from charging.journal import JournalCorruptError, JournalReader, Position, list_segments
from charging.journal.verify import SegmentReport, verify_journal

_data_dir = click.option(
    "--data-dir", envvar="ICX_DATA_DIR", required=True,
    type=click.Path(file_okay=False), help="The server's data dir (journal in DATA_DIR/journal).")


def _journal_dir(data_dir: str) -> Path:
    d = Path(data_dir)
    if not d.is_dir():
        click.echo(f"{d}:-: data dir does not exist", err=True)
        sys.exit(2)
    j = d / "journal"
    return j if j.is_dir() else d  # accept a journal dir given directly


def _progress(total: int, quiet: bool) -> Progress:
    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=console, transient=True,
                    disable=quiet or not console.is_terminal)


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


@click.group("journal")
def journal() -> None:
    """Inspect and check the crash-safe journal."""


@journal.command("verify")
@_data_dir
@click.option("--json", "as_json", is_flag=True, help="One JSON summary line.")
def verify(data_dir: str, as_json: bool) -> None:
    """Check every segment (headers, checksums, record schema). Exit 0 only if all check."""
    jdir = _journal_dir(data_dir)
    segs = list_segments(jdir)
    problems: list[str] = []
    notes: list[str] = []
    records = 0
    with _progress(len(segs), as_json) as progress:
        task = progress.add_task("verifying", total=len(segs))
        for item in verify_journal(jdir):
            if isinstance(item, SegmentReport):
                problems.extend(item.problems)
                notes.extend(item.notes)
                records += item.records
                progress.advance(task)
            else:
                problems.append(item)
    if as_json:
        click.echo(json.dumps({"ok": not problems, "segments": len(segs), "records": records,
                               "problems": problems, "notes": notes}))
    else:
        for p in problems:
            click.echo(p)
        for n in notes:
            click.echo(f"note: {n}")
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        click.echo(f"{jdir}: {len(segs)} segments, {records} records: {status}")
    sys.exit(1 if problems else 0)


def _parse_pos(text: str | None) -> Position | None:
    if text is None:
        return None
    try:
        seg, off = text.split(":")
        return Position(int(seg), int(off))
    except ValueError:
        click.echo(f"--from:-: expected SEGMENT:OFFSET, got {text!r}", err=True)
        sys.exit(2)


@journal.command("dump")
@_data_dir
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line.")
@click.option("--from", "start", metavar="SEG:OFF", help="Records after this position.")
@click.option("--type", "rtype", help="Only records of this type.")
@click.option("--limit", type=int, default=0, help="Stop after N records (0: all).")
@click.option("--positions", is_flag=True, help="Add \"pos\": [segment, offset] (JSON mode).")
def dump(data_dir: str, as_json: bool, start: str | None, rtype: str | None, limit: int,
         positions: bool) -> None:
    """Print the journal's records in order."""
    jdir = _journal_dir(data_dir)
    n = 0
    out = sys.stdout
    try:
        for pos, rec in JournalReader(jdir).iter_from(_parse_pos(start)):
            if rtype and rec.get("type") != rtype:
                continue
            if as_json:
                if positions:
                    rec = {**rec, "pos": [pos.segment, pos.offset]}
                out.write(json.dumps(rec, default=_jsonable, separators=(",", ":")) + "\n")
            else:
                eff = " ".join(f"{e['account']}/{e['balance']}:{e['amount']}"
                               for e in rec.get("balance_effects") or ())
                out.write(f"{pos.segment}:{pos.offset} {_iso(rec.get('ts'))} "
                          f"{rec.get('type')} {rec.get('idem')} {rec.get('result', '')} "
                          f"{eff}\n")
            n += 1
            if limit and n >= limit:
                break
    except JournalCorruptError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes | memoryview):
        return bytes(v).hex()
    return str(v)


@journal.command("stats")
@_data_dir
@click.option("--json", "as_json", is_flag=True, help="One JSON line.")
def stats(data_dir: str, as_json: bool) -> None:
    """Segments, records, bytes, first/last record time, records by type.

    ``bytes`` counts the data; ``allocated`` the files (the open segment is preallocated: zeros
    after its records up to the segment size)."""
    jdir = _journal_dir(data_dir)
    segs = list_segments(jdir)
    types: Counter[str] = Counter()
    records = size = allocated = 0
    first: int | None = None
    last: int | None = None
    problems: list[str] = []
    with _progress(len(segs), as_json) as progress:
        task = progress.add_task("reading", total=len(segs))
        for item in verify_journal(jdir):
            if not isinstance(item, SegmentReport):
                problems.append(item)
                continue
            types.update(item.types)
            records += item.records
            size += item.size
            allocated += item.allocated
            problems.extend(item.problems)
            if item.first_ts is not None:
                first = item.first_ts if first is None else min(first, item.first_ts)
            if item.last_ts is not None:
                last = item.last_ts if last is None else max(last, item.last_ts)
            progress.advance(task)
    result = {"journal": str(jdir), "segments": len(segs),
              "closed": sum(1 for s in segs if s.closed), "records": records, "bytes": size,
              "allocated": allocated,
              "first": _iso(first), "last": _iso(last), "types": dict(sorted(types.items())),
              "problems": len(problems)}
    if as_json:
        click.echo(json.dumps(result))
    else:
        for k, v in result.items():
            click.echo(f"{k:>9}: {v}")
    sys.exit(1 if problems else 0)


commands = [journal]
