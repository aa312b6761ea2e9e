"""`icx check-config FILE`: validate a config without starting anything."""

from __future__ import annotations

import sys

import click

from icx.config_loader import ConfigError
from icx.settings import load_settings


@click.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
def check_config(file: str) -> None:
    """Print `file:key: message` for each problem in FILE; exit 2 if there is any."""
    try:
        load_settings(file)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=False)
        sys.exit(2)
    click.echo(f"{file}: ok")


commands = [check_config]
