"""Review of round 6 (c786531: the compiled Responder decides through service.decide_now):
on a warm account (decide_now takes the request), the answer is still handed to the peer only
once the journal is durable up to the decision's mark, a retransmit gets the same bytes and
charges once, and a failed group commit answers 5012 (never 2001)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import cython_ext
from charging.journal import JournalError
from mediation.agent import ChargingAgent
from tests.e2e.test_agent_respond import A, Peer, build, ccr, mscc, settle

LANE = all(cython_ext.load(m) is not None for m in ("ro_lane", "charging_slice", "ro_request"))


def _agent(app: Any, when_durable: Any, taken: list[int]) -> ChargingAgent:
    svc = app.service
    real = svc.decide_now

    def counting(req: Any, now: float) -> Any:
        got = real(req, now)
        if got is not None:
            taken.append(1)
        return got

    svc.decide_now = counting  # the agent's Responder picks it up at construction
    base = app.agent
    return ChargingAgent(svc, base.smap, origin_host=base.origin_host,
                         origin_realm=base.origin_realm, when_durable=when_durable)


def _init(sid: str) -> Any:
    return ccr(sid, 1, 0, A("Multiple-Services-Indicator", 1), mscc(100, rsu=("CC-Time", 60)))


def test_decide_now_answer_waits_for_durability_and_charges_once(tmp_path: Path) -> None:
    async def main() -> None:
        app = await build(tmp_path)
        try:
            taken: list[int] = []
            agent = _agent(app, app.journal.call_when_durable, taken)
            peer = Peer(app)
            agent.respond(_init("w;1"), peer)  # the account's first request: Python path
            await settle(app)
            before = (await app.store.get("41790000003")).balances[0]
            init = _init("w;2")
            agent.respond(init, peer)
            mark = app.journal.position
            assert len(peer.replies) == 1  # decided, not yet durable: nothing sent
            await settle(app)
            assert len(peer.replies) == 2
            ans, durable = peer.replies[1][1], peer.replies[1][2]
            assert ans.get("Result-Code") == 2001 and durable >= mark
            agent.respond(init, peer)  # a retransmit
            await settle(app)
            assert peer.replies[2][1].encode() == ans.encode()
            after = (await app.store.get("41790000003")).balances[0]
            assert after.reserved - before.reserved == 120_000  # once
            if LANE:
                assert taken  # the warm INITIAL went through decide_now
        finally:
            await app.close()

    asyncio.run(main())


def test_decide_now_failed_group_commit_answers_5012(tmp_path: Path) -> None:
    async def main() -> None:
        app = await build(tmp_path)
        try:
            loop = asyncio.get_running_loop()
            fail = [False]

            def when(pos: Any, cb: Any) -> None:
                if fail[0]:
                    loop.call_soon(cb, JournalError("disk gone"))
                else:
                    app.journal.call_when_durable(pos, cb)

            taken: list[int] = []
            agent = _agent(app, when, taken)
            peer = Peer(app)
            agent.respond(_init("f;1"), peer)
            await settle(app)
            fail[0] = True
            agent.respond(_init("f;2"), peer)
            await settle(app)
            assert [a.get("Result-Code") for _, a, _ in peer.replies] == [2001, 5012]
            if LANE:
                assert taken
        finally:
            await app.close()

    asyncio.run(main())


def test_unwrapped_decide_now_is_inlined_and_the_mark_is_a_c_getter(tmp_path: Path) -> None:
    """The agent's durability mark is the journal's position read without a Python frame
    (service.durable_mark_reader), equal to durable_mark after every append; with decide_now
    unreplaced the compiled Responder runs its body itself (the fast path's counters move,
    the answer still waits for durability). A replaced durable_mark is kept."""
    async def main() -> None:
        app = await build(tmp_path)
        try:
            svc = app.service
            agent = app.agent
            mark = agent._split[1]
            assert mark() == svc.durable_mark() == app.journal.position
            assert type(mark) is functools.partial  # getattr bound in C: no Python frame
            peer = Peer(app)
            agent.respond(_init("d;1"), peer)  # the account's first request: Python path
            await settle(app)
            real_fast, calls = svc._fast, []
            if real_fast is not None:  # a spy: the inlined decide_now reads _fast per call
                def spy(s: Any, req: Any, now: float) -> Any:
                    calls.append(req.session_id)
                    return real_fast(s, req, now)

                svc._fast = spy
            agent.respond(_init("d;2"), peer)
            assert mark() == svc.durable_mark() == app.journal.position
            assert len(peer.replies) == 1  # decided, not yet durable: nothing sent
            await settle(app)
            assert [a.get("Result-Code") for _, a, _ in peer.replies] == [2001, 2001]
            if LANE:
                assert calls == ["d;2"]  # decided by the inlined decide_now
            replaced = lambda: app.journal.position  # noqa: E731
            svc.durable_mark = replaced  # type: ignore[method-assign]
            assert svc.durable_mark_reader() is replaced
        finally:
            await app.close()

    asyncio.run(main())


def test_fast_path_reads_the_journal_failure_without_a_property_call(tmp_path: Path) -> None:
    """The compiled fast path reads the journal's ``_failed`` field (the compiled base's slot)
    rather than calling its ``failed`` property once per request (a Python frame each)."""
    import sys

    async def main() -> int:
        app = await build(tmp_path)
        try:
            agent, peer = app.agent, Peer(app)
            agent.respond(_init("p;0"), peer)  # the account's first request: Python path
            await settle(app)
            calls = 0

            def prof(frame: Any, event: str, arg: Any) -> None:
                nonlocal calls
                if event == "call" and frame.f_code.co_name == "failed" \
                        and frame.f_code.co_filename.endswith("journal/writer.py"):
                    calls += 1

            sys.setprofile(prof)
            try:
                for i in range(1, 21):
                    agent.respond(_init(f"p;{i}"), peer)
            finally:
                sys.setprofile(None)
            await settle(app)
            assert [a.get("Result-Code") for _, a, _ in peer.replies] == [2001] * 21
            return calls
        finally:
            await app.close()

    calls = asyncio.run(main())
    if LANE:
        assert calls == 0
