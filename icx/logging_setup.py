"""structlog configuration: JSON lines in production, console renderer on a TTY.

Call :func:`configure` once at process start. Request handlers bind context with
``structlog.contextvars.bind_contextvars`` and emit one canonical line per request.

Production settings follow structlog's performance guide: a filtering bound logger (a call
below the level is a no-op method: nothing is formatted), the logger cached on first use, and
a plain write logger. Records from the standard library (asyncio's "Exception in callback",
aiohttp access logs) go through the same renderer, so stderr carries one format only.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info") -> None:
    """Configure structlog (and stdlib logging) for the process."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    lvl = _LEVELS.get(level, logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    processors: list[structlog.typing.Processor]
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
        processors = [*shared, renderer]
        factory: structlog.typing.WrappedLogger = structlog.PrintLoggerFactory(sys.stderr)
    else:
        renderer = structlog.processors.JSONRenderer()
        processors = [*shared, structlog.processors.format_exc_info, renderer]
        factory = structlog.WriteLoggerFactory(sys.stderr)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=factory,  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # The standard library's records, rendered the same way.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if use_console else [structlog.processors.format_exc_info]),
                renderer,
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
