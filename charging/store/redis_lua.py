"""The Lua scripts of the Redis store (charging/store/lua/*.lua), loaded once at import.

Every script starts with ``_prelude.lua`` (the binary balance state, its reader and writer,
the ops' shared helpers). Each op file (reserve, commit, release, debit, credit) defines ``local function op_<name>``;
its single-op script is ``_prelude.lua`` + the op file + a footer that calls the function on
KEYS/ARGV and applies the deferred index updates (``flush``). The batch script is the prelude
+ every op file + ``batch.lua`` (the dispatcher), so an op's logic exists once and runs
identically alone or batched. SHA1s are computed here so calls go straight to EVALSHA; on
NOSCRIPT (a restarted or new server, a cluster node that never saw the script) the store falls
back to EVAL with the source, which also caches it there.
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


def _script(name: str, src: str) -> Script:
    sha = hashlib.sha1(src.encode()).hexdigest()
    return Script(name, src, sha, sha.encode())


def _read(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text(encoding="utf-8")


# KEYS 1 account hash, 2 ix:x, 3 unj; ARGV 1 account, 2 balance, 3 epoch, 4 now, 5 key, 6..
# the op's own (its file's header). An op function takes (acc, ep, epn, flag, account, the
# balance field "<balance>|", the record field "|<key>", then its own arguments in the batch's
# order: lua/batch.lua), so each single-op script maps its ARGV onto that here.
_CALLS = {
    "reserve": "ARGV[9] == '1', ARGV[1], B, opf, ARGV[6], ARGV[7], ARGV[8], ARGV[4]",
    "commit": "ARGV[8] == '1', ARGV[1], B, opf, ARGV[6], ARGV[7]",
    "release": "false, ARGV[1], B, opf, ARGV[6]",
    "debit": "ARGV[7] == '1', ARGV[1], B, opf, ARGV[6], ARGV[4]",
    "credit": "false, ARGV[1], B, opf, ARGV[6]",
}
_FOOTER = """
local epn = tonumber(ARGV[3])
if not epn or epn % 1 ~= 0 then return redis.error_reply('ERR ARGV 3 is not an integer') end
local B, opf = ARGV[2] .. '|', '|' .. ARGV[5]
local r = op_{name}(KEYS[1], ARGV[3], epn, {call})
flush(KEYS[2], KEYS[3])
return r
"""


def _load(name: str, *, op: bool) -> Script:
    # every script gets the prelude (it holds the balance state's layout); an op script a
    # footer calling its op function on its KEYS/ARGV
    if not op:
        return _script(name, _read("_prelude") + "\n" + _read(name))
    return _script(name, _read("_prelude") + "\n" + _read(name)
                   + _FOOTER.format(name=name, call=_CALLS[name]))


RESERVE = _load("reserve", op=True)
COMMIT = _load("commit", op=True)
RELEASE = _load("release", op=True)
DEBIT = _load("debit", op=True)
CREDIT = _load("credit", op=True)
EXPIRE = _load("expire", op=False)
CREATE = _load("create", op=False)
GET = _load("get", op=False)


BATCH_OPS = {"reserve": "r", "commit": "c", "release": "l", "debit": "d", "credit": "t",
             "commit_reserve": "u"}
"""Op file name -> its letter in the batch script's ARGV (lua/batch.lua; with its flag set:
reserve "R" partial, commit "k" keeps the rest, debit "D" partial). In file order: the
commit_reserve op calls op_commit and op_reserve, so it comes after them. It exists only in
the batch script (no single-op script)."""


def _load_batch() -> Script:
    ops = "".join(_read(name) + "\n" for name in BATCH_OPS)
    return _script("batch", _read("_prelude") + "\n" + ops + _read("batch"))


BATCH = _load_batch()

BATCH_ONLY = frozenset({"commit_reserve"})
"""Op files with no single-op script (they run only in the batch)."""

ALL = (RESERVE, COMMIT, RELEASE, DEBIT, CREDIT, EXPIRE, CREATE, GET, BATCH)
