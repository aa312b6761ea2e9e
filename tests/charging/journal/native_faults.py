"""Fault injection for the native journal writer (cython_ext/journal_io.pyx), shared by the
tests of what a failed group write must do."""

from __future__ import annotations

from typing import Any

import cython_ext


def fail_second_native_write(monkeypatch: Any) -> Any:
    """Replace ``cython_ext.journal_io.GroupWriter`` (through *monkeypatch*, undone at the end
    of the test) by a subclass whose 2nd ``submit`` after its ``n`` is reset to 0 writes to
    fd -1, so that group fails with EBADF while the others reach the real segment. Returns the
    subclass: set ``.n = 0`` right before the appends under test. Needs the extension built."""
    io = cython_ext.load("journal_io")
    assert io is not None

    class Failing(io.GroupWriter):  # type: ignore[misc, name-defined]
        n = 0

        def submit(self, fd: int, data: Any, offset: int, sync: bool) -> int:
            Failing.n += 1
            return super().submit(-1 if Failing.n == 2 else fd, data,  # type: ignore[no-any-return]
                                  offset, sync)

    monkeypatch.setattr(io, "GroupWriter", Failing)
    return Failing
