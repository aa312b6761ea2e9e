"""Selection point and Python side of the compiled aggregator (``cython_ext/settle_agg.pyx``).

:func:`read_journal` gives exactly the buckets :class:`~settlement.aggregate.Aggregator`
would produce for the same records (tests/settlement/test_fastagg_parity.py):

* each distinct *slot* (raw key bytes) is decoded once and keyed with
  :meth:`Aggregator.key_of`, the same function the pure path uses;
* a slot whose partner, price, currency or direction the spec would reject gets an empty
  window, so all its records take the slow path and the spec reports them;
* slow records are decoded with msgpack and given to :meth:`Aggregator.add`.

Segment handling mirrors ``charging.journal.JournalReader``: a frame that does not check in a
closed segment raises :class:`~charging.journal.JournalCorruptError`; in the open segment the
read stops quietly there (a group commit still being written).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

import cython_ext
from charging.journal import JournalCorruptError, JournalReader, Position
from charging.journal.framing import HEADER_LEN, MAX_RECORD, check_header
from charging.journal.reader import read_open_segment
from settlement.aggregate import SETTLED_TYPES, Aggregator, BucketKey, fx_key


def _module() -> Any:
    return cython_ext.load("settle_agg")


def available() -> bool:
    """True when the compiled aggregator is built and extensions are enabled."""
    return _module() is not None


class _Slots:
    """The ``new_slot`` callback: decodes a slot key once and remembers its bucket (or, for a
    movement slot, its prepaid movement key)."""

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.meta: dict[bytes, BucketKey] = {}
        self.moves: dict[bytes, tuple[str, str, str]] = {}

    def __call__(self, raw: bytes) -> tuple[int, int]:
        unpacker = msgpack.Unpacker(raw=False)
        agg = self.agg
        if raw[0] == 0xC1:  # a balance effect on a prepaid partner account
            unpacker.feed(raw[1:])
            account, currency = list(unpacker)
            partner = agg.prepaid.get(account)
            window = agg._windows.get(partner) if partner is not None else None
            if window is None or currency is None:
                return (0, 0)
            self.moves[raw] = (account, currency, window[2])
            return (window[0], window[1])
        unpacker.feed(raw)
        # the slot key has no price: C parses and sums it (a plain decimal, else slow path)
        (partner, direction, service, destination, deck, deck_version, currency, fx,
         typ) = list(unpacker)
        kind = SETTLED_TYPES.get(typ) if isinstance(typ, str) else None
        if kind is None or not isinstance(partner, str) or partner not in agg.timezones:
            return (0, 0)
        window = agg._windows.get(partner)
        if window is None:
            return (0, 0)
        src = {"partner": partner, "direction": direction, "deck": deck,
               "deck_version": deck_version, "currency": currency, "price": "0"}
        got = agg.key_of(src, window[2], kind, service or "", destination or "", fx_key(fx))
        if isinstance(got, str):
            return (0, 0)
        self.meta[raw] = got[0]
        return (window[0], window[1])


def default_workers() -> int:
    """Worker processes for big reads: $ICX_SETTLE_WORKERS, else min(cpu count, 4)."""
    env = os.environ.get("ICX_SETTLE_WORKERS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 4))


PARALLEL_MIN_BYTES = 256 << 20  # below this, one process (worker start-up costs ~0.3 s)


def read_journal(directory: Path, cp: Position | None, agg: Aggregator,
                 progress: Callable[[int], None] | None, *, workers: int | None = None,
                 parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> Position | None:
    """Aggregate every record after *cp* into *agg*; return the new checkpoint.

    Segments are independent, so a big read is split into *workers* contiguous groups of
    segments, each aggregated in its own process (spawned: safe with threads in the parent);
    the partial results are merged exactly (integer sums), in segment order.
    """
    if _module() is None:
        raise RuntimeError("cython_ext.settle_agg is not built (or ICX_NO_EXTENSIONS=1)")
    segs = [s for s in JournalReader(directory).segments()
            if cp is None or s.number >= cp.segment]
    workers = default_workers() if workers is None else workers
    size = sum(s.path.stat().st_size for s in segs if s.path.exists())
    if workers <= 1 or len(segs) < 2 or size < parallel_min_bytes:
        return _read_segments(segs, cp, agg, progress)
    import concurrent.futures as cf
    import multiprocessing

    k = min(workers, len(segs))
    agg.result.workers = k
    groups = [segs[i * len(segs) // k:(i + 1) * len(segs) // k] for i in range(k)]
    params = (agg.timezones, agg.prepaid, agg.target, agg.deck_partners, agg.shared_decks)
    new = cp
    with cf.ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_group_worker, str(directory), [s.number for s in g], cp, params)
                   for g in groups]
        for g, fut in zip(groups, futures, strict=True):
            out = fut.result()
            if out[0] == "corrupt":
                raise JournalCorruptError(out[1], out[2], out[3])
            _, result, end, nbytes = out
            agg.result.merge(result)
            if end is not None:
                new = end
            if progress:
                progress(nbytes)
            del g
    return new


def _group_worker(directory: str, numbers: list[int], cp: Position | None,
                  params: tuple[Any, ...]) -> tuple[Any, ...]:
    """Run in a worker process: aggregate the segments *numbers*; errors come back as data."""
    timezones, prepaid, target, deck_partners, shared_decks = params
    agg = Aggregator(timezones, prepaid, target, deck_partners, shared_decks)
    wanted = set(numbers)
    segs = [s for s in JournalReader(directory).segments() if s.number in wanted]
    nbytes = [0]
    try:
        end = _read_segments(segs, cp, agg, lambda n: nbytes.__setitem__(0, nbytes[0] + n))
    except JournalCorruptError as exc:
        return ("corrupt", exc.path, exc.offset, exc.problem)
    return ("ok", agg.result, end if end != cp else None, nbytes[0])


def _map(path: Path) -> Any:
    """A closed (immutable) segment's bytes: a read-only mmap (no copy; the page cache is read
    in place), or plain bytes for an empty file (mmap cannot map zero bytes). The open segment
    is read with read_bytes instead: a recovery truncating it under a mapping would SIGBUS."""
    import mmap

    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b""
        m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(m, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        m.madvise(mmap.MADV_SEQUENTIAL)
    return m


def _read_open_durably(path: Path) -> bytes:
    """The open segment's bytes up to the end of its records, ``fdatasync``'ed after the read:
    the checkpoint settlement takes in it covers only records on disk (the writer may not have
    synced its last group yet; see charging/journal/reader.py, Durability). A preallocated
    segment's zero tail (up to 64 MiB) is not read: :func:`read_open_segment` stops in 1 MiB
    steps once the frames have provably ended, where ``feed`` would stop anyway."""
    return read_open_segment(path, sync=True)


def _read_segments(segs: list[Any], cp: Position | None, agg: Aggregator,
                   progress: Callable[[int], None] | None) -> Position | None:
    mod = _module()
    slots = _Slots(agg)
    prepaid = [acct.encode() for acct in agg.prepaid if isinstance(acct, str)]
    fa = mod.SegmentAggregator(slots, prepaid, bool(agg.deck_partners or agg.shared_decks))
    slow_total = 0
    new = cp
    unpackb = msgpack.unpackb
    for seg in segs:
        if cp is not None and seg.number < cp.segment:
            continue
        start = max(cp.offset if cp is not None and seg.number == cp.segment else 0, HEADER_LEN)
        path, closed = seg.path, seg.closed
        try:
            data = _map(path) if closed else _read_open_durably(path)
        except FileNotFoundError:
            if closed:
                raise
            path, closed = path.with_suffix(".seg"), True  # sealed while we listed
            data = _map(path)
        problem = check_header(data)
        if problem is not None:
            if not closed and len(data) < HEADER_LEN:
                continue
            raise JournalCorruptError(str(path), 0, problem)
        if start > len(data):
            raise ValueError(f"checkpoint {seg.number}:{start} is past the end of {path}")
        end = fa.feed(data, start, MAX_RECORD)
        if fa.problem is not None and closed:
            raise JournalCorruptError(str(path), end, fa.problem)
        if fa.slow:
            mv = memoryview(data)
            add = agg.add
            for p, e in fa.slow:
                add(unpackb(mv[p:e], raw=False))
            mv.release()
            slow_total += len(fa.slow)
            fa.slow = []
        if hasattr(data, "close"):
            data.close()
        if end > start:
            new = Position(seg.number, end)
        if progress:
            progress(end - start)
    res = agg.result
    buckets = res.buckets
    movements = res.movements
    for raw, count, usage, micros in fa.slots():
        if raw in slots.moves:
            mk = slots.moves[raw]
            movements[mk] = movements.get(mk, 0) + micros
            continue
        key = slots.meta[raw]
        b = buckets.get(key)
        if b is None:
            buckets[key] = [count, usage, micros]
        else:
            b[0] += count
            b[1] += usage
            b[2] += micros
    res.records += fa.records - slow_total
    res.settled += fa.settled
    return new
