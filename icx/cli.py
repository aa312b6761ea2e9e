"""The `icx` command line. Verbs live in icx/commands/<area>.py, each exposing ``commands``.

Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, config, data files).
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from icx import __version__, std_streams


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="icx")
def main() -> None:
    """icx: real-time interconnect charging and settlement server."""
    std_streams.ensure_open()


def _register_commands() -> None:
    import icx.commands as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"icx.commands.{mod.name}")
        for command in getattr(module, "commands", []):
            main.add_command(command)


_register_commands()
