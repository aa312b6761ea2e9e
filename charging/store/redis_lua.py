"""The Lua scripts of the Redis store (charging/store/lua/*.lua), loaded once at import.

Each single-balance op script is ``_prelude.lua`` + its own file; its SHA1 is computed here so
calls go straight to EVALSHA. The batch script (``batch.lua``) is built from the SAME sources:
for each op, ``local function op_<name>(KEYS, ARGV)`` + prelude + op file + ``end``, then the
dispatcher in batch.lua, so an op's logic exists once and runs identically alone or batched. On NOSCRIPT (a restarted or new server, a cluster node that never
saw the script) the store falls back to EVAL with the source, which also caches it there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_DIR = Path(__file__).with_name("lua")


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str
    sha_b: bytes  # the SHA1 hex as bytes (what EVALSHA sends)


def _load(name: str, *, prelude: bool) -> Script:
    src = (_DIR / f"{name}.lua").read_text(encoding="utf-8")
    if prelude:
        src = (_DIR / "_prelude.lua").read_text(encoding="utf-8") + "\n" + src
    sha = hashlib.sha1(src.encode()).hexdigest()
    return Script(name, src, sha, sha.encode())


RESERVE = _load("reserve", prelude=True)
COMMIT = _load("commit", prelude=True)
RELEASE = _load("release", prelude=True)
DEBIT = _load("debit", prelude=True)
CREDIT = _load("credit", prelude=True)
EXPIRE = _load("expire", prelude=False)
CREATE = _load("create", prelude=False)
GET = _load("get", prelude=False)


BATCH_OPS = {"reserve": "r", "commit": "c", "release": "l", "debit": "d", "credit": "t"}
"""Op script name -> its letter in the batch script's ARGV (lua/batch.lua)."""


def _load_batch() -> Script:
    prelude = (_DIR / "_prelude.lua").read_text(encoding="utf-8")
    parts = []
    for name in BATCH_OPS:
        body = (_DIR / f"{name}.lua").read_text(encoding="utf-8")
        # KEYS/ARGV become the function's parameters: the body runs unchanged on the op's slice
        parts.append(f"local function op_{name}(KEYS, ARGV)\n{prelude}\n{body}\nend\n")
    src = "".join(parts) + (_DIR / "batch.lua").read_text(encoding="utf-8")
    sha = hashlib.sha1(src.encode()).hexdigest()
    return Script("batch", src, sha, sha.encode())


BATCH = _load_batch()

ALL = (RESERVE, COMMIT, RELEASE, DEBIT, CREDIT, EXPIRE, CREATE, GET, BATCH)
