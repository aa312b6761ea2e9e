"""Redis key layout of the balance store, and the slot-index trick that makes it cluster-safe.

Every key of an account carries the hash tag ``{acct:ID}`` so a Lua script touching one
account touches one hash slot (runs unchanged on Redis Cluster)::

    {acct:ID}:m            hash   kind, spec (canonical JSON), ids (JSON)
    {acct:ID}:bl           list   balance ids in creation order
    {acct:ID}:b:<balance>  hash   kind cur amt rsv cl pri [exp] [low] (integers as strings),
                                  plus "r:<reservation>" -> "<amount>:<expiry us>" per hold
    {acct:ID}:op:<key>     string the op's cached result (cmsgpack), PX = retention
    {id:<identity>}        string account id

Global scans (expired reservations, unjournaled ops) cannot use one global key: a script may
only write keys of its own slot. So each op also writes a *slot index* whose key lives in the
account's slot: ``{T}:ix:x`` (zset "<account>|<balance>|<reservation>" -> expiry us) and
``{T}:unj`` (set of "<account>|<op key>" applied but not yet confirmed journaled: one SADD
per op, and recovery reads one set per slot), where ``T`` is a short tag chosen so that
``CRC16(T) % 16384`` equals the account's slot. The tags in use are kept in ``{icx}:slots``
(written by create_account, before the account exists). A sweep reads the registry, one ZCOUNT
per tag (pipelined per node), then runs the expire script once per slot with due holds:
O(slots in use) commands per sweep, at most 16384 however many accounts there are.
Account and balance ids must not contain '|' (checked at create_account).
"""

from __future__ import annotations

import binascii

SLOTS = 16384
REGISTRY = "{icx}:slots"

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
