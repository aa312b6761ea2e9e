"""Real captures replayed against the server (subscribers known via tests/e2e/conftest.py).

nDPI Comverse CCR I/U/T (CC-Money quota) and the magma Gy session (I, U x 12, T with MSCC
for rating groups 9/3/2/1, octets): every CCA is 2001 with sensible grants and echoes
Session-Id, CC-Request-Type and CC-Request-Number (oracles DIAMETER-DCCA-COMVERSE-REPLAY and
DIAMETER-GY-MAGMA-REPLAY in ../shared/data/oracles/third_party_oracles.json).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from diameter.message import Message, decode_message
from icx.diameter_client import connect
from tests.e2e.conftest import Server
from tests.pcaputil import diameter_messages


def replay(server: Server, requests: list[Message]) -> list[Message]:
    async def run() -> list[Message]:
        peer = await connect("127.0.0.1", server.port, origin_host="replay.icx.test")
        answers = []
        try:
            for req in requests:
                raw = req.encode()
                fut = peer.send_raw(raw[20:], req.code, req.app_id, proxiable=True)
                assert fut is not None
                answers.append(decode_message(await asyncio.wait_for(fut, 10)))
        finally:
            await peer.close()
        return answers

    return asyncio.run(run())


def gy_ccrs(path: Path) -> list[Message]:
    msgs = [decode_message(m) for m in diameter_messages(path)]
    return [m for m in msgs if m.code == 272 and m.app_id == 4 and m.is_request]


def check_echo(req: Message, ans: Message) -> None:
    assert ans.avps[0].name == "Session-Id" and ans.get("Session-Id") == req.get("Session-Id")
    assert ans.get("CC-Request-Type") == req.get("CC-Request-Type")
    assert ans.get("CC-Request-Number") == req.get("CC-Request-Number")
    assert ans.get("Auth-Application-Id") == 4 and not ans.is_request


def test_comverse_ccr_i_u_t(server: Server, shared_data: Path) -> None:
    reqs = gy_ccrs(shared_data / "diameter" / "ndpi_diameter_dcca_ccr_cca.pcap")
    assert [r.get("CC-Request-Type") for r in reqs] == [1, 2, 3]
    answers = replay(server, reqs)
    for req, ans in zip(reqs, answers, strict=True):
        check_echo(req, ans)
        assert ans.get("Result-Code") == 2001
    # CC-Money in, CC-Money out: the I and U answers grant money (the RSU asked for 2 units).
    for ans in answers[:2]:
        gsu = ans.find("Granted-Service-Unit")
        assert gsu is not None and gsu.find("CC-Money") is not None
        assert ans.get("Validity-Time") == 600
    assert answers[2].find("Granted-Service-Unit") is None
    amount, reserved = server.balance("919080000016")
    # The U and T report CC-Money 1 each (Value-Digits 1, no Exponent): 2.00 debited, exactly.
    assert reserved == 0 and amount == 50_000_000 - 2_000_000


def test_magma_gy_session(server: Server, shared_data: Path) -> None:
    reqs = gy_ccrs(shared_data / "diameter" / "magma_gx_gy_combined_03.pcapng")
    assert [r.get("CC-Request-Type") for r in reqs] == [1] + [2] * 12 + [3]
    answers = replay(server, reqs)
    for req, ans in zip(reqs, answers, strict=True):
        check_echo(req, ans)
        assert ans.get("Result-Code") == 2001
    first = answers[0].find_all("Multiple-Services-Credit-Control")
    assert sorted(m.get("Rating-Group") for m in first) == [1, 2, 3, 9]
    for m in first:
        assert m.get("Result-Code") == 2001
        assert m.find("Granted-Service-Unit").get("CC-Total-Octets") == 200_000
    used = sum(u.find("Used-Service-Unit").get("CC-Total-Octets", 0)
               for r in reqs for u in r.find_all("Multiple-Services-Credit-Control")
               if u.find("Used-Service-Unit") is not None)
    amount, reserved = server.balance("1234567810")
    assert reserved == 0
    # 0.01 EUR/MB billed per KB (1000/1000): whole session priced on cumulative usage per RG.
    assert 0 < 50_000_000 - amount <= (used // 1000 + 4) * 10
