"""Make sure file descriptors 0-2 are open before the process opens anything else."""

from __future__ import annotations

import os


def ensure_open() -> None:
    """Open ``/dev/null`` on each of stdin/stdout/stderr (fds 0, 1, 2) that is closed. Call it
    first thing in a command. A process started with a standard stream closed (a supervisor
    or CI runner may do that) hands the free number to the next descriptor it opens: the
    event loop's epoll fd, a socket or a journal segment. libuv then aborts at shutdown
    (``uv__close: Assertion `fd > 2'``: the exit code becomes SIGABRT), and a stray write to
    stdout or stderr would land in that file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: *fd* itself or lower
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
