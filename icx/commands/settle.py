"""`icx settle` (invoices from the journal), `icx settle generate` (demo traffic) and
`icx reconcile` (our records against a partner's CDR file).

Exit codes: 0 ok, 1 inconsistency or runtime failure, 2 bad input (``file:key: reason``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from settlement.config import SettlementConfig, SettlementConfigError, load_config
from settlement.currency import Period, PeriodError

DEFAULT_PARTNERS = "config/partners.toml"


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("ICX_DATA_DIR") or "data")


def _config(path: str) -> SettlementConfig:
    try:
        return load_config(path)
    except SettlementConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except PeriodError as exc:
        click.echo(f"--period: {exc}", err=True)
        sys.exit(2)


class _NoBar:
    """Stands in for the rich bar when stderr is no terminal (a disabled rich Progress still
    wrote a blank line to stderr when it stopped)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, task: Any, n: float = 1) -> None:
        return None


def _progress_bar(total: int, label: str) -> Any:
    if not sys.stderr.isatty():
        return _NoBar(), 0
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # the bar lives on stderr: on stdout it left a blank first line before the --json output
    prog = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(), transient=True, disable=not sys.stderr.isatty(),
                    console=Console(stderr=True))
    return prog, prog.add_task(label, total=max(total, 1))


_partners_opt = click.option("--partners", "partners_file", default=DEFAULT_PARTNERS,
                             envvar="ICX_PARTNERS", show_default=True,
                             type=click.Path(dir_okay=False),
                             help="Partners, agreements, FX and CDR mappings (TOML).")
_data_opt = click.option("--data-dir", envvar="ICX_DATA_DIR", default=None,
                         help="Data dir (default $ICX_DATA_DIR or ./data).")
_journal_opt = click.option("--journal", "journal_dir", default=None,
                            help="Journal directory (default <data-dir>/journal).")


@click.group("settle", invoke_without_command=True)
@click.option("--period", default=None, help="Billing period YYYY-MM.")
@click.option("--partner", default=None, help="Only this partner.")
@click.option("--out", "out_dir", default=None, help="Output dir (default <data-dir>/settlement/out).")
@click.option("--close", is_flag=True, help="Finalise the period (it never changes afterwards).")
@click.option("--issue-date", default=None, help="Invoice date YYYY-MM-DD (default: period end).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
@_partners_opt
@_data_opt
@_journal_opt
@click.pass_context
def settle_cmd(ctx: click.Context, period: str | None, partner: str | None, out_dir: str | None,
               close: bool, issue_date: str | None, as_json: bool, partners_file: str,
               data_dir: str | None, journal_dir: str | None) -> None:
    """Settle a period from the journal: invoices (JSON, CSV, HTML), netting, summary."""
    if ctx.invoked_subcommand is not None:
        return
    if period is None:
        click.echo("--period: required (YYYY-MM)", err=True)
        sys.exit(2)
    from datetime import date

    from settlement.run import settle
    from settlement.source import JournalSource
    from settlement.state import SettlementBusy

    cfg = _config(partners_file)
    per = _period(period)
    if issue_date is not None:
        try:
            date.fromisoformat(issue_date)
        except ValueError:
            click.echo(f"--issue-date: not a date YYYY-MM-DD: {issue_date!r}", err=True)
            sys.exit(2)
    if partner is not None and partner not in cfg.partners:
        click.echo(f"{partners_file}:partners.{partner}: unknown partner", err=True)
        sys.exit(2)
    ddir = _data_dir(data_dir)
    jdir = Path(journal_dir) if journal_dir else ddir / "journal"
    if not jdir.is_dir():
        click.echo(f"{jdir}: no journal directory (generate traffic with `icx settle generate`)",
                   err=True)
        sys.exit(2)
    out = Path(out_dir) if out_dir else ddir / "settlement" / "out"
    source = JournalSource(jdir)
    from settlement.state import SettlementState

    state_cp = SettlementState.load(ddir).checkpoint
    prog, task = _progress_bar(source.total_bytes(state_cp), "settling")
    try:
        with prog:
            report = settle(cfg, source, data_dir=ddir, period=per, out_dir=out, partner=partner,
                            close=close, issue_date=issue_date,
                            progress=lambda n: prog.advance(task, n))
    except SettlementBusy as exc:  # another `icx settle` on this data dir: nothing done
        click.echo(f"settle: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # journal corruption, I/O: a runtime failure, exit 1
        click.echo(f"settle failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({**report.summary, "records_read": report.records_read,
                               "files": [str(f) for f in report.files],
                               "problems": report.problems,
                               "fast_path": source.fast, "workers": report.workers},
                              sort_keys=True))
    else:
        path = f"compiled path, {report.workers} process(es)" if source.fast else "pure path"
        click.echo(f"period {report.period} ({report.status}): read {report.records_read} new "
                   f"records ({path})")
        for row in report.summary["partners"]:
            click.echo(f"  {row['partner']:<12} {row['invoice_no']:<26} {row['currency']} "
                       f"receivable {row['receivable']:>14}  payable {row['payable']:>14}  "
                       f"net {row['net']:>14}  ({row['net_direction']})")
        click.echo(f"files in {out / str(per)}")
    for problem in report.problems:
        click.echo(f"inconsistency: {problem}", err=True)
    if report.problems:
        sys.exit(1)


@settle_cmd.command("generate")
@click.option("--period", required=True, help="Month to fill, YYYY-MM.")
@click.option("--records", "count", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--their-cdrs", "their_cdrs", default=None,
              help="Also write orange-fr's view of its traffic (CSV, with some differences) here.")
@_partners_opt
@_data_opt
@_journal_opt
def generate_cmd(period: str, count: int, seed: int, their_cdrs: str | None, partners_file: str,
                 data_dir: str | None, journal_dir: str | None) -> None:
    """Append COUNT generated records of mixed partner traffic to the journal.

    The journal has one writer at a time: while `icx serve` (or another generate) has it open
    this exits 1 with one line naming the holder's pid, and writes nothing."""
    from charging.journal.segments import JournalLocked
    from settlement.generate import TrafficGenerator, write_journal

    cfg = _config(partners_file)
    per = _period(period)
    demo = cfg.partners.get("orange-fr")
    if their_cdrs and (demo is None
                       or (demo.cdr_mapping or "orange") not in cfg.cdr_mappings):
        click.echo(f"{partners_file}:partners.orange-fr: --their-cdrs needs the demo partner "
                   "orange-fr and its CDR mapping", err=True)
        sys.exit(2)
    jdir = Path(journal_dir) if journal_dir else _data_dir(data_dir) / "journal"
    gen = TrafficGenerator(per, seed=seed, node=f"gen{seed}")
    kept: list[dict[str, Any]] = []

    def records() -> Any:
        for rec in gen.records(count):
            if their_cdrs and (rec.get("partner") == "orange-fr" or rec.get("legs")):
                kept.append(rec)
            yield rec

    prog, task = _progress_bar(count, "generating")
    try:
        with prog:
            n = write_journal(str(jdir), records(), progress=lambda k: prog.advance(task, k))
    except JournalLocked as exc:  # a live server appends to it: a runtime refusal, exit 1
        click.echo(f"settle generate: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{n} records appended to {jdir}")
    if their_cdrs:
        from settlement.reconcile import write_partner_cdrs

        mapping = cfg.cdr_mappings[cfg.partners["orange-fr"].cdr_mapping or "orange"]
        m = write_partner_cdrs(Path(their_cdrs), kept, mapping, partner="orange-fr", seed=seed)
        click.echo(f"{m} partner CDRs written to {their_cdrs} (a few deliberately differ)")


@click.command("reconcile")
@click.option("--partner", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--their-cdrs", required=True, type=click.Path(dir_okay=False),
              help="The partner's CDR file (CSV; columns per [cdr_mappings]).")
@click.option("--tolerance-seconds", type=click.IntRange(0), default=2, show_default=True)
@click.option("--tolerance-pct", type=str, default="1", show_default=True,
              help="Duration tolerance in percent (the larger of the two tolerances applies).")
@click.option("--their-total", default=None, help="The partner's invoice total to compare.")
@click.option("--direction", type=click.Choice(["sell", "buy", "any"]), default="any",
              show_default=True, help="Which of our records to match.")
@click.option("--service", default="voice", show_default=True,
              help="Which service's records to match (\"any\" for all).")
@click.option("--out", "out_dir", default=None, help="Output dir (default <data-dir>/settlement/recon).")
@click.option("--json", "as_json", is_flag=True)
@_partners_opt
@_data_opt
@_journal_opt
def reconcile_cmd(partner: str, period: str, their_cdrs: str, tolerance_seconds: int,
                  tolerance_pct: str, their_total: str | None, direction: str, service: str,
                  out_dir: str | None, as_json: bool, partners_file: str,
                  data_dir: str | None, journal_dir: str | None) -> None:
    """Match our journal records with a partner's CDRs; write CSV + HTML, open disputes.

    One reconciliation per data dir at a time: while another holds it this exits 1 with one
    line naming the holder's pid, and writes nothing. It runs next to `icx settle`."""
    from decimal import Decimal, InvalidOperation

    from charging.money import MoneyError, parse_amount
    from settlement.reconcile import CdrFileError, ReconcileError, reconcile_journal
    from settlement.state import ReconcileBusy

    cfg = _config(partners_file)
    per = _period(period)
    p = cfg.partners.get(partner)
    if p is None:
        click.echo(f"{partners_file}:partners.{partner}: unknown partner", err=True)
        sys.exit(2)
    if not p.cdr_mapping:
        click.echo(f"{partners_file}:partners.{partner}.cdr_mapping: required to read its CDRs",
                   err=True)
        sys.exit(2)
    try:
        pct = Decimal(tolerance_pct)
        total = Decimal(their_total) if their_total is not None else None
    except InvalidOperation:
        click.echo("--tolerance-pct/--their-total: not a decimal number", err=True)
        sys.exit(2)
    if not pct.is_finite() or pct < 0:
        click.echo(f"--tolerance-pct: must be a finite number >= 0, got {tolerance_pct!r}",
                   err=True)
        sys.exit(2)
    if total is not None:
        try:
            parse_amount(total)  # the amount reconcile compares: finite, at most 6 decimals
        except MoneyError as exc:
            click.echo(f"--their-total: {exc}", err=True)
            sys.exit(2)
    ddir = _data_dir(data_dir)
    jdir = Path(journal_dir) if journal_dir else ddir / "journal"
    if not jdir.is_dir():
        click.echo(f"{jdir}: no journal directory (generate traffic with `icx settle generate`)",
                   err=True)
        sys.exit(2)
    out = Path(out_dir) if out_dir else ddir / "settlement" / "recon"
    try:
        result = reconcile_journal(cfg, jdir, partner=partner, period=per,
                                   their_cdrs=Path(their_cdrs), tolerance_seconds=tolerance_seconds,
                                   tolerance_pct=pct, their_total=total, direction=direction,
                                   service=service,
                                   out_dir=out, data_dir=ddir)
    except CdrFileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except ReconcileError as exc:  # an inconsistency (no FX rate between two currencies)
        click.echo(f"reconcile: {exc}", err=True)
        sys.exit(1)
    except ReconcileBusy as exc:  # another `icx reconcile` on this data dir: nothing done
        click.echo(f"reconcile: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # journal corruption, I/O: a runtime failure, exit 1
        click.echo(f"reconcile failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({**result.summary, "fast_path": result.fast_path}, sort_keys=True))
    else:
        s = result.summary
        click.echo(f"{partner} {per}: " + ", ".join(f"{k} {v}" for k, v in s["counts"].items()))
        click.echo(f"  ours {s['our_amount']} / theirs {s['their_amount']} {s['currency']}, "
                   f"variance {s['variance']}; disputes opened {s['disputes_opened']} "
                   f"({'compiled' if result.fast_path else 'pure'} journal path)")
        for path in result.files:
            click.echo(f"  {path}")


commands = [settle_cmd, reconcile_cmd]
