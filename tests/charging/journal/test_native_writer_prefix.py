"""Review (session 4): after a failed write the native group writer must not write any later
job of the same file. The page cache (what survives kill -9) must hold a PREFIX of the groups:
a later group written after a failed one leaves a hole that recovery takes for corruption
(quarantine, the server refuses to start) and puts back records whose callers were told the
write failed. The Python writer has this property (one group at a time, nothing after a
failure); cython_ext/journal_io.pyx's docstring promises it too.

A transient write error on one fd is made with RLIMIT_FSIZE (EFBIG beyond the limit, SIGXFSZ
ignored) in a child process, so the limit never touches the test process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cython_ext

_io = cython_ext.load("journal_io")

_CHILD = textwrap.dedent(
    """
    import os, resource, select, signal, sys
    import cython_ext
    io = cython_ext.load("journal_io")
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.getrlimit(
        resource.RLIMIT_FSIZE)[1]))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    gw = io.GroupWriter(1)  # one thread: job 0 certainly ends before job 1 starts
    gw.submit(fd, b"a" * 100, 1 << 20, True)  # beyond the limit: EFBIG
    gw.submit(fd, b"b" * 100, 0, True)  # would succeed on its own
    got = []
    while len(got) < 2:
        select.select([gw.fd], [], [], 5.0)
        got += gw.reap()
    gw.close()
    os.close(fd)
    print(got[0][1], got[1][1], os.path.getsize(path))
    """
)


@pytest.mark.skipif(_io is None, reason="cython_ext.journal_io not built/enabled")
def test_no_write_after_a_failed_write_on_the_same_file(tmp_path: Path) -> None:
    target = tmp_path / "seg"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(target)], capture_output=True,
                         text=True, timeout=60, check=True)
    err0, err1, size = (int(x) for x in out.stdout.split())
    assert err0 != 0  # the first write failed (EFBIG)
    assert err1 != 0  # the later job is failed too, not written
    assert size == 0  # nothing after the hole: the file holds a prefix (here: nothing)


_CHILD_SYNC = textwrap.dedent(
    """
    import errno, os, select, sys
    import cython_ext
    io = cython_ext.load("journal_io")
    fd = os.open("/dev/null", os.O_RDWR)  # pwrite succeeds, fdatasync fails (EINVAL)
    gw = io.GroupWriter(1)  # one thread: job 0 (write + failed sync) ends before job 1
    gw.submit(fd, b"a" * 100, 0, True)
    gw.submit(fd, b"b" * 100, 100, False)
    got = []
    while len(got) < 2:
        select.select([gw.fd], [], [], 5.0)
        got += gw.reap()
    gw.close()
    os.close(fd)
    print(got[0][1], got[1][1], errno.ECANCELED)
    """
)


@pytest.mark.skipif(_io is None, reason="cython_ext.journal_io not built/enabled")
def test_no_write_after_a_failed_sync_on_the_same_file() -> None:
    """Review (session 7): a failed fdatasync stops later writes of that file as a failed
    pwrite does -- after a writeback error the kernel may have dropped the group's pages, so
    a later group written then could land on disk after a hole."""
    out = subprocess.run([sys.executable, "-c", _CHILD_SYNC], capture_output=True, text=True,
                         timeout=60, check=True)
    err0, err1, ecanceled = (int(x) for x in out.stdout.split())
    assert err0 != 0  # the sync failed
    assert err1 == ecanceled  # the later job was refused, not written (without a sync of its own)
