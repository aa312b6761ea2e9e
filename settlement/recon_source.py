"""Our calls of one partner and period, read from the journal for reconciliation.

Two paths, same calls (tests/settlement/test_recon_source.py):

* compiled (``cython_ext/settle_agg.pyx`` ``select_calls``): walks the raw segment bytes,
  verifies every frame's CRC-32, and picks the partner's plain records of the period without
  decoding the others; records it cannot judge alone (legs, a record ``fx``, a price that is
  not a plain decimal, unusual types) are decoded with msgpack and given to the spec;
* pure: ``JournalReader.chunks()`` decoded into :func:`settlement.reconcile.our_cdrs`, the
  executable spec.

Segment handling mirrors ``settlement.fastagg`` (and ``JournalReader``): a frame that does not
check in a closed segment raises :class:`~charging.journal.JournalCorruptError`; in the open
segment the read stops quietly there (a group commit still being written), and a preallocated
zero tail is not read (``charging.journal.reader.read_open_segment``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgpack

import cython_ext
from charging.journal import JournalCorruptError, JournalReader
from charging.journal.framing import HEADER_LEN, MAX_RECORD, check_header
from charging.journal.reader import read_open_segment
from settlement.config import CdrMapping
from settlement.reconcile import NO_FX, Cdr, our_cdr, our_cdrs


def journal_calls(directory: str | Path, partner: str, lo: int, hi: int, *,
                  direction: str = "any", service: str = "voice",
                  mapping: CdrMapping | None = None,
                  deck_partners: Mapping[str, tuple[str, str]] | None = None,
                  fast: bool | None = None) -> list[Cdr]:
    """*partner*'s calls starting in [lo, hi) (see :func:`~settlement.reconcile.our_cdrs`).
    ``fast=None`` takes the compiled path when built and enabled; ``True`` demands it."""
    mod = cython_ext.load("settle_agg")
    use = (mod is not None) if fast is None else fast
    if not use:
        return our_cdrs((r for ch in JournalReader(directory).chunks() for r in ch.records),
                        partner, lo, hi, direction, service, mapping=mapping,
                        deck_partners=deck_partners)
    if mod is None:
        raise RuntimeError("cython_ext.settle_agg is not built (or ICX_NO_EXTENSIONS=1)")
    inc, rounding = (mapping.billing_increment, mapping.duration_rounding) if mapping else (1, "up")
    decks = sorted((d, dr) for d, (p, dr) in (deck_partners or {}).items() if p == partner)
    want = partner.encode()
    out: list[Cdr] = []
    unpackb = msgpack.unpackb
    for seg in JournalReader(directory).segments():
        path, closed = seg.path, seg.closed
        try:
            # the open segment only up to its records, not its preallocated zero tail
            data = path.read_bytes() if closed else read_open_segment(path)
        except FileNotFoundError:
            if closed:
                raise
            path, closed = path.with_suffix(".seg"), True  # sealed while we listed
            data = path.read_bytes()
        problem = check_header(data)
        if problem is not None:
            if not closed and len(data) < HEADER_LEN:
                continue  # being created
            raise JournalCorruptError(str(path), 0, problem)
        end, problem, rows, slow = mod.select_calls(data, HEADER_LEN, MAX_RECORD, want, decks,
                                                    service, lo, hi)
        if problem is not None and closed:
            raise JournalCorruptError(str(path), end, problem)
        for rid, a, b, start, usage, is_s, micros, ccy, d in rows:
            if direction != "any" and d != direction:
                continue
            out.append(our_cdr(rid, a, b, start, usage if is_s else 0, micros, ccy, NO_FX, inc,
                               rounding))
        if slow:
            mv = memoryview(data)
            out += our_cdrs([unpackb(mv[p:e], raw=False) for p, e in slow], partner, lo, hi,
                            direction, service, mapping=mapping, deck_partners=deck_partners)
            mv.release()
    return out
