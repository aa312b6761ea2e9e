"""Redis key layout of the balance store, and the slot-index trick that makes it cluster-safe.

Every key of an account carries the hash tag ``{acct:ID}`` so a Lua script touching one
account touches one hash slot (runs unchanged on Redis Cluster). An account is ONE hash, so an
op reads everything it needs (balance, hold, its own idempotency record) with one HMGET and
writes it back with one HSET::

    {acct:ID}:a   hash   kind, spec (canonical JSON), ids (JSON), bl (balance ids, '|'-joined),
                         oe ("<newest idempotency epoch>[:<prune cursor>]"), enc (a
                         200-byte filler: the hash is a hashtable from the start, never a
                         listpack scanned linearly per field; lua/create.lua);
                         "<bal>|" -> the balance state every op reads, in ONE field:
                         binary (:func:`state_of`; lua/_prelude.lua), "<bal>|k" kind, "<bal>|$"
                         currency, "<bal>|p" priority (read by get only);
                         "<bal>|h|<reservation>" -> "<amount>:<expiry us>" per hold ('' once
                         released: pruned later with the stale op records, lua/_prelude.lua);
                         "|<op key>" -> the op's cached result "<epoch>|<status>|...".
    {id:<identity>}  string  account id

Field names cannot collide: meta fields hold no '|', balance fields start with a non-empty
balance id and '|', op records start with '|'. Idempotency records carry their epoch
(``floor(now / retention)``) and count while it is >= the account's newest epoch - 1, like the
embedded store's two rotating dicts; the ops after an epoch change prune stale ones a few at a
time (lua/_prelude.lua).

Global scans (expired reservations, unjournaled ops) need indexes: ``{T}:ix:x`` (zset
"<account>|<balance>|<reservation>" -> expiry us) and ``{T}:unj`` (set of "<account>|<op key>"
applied but not yet confirmed journaled; recovery reads them). On Redis Cluster they cannot be
one global key (a script may only write keys of its own slot), so each account's ops write the
*slot index* of its slot: ``T`` is a short tag chosen so that ``CRC16(T) % 16384`` equals the
account's slot. On a standalone server every account uses the one tag ``STANDALONE_TAG``, so
a batch of ops on any accounts updates ONE zset and ONE set (one ZADD/ZREM/SADD per batch
instead of one per op: lua/batch.lua). The tags in use are kept in ``{icx}:slots`` (written by
create_account, before the account exists; a server that held per-slot indexes from before
keeps them listed there, so sweeps and recovery still read them). A sweep reads the registry, one ZCOUNT
per tag (pipelined per node), then runs the expire script once per slot with due holds:
O(slots in use) commands per sweep, at most 16384 however many accounts there are.
Account and balance ids must not contain '|' (checked at create_account).
"""

from __future__ import annotations

import binascii
import math
import struct

SLOTS = 16384
REGISTRY = "{icx}:slots"
STANDALONE_TAG = "ix"
"""The index tag of every account on a standalone server (see the module docstring)."""

_TAGS: list[str] | None = None


def key_slot(key: str) -> int:
    """The Redis Cluster hash slot of *key* (CRC16-XMODEM of its hash tag, mod 16384)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1:end]
    return binascii.crc_hqx(raw, 0) % SLOTS


def slot_tag(slot: int) -> str:
    """A short string whose CRC16 % 16384 is *slot* (built once: ~160k CRCs, ~0.1 s)."""
    global _TAGS
    if _TAGS is None:
        tags: list[str | None] = [None] * SLOTS
        missing, i = SLOTS, 0
        while missing:
            t = f"ix{i}"
            s = binascii.crc_hqx(t.encode(), 0) % SLOTS
            if tags[s] is None:
                tags[s] = t
                missing -= 1
            i += 1
        _TAGS = [t for t in tags if t is not None]
    return _TAGS[slot]


def prefix(account: str) -> str:
    """``{acct:ID}``: the hash-tagged prefix of every key of *account*."""
    return "{acct:" + account + "}"


def account_tag(account: str) -> str:
    """The slot-index tag of *account* (see module docstring)."""
    return slot_tag(key_slot(prefix(account)))


def identity_key(identity: str) -> str:
    return "{id:" + identity + "}"


def account_key(account: str) -> str:
    """``{acct:ID}:a``: the one hash holding *account* (see module docstring)."""
    return "{acct:" + account + "}:a"


_STATE = struct.Struct("<Bddddd")


def state_of(raw: bytes) -> tuple[int, int, int, int | None, int | None]:
    """The balance state field's value -> (amount, reserved, credit limit, expiry us or None,
    low threshold or None). Layout (lua/_prelude.lua): struct ``<Bddddd`` = 0, amount,
    reserved, credit limit, expiry us (+inf: none), low threshold (-inf: none), then the
    amount's decimal text; integers below 2^53, exact as doubles. An account written by an
    older version holds ``"<amount>:<reserved>:<credit>:<expiry>:<low>"`` (the last two may be
    empty) until its next op: read too."""
    if len(raw) > _STATE.size and raw[0] == 0:
        _, a, r, c, x, low = _STATE.unpack_from(raw)
        return (int(a), int(r), int(c), None if x == math.inf else int(x),
                None if low == -math.inf else int(low))
    a_s, r_s, c_s, x_s, l_s = raw.decode().split(":")
    return (int(a_s), int(r_s), int(c_s), int(x_s) if x_s else None, int(l_s) if l_s else None)
