"""The journal writers: :class:`Journal` (asyncio, group commit) and :class:`SyncJournal`.

Group commit (invariant 3, journal before answer): ``journal.append_nowait(rec)`` (or
``append_many_nowait``) packs and frames the record on the event loop into the group's one
contiguous buffer (``framing.pack_frames``, compiled twin ``cython_ext/journal_frame.pyx``),
assigns its :class:`Position`, and joins the current *group*. When the writer thread is idle
the group is handed over in one hop (one queue put per group, never per record) at the end of
the loop turn, or at once when it reaches ``eager_bytes`` (so the disk works while the loop
packs the rest); it is written with one ``write`` per segment and made durable (the file is
opened ``O_DSYNC``, so that one ``write`` returns only once the data is on disk: one syscall
and one GIL round-trip per group, see below); only then are the group's waiters released, via
one ``call_soon_threadsafe``: ``call_when_durable`` callbacks in order, then the group's shared
future. Records arriving meanwhile form the next group, so batch size adapts to load and the
loop keeps serving while the disk syncs.

The native writer (``cython_ext/journal_io.pyx``, ``writer_threads`` > 0, the default when
built): a group whose bytes lie in the open segment goes to GIL-free POSIX threads instead --
``pwrite`` + ``fdatasync``, completion read by the loop from an eventfd (``loop.add_reader``),
two groups in flight, pwrites in submission order, releases strictly in order, a failure fails
every later group (see :meth:`Journal._dispatch`, :meth:`Journal._reap`,
:meth:`Journal._complete`). Rotation and the prealloc bookkeeping stay on the Python writer
thread below, which runs only while no native write is in flight. What follows is about that
thread (and the whole path when extensions are off).

Why a bare thread and O_DSYNC rather than an executor and write+fdatasync: every time the
writer thread needs the GIL back while the loop is busy it waits up to the interpreter's
switch interval (5 ms by default) -- to start a group (waking from the queue) and to report
it done. Fewer GIL re-acquisitions per group means lower p99 latency, and :meth:`Journal.open`
lowers the switch interval to ``SWITCH_INTERVAL`` (0.5 ms; never raises it; pass
``switch_interval=None`` to leave it alone): the loop then yields the GIL to the writer within
0.5 ms. A lower interval costs nothing while no other thread wants the GIL.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cython_ext
from charging.journal.framing import HEADER_LEN, buffer_reserve, frame_packer, record_packers
from charging.journal.segments import JournalError, Position, Recovered, SegmentWriter
from charging.journal.sync_stats import SyncStats

DurableCallback = Callable[[BaseException | None], None]

_new_position = tuple.__new__
EAGER_BYTES = 32 << 10
SWITCH_INTERVAL = 0.0005
WRITER_THREADS = 2  # native writer threads = group commits in flight (cython_ext/journal_io)
_clock = time.perf_counter


class _GroupFuture(asyncio.Future[None]):
    """The future every waiter of one group commit awaits.

    Shared by many tasks, so a cancelled waiter must not cancel it for the others: ``cancel``
    refuses (the waiting task still gets CancelledError once the group completes, the usual
    outcome for a task cancelled while awaiting an uncancellable future). Cheaper than an
    ``asyncio.shield`` per append.
    """

    def cancel(self, msg: Any = None) -> bool:
        return False


class _Allocator:
    """Assigns positions and segment rotation; collects the framed bytes of the next group.

    The bytes of the current segment accumulate in one contiguous ``bytearray`` (packed and
    framed in one call per batch by :func:`~charging.journal.framing.pack_frames`, compiled
    when built); :meth:`take` hands the group to the writer as ``[(segment, bytes), ...]``.
    """

    def __init__(self, segment: int, offset: int, segment_bytes: int, rotate_seconds: float):
        self.segment = segment
        self.offset = max(offset, HEADER_LEN)
        self.segment_bytes = segment_bytes
        self.rotate_seconds = rotate_seconds
        self.started = time.monotonic()
        self.parts: list[tuple[int, bytearray]] = []  # earlier segments of this group
        self.buf = bytearray()  # this segment's framed bytes not yet taken
        self.last = Position(segment, self.offset)
        self._pack, self._fallback = record_packers()
        self._frames = frame_packer()
        self._reserve = buffer_reserve()
        self._room = 0  # bytes the next group's buffer is given room for (see renew)

    def _due(self) -> bool:
        # Time-based rotation is checked once per call (not per record): a group spans
        # milliseconds, rotate_seconds is minutes.
        return (self.offset > HEADER_LEN and self.rotate_seconds > 0
                and time.monotonic() - self.started >= self.rotate_seconds)

    def _frame(self, records: list[Any], start: int, ends: list[Any] | None) -> int:
        """Frame ``records[start:]`` into this segment's buffer; return the index reached.
        Each framed record's Position is appended to ``ends`` (unless None). All or nothing:
        if packing a record raises, this call's bytes (and positions) are dropped again, so
        buffer and offset never disagree (the error propagates)."""
        buf = self.buf
        before = len(buf)
        had = len(ends) if ends is not None else 0
        frames = self._frames  # (a plain load: see add)
        try:
            i, self.offset = frames(self._pack, records, start, buf, self.offset,
                                    self.segment_bytes, ends, self._fallback, Position,
                                    self.segment, True)
        except BaseException:
            del buf[before:]
            if ends is not None:
                del ends[had:]
            raise
        return i  # type: ignore[no-any-return]

    def add(self, record: Mapping[str, Any] | bytes) -> Position:
        """Frame one record; return its position (nothing is enqueued if it raises)."""
        if self.rotate_seconds and self._due():
            self.rotate()
        # _frame inlined: this is the ledger's per-op path. (``frames`` is read as an
        # attribute first: CPython 3.11 does not specialise a method-call load of a callable
        # kept in an instance attribute, it does specialise the plain load.)
        buf = self.buf
        before = len(buf)
        frames = self._frames
        try:
            i, self.offset = frames(self._pack, [record], 0, buf, self.offset,
                                    self.segment_bytes, None, self._fallback, None, 0, True)
        except BaseException:
            del buf[before:]
            raise
        if not i:
            self.rotate()
            self._frame([record], 0, None)
        pos = self.last = _new_position(Position, (self.segment, self.offset))
        return pos

    def add_many(self, records: list[Any], positions: bool = True) -> list[Position]:
        """Frame ``records`` in order; return their positions (``[]`` unless ``positions``).
        If a record cannot be packed the error propagates; the records of the same segment
        in this call are dropped (earlier segments' stay enqueued)."""
        if self.rotate_seconds and self._due():
            self.rotate()
        # Positions are built by the framer itself (no per-record Python step), straight
        # into ``out``; positions=False builds none.
        out: list[Position] = []
        ends = out if positions else None
        n = len(records)
        i = 0
        try:
            while True:
                i = self._frame(records, i, ends)
                if i >= n:
                    break
                self.rotate()
        finally:
            if n:
                self.last = _new_position(Position, (self.segment, self.offset))
        return out

    def renew(self) -> bytearray:
        """Start a new buffer for the next group's bytes; return the old one. The new one has
        room for the largest recent group (a maximum that decays by 1/64 per group: group
        sizes swing between an eager 32 KiB and hundreds of KiB; compiled framer only): no
        reallocation while the next group collects, where growing by doubling copied the
        group's bytes about once more. Untouched room costs address space, not memory."""
        old = self.buf
        self.buf = bytearray()
        room = max(len(old), self._room - (self._room >> 6))
        self._room = room
        if room >= 4096:  # + 1/4: the same group size again must not need a growth
            self._reserve(self.buf, min(room + (room >> 2), 16 << 20))
        return old

    def rotate(self) -> None:
        """Start a new segment for the next record (the writer seals the current one)."""
        if self.buf:
            self.parts.append((self.segment, self.renew()))
        self.segment += 1
        self.offset = HEADER_LEN
        self.started = time.monotonic()
        self.parts.append((self.segment, bytearray()))

    def take(self) -> list[tuple[int, bytearray]]:
        """The group's parts, in order (a rotation with no record is a part with no bytes)."""
        parts, self.parts = self.parts, []
        if self.buf:
            parts.append((self.segment, self.renew()))
        return parts


def new_allocator(segment: int, offset: int, segment_bytes: int,
                  rotate_seconds: float) -> _Allocator:
    """An :class:`_Allocator`, or its compiled twin (cython_ext/journal_alloc.pyx) when built
    and enabled: the same attributes and methods, without four interpreter frames per
    charged request."""
    mod = cython_ext.load("journal_alloc")
    if mod is None:
        return _Allocator(segment, offset, segment_bytes, rotate_seconds)
    pack, fallback = record_packers()
    return mod.Allocator(  # type: ignore[no-any-return]
        segment, offset, segment_bytes, rotate_seconds, header_len=HEADER_LEN,
        position=Position, pack=pack, fallback=fallback, frames=frame_packer(),
        reserve=buffer_reserve())


class SyncJournal:
    """Blocking journal for the CLI, tools and tests: every call is durable on return."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = 64 << 20,
                 rotate_seconds: float = 0.0, fsync: bool = True,
                 allow_quarantined: bool = False) -> None:
        self._writer = SegmentWriter(directory, fsync=fsync)
        self.recovered: Recovered = self._writer.open(allow_quarantined=allow_quarantined)
        self._alloc = new_allocator(self._writer.segment, self._writer.offset,
                                    segment_bytes, rotate_seconds)

    @property
    def position(self) -> Position:
        """Position after the last record written."""
        return self._alloc.last

    def append(self, record: Mapping[str, Any] | bytes) -> Position:
        return self.append_many([record])[0]

    def append_many(self, records: Iterable[Mapping[str, Any] | bytes]) -> list[Position]:
        positions = self._alloc.add_many(list(records))
        self._writer.write_and_sync(self._alloc.take())
        return positions

    def rotate(self) -> None:
        """Seal the open segment now (if it holds any record)."""
        if self._alloc.offset > HEADER_LEN:
            self._alloc.rotate()
            self._writer.write_and_sync(self._alloc.take())

    def close(self, *, seal: bool = False) -> None:
        self._writer.close(seal=seal)


class _JournalHot:
    """:class:`Journal`'s per-request methods (append_nowait, append_many_nowait,
    call_when_durable) and the state they touch: the spec of the compiled base
    ``cython_ext/journal_hot.pyx`` (JournalHot), which Journal derives from when it is built
    and enabled -- two interpreter frames less per charged request. Journal provides
    ``_schedule``, ``_dispatch``, ``_new_group``, ``_refusal`` and ``_failure`` (the stubs
    below); the attributes are set by its constructor."""

    _alloc: Any
    _group: _GroupFuture | None
    _loop: asyncio.AbstractEventLoop
    _failed: BaseException | None
    _closed: bool
    _busy: bool
    _scheduled: bool
    _eager: int
    _durable: Position
    _callbacks: deque[tuple[Position, DurableCallback]]
    records: int

    def append_nowait(self, record: Mapping[str, Any] | bytes) -> tuple[Position, asyncio.Future[None]]:
        """Enqueue ``record`` and return its position and the future of its group commit.

        For callers that must enqueue synchronously (keeping journal order = call order, e.g.
        the ledger) and await durability later. The future is shared by the whole group;
        it ignores cancel(), so awaiting it directly is safe.
        """
        if self._failed is not None or self._closed:
            raise self._refusal() from self._failed
        alloc = self._alloc
        pos = alloc.add(record)
        self.records += 1
        group = self._group
        if group is None:
            group = self._group = self._new_group()
            if not self._busy and not self._scheduled:
                self._schedule()
        if len(alloc.buf) >= self._eager and not self._busy:
            self._dispatch()
        return pos, group

    def append_many_nowait(
        self, records: Iterable[Mapping[str, Any] | bytes], *, positions: bool = True,
    ) -> tuple[list[Position], asyncio.Future[None] | None]:
        """Enqueue ``records`` in order; return their positions and the group future (None
        when ``records`` is empty). With ``positions=False`` no Position is built per record
        (cheaper): use :attr:`position` after the call for the last one."""
        if self._failed is not None or self._closed:
            raise self._refusal() from self._failed
        recs = records if isinstance(records, list) else list(records)
        if not recs:
            return [], None
        alloc = self._alloc
        group = self._group
        if group is None:  # first: should add_many raise midway, what it enqueued gets written
            group = self._group = self._new_group()
            if not self._busy and not self._scheduled:
                self._schedule()
        out = alloc.add_many(recs, positions)
        self.records += len(recs)
        if len(alloc.buf) >= self._eager and not self._busy:
            self._dispatch()
        return out, group

    def call_when_durable(self, pos: Position, callback: DurableCallback) -> None:
        """Call ``callback(None)`` on the event loop once everything up to ``pos`` is durable,
        or ``callback(exc)`` (a :class:`JournalError`) if the group commit failed.

        The cheap alternative to awaiting a future per request (invariant 3, journal before
        answer: write the answer from the callback). Call it from the loop's thread. Callbacks
        run in registration order; register positions in non-decreasing order (the natural
        order: positions are handed out in append order) and they also run in position order.
        When ``pos`` is already durable the callback is scheduled with ``loop.call_soon`` (never
        called re-entrantly). A callback that raises is reported to the loop's exception
        handler; the others still run. ``pos`` beyond the last appended record is treated as
        the last appended record.
        """
        if pos <= self._durable and not self._callbacks:
            self._loop.call_soon(callback, None)
            return
        if self._failed is not None:
            self._loop.call_soon(callback, self._failure())
            return
        last = self._alloc.last
        if pos > last:
            pos = last
        self._callbacks.append((pos, callback))
        # pos <= durable here means it queues behind a pending callback and is released with
        # it (order kept); pos > durable means a group holding it is pending or in flight.

    def _schedule(self) -> None:  # (Journal's)
        raise NotImplementedError

    def _dispatch(self) -> None:  # (Journal's)
        raise NotImplementedError

    def _new_group(self) -> _GroupFuture:  # (Journal's)
        raise NotImplementedError

    def _refusal(self) -> JournalError:  # (Journal's)
        raise NotImplementedError

    def _failure(self) -> JournalError:  # (Journal's)
        raise NotImplementedError


def _hot_base() -> type:
    """The compiled JournalHot when built and enabled, else its spec :class:`_JournalHot`."""
    mod = cython_ext.load("journal_hot")
    return mod.JournalHot if mod is not None else _JournalHot  # type: ignore[no-any-return]


if TYPE_CHECKING:
    _HotBase = _JournalHot
else:
    _HotBase = _hot_base()


class Journal(_HotBase):
    """The asyncio journal. Create with ``journal = await Journal.open(dir, ...)``.

    ``segment_bytes``: rotate before a segment would pass this size. ``rotate_seconds``: also
    rotate a segment older than this (0 = never; an idle timer seals it too, so settlement
    sees closed segments even without traffic). ``fsync``: False only for tests/benchmarks.
    ``group_window``: seconds to wait before dispatching a group when the writer is idle
    (0 = dispatch on the next loop iteration: lowest latency; groups still form under load).
    """

    def __init__(self, writer: SegmentWriter, alloc: _Allocator, *, group_window: float,
                 recovered: Recovered, eager_bytes: int = EAGER_BYTES,
                 switch_interval: float | None = SWITCH_INTERVAL,
                 writer_threads: int = 0) -> None:
        self._writer = writer
        self._alloc = alloc
        self._window = group_window
        # 0 disables eager dispatch (then a group always waits for the end of the loop turn)
        self._eager = eager_bytes if eager_bytes > 0 else 1 << 62
        if switch_interval is not None and sys.getswitchinterval() > switch_interval:
            sys.setswitchinterval(switch_interval)
        self.recovered = recovered
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._writer_main, name="icx-journal",
                                        daemon=True)
        self._thread.start()
        self._group: _GroupFuture | None = None  # waiters of the records not yet sent
        self._busy = False  # a group is being written/synced by the writer thread
        self._scheduled = False
        self._failed: BaseException | None = None
        self._closed = False
        self._durable = alloc.last
        self._durable_waiters: list[tuple[Position, asyncio.Future[None]]] = []
        # The native writer (cython_ext/journal_io.pyx): groups whose bytes lie in the open
        # segment go to its GIL-free threads, up to ``writer_threads`` in flight, completions
        # read from its eventfd by the loop itself; anything else (rotation, prealloc work)
        # goes to the Python writer thread once nothing is in flight.
        self._io: Any = None
        self._sync = writer.fsync and not writer.dsync  # O_DSYNC: the pwrite is the sync
        writer_threads = min(writer_threads, 4)  # GroupWriter runs at most 4
        self._max_inflight = max(1, writer_threads)
        # (group, position after it, dispatch time, its offset in the segment)
        self._inflight: deque[tuple[_GroupFuture, Position, float, int]] = deque()
        if writer_threads > 0:
            mod = cython_ext.load("journal_io")
            if mod is not None:
                self._io = mod.GroupWriter(writer_threads)
                self._loop.add_reader(self._io.fd, self._reap)
        # call_when_durable: (pos, callback) in registration order, released from the left
        self._callbacks: deque[tuple[Position, DurableCallback]] = deque()
        self._idle_timer: asyncio.TimerHandle | None = None
        self.groups = 0  # group commits done (metrics)
        # set to [] to collect per-group timings (perf_counter seconds): see _done
        self.trace: list[tuple[float, float, float, float]] | None = None
        # write+sync time of every group commit, for /metrics (sync_stats.py)
        self.sync_stats = SyncStats()
        self.records = 0
        if alloc.rotate_seconds:
            self._arm_idle_timer()

    @classmethod
    async def open(cls, directory: str | Path, *, segment_bytes: int = 64 << 20,
                   rotate_seconds: float = 0.0, fsync: bool = True, group_window: float = 0.0,
                   allow_quarantined: bool = False, eager_bytes: int = EAGER_BYTES,
                   switch_interval: float | None = SWITCH_INTERVAL,
                   preallocate: bool = True, dsync: bool = True,
                   writer_threads: int = WRITER_THREADS) -> Journal:
        """Recover ``directory`` (truncate a torn tail; quarantine + raise on corruption) and
        return a journal ready to append. Raises JournalError / JournalCorruptError.

        ``eager_bytes``: when the writer is idle and the pending group reaches this size it is
        handed over at once instead of at the end of the loop turn, so the disk works while
        the loop is still packing the rest (0 = never). ``switch_interval``: lower the
        interpreter's switch interval to this (never raise it; None = leave it): every hand-off
        to and from the writer thread waits up to that interval for the GIL while the loop is
        busy (see the module docstring). ``preallocate``: segments are zero-filled to
        ``segment_bytes`` ahead of need by a background thread, so a group commit overwrites
        initialised blocks and its sync needs no metadata commit (segments.py, prealloc.py);
        right after opening a journal whose open segment is not preallocated yet the first
        syncs still pay for it (see :meth:`wait_preallocated`). ``dsync``: the segment is
        opened O_DSYNC, so a group commit is one ``pwrite`` (False: ``pwrite`` + ``fdatasync``,
        two syscalls; measured in benchmarks/journal.py ``--fdatasync``); it applies to the
        Python writer only. ``writer_threads``: group commits go to that many native writer
        threads (cython_ext/journal_io.pyx: ``pwrite`` + ``fdatasync`` without the GIL,
        completion through an eventfd; 2 = two groups in flight, released strictly in order);
        0, or extensions disabled/not built: the Python writer thread alone."""
        native = writer_threads > 0 and cython_ext.load("journal_io") is not None
        # Two or more native threads overlap group k+1's pwrite with group k's fdatasync: an
        # O_DSYNC file would make each pwrite wait for its own sync (no overlap), so it is not
        # used then. One native thread keeps O_DSYNC (one syscall per group, as the Python
        # writer) when ``dsync``.
        writer = SegmentWriter(directory, fsync=fsync,
                               dsync=fsync and dsync and not (native and writer_threads > 1),
                               preallocate=segment_bytes if preallocate else 0)
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(
            None, lambda: writer.open(allow_quarantined=allow_quarantined))
        alloc = new_allocator(writer.segment, writer.offset, segment_bytes, rotate_seconds)
        return cls(writer, alloc, group_window=group_window, recovered=recovered,
                   eager_bytes=eager_bytes, switch_interval=switch_interval,
                   writer_threads=writer_threads if native else 0)

    # -- appending (append_nowait, append_many_nowait, call_when_durable: _JournalHot) ----

    async def append(self, record: Mapping[str, Any] | bytes) -> Position:
        """Append one record (a msgpack-able map, or already packed bytes); return its
        position once it is durable. Raises JournalError if the group commit failed."""
        pos, group = self.append_nowait(record)
        await group
        return pos

    async def append_many(self, records: Iterable[Mapping[str, Any] | bytes]) -> list[Position]:
        """Append several records in order (same group); return once all are durable."""
        positions, group = self.append_many_nowait(records)
        if group is not None:
            await group
        return positions

    @property
    def directory(self) -> Path:
        """The journal directory (for a JournalReader over the same files)."""
        return self._writer.directory

    @property
    def native_writers(self) -> int:
        """How many GIL-free native writer threads take group commits (0: the Python writer
        thread; also 0 when the extensions are not built or ICX_NO_EXTENSIONS=1)."""
        return self._max_inflight if self._io is not None else 0

    @property
    def failed(self) -> bool:
        """True once a group commit failed: the journal accepts nothing more. The process
        should exit; recovery on the next start resynchronises store and journal."""
        return self._failed is not None

    @property
    def position(self) -> Position:
        """Position after the last record enqueued (not necessarily durable yet)."""
        return self._alloc.last

    def position_reader(self) -> Callable[[], Position]:
        """A callable returning :attr:`position`, for a caller that reads it once per request
        (the answer's durability mark): ``getattr`` bound in C, no Python frame per call.
        Valid for this journal's life (its allocator is never replaced)."""
        if type(self).position is not Journal.position:  # a subclass's own: keep it
            return functools.partial(getattr, self, "position")
        return functools.partial(getattr, self._alloc, "last")

    @property
    def durable(self) -> Position:
        """Position after the last record known durable."""
        return self._durable

    async def wait_durable(self, pos: Position) -> None:
        """Return once everything up to ``pos`` is durable."""
        if pos <= self._durable:
            return
        if self._failed is not None:
            raise JournalError("journal failed") from self._failed
        pos = min(pos, self._alloc.last)  # never wait for a record not yet enqueued
        if pos <= self._durable:
            return
        fut = self._loop.create_future()
        self._durable_waiters.append((pos, fut))
        await fut

    async def rotate(self) -> None:
        """Seal the open segment now (if it holds records) and wait until it is sealed."""
        if self._failed is not None:
            raise JournalError("journal failed") from self._failed
        if self._alloc.offset <= HEADER_LEN:
            return
        self._alloc.rotate()
        await self._mark_rotation()

    def _mark_rotation(self) -> asyncio.Future[None]:
        # A rotation with no record: a group must carry the (segment, b"") part to the writer.
        group = self._group
        if group is None:
            group = self._group = _GroupFuture(loop=self._loop)
            if not self._busy and not self._scheduled:
                self._schedule()
        return group

    # -- the group commit machinery -------------------------------------------------------

    def _new_group(self) -> _GroupFuture:
        """The future of the next group commit (once per group, not per record)."""
        return _GroupFuture(loop=self._loop)

    def _refusal(self) -> JournalError:
        return JournalError("journal is closed or failed")

    def _failure(self) -> JournalError:
        return JournalError(f"journal write failed: {self._failed!r}")

    def _schedule(self) -> None:
        self._scheduled = True
        if self._window > 0:
            self._loop.call_later(self._window, self._dispatch)
        else:
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled = False
        if self._busy or self._group is None or self._failed is not None:
            return  # once a write failed nothing more is written (no record after a hole)
        io = self._io
        if io is not None:
            alloc = self._alloc
            if not alloc.parts:  # no rotation in this group: maybe the native fast path
                buf = alloc.buf
                off = self._writer.reserve(len(buf))
                if off >= 0:
                    group, self._group = self._group, None
                    alloc.renew()
                    # the dispatch time only feeds ``trace`` (no clock read per group else)
                    self._inflight.append((group, alloc.last,
                                           _clock() if self.trace is not None else 0.0, off))
                    io.submit(self._writer.fd, buf, off, self._sync)
                    if len(self._inflight) >= self._max_inflight:
                        self._busy = True
                    return
            if self._inflight:
                # The Python writer may rotate or touch prealloc state: only once the native
                # writes in flight are done (_reap dispatches again).
                self._busy = True
                return
        group, self._group = self._group, None
        parts = self._alloc.take()
        upto = self._alloc.last
        self._busy = True
        self._jobs.put((self._writer.write_and_sync, parts, group, upto, _clock()))

    def _reap(self) -> None:
        """The native writer's eventfd is readable: release the groups completed, in order."""
        done = self._io.reap()
        inflight = self._inflight
        complete = self._complete
        observe = self.sync_stats.observe
        for _seq, err, t_start, t_end in done:
            group, upto, t_dispatch, offset = inflight.popleft()
            observe(t_end - t_start)
            if err:
                exc = OSError(err, os.strerror(err))
                # the data end was claimed at dispatch: back to where the failed group began
                # (the first failure: later groups begin after it)
                if self._failed is None:
                    self._writer.unreserve(offset)
                complete(exc, group, upto, (t_dispatch, t_start, t_end))
            elif self.trace is not None or self._failed is not None:
                complete(None, group, upto, (t_dispatch, t_start, t_end))
            else:  # the common case: no times tuple, the release inlined (_complete's tail)
                self.groups += 1
                self._durable = upto
                cbs = self._callbacks
                while cbs and cbs[0][0] <= upto:
                    cb = cbs.popleft()[1]
                    try:
                        cb(None)
                    except Exception as e:  # noqa: BLE001 -- see _run_callback
                        self._loop.call_exception_handler({
                            "message": "journal call_when_durable callback failed",
                            "exception": e})
                group.set_result(None)
                if self._durable_waiters:
                    self._release_waiters(upto)
        if done:
            self._busy = False
            if self._group is not None:
                self._dispatch()

    def _writer_main(self) -> None:
        """The writer thread: one job (a whole group) at a time, one wake-up of the loop each."""
        get = self._jobs.get
        call = self._loop.call_soon_threadsafe
        while True:
            job = get()
            if job is None:
                return
            fn, arg, group, upto, t_dispatch = job
            err: BaseException | None = None
            result: Any = None
            t_start = _clock()
            try:
                result = fn(arg)
            except BaseException as exc:  # noqa: BLE001 -- handed to the loop, never lost
                err = exc
            if group is None:  # a plain call (close): the future is in ``upto``
                call(_resolve, upto, result, err)
            else:
                call(self._done, err, group, upto, (t_dispatch, t_start, _clock()))

    async def _call(self, fn: Any, arg: Any = None) -> Any:
        fut = self._loop.create_future()
        self._jobs.put((fn, arg, None, fut, 0.0))
        return await fut

    def _done(self, exc: BaseException | None, group: asyncio.Future[None],
              upto: Position, times: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        """The Python writer thread finished a group (called on the loop)."""
        self._busy = False
        self.sync_stats.observe(times[2] - times[1])
        self._complete(exc, group, upto, times)
        if self._group is not None:
            self._dispatch()

    def _complete(self, exc: BaseException | None, group: asyncio.Future[None],
                  upto: Position, times: tuple[float, float, float]) -> None:
        """Release one group, called in group order. A failure fails this group and every
        one after it (in flight or pending): none of them may be reported durable."""
        if self.trace is not None:
            # (dispatched, write started, write+sync ended, loop released) per group
            self.trace.append((*times, _clock()))
        if self._failed is not None:  # an earlier group failed: this one was failed with it
            if not group.done():
                group.set_exception(JournalError(f"journal write failed: {self._failed!r}"))
            return
        if exc is not None:
            self._failed = exc
            err = JournalError(f"journal write failed: {exc!r}")
            later = [g for g, _u, _t, _o in self._inflight]
            for f in [group, self._group, *later] + [w for _, w in self._durable_waiters]:
                if f is not None and not f.done():
                    f.set_exception(err)
            self._group = None
            self._durable_waiters.clear()
            cbs = self._callbacks
            while cbs:
                self._run_callback(cbs.popleft()[1], err)
            return
        self.groups += 1
        self._durable = upto
        cbs = self._callbacks
        while cbs and cbs[0][0] <= upto:
            self._run_callback(cbs.popleft()[1], None)
        group.set_result(None)
        if self._durable_waiters:
            self._release_waiters(upto)

    def _release_waiters(self, upto: Position) -> None:
        """Resolve the wait_durable futures at or before ``upto`` (after the callbacks)."""
        keep = []
        for pos, w in self._durable_waiters:
            if pos <= upto:
                if not w.done():
                    w.set_result(None)
            else:
                keep.append((pos, w))
        self._durable_waiters = keep

    def _run_callback(self, cb: DurableCallback, exc: BaseException | None) -> None:
        try:
            cb(exc)
        except Exception as e:  # noqa: BLE001 -- one bad callback must not stop the others
            self._loop.call_exception_handler({
                "message": "journal call_when_durable callback failed", "exception": e})

    def _arm_idle_timer(self) -> None:
        self._idle_timer = self._loop.call_later(
            max(self._alloc.rotate_seconds / 4, 0.05), self._idle_check)

    def _idle_check(self) -> None:
        if self._closed or self._failed is not None:
            return  # a failed journal neither writes nor seals (see _dispatch)
        a = self._alloc
        if a.offset > HEADER_LEN and time.monotonic() - a.started >= a.rotate_seconds:
            a.rotate()
            self._mark_rotation()
        self._arm_idle_timer()

    async def wait_preallocated(self, timeout: float | None = None, *,
                                full: bool = False) -> bool:
        """Wait until the background zero-filling has nothing pending (True; False on
        timeout). ``full``: have the open segment filled to its whole size first (call it
        before appending). For benchmarks and tests that measure the steady state (a running
        journal's segments are prepared ahead of need); a server need not wait (appends work
        meanwhile, their syncs are just slower)."""
        if full:
            await self.flush()  # the writer thread is idle: its state may be touched here
        return await self._loop.run_in_executor(
            None, lambda: self._writer.wait_preallocated(timeout, full=full))

    async def flush(self) -> None:
        """Wait until everything enqueued so far is durable."""
        await self.wait_durable(self._alloc.last)

    async def close(self, *, seal: bool = False) -> None:
        """Flush, stop the writer thread and close the file (``seal``: close the segment)."""
        if self._closed:
            return
        if self._failed is None:
            await self.flush()
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        io = self._io
        if io is not None:
            # Join the native threads once the jobs submitted are done (after a failure some
            # may still be running) -- before the segment's fd is closed under them.
            self._loop.remove_reader(io.fd)
            await self._loop.run_in_executor(None, io.close)
        await self._call(lambda _arg: self._writer.close(seal=seal))
        self._jobs.put(None)
        await self._loop.run_in_executor(None, self._thread.join)


def _resolve(fut: asyncio.Future[Any], result: Any, err: BaseException | None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(result)
