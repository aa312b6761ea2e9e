"""Versioned rate decks in the data dir: ``<data_dir>/rates/<deck>/v<NNNNNN>.deck``.

Every import writes a new version; old versions stay for re-rating. A version file is one
msgpack map: ``meta`` (DeckMeta) and the columns, integer columns as packed little-endian
int64/int32/int8 bytes and string columns as one ``\\n``-joined UTF-8 blob, so a 1M-row deck
loads in a fraction of a second. Files are written to a temp name, fsynced and renamed
(a crash never leaves a half deck); ``<data_dir>/rates/GENERATION`` is rewritten after every
import so running engines notice with one ``stat``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgpack

from charging.rating.deckdata import Deck, DeckData, DeckMeta
from charging.rating.model import Tier

FORMAT = 1
_VERSION_RE = re.compile(r"^v(\d{6,})\.deck$")
_DECK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_INT_COLS = ("service", "band", "blocked", "dest", "rate", "rate_first", "inc_first", "inc_next",
             "rate_unit", "fee", "min_charge", "eff_from", "eff_to")


def check_deck_name(name: str) -> str:
    """Return *name* or raise ValueError: letters, digits, ``_.-``, at most 64."""
    if not _DECK_NAME.match(name):
        raise ValueError(f"bad deck name {name!r} (letters, digits, '_', '.', '-'; max 64)")
    return name


def _arr_bytes(a: array[int]) -> bytes:
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _bytes_arr(code: str, b: bytes) -> array[int]:
    a = array(code)
    a.frombytes(b)
    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a


class DeckStore:
    """The rate decks of one data dir. Safe for several processes: writers take a file lock."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / "rates"

    @property
    def generation_file(self) -> Path:
        return self.root / "GENERATION"

    def generation(self) -> int:
        """A number that changes whenever any deck gets a new version (mtime_ns of GENERATION)."""
        try:
            return os.stat(self.generation_file).st_mtime_ns
        except FileNotFoundError:
            return 0

    def decks(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _DECK_NAME.match(p.name))

    def versions(self, deck: str) -> list[int]:
        d = self.root / deck
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            m = _VERSION_RE.match(p.name)
            if m:
                out.append(int(m[1]))
        return sorted(out)

    def latest(self, deck: str) -> int | None:
        v = self.versions(deck)
        return v[-1] if v else None

    def path(self, deck: str, version: int) -> Path:
        return self.root / deck / f"v{version:06d}.deck"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive writer lock over the whole rates dir (fcntl, released on close)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def write_new_version(self, meta: DeckMeta, data: DeckData) -> int:
        """Store *data* as the next version of ``meta.deck``; return the version number.

        The caller should hold :meth:`locked` if it computed anything from the previous version.
        """
        check_deck_name(meta.deck)
        d = self.root / meta.deck
        d.mkdir(parents=True, exist_ok=True)
        version = (self.latest(meta.deck) or 0) + 1
        meta.version = version
        final = self.path(meta.deck, version)
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            write_encoded(fh, meta, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(d)
        gen_tmp = self.root / "GENERATION.tmp"
        gen_tmp.write_text(f"{meta.deck} {version}\n")
        os.replace(gen_tmp, self.generation_file)
        return version

    def read_meta(self, deck: str, version: int) -> DeckMeta:
        with open(self.path(deck, version), "rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False, max_buffer_size=2**31 - 1)
            obj = next(unpacker)
        return DeckMeta.from_dict(obj["meta"])

    def load(self, deck: str, version: int | None = None) -> Deck:
        """Load one version (default: the latest); FileNotFoundError when there is none."""
        v = self.latest(deck) if version is None else version
        if v is None:
            raise FileNotFoundError(f"no deck {deck!r} in {self.root}")
        with open(self.path(deck, v), "rb") as fh:
            blob = fh.read()
        return decode(blob)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_encoded(fh: BinaryIO, meta: DeckMeta, data: DeckData) -> None:
    """Write the same msgpack map as :func:`encode`, one column at a time (bounded memory)."""
    packer = msgpack.Packer(use_bin_type=True)
    fh.write(packer.pack_map_header(3))
    fh.write(packer.pack("format"))
    fh.write(packer.pack(FORMAT))
    fh.write(packer.pack("meta"))
    fh.write(packer.pack(meta.to_dict()))
    fh.write(packer.pack("cols"))
    fh.write(packer.pack_map_header(len(_INT_COLS) + 5))
    for name in _INT_COLS:
        a = getattr(data, name)
        fh.write(packer.pack(name))
        fh.write(packer.pack([a.typecode, _arr_bytes(a)]))
    fh.write(packer.pack("prefix"))
    fh.write(packer.pack("\n".join(data.prefix).encode()))
    for key, value in _small_cols(data).items():
        fh.write(packer.pack(key))
        fh.write(packer.pack(value))


def _small_cols(data: DeckData) -> dict[str, object]:
    return {
        # origin is nearly always "": store it sparse.
        "origin": {i: o for i, o in enumerate(data.origin) if o} if any(data.origin) else {},
        "names": data.names,
        "bands": data.bands,
        "tiers": {i: [[t.after_units, t.rate] for t in ts] for i, ts in data.tiers.items()},
    }


def encode(meta: DeckMeta, data: DeckData) -> bytes:
    cols: dict[str, object] = {}
    for name in _INT_COLS:
        a = getattr(data, name)
        cols[name] = [a.typecode, _arr_bytes(a)]
    cols["prefix"] = "\n".join(data.prefix).encode()
    cols.update(_small_cols(data))
    return msgpack.packb({"format": FORMAT, "meta": meta.to_dict(), "cols": cols}, use_bin_type=True)


def decode(blob: bytes) -> Deck:
    obj = msgpack.unpackb(blob, raw=False, strict_map_key=False, max_bin_len=2**31 - 1)
    if obj.get("format") != FORMAT:
        raise ValueError(f"unknown deck format {obj.get('format')!r}")
    cols = obj["cols"]
    data = DeckData()
    for name in _INT_COLS:
        code, b = cols[name]
        setattr(data, name, _bytes_arr(code, b))
    pblob: bytes = cols["prefix"]
    n = len(data.rate)
    data.prefix = pblob.decode().split("\n") if n else []
    origin = [""] * n
    for i, o in cols["origin"].items():
        origin[int(i)] = o
    data.origin = origin
    data.names = list(cols["names"])
    data.bands = list(cols["bands"])
    data.tiers = {
        int(i): tuple(Tier(after_units=a, rate=r) for a, r in ts) for i, ts in cols["tiers"].items()
    }
    data.rebuild_indexes()
    return Deck(meta=DeckMeta.from_dict(obj["meta"]), data=data)
