"""Exclusive, non-waiting process locks on a file: ``flock`` plus the holder's pid inside.

Used where exactly one process may write: the journal (``<journal>/writer.lock``,
charging/journal/segments.py) and a settlement run's state (``<data-dir>/settlement/run.lock``).
:func:`acquire` returns the descriptor or raises :class:`Held` carrying the holder's
``pid: command line`` (for the one-line refusal the caller prints); :func:`release` gives it
back, and the kernel does when the process dies (``kill -9`` included). Lock files are never
removed: unlinking a flock'ed file lets two processes lock two different files.

A ``flock`` belongs to the open file, so a second acquire in the same process is refused too;
a forked child closes its copies at once (``os.register_at_fork``), so a child that outlives
its parent (a snapshot dump at SCHED_IDLE) never holds the lock after the parent died.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

_HELD: set[int] = set()  # this process's lock descriptors


class Held(Exception):
    """The lock file is locked by another process (or another open in this one)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder  # "pid: command line" as the holder wrote it ("" if unknown)
        super().__init__(f"{path}: locked by {holder or 'another process'}")


def _drop_in_child() -> None:
    # Right after a fork, in the child: closing its copy leaves the parent's lock alone.
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


def acquire(path: Path) -> int:
    """Lock *path* (created if need be, its directory too) or raise :class:`Held` at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode(errors="replace")
        os.close(fd)
        raise Held(path, " ".join(holder.split())) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        me = f"{os.getpid()}: {' '.join(sys.argv)}"[:400] + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(errors="replace"), 0)
    except OSError:
        pass  # the pid is only for the message of a refused process
    _HELD.add(fd)
    return fd


def release(fd: int) -> None:
    """Give back a lock from :func:`acquire` (a no-op in a forked child, which closed its copy
    at the fork: the number may name another file there by now)."""
    if fd in _HELD:
        _HELD.discard(fd)
        os.close(fd)
