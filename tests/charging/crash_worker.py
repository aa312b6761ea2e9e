"""A server-like worker for the crash test: the ledger over the embedded store + the journal.

Run: ``python -m tests.charging.crash_worker DATA_DIR [--redis URL|cluster:H:P,H:P] [--check]``.

Reads one JSON op per line on stdin, runs each as its own task (so many are in flight at
once, sharing group commits), and writes one JSON ack line per op on stdout ONLY after the
ledger returned -- i.e. after the op's journal record is durable. The driver kills it with
SIGKILL at random moments. ``--check`` recovers, prints the store's state as one JSON line
(balances and live reservations with their expiry) and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from charging.journal import Journal
from charging.ledger import Ledger
from charging.store.base import AccountKind, BalanceKind, BalanceSpec
from charging.store.memory import MemoryStore

ACCOUNTS = [(f"acct{i}", AccountKind.POSTPAID_PARTNER if i % 3 == 0
             else AccountKind.PREPAID_SUBSCRIBER) for i in range(8)]
OPENING = 50_000_000  # 50.00 EUR
CREDIT = 5_000_000


def specs(kind: AccountKind) -> list[BalanceSpec]:
    credit = CREDIT if kind is AccountKind.POSTPAID_PARTNER else 0
    return [BalanceSpec("EUR", BalanceKind.MONEY, "EUR", OPENING, credit_limit=credit,
                        low_threshold=10_000_000)]


def make_store(redis_url: str | None) -> Any:
    if redis_url is None:
        return MemoryStore()
    from charging.store.redis_store import RedisStore

    if redis_url.startswith("cluster:"):  # cluster:host:port,host:port
        nodes = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_url[8:].split(","))]
        return RedisStore.from_cluster(nodes)
    return RedisStore.from_url(redis_url)


async def open_ledger(data: Path, redis_url: str | None = None) -> tuple[Ledger, Journal, Any]:
    journal = await Journal.open(data / "journal", segment_bytes=64 * 1024)
    ledger = Ledger(make_store(redis_url), journal, snapshot_dir=data / "snapshots",
                    snapshot_records=300, snapshot_seconds=0.5, expiry_interval=0.05)
    report = await ledger.recover()
    for acct, kind in ACCOUNTS:
        if await ledger.store.get(acct) is None:
            await ledger.create_account(acct, kind, specs(kind))
    return ledger, journal, report


async def state(ledger: Ledger) -> dict[str, Any]:
    if not ledger.embedded:
        return await redis_state(ledger)
    out: dict[str, Any] = {}
    for acct, _kind in ACCOUNTS:
        a = ledger.store._accounts[acct]
        for bid, b in a.balances.items():
            out[f"{acct}/{bid}"] = {
                "amount": b.amount, "reserved": b.reserved, "credit_limit": b.credit_limit,
                "reservations": {rid: [r[0], r[1]] for rid, r in b.res.items()}}
    return out


async def redis_state(ledger: Ledger) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for acct, _kind in ACCOUNTS:
        view = await ledger.store.get(acct)
        for b in view.balances:
            holds = await ledger.store.reservations(acct, b.id)
            out[f"{acct}/{b.id}"] = {"amount": b.amount, "reserved": b.reserved,
                                     "credit_limit": b.credit_limit,
                                     "reservations": {r: list(v) for r, v in holds.items()}}
    return out


async def run_op(ledger: Ledger, op: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    kind = op["op"]
    a, bal, key = op["account"], "EUR", op["key"]
    if kind == "reserve":
        r = await ledger.reserve(key, a, bal, op["rid"], op["amount"], ttl=op["ttl"], now=now,
                                 fields={"session": op["rid"], "service": "voice"})
    elif kind == "commit":
        r = await ledger.commit(key, a, bal, op["rid"], op["amount"], now=now,
                                fields={"session": op["rid"], "service": "voice"})
    elif kind == "release":
        r = await ledger.release(key, a, bal, op["rid"], now=now)
    elif kind == "debit":
        r = await ledger.debit(key, a, bal, op["amount"], now=now, fields={"service": "sms"})
    elif kind == "topup":
        r = await ledger.topup(key, a, bal, op["amount"], now=now)
    else:
        raise ValueError(kind)
    return {"n": op["n"], "key": key, "status": r.status.value, "granted": r.granted,
            "replayed": r.replayed,
            "effects": [[e.account, e.balance, e.amount] for e in r.effects],
            "holds": [[h.account, h.balance, h.reservation, h.amount] for h in r.holds]}


async def serve(data: Path, redis_url: str | None) -> None:
    ledger, journal, report = await open_ledger(data, redis_url)
    ledger.start()
    out = sys.stdout
    out.write(json.dumps({"ready": True, "replayed": report.replayed,
                          "pending_journaled": report.pending_journaled,
                          "expired": report.expired}) + "\n")
    out.flush()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def one(op: dict[str, Any]) -> None:
        ack = await run_op(ledger, op)
        out.write(json.dumps(ack) + "\n")
        out.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        t = asyncio.ensure_future(one(json.loads(line)))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    await ledger.close()
    await journal.close()
    await ledger.store.close()


async def check(data: Path, redis_url: str | None) -> None:
    before_us = int(time.time() * 1_000_000)  # recovery expires everything due by then
    ledger, journal, report = await open_ledger(data, redis_url)
    print(json.dumps({"before_us": before_us, "state": await state(ledger),
                      "replayed": report.replayed, "expired": report.expired,
                      "pending_journaled": report.pending_journaled}))
    await ledger.close()
    await journal.close()
    await ledger.store.close()


def main() -> None:
    data = Path(sys.argv[1])
    redis_url = sys.argv[sys.argv.index("--redis") + 1] if "--redis" in sys.argv else None
    if "--check" in sys.argv:
        asyncio.run(check(data, redis_url))
    else:
        asyncio.run(serve(data, redis_url))


if __name__ == "__main__":
    main()
