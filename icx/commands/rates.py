"""Rate-deck verbs: `icx rates import`, `icx rates list`, and `icx rate` (explain a price).

Also the wiring helpers the server calls at start (packages never import icx, so the
settings -> engine translation lives here): :func:`engine_from_settings` and
:func:`import_configured_decks`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

import click

from charging.currency import is_iso4217
from charging.money import format_amount
from charging.rating import (
    BandCalendar,
    DeckError,
    FxApplied,
    ImportSummary,
    NoTariff,
    RatedPrice,
    RatingEngine,
    RatingError,
    Service,
)
from charging.rating.engine import extension_active
from icx.commands._admin_client import admin_option, call
from icx.config_loader import ConfigError
from icx.settings import Settings, load_settings


def engine_from_settings(settings: Settings, data_dir: str | os.PathLike[str]) -> RatingEngine:
    """A RatingEngine over *data_dir* configured by ``[rating]`` (decks not imported yet)."""
    r = settings.rating
    calendar = BandCalendar.build(
        r.timezone, {b: list(rules) for b, rules in r.bands.items()}, list(r.holidays),
        r.holiday_band, r.default_band,
    )
    return RatingEngine.open(
        data_dir, technical_prefixes=r.technical_prefixes, calendar=calendar, band_mode=r.band_mode
    )


def import_configured_decks(settings: Settings, engine: RatingEngine) -> list[ImportSummary]:
    """Import every ``[[rating.decks]]`` file that is new or changed (idempotent). Raises
    DeckError (``file:line: ...``) when one is bad; the server should refuse to start."""
    out = []
    for entry in settings.rating.decks:
        out.append(engine.ensure_imported(
            str(settings.resolve(entry.file)), deck=entry.deck, partner=entry.partner,
            direction=entry.direction, currency=entry.currency, effective=entry.effective,
            service=entry.service, timezone=settings.rating.timezone,
        ))
    return out


def _settings(config: str | None) -> Settings | None:
    if not config:
        return None
    try:
        return load_settings(config)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(str(p), err=True)
        sys.exit(2)


def _data_dir(data_dir: str | None, settings: Settings | None) -> str:
    if data_dir:
        return data_dir
    if settings is not None:
        return str(settings.data_dir())
    return os.environ.get("ICX_DATA_DIR") or "data"


def _engine(data_dir: str | None, config: str | None) -> tuple[RatingEngine, Settings | None]:
    settings = _settings(config)
    dd = _data_dir(data_dir, settings)
    if settings is not None:
        return engine_from_settings(settings, dd), settings
    return RatingEngine.open(dd), None


_data_dir_opt = click.option("--data-dir", envvar="ICX_DATA_DIR", type=click.Path(file_okay=False),
                             help="Data dir (env ICX_DATA_DIR; else the config's, else ./data).")
_config_opt = click.option("-c", "--config", type=click.Path(dir_okay=False, exists=True),
                           help="icx.toml: [rating] timezone, technical prefixes, band calendar.")


@click.group("rates")
def rates() -> None:
    """Rate decks: import CSV decks as new versions, list them."""


@rates.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--deck", required=True, help="Deck name (letters, digits, _ . -).")
@click.option("--partner", default=None, help="Partner the deck belongs to (omit for retail).")
@click.option("--direction", type=click.Choice(["sell", "buy"]), default="sell", show_default=True)
@click.option("--currency", default="EUR", show_default=True, help="ISO 4217 code of the deck.")
@click.option("--effective", default=None, help="Start date for rows without one (YYYY-MM-DD).")
@click.option("--service", default="voice", show_default=True,
              help="Service of rows without a service column (voice, sms, mms, data, data_time, content).")
@click.option("--timezone", default=None, help="Zone of deck dates (default: [rating].timezone or UTC).")
@click.option("--hyphen", type=click.Choice(["range", "concat"]), default="range", show_default=True,
              help="'a-b' in a code cell: a range, or country-area to concatenate.")
@click.option("--skip-bad", is_flag=True, help="Keep good rows; write bad ones to the rejects file.")
@click.option("--rejects", type=click.Path(dir_okay=False), default=None,
              help="Rejects file for --skip-bad (default FILE.rejects.csv).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@_data_dir_opt
@_config_opt
def rates_import(file: str, deck: str, partner: str | None, direction: str, currency: str,
                 effective: str | None, service: str, timezone: str | None, hyphen: str,
                 skip_bad: bool, rejects: str | None, as_json: bool, data_dir: str | None,
                 config: str | None) -> None:
    """Import FILE as a new version of deck NAME (atomic: a bad row stores nothing)."""
    engine, settings = _engine(data_dir, config)
    tz = timezone or (settings.rating.timezone if settings else "UTC")
    try:
        Service.parse(service)
    except ValueError as exc:
        click.echo(f"{file}:-: {exc}", err=True)
        sys.exit(2)
    try:
        ZoneInfo(tz)
    except (ValueError, KeyError):  # KeyError's text came out quoted
        click.echo(f"{file}:--timezone: unknown timezone {tz!r}", err=True)
        sys.exit(2)
    rejects_path = rejects or f"{file}.rejects.csv"
    if skip_bad and (problem := _unwritable(rejects_path)):
        # found after the import, it was a traceback (exit 1) with the deck stored and the
        # rejected rows lost
        click.echo(f"{rejects_path}: cannot write the rejects file: {problem}", err=True)
        sys.exit(2)
    total = _count_lines(file)
    try:
        if total >= 100_000 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            # the bar lives on stderr: on stdout it left a blank line before the --json output
            with Progress(TextColumn("importing {task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total} lines"), TimeRemainingColumn(),
                          transient=True, console=Console(stderr=True)) as progress:
                task = progress.add_task(os.path.basename(file), total=total)
                summary = _import_with_progress(
                    engine, file, deck, partner, direction, currency, effective, service, tz,
                    skip_bad, hyphen, lambda n: progress.update(task, completed=n))
        else:
            summary = engine.import_csv(
                file, deck=deck, partner=partner, direction=direction, currency=currency,
                effective=effective, service=service, timezone=tz, skip_bad=skip_bad, hyphen=hyphen,
            )
    except DeckError as exc:
        for p in exc.problems:
            click.echo(p, err=True)
        sys.exit(2)
    except ValueError as exc:
        click.echo(f"{file}:-: {exc}", err=True)
        sys.exit(2)
    if summary.rejects:
        try:
            with open(rejects_path, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["line", "reason", "row"])
                w.writerows(summary.rejects)
        except OSError as exc:  # checked before the import: a full disk, a race
            click.echo(f"{rejects_path}: cannot write the rejects file: {exc.strerror} (deck "
                       f"{deck} version {summary.version} is stored)", err=True)
            sys.exit(1)
    if as_json:
        out = summary.to_json()
        if summary.rejects:
            out["rejects_file"] = rejects_path
        click.echo(json.dumps(out))
        return
    click.echo(f"deck {deck} version {summary.version}: {summary.rows} rows, {summary.prefixes} prefixes, "
               f"{summary.destinations} destinations ({summary.lines} lines, {summary.seconds:.2f} s)")
    prev = f"v{summary.previous_version}" if summary.previous_version else "nothing"
    click.echo(f"changes against {prev}: {summary.new} new, {summary.increased} increased, "
               f"{summary.decreased} decreased, {summary.removed} removed, {summary.unchanged} unchanged")
    if summary.rejects:
        click.echo(f"{len(summary.rejects)} rows rejected, see {rejects_path}")


def _unwritable(path: str) -> str | None:
    """Why *path* cannot be (over)written as a new file, or None."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "it is a directory"
    if not os.path.isdir(parent):
        return f"no directory {parent}"
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path)
                                                    and not os.access(path, os.W_OK)):
        return "permission denied"
    return None


def _import_with_progress(engine: RatingEngine, file: str, deck: str, partner: str | None,
                          direction: str, currency: str, effective: str | None, service: str,
                          tz: str, skip_bad: bool, hyphen: str, cb: Any) -> ImportSummary:
    from charging.rating.importer import import_csv

    summary = import_csv(engine.store, file, deck=deck, partner=partner, direction=direction,
                         currency=currency, effective=effective, service=service, timezone=tz,
                         skip_bad=skip_bad, hyphen=hyphen, progress=cb)
    engine.reload_if_changed()
    return summary


def _count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


@rates.command("list")
@click.option("--json", "as_json", is_flag=True)
@_data_dir_opt
def rates_list(as_json: bool, data_dir: str | None) -> None:
    """List decks and their versions."""
    engine = RatingEngine(_data_dir(data_dir, None))
    out = []
    for name in engine.store.decks():
        for v in engine.store.versions(name):
            m = engine.store.read_meta(name, v)
            out.append({"deck": name, "version": v, "currency": m.currency, "direction": m.direction,
                        "partner": m.partner, "rows": m.rows, "source": m.source,
                        "imported_at": m.imported_at})
    if as_json:
        click.echo(json.dumps(out))
        return
    for o in out:
        click.echo(f"{o['deck']} v{o['version']}: {o['rows']} rows, {o['currency']}, {o['direction']}"
                   f"{' partner ' + str(o['partner']) if o['partner'] else ''}, from {o['source']}")


_UNITS = {"s": "seconds", "event": "events", "octet": "octets"}  # Service.unit -> option


@click.command("rate")
@click.option("--deck", required=True)
@click.option("--to", "to", required=True, help="Destination: number, SIP/TEL URI, or APN.")
@click.option("--from", "origin", default=None, help="A-number (origin-keyed decks).")
@click.option("--at", default=None, help="ISO time (naive = [rating].timezone or UTC); default now.")
@click.option("--seconds", type=int, default=None, help="Usage in seconds (voice, data_time).")
@click.option("--events", type=int, default=None, help="Usage in events (sms, mms, content).")
@click.option("--octets", type=int, default=None, help="Usage in octets (data).")
@click.option("--service", default=None, help="Override the service guessed from the unit.")
@click.option("--version", "version", type=int, default=None, help="Rate against this deck version.")
@click.option("--currency", default=None,
              help="Also show the price in this currency, converted with the [[fx]] rate of "
                   "the period (--partners).")
@click.option("--partners", "partners_file", default="config/partners.toml",
              envvar="ICX_PARTNERS", show_default=True, type=click.Path(dir_okay=False),
              help="FX period rates ([[fx]]) for --currency: the file `icx settle` uses.")
@click.option("--json", "as_json", is_flag=True)
@_data_dir_opt
@_config_opt
def rate(deck: str, to: str, origin: str | None, at: str | None, seconds: int | None,
         events: int | None, octets: int | None, service: str | None, version: int | None,
         currency: str | None, partners_file: str, as_json: bool, data_dir: str | None,
         config: str | None) -> None:
    """Price one usage and explain it (prefix, destination, version, band, increments...).

    --currency converts the price as an invoice converts it: the partners file's [[fx]] rate
    of the billing period the usage falls in, exact, rounded once (half up) to micro-units;
    the rate, its date and the period are shown. No such rate: one line, exit 1."""
    given = [(u, s) for u, s in ((seconds, Service.VOICE), (events, Service.SMS), (octets, Service.DATA))
             if u is not None]
    if len(given) != 1:
        click.echo("rate: give exactly one of --seconds, --events, --octets", err=True)
        sys.exit(2)
    usage, svc = given[0]
    if usage < 0:
        click.echo("rate: usage must be >= 0", err=True)
        sys.exit(2)
    engine, settings = _engine(data_dir, config)
    try:
        if service:
            chosen = Service.parse(service)
            if chosen.unit != svc.unit:  # --seconds 60 --service data priced 60 octets
                raise ValueError(f"--service {chosen.value} is metered in {_UNITS[chosen.unit]}: "
                                 f"give --{_UNITS[chosen.unit]}, not --{_UNITS[svc.unit]}")
            svc = chosen
        if currency and not is_iso4217(currency.upper()):
            raise ValueError(f"--currency must be an ISO 4217 code like EUR, got {currency!r}")
        tz_name = settings.rating.timezone if settings else "UTC"
        tz = ZoneInfo(tz_name)
        when = time.time()
        if at:
            t = dt.datetime.fromisoformat(at)
            when = (t if t.tzinfo else t.replace(tzinfo=tz)).timestamp()
    except ValueError as exc:
        click.echo(f"rate: {exc}", err=True)
        sys.exit(2)
    # An unknown deck or version is bad input (exit 2), not a destination without a tariff
    # (exit 1): it was "no tariff: no deck 'x'", exit 1.
    decks = engine.decks()
    if deck not in decks:
        click.echo(f"rate: no deck {deck!r} in {engine.store.root.parent}; decks: "
                   f"{', '.join(decks) or 'none'}", err=True)
        sys.exit(2)
    versions = engine.store.versions(deck)
    if version is not None and version not in versions:
        click.echo(f"rate: no version {version} of deck {deck!r}; versions: "
                   f"{', '.join(str(v) for v in versions)}", err=True)
        sys.exit(2)
    try:
        price = engine.rate(deck=deck, service=svc, destination=to, origin=origin, at=when,
                            usage=usage, version=version)
    except NoTariff as exc:
        if as_json:
            click.echo(json.dumps({"error": "no_tariff", "message": str(exc)}))
        else:
            click.echo(f"no tariff: {exc}", err=True)
        sys.exit(1)
    except RatingError as exc:
        click.echo(f"rate: {exc}", err=True)
        sys.exit(1)
    period = None
    if currency and currency.upper() != price.currency:
        price, period = _converted(price, currency.upper(), partners_file, deck=deck, when=when,
                                   tz=tz_name)
    out = price.to_json()
    fx_json = out.get("fx")
    if isinstance(fx_json, dict) and period is not None:
        fx_json.update(period=period, partners=partners_file)
    out["at"] = dt.datetime.fromtimestamp(when, dt.UTC).isoformat()
    out["engine"] = "compiled" if extension_active() else "pure"
    if as_json:
        click.echo(json.dumps(out))
        return
    unit = svc.unit
    click.echo(f"price        {out['price']} {price.currency}")
    click.echo(f"deck         {deck} v{price.deck_version}")
    click.echo(f"matched      prefix {price.prefix or '(catch-all)'} -> {price.destination or '?'}"
               + (f", origin {price.origin}" if price.origin else ""))
    click.echo(f"at           {out['at']}" + (f", band {price.band}" if price.band else ""))
    click.echo(f"usage        {usage} {unit} -> billed {price.billed_units} {unit} "
               f"(increments {price.increments[0]}/{price.increments[1]})")
    rate_txt = f"{price.rate} per {price.rate_unit} {unit}"
    if price.rate_first != price.rate:
        rate_txt = f"{price.rate_first} for the first {price.increments[0]} {unit}, then " + rate_txt
    click.echo(f"rate         {rate_txt}")
    click.echo(f"fee          connection {format_amount(price.connection_fee)}, "
               f"minimum {format_amount(price.minimum_charge)}")
    click.echo(f"exact        {price.unrounded} -> rounded once, half away from zero, to micro-units")
    if price.fx:
        fx = price.fx
        click.echo(f"fx           {fx.from_currency}->{fx.to_currency} {fx.rate}, rate of {fx.date}"
                   + (f" ([[fx]] of period {period}, {partners_file})" if period else ""))
        click.echo(f"             from {format_amount(fx.original_price)} {fx.from_currency}: "
                   "converted exactly, rounded once, half up, to micro-units")


def _converted(price: RatedPrice, currency: str, partners_file: str, *, deck: str, when: float,
               tz: str) -> tuple[RatedPrice, str]:
    """*price* in *currency* with the partners file's period rate (settlement/fx.py
    convert_price), and the period whose rate it used. Exits 2 (``file:key: reason``) for a
    bad partners file, 1 (one line) when it has no rate for the pair and period."""
    from settlement.config import SettlementConfigError, load_config
    from settlement.fx import FxError, convert_price

    try:
        cfg = load_config(partners_file)
    except SettlementConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)
    try:
        micros, conv, period = convert_price(cfg, price.price, price.currency, currency,
                                             deck=deck, start_us=int(when) * 1_000_000,
                                             default_tz=tz)
    except FxError as exc:
        click.echo(f"rate: {partners_file}: {exc}", err=True)
        sys.exit(1)
    assert conv is not None  # the currencies differ
    fx = FxApplied(price.currency, currency, conv.shown, conv.date, price.price)
    return dataclasses.replace(price, price=micros, currency=currency, fx=fx), str(period)


@rates.command("reload")
@click.option("--no-reauth", is_flag=True, help="Send no RAR to the changed decks' sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@admin_option
def reload(no_reauth: bool, as_json: bool, admin: str) -> None:
    """Make a running server use the deck versions imported since it started (`icx rates
    import` into its data dir). Calls from the next second on get them; calls in progress keep
    the tariff they started with. RAR goes to the changed decks' open sessions (RFC 4006
    §5.5) unless --no-reauth."""
    out = call(admin, "POST", "/api/rates/reload", {"reauth": not no_reauth})
    if as_json:
        click.echo(json.dumps(out))
        return
    if not out["changed"]:
        click.echo("no deck changed")
        return
    for deck, change in out["changed"].items():
        was = "new" if change["from"] is None else f"v{change['from']}"
        click.echo(f"{deck}: {was} -> v{change['to']}")
    if "reauth" in out:
        codes = list(out["reauth"].values())
        click.echo(f"RAR sent to {len(codes)} session(s): "
                   f"{sum(1 for c in codes if c == 2001)} answered 2001")


commands = [rates, rate]

