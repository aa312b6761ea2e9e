"""The agent's synchronous responder over the real charging stack (in process, no sockets):
the answer is decided at once but handed to the peer only once the journal is durable up to
the decision's mark (invariant 3); retransmissions get the same answer and charge once; a
failed group commit answers 5012; without a durability hook it falls back to handle()."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from charging.journal import JournalError
from diameter.message import Message, decode_message
from icx.charging_app import ChargingApp, build_charging
from icx.diameter_client import A, mscc, voice_info
from icx.settings import AccountsSection, load_settings
from mediation.agent import _LANE, ChargingAgent
from tests.e2e.conftest import ACCOUNTS, ROOT


class Peer:
    """Records every reply with the journal's durable position at that moment."""

    def __init__(self, app: ChargingApp) -> None:
        self.app = app
        self.replies: list[tuple[Message, Message, Any]] = []

    def reply(self, request: Message, answer: Message | bytes, t0_ns: int = 0) -> None:
        ans = decode_message(answer if isinstance(answer, bytes) else answer.encode())
        self.replies.append((request, ans, self.app.journal.durable))


def ccr(sid: str, rtype: int, number: int, *parts: Any) -> Message:
    avps = [A("Session-Id", sid), A("Origin-Host", "r.icx.test"), A("Origin-Realm", "icx.test"),
            A("Destination-Realm", "icx.local"), A("Auth-Application-Id", 4),
            A("Service-Context-Id", "32260@3gpp.org"), A("CC-Request-Type", rtype),
            A("CC-Request-Number", number),
            A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", "41790000003")]),
            voice_info("41790000003", "41791234567"), *parts]
    m = Message.request(272, 4, avps, proxiable=True, hop_by_hop=number + 1,
                        end_to_end=number + 1)
    return decode_message(m.encode())


async def build(tmp_path: Path) -> ChargingApp:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    settings = load_settings(ROOT / "config" / "icx.toml")
    settings = dataclasses.replace(settings, accounts=AccountsSection(files=(str(accounts),)))
    return await build_charging(settings, tmp_path / "data", admin=False)


async def settle(app: ChargingApp) -> None:
    await app.journal.flush()
    for _ in range(3):
        await asyncio.sleep(0)


async def answer_each(app: ChargingApp, agent: Any, respond: Any, peer: Peer,
                      requests: list[Message], before: Any = None) -> None:
    """Send each request (``before(n)`` first, when given), wait for its decision and check
    that its answer went out, and only once the journal was durable past its records."""
    for n, request in enumerate(requests):
        if before is not None:
            before(n)
        respond(request, peer)
        await asyncio.gather(*agent._tasks)
        mark = app.journal.position
        await settle(app)
        assert len(peer.replies) == n + 1
        assert peer.replies[n][2] >= mark


def test_answer_waits_for_durability_and_retransmit_charges_once(tmp_path: Path) -> None:
    async def main() -> None:
        app = await build(tmp_path)
        try:
            agent, peer = app.agent, Peer(app)
            before = (await app.store.get("41790000003")).balances[0]
            init = ccr("r;1", 1, 0, A("Multiple-Services-Indicator", 1),
                       mscc(100, rsu=("CC-Time", 60)))
            agent.respond(init, peer)
            mark = app.journal.position
            assert peer.replies == []  # decided, not yet durable: nothing sent
            await settle(app)
            assert len(peer.replies) == 1
            _, ans, durable = peer.replies[0]
            assert ans.get("Result-Code") == 2001 and durable >= mark
            assert (ans.hop_by_hop, ans.end_to_end) == (1, 1)
            # the same request again: same answer, no second reservation
            agent.respond(init, peer)
            await settle(app)
            assert len(peer.replies) == 2
            assert peer.replies[1][1].encode() == ans.encode()
            after = (await app.store.get("41790000003")).balances[0]
            assert after.reserved - before.reserved == 120_000  # 60 s at 0.12/min, once
            term = ccr("r;1", 3, 1, mscc(100, usu=("CC-Time", 30), reason=2))
            agent.respond(term, peer)
            await settle(app)
            assert peer.replies[2][1].get("Result-Code") == 2001
            final = (await app.store.get("41790000003")).balances[0]
            assert final.reserved == before.reserved
            assert before.amount - final.amount == 120_000  # 60/1: first minute in full
        finally:
            await app.close()

    asyncio.run(main())


def test_failed_group_commit_answers_5012(tmp_path: Path) -> None:
    async def main() -> None:
        app = await build(tmp_path)
        try:
            loop = asyncio.get_running_loop()

            def failing(pos: Any, cb: Any) -> None:
                loop.call_soon(cb, JournalError("disk gone"))

            base = app.agent
            if not hasattr(base.service, "decide"):
                pytest.skip("charging service without decide()/durable_mark()")
            agent = ChargingAgent(base.service, base.smap, origin_host=base.origin_host,
                                  origin_realm=base.origin_realm, when_durable=failing)
            peer = Peer(app)
            agent.respond(ccr("r;2", 1, 0, A("Multiple-Services-Indicator", 1),
                              mscc(100, rsu=("CC-Time", 60))), peer)
            await settle(app)
            assert [a.get("Result-Code") for _, a, _ in peer.replies] == [5012]
            assert agent.metrics.requests == {("CCR", 5012): 1}
        finally:
            await app.close()

    asyncio.run(main())


def test_without_durability_hook_falls_back_to_handle(tmp_path: Path) -> None:
    async def main() -> None:
        app = await build(tmp_path)
        try:
            base = app.agent
            agent = ChargingAgent(base.service, base.smap, origin_host=base.origin_host,
                                  origin_realm=base.origin_realm)
            peer = Peer(app)
            agent.respond(ccr("r;3", 1, 0, A("Multiple-Services-Indicator", 1),
                              mscc(100, rsu=("CC-Time", 60))), peer)
            mark = app.journal.position
            await settle(app)
            await asyncio.gather(*agent._tasks)
            assert [a.get("Result-Code") for _, a, _ in peer.replies] == [2001]
            assert peer.replies[0][2] >= mark
        finally:
            await app.close()

    asyncio.run(main())


def test_bad_request_and_unserved_command_answer_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        app = await build(tmp_path)
        try:
            peer = Peer(app)
            bad = ccr("r;4", 1, 0)
            bad.avps = [a for a in bad.avps if a.code != 461]  # no Service-Context-Id
            app.agent.respond(bad, peer)
            str_ = decode_message(Message.request(275, 4, [
                A("Session-Id", "r;5"), A("Origin-Host", "r.icx.test"),
                A("Origin-Realm", "icx.test"), A("Destination-Realm", "icx.local")],
                hop_by_hop=9, end_to_end=9).encode())
            app.agent.respond(str_, peer)
            got = [(a.get("Result-Code"), a.is_error) for _, a, _ in peer.replies]
            assert got == [(5005, False), (3001, True)]
        finally:
            await app.close()

    asyncio.run(main())


def test_non_eager_agent_runs_decisions_in_tasks(tmp_path: Path) -> None:
    """A store that awaits under asyncio.timeout (redis-py's pool) needs a current Task from
    the first step: with eager=False the decision runs in one (Redis answered 5012 before)."""

    async def main() -> None:
        app = await build(tmp_path)
        try:
            base = app.agent
            service = base.service
            decide = service.decide

            async def timed_decide(req: Any, *, now: float) -> Any:
                async with asyncio.timeout(5):  # RuntimeError outside a Task
                    await asyncio.sleep(0)
                    return await decide(req, now=now)

            service.decide = timed_decide  # type: ignore[method-assign]
            agent = ChargingAgent(service, base.smap, origin_host=base.origin_host,
                                  origin_realm=base.origin_realm,
                                  when_durable=app.journal.call_when_durable, eager=False)
            peer = Peer(app)
            agent.respond(ccr("r;6", 1, 0, A("Multiple-Services-Indicator", 1),
                              mscc(100, rsu=("CC-Time", 60))), peer)
            assert agent._tasks
            await asyncio.gather(*agent._tasks)
            await settle(app)
            assert [a.get("Result-Code") for _, a, _ in peer.replies] == [2001]
            assert app.agent.eager  # the embedded store: eager by default
        finally:
            await app.close()

    from charging.service import ChargingService
    if not hasattr(ChargingService, "decide"):
        pytest.skip("charging service without decide()/durable_mark()")
    asyncio.run(main())


def test_non_eager_answers_are_the_specs(tmp_path: Path) -> None:
    """With eager=False (a store that awaits: Redis) the compiled Responder, when built,
    translates, runs the decision in a Task and answers through its Durable callback: the
    same answer bytes and metrics as the Python spec (respond_py), each sent only once the
    journal is durable past the request's records."""

    async def session(app: ChargingApp, use_spec: bool) -> tuple[list[bytes], Any]:
        base = app.agent
        agent = ChargingAgent(base.service, base.smap, origin_host=base.origin_host,
                              origin_realm=base.origin_realm,
                              when_durable=app.journal.call_when_durable, eager=False)
        respond = agent.respond_py if use_spec else agent.respond
        if not use_spec and _LANE is not None:
            assert isinstance(respond, _LANE.Responder)  # the twin answers
        peer = Peer(app)
        requests = [
            ccr("r;7", 1, 0, A("Multiple-Services-Indicator", 1),
                mscc(100, rsu=("CC-Time", 60))),
            ccr("r;7", 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
            ccr("r;7", 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),  # again
            ccr("r;7", 3, 2, mscc(100, usu=("CC-Time", 20), reason=2)),
            ccr("r;8", 2, 5, mscc(100, rsu=("CC-Time", 60))),  # no such session
        ]
        await answer_each(app, agent, respond, peer, requests)
        return [a.encode() for _, a, _ in peer.replies], agent.metrics.requests

    async def main(d: Path, use_spec: bool) -> tuple[list[bytes], Any]:
        app = await build(d)
        try:
            return await session(app, use_spec)
        finally:
            await app.close()

    from charging.service import ChargingService
    if not hasattr(ChargingService, "decide"):
        pytest.skip("charging service without decide()/durable_mark()")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    got = asyncio.run(main(tmp_path / "a", False))
    want = asyncio.run(main(tmp_path / "b", True))
    assert [decode_message(a).get("Result-Code") for a in got[0]] == [2001, 2001, 2001, 2001,
                                                                     5002]
    assert got == want
