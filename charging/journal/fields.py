"""Reading only some fields of journal records (recovery needs 6-10 of a rated record's ~26).

:func:`pick_py` / :func:`pick_frames_py` are the spec; ``cython_ext/journal_fields.pyx`` is their
compiled twin, which decodes only the wanted fields and steps over the rest (reading was half
of the replay time: benchmarks/replay.py). Both raise ``ValueError`` on a record they cannot
read; callers then decode it in full with msgpack. Only the twin is worth calling: the pure
spec decodes whole records anyway, so without the twin the reader decodes with msgpack
(:data:`PICK_FRAMES` is None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from cython_ext import load

#: What recovery reads (charging/ledger/recovery.py, MemoryStore.apply_record and the account
#: records' provisioning).
REPLAY_FIELDS = ("type", "ts", "idem", "result", "balance_effects", "holds", "account", "kind",
                 "balances", "identities")


def pick_py(payload: bytes | memoryview, names: tuple[str, ...]) -> dict[Any, Any]:
    """The record encoded in *payload* with only its top-level fields named in *names*."""
    try:
        rec = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except TypeError as exc:  # an unhashable map key
        raise ValueError(str(exc)) from None
    if not isinstance(rec, dict):
        raise ValueError("journal record is not a map")
    return {k: v for k, v in rec.items() if k in names}


def pick_frames_py(buf: bytes | memoryview, ends: Iterable[int], start: int, head: int,
                   names: tuple[str, ...]) -> list[dict[Any, Any]]:
    """:func:`pick_py` of every frame in *buf*: the first starts at *start*, each ends at the next
    of *ends* and carries a *head*-byte frame header before its payload."""
    mv = memoryview(buf)
    out = []
    prev = start
    for end in ends:
        if end > len(mv) or end < prev + head:
            raise ValueError("frame end outside the buffer")
        out.append(pick_py(mv[prev + head:end], names))
        prev = end
    return out


_twin = load("journal_fields")
#: The compiled :func:`pick_frames_py` when built and enabled, else None.
PICK_FRAMES: Callable[..., list[dict[Any, Any]]] | None = (
    _twin.pick_frames if _twin is not None else None)
