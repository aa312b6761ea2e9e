"""The Diameter load harness behind `icx bench diameter` (and benchmarks/ro.py).

N proper client peers (CER/CEA, DWR answered; icx/diameter_client.py) run full Ro sessions
(CCR-I, U x k, T) and SMS events at a target rate (open loop, paced), or as fast as the server
answers (``rate=0``: closed loop, a window of requests in flight per connection). Several
worker processes share the work so the harness is not the bottleneck; each returns its
latencies and result codes, the parent merges them and prints one JSON line. A worker that
dies without returning them (SIGKILL, the OOM killer) is seen at once by its process
sentinel: the run stops (the others on SIGTERM, which they answer with their results) and
says which worker died and how; what it had in flight counts as lost, and the sessions it had
begun and not ended are reported as left open: the parent cannot end them (it has neither
their connections nor their state), so the server holds them until its Tcc.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import multiprocessing as mp
import os
import random
import signal
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from typing import Any

from icx.diameter_client import (
    A,
    CcrTemplate,
    ClientPeer,
    connect,
    data_info,
    mscc,
    sms_info,
    utf8_avp,
    voice_info,
)

KINDS = ("voice", "data", "sms")
# per worker, in shared memory, kept current by it: what the parent counts when it dies
SLOTS = 4  # sent, answered, lost, sessions open (begun, final answer not seen)
LEFT_OPEN = ("{n} sessions left open on the server (it holds them and their reservations "
             "until its Tcc)")
DEST_POOL = 64  # distinct called numbers per worker (templates are cached per number)
CONTEXTS = {"voice": "32260@3gpp.org", "data": "32251@3gpp.org", "sms": "32274@3gpp.org"}


class LoadError(Exception):
    """A worker could not run its load; the message says why, for the user."""


@dataclass(frozen=True)
class LoadConfig:
    host: str = "127.0.0.1"
    port: int = 3868
    connections: int = 4
    sessions: int = 0  # total sessions to run (0 = until duration)
    updates: int = 2  # CCR-U per session (voice/data)
    rate: float = 0.0  # target requests/s over all processes (0 = as fast as answered)
    duration: float = 10.0  # seconds of load
    mix: tuple[str, ...] = KINDS
    processes: int = 1
    window: int = 64  # closed loop: requests in flight per connection
    first_subscriber: int = 41790000001
    subscribers: int = 999
    dest_realm: str = "icx.local"
    timeout: float = 10.0
    progress: bool = True
    seed: int = field(default_factory=lambda: int(time.time()))


class _Session:
    __slots__ = ("kind", "sid", "sid_avp", "step", "steps", "tpl", "peer", "busy", "aborted")

    def __init__(self, kind: str, sid: str, steps: int, tpl: CcrTemplate,
                 peer: ClientPeer) -> None:
        self.sid_avp = utf8_avp(263, sid)  # Session-Id, encoded once per session
        self.peer = peer  # its Origin-Host is in the template: (Origin-Host, E2E) must be
        # unique, so a session's requests always go out on its own connection
        self.kind = kind
        self.sid = sid
        self.step = 0
        self.steps = steps
        self.tpl = tpl
        self.busy = False  # a request of it is in flight
        self.aborted = False  # the server's ASR was answered 2001: its next request is a T


def tail_for(kind: str, n: int, updates: int) -> tuple[int, int, list[Any]]:
    """(CC-Request-Type, CC-Request-Number, variable AVPs) of request *n* of a *kind*
    session: I, U x *updates*, T (an SMS is one EVENT)."""
    if kind == "sms":
        return 4, 0, [A("Requested-Action", 0),
                      A("Requested-Service-Unit", [A("CC-Service-Specific-Units", 1)])]
    unit, amount, rg = (("CC-Time", 60, 100) if kind == "voice"
                        else ("CC-Total-Octets", 1_000_000, 1))
    if n == 0:
        return 1, 0, [A("Multiple-Services-Indicator", 1), mscc(rg, rsu=(unit, amount))]
    if n <= updates:
        return 2, n, [mscc(rg, rsu=(unit, amount), usu=(unit, amount), reason=3)]
    return 3, n, [mscc(rg, usu=(unit, amount // 2), reason=2)]


def split_evenly(total: int, parts: int) -> list[int]:
    """*total* in *parts* whole shares that add up to it, the remainder one each to the first
    (7 over 3: 3, 2, 2)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def split_rate(rate: float, parts: int) -> list[float]:
    """The request rate of each of *parts* workers, adding up to *rate* exactly: whole requests
    per second split by :func:`split_evenly`, a fraction of one on top of the first share
    (2.5 over 2: 1.5, 1). A paced worker sends whole requests, so shares like 5000.5 + 5000.5
    for 10001/s sent 10,000 a second. 0 (closed loop) stays 0 everywhere. The caller gives
    each worker at least one request/s when the rate allows (see :func:`plan_split`)."""
    whole = int(rate)
    shares = [float(s) for s in split_evenly(whole, parts)]
    shares[0] += rate - whole
    return shares


def plan_split(cfg: LoadConfig) -> list[tuple[int, int, float]]:
    """(connections, sessions, rate) of each worker process. No more processes than
    connections, than ``--sessions`` (a share of 0 would mean "until --duration") or than
    whole requests per second (a rate of 0 would mean a closed loop); each total is shared
    whole with the remainder to the first workers, so the shares add up to what was asked."""
    procs = max(1, min(cfg.processes, cfg.connections, cfg.sessions or cfg.connections,
                       (int(cfg.rate) or 1) if cfg.rate else cfg.connections))
    conns = split_evenly(cfg.connections, procs)
    sessions = split_evenly(cfg.sessions, procs)
    rates = split_rate(cfg.rate, procs)
    return list(zip(conns, sessions, rates, strict=True))


async def _worker(cfg: LoadConfig, index: int, nconn: int, sessions: int,
                  report: Callable[[tuple[Any, ...]], None] | None,
                  live_counts: memoryview | None = None,
                  rate: float | None = None) -> dict[str, Any]:
    """One worker's load: *nconn* connections, *sessions* sessions (0: until the duration),
    *rate* requests/s (its share of ``cfg.rate``; None: all of it; 0: closed loop). *report*
    gets the progress tuples; *live_counts* (:data:`SLOTS`: sent, answered, lost, sessions
    open), kept current per request, is what the parent counts when this process dies without
    returning. SIGTERM ends the run early (open sessions still get their CCR-T)."""
    loop = asyncio.get_running_loop()
    stop_requested = [False]
    napping: list[asyncio.Future[None] | None] = [None]

    def wake() -> None:
        f = napping[0]
        if f is not None and not f.done():
            f.set_result(None)

    def request_stop() -> None:
        stop_requested[0] = True
        wake()

    try:
        loop.add_signal_handler(signal.SIGTERM, request_stop)
    except (ValueError, RuntimeError, NotImplementedError):  # pragma: no cover - not main
        pass  # thread, or no signals: the parent's SIGTERM then ends the process
    shared = live_counts if live_counts is not None else memoryview(array("q", [0] * SLOTS))
    rnd = random.Random(cfg.seed + index)
    host_id = f"bench{os.getpid()}"
    peers: list[ClientPeer] = []
    try:
        for i in range(nconn):
            peers.append(await connect(cfg.host, cfg.port,
                                       origin_host=f"{host_id}-{i}.icx.test",
                                       origin_realm="icx.test", timeout=cfg.timeout))
    except OSError as exc:  # refused, unknown host, CEA not 2001, silent server
        for p in peers:
            await p.close()
        raise LoadError(f"cannot connect to {cfg.host}:{cfg.port}: {exc}") from None
    lat = array("d")
    codes: dict[int, int] = {}
    counters = {"sent": 0, "answered": 0, "sessions": 0, "starved": 0, "lost": 0}
    ready: deque[_Session] = deque()
    seq = itertools.count()
    kinds = itertools.cycle(cfg.mix)  # not `seq`: the Session-Ids take from it too
    rate = cfg.rate if rate is None else rate
    inflight = [0]
    done = asyncio.get_running_loop().create_future()
    # Everything constant is encoded once: the tail of each (kind, step), the template of
    # each (connection, kind, subscriber, destination); destinations come from a small pool.
    tails: dict[tuple[str, int], tuple[int, int, bytes]] = {}
    for kind in KINDS:
        for n in range(1 if kind == "sms" else cfg.updates + 2):
            rtype, number, avps = tail_for(kind, n, cfg.updates)
            tails[kind, n] = (rtype, number, b"".join(a.encode() for a in avps))
    dests = [f"4179{rnd.randrange(10**7):07d}" for _ in range(DEST_POOL)]
    templates: dict[tuple[int, str, str, int], CcrTemplate] = {}
    live: dict[str, _Session] = {}  # open voice/data sessions by Session-Id (for RAR/ASR)

    def new_session() -> _Session | None:
        if sessions and counters["sessions"] >= sessions:
            return None
        counters["sessions"] += 1
        kind = next(kinds)
        sub = str(cfg.first_subscriber + rnd.randrange(cfg.subscribers))
        pi = counters["sessions"] % len(peers)
        peer = peers[pi]
        di = rnd.randrange(DEST_POOL) if kind != "data" else 0
        key = (pi, kind, sub, di)
        tpl = templates.get(key)
        if tpl is None:
            if kind == "voice":
                extra = [voice_info(sub, dests[di])]
            elif kind == "sms":
                extra = [sms_info(dests[di])]
            else:
                extra = [data_info("internet")]
            tpl = templates[key] = CcrTemplate(
                origin_host=peer.origin_host, origin_realm="icx.test",
                dest_realm=cfg.dest_realm, context=CONTEXTS[kind], subscriber=sub,
                extra=extra)
        steps = 1 if kind == "sms" else cfg.updates + 2
        s = _Session(kind, f"{peer.origin_host};{index};{next(seq)}", steps, tpl, peer)
        if kind != "sms":
            live[s.sid] = s
            shared[3] = len(live)
        return s

    def server_request(code: int, sid: str | None) -> int:
        """The RAA/ASA Result-Code for the server's RAR (258) or ASR (274) (facts D)."""
        s = live.get(sid) if sid is not None else None
        if s is None:
            return 5002  # DIAMETER_UNKNOWN_SESSION_ID: not (or no longer) active here
        if code == 274:  # ASA 2001, then the session ends with its CCR-T (RFC 4006 §5.5)
            end(s)
        return 2001  # RAR: its next CCR-U, paced as the others, reports the usage

    def end(s: _Session) -> None:
        """Make the session's next request (after the one in flight) its CCR-T."""
        s.aborted = True
        s.steps = min(s.steps, s.step + (2 if s.busy else 1))

    def issue() -> bool:
        picked = ready.popleft() if ready else None if stopping[0] else new_session()
        if picked is None:
            counters["starved"] += 1
            return False
        s: _Session = picked
        rtype, number, tail = tails[s.kind, s.step]
        if s.aborted and s.step == s.steps - 1:
            rtype, number, tail = 3, s.step, tails[s.kind, cfg.updates + 1][2]
        body = s.tpl.body_bytes(s.sid_avp, rtype, number, tail)
        s.busy = True
        t0 = time.perf_counter()

        def on_answer(raw: bytes, rc: int) -> None:
            inflight[0] -= 1
            if not raw:  # its connection was lost: the main loop ends the run
                counters["lost"] += 1
                shared[2] += 1
            else:
                last[0] = time.perf_counter()
                lat.append(last[0] - t0)
                codes[rc] = codes.get(rc, 0) + 1
                counters["answered"] += 1
                shared[1] += 1
                s.step += 1
                s.busy = False
                if rc == 2001 and s.step < s.steps:
                    ready.append(s)
                else:
                    live.pop(s.sid, None)
                    shared[3] = len(live)
            if raw and (stopping[0] and ready or closed_loop and not stopping[0]):
                issue()  # (once stopping, only the CCR-Ts of the sessions still open)
            elif stopping[0] and inflight[0] == 0 and not done.done():
                done.set_result(None)
            elif starved[0] and (ready or inflight[0] == 0):
                starved[0] = False  # a session to send again (or --sessions all done)
                wake()

        inflight[0] += 1
        counters["sent"] += 1
        shared[0] += 1
        s.peer.send_raw(body, 272, 4, callback=on_answer)
        return True

    closed_loop = rate == 0
    stopping = [False]
    gone: list[ClientPeer] = []  # connections the server closed (killed, or DPR) mid-run
    # The send loop sleeps until it has something to do: the next paced send, the next
    # progress report or the end of the run, whichever is first; or until woken by a lost
    # connection, or (starved: every session in flight) by an answer. It polled every 1 ms,
    # ~1,000 wake-ups a second whatever the rate (most of the harness's CPU at 100/s).
    starved = [False]  # paced: no session could be sent: wake at the next answer

    async def sleep_until(t: float) -> None:
        # 1 ms at least: at high rates the paced sends go out in 1 ms bursts (10 at a time
        # at 10,000/s), as they did when the loop polled every 1 ms (benchmarks/ro.py)
        f = napping[0] = loop.create_future()
        timer = loop.call_later(max(t - time.perf_counter(), 0.001), wake)
        try:
            await f
        finally:
            timer.cancel()
            napping[0] = None

    def watch(peer: ClientPeer) -> None:
        def lost(_: object) -> None:
            gone.append(peer)
            wake()

        peer.closed.add_done_callback(lost)

    for p in peers:
        watch(p)
        p.on_server_request = server_request
    cpu0 = time.process_time()
    start = time.perf_counter()
    last = [start]  # when the latest answer came
    last_report = start
    wakeups = 0  # turns of the send loop (reported: the cost of pacing)
    if closed_loop:
        for _ in range(cfg.window * len(peers)):
            if not issue():
                break
    end_at = start + cfg.duration
    # Paced, send k (k = 0, 1, ...) is due k/rate s into the run, and every send due before
    # the end goes out (late by the wake-up's granularity, if need be): a run of d seconds
    # sends ceil(rate * d) -- rate * d for a whole product -- and the shares of several
    # processes add up to the total. (The first went out only 1/rate s in and the one due
    # just before the end was dropped with the loop's last wake-up: a request short per
    # process.)
    paced_total = max(1, math.ceil(cfg.duration * rate - 1e-9)) if rate else 0
    while True:
        wakeups += 1
        now = time.perf_counter()
        elapsed = now - start
        ended = elapsed >= cfg.duration
        if (gone or stop_requested[0] or (ended and closed_loop)
                or (sessions and counters["sessions"] >= sessions and not ready
                    and inflight[0] == 0)):
            break
        if not closed_loop:
            starved[0] = False
            due = (paced_total if ended else min(int(elapsed * rate) + 1, paced_total)
                   ) - counters["sent"]
            for _ in range(min(due, 10_000)):
                if not issue():
                    starved[0] = True
                    break
            if ended:
                break
        elif inflight[0] == 0 and not issue():
            break
        if report is not None and now - last_report >= 0.5:
            report(("progress", index, counters["sent"], counters["answered"],
                    sum(n for c, n in codes.items() if c != 2001)))
            last_report = now
        if closed_loop:
            until = now + 0.05
        elif starved[0]:
            until = end_at  # woken by the answer that frees a session
        else:  # the next paced send: send number counters["sent"] is due at sent / rate
            until = min(start + counters["sent"] / rate, end_at)
        if report is not None:
            until = min(until, last_report + 0.5)
        await sleep_until(until)
    stopping[0] = True
    elapsed = time.perf_counter() - start
    if not gone:  # full sessions: each one still open ends with its CCR-T (not held to Tcc)
        for s in live.values():
            end(s)
        while ready:
            issue()
    if inflight[0]:
        try:
            await asyncio.wait_for(asyncio.shield(done), cfg.timeout)
        except TimeoutError:
            pass
    timeouts = inflight[0]
    cpu = time.process_time() - cpu0
    # the rate is answers over the time they took: with --sessions done early, up to the last
    # answer (not the loop's next poll, 50 ms later in a closed loop); else to the end of the
    # run or the last answer drained after it, whichever is later
    if sessions and counters["sessions"] >= sessions and not ready and not gone:
        elapsed = last[0] - start
    else:
        elapsed = max(elapsed, last[0] - start)
    error = None
    if gone:
        g = gone[0]
        error = (f"{cfg.host}:{cfg.port} closed connection {g.origin_host} after {elapsed:.1f} s"
                 + (" (DPR)" if 282 in g.server_requests else ""))
    for p in peers:
        await p.close()
    # begun and not seen ended (the server gone, a CCR-T timed out): held until Tcc there
    left_open = len(live)
    return {"latencies": lat.tobytes(), "codes": codes, "elapsed": elapsed,
            "timeouts": timeouts, "cpu": cpu, "error": error, "wakeups": wakeups,
            "left_open": left_open, **counters}


def _run_worker(cfg: LoadConfig, index: int, nconn: int, sessions: int, rate: float,
                conn: Connection, counts: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    live = memoryview(counts).cast("B").cast("q")[SLOTS * index:SLOTS * (index + 1)]
    try:
        out = asyncio.run(_worker(cfg, index, nconn, sessions, conn.send, live, rate))
        conn.send(("result", index, out))
    except LoadError as exc:
        conn.send(("error", index, str(exc)))
    except Exception as exc:  # report, never hang the parent
        conn.send(("error", index, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "?"
        return f"killed by signal {-exitcode} ({name})"
    return "exited without reporting" if not exitcode else f"exited with status {exitcode}"


def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def run_load(cfg: LoadConfig) -> dict[str, Any]:
    """Run the load in ``cfg.processes`` worker processes; return the merged summary."""
    plan = plan_split(cfg)
    procs = len(plan)
    cfg = LoadConfig(**{**asdict(cfg), "processes": procs})
    ctx = mp.get_context("fork")
    # (sent, answered, lost, sessions open) of each worker, written by it per request: what a
    # worker that dies without reporting had done
    counts = ctx.RawArray("q", SLOTS * procs)
    live = memoryview(counts).cast("B").cast("q")
    workers = []
    pipes: list[Connection] = []
    for i, (nconn, sess, rate) in enumerate(plan):
        reader, writer = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_run_worker, args=(cfg, i, nconn, sess, rate, writer, counts),
                        name=f"icx-bench-worker-{i}", daemon=True)
        p.start()
        writer.close()  # the child's copy is the only one: EOF when it is gone
        workers.append(p)
        pipes.append(reader)
    results: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    dead = {"sent": 0, "answered": 0, "lost": 0, "open": 0}  # of workers that never reported
    progress: dict[int, tuple[int, int, int]] = {}
    t0 = time.perf_counter()
    pending = set(range(procs))
    deadline = time.monotonic() + cfg.duration + cfg.timeout + 30

    def receive(i: int) -> None:
        """Everything worker *i* has sent so far (its result ends it)."""
        while i in pending and pipes[i].poll():
            try:
                kind, idx, *rest = pipes[i].recv()
            except (EOFError, OSError):  # gone: its sentinel says how
                return
            if kind == "progress":
                progress[idx] = tuple(rest)  # type: ignore[assignment]
                if cfg.progress:
                    sent = sum(v[0] for v in progress.values())
                    ans = sum(v[1] for v in progress.values())
                    err = sum(v[2] for v in progress.values())
                    el = time.perf_counter() - t0
                    sys.stderr.write(f"\r{el:6.1f}s sent {sent:>9} answered {ans:>9} "
                                     f"({ans / el if el else 0:8.0f}/s) non-2001 {err:>7}")
                    sys.stderr.flush()
            else:
                if kind == "result":
                    results[idx] = rest[0]
                else:  # it failed mid-run: its sessions still open are left to Tcc
                    left = live[SLOTS * i + 3]
                    dead["open"] += left
                    errors.append(str(rest[0]) + (f"; {LEFT_OPEN.format(n=left)}"
                                                  if left else ""))
                pending.discard(i)

    def lost_worker(i: int, how: str) -> None:
        """Worker *i* ended without its result: what it had in flight is lost."""
        pending.discard(i)
        sent, answered, lost, left = live[SLOTS * i:SLOTS * (i + 1)]
        inflight = sent - answered - lost
        dead["sent"] += sent
        dead["answered"] += answered
        dead["lost"] += lost + inflight
        dead["open"] += left
        # its sessions (CCR-I sent, no final answer seen) cannot be ended from here: their
        # Session-Ids, Origin-Host and connections died with it; the server keeps them (and
        # their reservations) until its Tcc -- said, so a load tester knows
        errors.append(f"worker {i} (pid {workers[i].pid}) {how}: {sent} sent, {answered} "
                      f"answered (their latencies and codes are gone), {inflight} in flight "
                      "counted as lost" + (f"; {LEFT_OPEN.format(n=left)}" if left else ""))
        for j in pending:  # the run has failed: the others stop now, and report
            workers[j].terminate()  # SIGTERM: it ends its sessions and returns its result

    while pending:
        # a worker killed (SIGKILL, the OOM killer) never reports: its sentinel says so at
        # once (the parent waited out duration + timeout + 30 s)
        by_obj: dict[Any, tuple[str, int]] = {}
        for i in pending:
            by_obj[pipes[i]] = ("pipe", i)
            by_obj[workers[i].sentinel] = ("exit", i)
        ready = mp_connection.wait(list(by_obj), timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            for i in sorted(pending):
                workers[i].kill()
                workers[i].join(5)
                lost_worker(i, f"did not report within {cfg.duration + cfg.timeout + 30:.0f} s "
                               "and was killed")
            break
        events = sorted((by_obj[o] for o in ready), key=lambda e: e[0] == "exit")
        for what, i in events:  # the pipes first: a result sent just before the exit
            receive(i)
            if what == "exit" and i in pending:
                workers[i].join(5)
                lost_worker(i, f"died without reporting: {_how_it_ended(workers[i].exitcode)}")
    for p in workers:
        p.join(timeout=5)
    for pipe in pipes:
        pipe.close()
    if cfg.progress:
        sys.stderr.write("\n")
    lat: list[float] = []
    codes: dict[int, int] = {}
    totals = {"sent": dead["sent"], "answered": 0, "sessions": 0, "timeouts": 0,
              "lost": dead["lost"], "left_open": dead["open"]}
    wakeups = 0
    elapsed = 0.0
    client_cpu = 0.0
    for r in results.values():
        if r["error"]:  # its server closed the connection (killed, DPR): its sessions there
            errors.append(r["error"])  # are that server's business (counted below all the same)
        client_cpu += r.get("cpu", 0.0)
        a = array("d")
        a.frombytes(r["latencies"])
        lat.extend(a)
        for c, n in r["codes"].items():
            codes[c] = codes.get(c, 0) + n
        for k in totals:
            totals[k] += r[k]
        wakeups += r.get("wakeups", 0)
        elapsed = max(elapsed, r["elapsed"])
    lat.sort()
    answered = totals["answered"]
    return {
        "bench": "diameter_load", "unit": "req/s",
        "value": round(answered / elapsed, 1) if elapsed else 0.0,
        "requests": answered, "sent": totals["sent"], "sessions": totals["sessions"],
        "result_codes": {str(c): n for c, n in sorted(codes.items())},
        "errors": {str(c): n for c, n in sorted(codes.items()) if c != 2001},
        "timeouts": totals["timeouts"], "lost": totals["lost"],
        # answered, but in a worker that died before reporting them: counted in neither
        # requests nor result_codes (sent = requests + lost + timeouts + unreported)
        "unreported": dead["answered"],
        # sessions begun and not seen ended -- of a worker that died, or whose server went
        # away or did not answer a CCR-T: the server holds them until its Tcc
        "sessions_left_open": totals["left_open"],
        # the workers' shares: whole requests/s, the remainder to the first (plan_split)
        "target_rate": sum(r for _, _, r in plan),
        "target_rate_per_process": [r for _, _, r in plan],
        "duration_s": round(elapsed, 3),
        "latency_ms": {q: round(_percentile(lat, p) * 1000, 3) for q, p in
                       (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))},
        "connections": cfg.connections, "processes": procs,
        "connections_per_process": [c for c, _, _ in plan],
        "sessions_per_process": [s for _, s, _ in plan] if cfg.sessions else None,
        "mix": list(cfg.mix),
        "updates": cfg.updates, "worker_errors": errors,
        # the harness's own CPU per answered request (all worker processes): what it would
        # take from a core the server shares
        "client_cpu_us": round(client_cpu / answered * 1e6, 1) if answered else None,
        # turns of the workers' send loops per second: a paced loop wakes when a send is due
        # (at most every 1 ms), a closed loop every 50 ms
        "wakeups_per_s": round(wakeups / elapsed, 1) if elapsed else None,
    }


def main_json(cfg: LoadConfig) -> str:
    return json.dumps(run_load(cfg))
