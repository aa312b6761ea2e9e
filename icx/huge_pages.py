"""Python's object heap on huge pages (`[server] huge_page_heap`, cython_ext/arena.pyx).

A snapshot's fork copies the parent's page tables, ~20 ms per GB of RSS on 4 KiB pages
(docs/balances-and-journal.md). :func:`install` serves obmalloc's arenas from one region
advised for 2 MiB pages; call it before the stack is imported and built, so most of the heap
lands there. charging_app then rebuilds the pages each fork's copy-on-write split.
"""

from __future__ import annotations

from pathlib import Path

import structlog

import cython_ext

log = structlog.get_logger("icx.serve")

THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def install(populate_ahead_mb: int = 0) -> bool:
    """Install the huge-page arena allocator; False when it is not built or the region cannot
    be mapped (the default allocator stays). With *populate_ahead_mb*, also start the native
    thread that keeps that much of the region past the arenas in use populated, so the event
    loop does not pay the first touch of fresh memory (``[server] heap_populate_ahead_mb``).
    Logs the outcome and the kernel's THP mode."""
    arena = cython_ext.load("arena")
    if arena is None:
        log.info("icx.huge_page_heap", installed=False, reason="cython_ext.arena not built")
        return False
    installed = bool(arena.install())
    populating = installed and populate_ahead_mb > 0 and bool(
        arena.populate_ahead(populate_ahead_mb << 20))
    log.info("icx.huge_page_heap", installed=installed, thp=thp_mode(),
             populate_ahead_mb=populate_ahead_mb if populating else 0)
    return installed


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode ("always", "madvise", "never"; "" unknown)."""
    try:
        text = THP_ENABLED.read_text()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else ""
