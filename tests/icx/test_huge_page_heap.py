"""cython_ext/arena.pyx: Python's arenas from one huge-page region (`[server] huge_page_heap`).

Each check runs in a fresh interpreter: the allocator, once installed, serves the whole
process."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

import cython_ext
from icx.huge_pages import thp_mode

ROOT = Path(__file__).resolve().parents[2]
arena = cython_ext.load("arena")
pytestmark = pytest.mark.skipif(arena is None, reason="cython_ext.arena not built or "
                                "ICX_NO_EXTENSIONS=1")

CHILD = r"""
import gc, os, sys
from cython_ext import arena
assert arena.install() is True and arena.install() is True   # twice is harmless
base, size = arena.region()
assert base and size
def made_here(n):
    objs = [("k" * 30 + str(i), i, float(i)) for i in range(n)]
    inside = sum(base <= id(o) < base + size for o in objs)
    return objs, inside
objs, inside = made_here(500_000)
assert inside > 0.9 * len(objs), (inside, len(objs))   # new objects live in the region
used, served, arena_size = arena.stats()
assert served > 0 and arena_size > 0 and used >= served * arena_size
del objs
gc.collect()
_, served_after, _ = arena.stats()
assert served_after < served                            # emptied arenas come back...
objs, inside = made_here(500_000)
assert arena.stats()[0] == used                         # ...and are used again
pid = os.fork()                                         # a forked child runs on it
if pid == 0:
    more = [str(i) for i in range(100_000)]
    os._exit(0 if len(more) == 100_000 else 1)
assert os.waitpid(pid, 0)[1] == 0
# the parent's writes while a child lived split huge pages; collapse() rebuilds them
for i in range(0, len(objs), 7):
    objs[i] = (objs[i][0], -i, 0.5)
rc = arena.collapse()
assert isinstance(rc, int)
huge = int(open("/proc/self/smaps_rollup").read().split("AnonHugePages:")[1].split()[0])
print(rc, huge)
"""


def test_arenas_come_from_the_region_are_reused_and_survive_fork() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rc, huge_kb = (int(x) for x in out.stdout.split()[-2:])
    if thp_mode() in ("always", "madvise"):
        if huge_kb == 0 and rc == 11:  # EAGAIN: the kernel had no free 2 MiB page
            pytest.skip("no free huge page on this machine right now (MADV_COLLAPSE: EAGAIN)")
        # the kernel backs the advised region with 2 MiB pages
        assert huge_kb > 0, f"collapse() = {rc}"
    else:
        pytest.skip(f"transparent huge pages are {thp_mode() or 'unknown'} here: the region "
                    "works, on 4 KiB pages")


POPULATE_CHILD = r"""
import os, sys, threading, time
from cython_ext import arena
ahead_mb = int(sys.argv[1])
assert arena.install() is True
if ahead_mb:
    assert arena.populate_ahead(ahead_mb << 20) is True
    time.sleep(0.1)
tid = threading.get_native_id()
def minflt():
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])
head = None
start = arena.stats()[0]
before = minflt()
for step in range(48):  # ~1 MiB of small objects per 20 ms: a growing heap, all arena memory
    for i in range(12_000):  # (a chain of small tuples: no container big enough for malloc)
        head = (head, i)
    time.sleep(0.02)
faults = minflt() - before
used, _, _ = arena.stats()
top, err, running = arena.populated()
print(faults, used - start, used, top, err, int(running))
"""


def _grow(ahead_mb: int) -> tuple[int, int, int, int, int, int]:
    out = subprocess.run([sys.executable, "-c", POPULATE_CHILD, str(ahead_mb)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    faults, grown, used, top, err, running = (int(x) for x in out.stdout.split())
    return faults, grown, used, top, err, running


def test_the_populator_takes_the_first_touch_of_a_growing_heap_off_the_main_thread() -> None:
    faults, grown, used, top, err, running = _grow(8)
    if err == errno.EINVAL:
        pytest.skip("MADV_POPULATE_WRITE needs Linux 5.14+: the heap is touched on first use")
    assert err == 0 and running == 1
    # it keeps 8 MiB past the arenas in use populated...
    assert top >= used + (8 << 20) - (2 << 20), (top, used)
    # ...so the main thread, filling ~50 MiB of fresh arenas, faults few of them in. Its other
    # page faults (its stack, malloc's heap) are the same either way; count the difference.
    plain_faults, plain_grown, _, plain_top, _, plain_running = _grow(0)
    assert plain_running == 0 and plain_top == 0
    assert grown >= 32 << 20 and plain_grown >= 32 << 20, (grown, plain_grown)
    huge_pages = plain_grown >> 21  # the fewest first touches growing the heap takes
    assert plain_faults - faults >= huge_pages // 2, (faults, plain_faults, huge_pages)


def test_populate_ahead_needs_the_region() -> None:
    out = subprocess.run([sys.executable, "-c",
                          "from cython_ext import arena; print(arena.populate_ahead(1 << 20), "
                          "arena.populated())"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False"
