"""`icx check-config FILE`: validate a config without starting anything."""

from __future__ import annotations

import sys

import click

from charging.accounts_file import AccountsFileError, load_accounts_files
from charging.rating import DeckError, Service
from charging.rating.csvdeck import ImportOptions, read_deck
from charging.rating.store import DeckStore
from icx.config_loader import ConfigError
from icx.settings import Settings, load_settings


def file_problems(settings: Settings) -> list[str]:
    """What `icx serve` would refuse in the files *settings* names (accounts files, rate
    decks), an [ro]/[rf] deck it would not have and a [rating] band no deck prices, as ``file:key|line: message`` lines;
    nothing is imported or written."""
    problems: list[str] = []
    try:
        load_accounts_files(settings.account_files())
    except AccountsFileError as exc:
        problems.append(str(exc))
    bands: dict[str, list[str]] = {}  # deck -> its bands, as the server would have them
    decks_ok = True
    for entry in settings.rating.decks:
        opts = ImportOptions(service=Service.parse(entry.service),
                             timezone=settings.rating.timezone, effective=entry.effective)
        try:
            bands[entry.deck] = read_deck(str(settings.resolve(entry.file)), opts).data.bands
        except DeckError as exc:
            problems.extend(exc.problems)
            decks_ok = False
    store = DeckStore(settings.data_dir())
    have = {d.deck for d in settings.rating.decks} | set(store.decks())
    problems.extend(str(p) for p in settings.missing_decks(sorted(have)))
    if decks_ok:  # a deck that did not read has no bands to check against
        for name in sorted(set(store.decks()) - set(bands)):
            try:
                bands[name] = store.load(name).data.bands
            except (OSError, ValueError):  # unreadable: serve says so when it loads it
                continue
        problems.extend(str(p) for p in settings.unknown_bands(bands))
    return problems


@click.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
def check_config(file: str) -> None:
    """Print `file:key: message` for each problem in FILE and in the accounts files and rate
    decks it names; exit 2 if there is any."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=False)
        sys.exit(2)
    bad_files = file_problems(settings)
    for line in bad_files:
        click.echo(line, err=False)
    if bad_files:
        sys.exit(2)
    click.echo(f"{file}: ok")


commands = [check_config]
