"""`icx serve [-c config/icx.toml] [--data-dir DIR]`: run the server until SIGINT/SIGTERM.

Exit codes: 0 after a clean shutdown (DPR sent to every peer), 2 for a bad config (or a bad
accounts file or rate deck it names) or an unusable transport (e.g. SCTP on a kernel without
it), 1 for a runtime failure at start (port in use, data dir not writable, the data dir
served by another `icx serve` -- ``<data-dir>/serve.lock`` names it -- or its journal held by
another writer).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click
import structlog

from charging import pidlock
from charging.accounts_file import AccountsFileError
from charging.journal.segments import JournalLocked
from charging.rating import DeckError
from diameter.transport_sctp import TransportUnavailable
from icx import huge_pages, logging_setup
from icx.config_loader import ConfigError
from icx.settings import Settings, load_settings

log = structlog.get_logger("icx.serve")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # the fast loop when installed; plain asyncio otherwise
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _serve(settings: Settings, data_dir: Path, charging: bool) -> int:
    if not charging:  # the Diameter base alone keeps nothing in the data dir
        return await _serve_locked(settings, data_dir, charging)
    # One server per data dir, locked before anything in it is read or written: a second one
    # used to import its decks into the live server's rates and open its store before the
    # journal's writer lock refused it.
    try:
        lock = pidlock.acquire(data_dir / "serve.lock")
    except pidlock.Held as exc:
        click.echo(f"icx serve: cannot start: {data_dir} is served by "
                   f"{exc.holder or 'another process'}", err=True)
        return 1
    except OSError as exc:
        click.echo(f"icx serve: cannot start: {exc}", err=True)
        return 1
    try:
        return await _serve_locked(settings, data_dir, charging)
    finally:
        pidlock.release(lock)


async def _serve_locked(settings: Settings, data_dir: Path, charging: bool) -> int:
    from icx import wiring  # imports the whole stack: keep `icx --help` fast

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        runtime = await wiring.start(settings, data_dir, charging=charging)
    except TransportUnavailable as exc:
        click.echo(f"icx serve: {exc}", err=True)
        return 2
    except DeckError as exc:  # a file the config names is bad: say where, like a bad key
        for problem in exc.problems:
            click.echo(problem, err=True)
        return 2
    except AccountsFileError as exc:
        click.echo(str(exc), err=True)
        return 2
    except ConfigError as exc:  # a setting only the running stack can check ([ro] deck)
        click.echo(str(exc), err=True)
        return 2
    except JournalLocked as exc:  # another `icx serve` (or a tool) writes this journal
        click.echo(f"icx serve: cannot start: {exc}", err=True)
        return 1
    except OSError as exc:
        click.echo(f"icx serve: cannot start: {exc}", err=True)
        return 1
    except Exception as exc:  # a broken deck, store or journal: say so once, exit 1
        log.exception("icx.start_failed")
        click.echo(f"icx serve: cannot start: {type(exc).__name__}: {exc}", err=True)
        return 1
    d = settings.diameter
    log.info(
        "icx.serving",
        origin_host=d.origin_host,
        origin_realm=d.origin_realm,
        host=d.listen_host,
        port=runtime.server.port,
        transport=d.transport,
        charging=charging,
        data_dir=str(data_dir),
    )
    # A line a supervisor (or a test) can wait for, on stdout, once we accept connections.
    click.echo(f"icx: serving Diameter on {d.listen_host}:{runtime.server.port}", err=False)
    sys.stdout.flush()
    await wiring.run_until_stopped(runtime, stop)
    return 0


@click.command("serve")
@click.option(
    "-c",
    "--config",
    "config",
    default="config/icx.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="TOML configuration file.",
)
@click.option(
    "--data-dir",
    envvar="ICX_DATA_DIR",
    default=None,
    type=click.Path(file_okay=False),
    help="Data directory (journal, snapshots); default from [server].data_dir.",
)
@click.option(
    "--charging/--no-charging",
    default=True,
    show_default=True,
    help="Serve the Ro/Rf charging agent; --no-charging serves only the Diameter base "
    "(application requests are answered 3001).",
)
def serve(config: str, data_dir: str | None, charging: bool) -> None:
    """Serve Diameter (and the charging stack) until SIGINT/SIGTERM."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(2)
    logging_setup.configure(settings.server.log_format, settings.server.log_level)
    if settings.server.huge_page_heap:
        huge_pages.install(settings.server.heap_populate_ahead_mb)
    directory = settings.data_dir(data_dir)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        code = runner.run(_serve(settings, directory, charging))
    sys.exit(code)


commands = [serve]
