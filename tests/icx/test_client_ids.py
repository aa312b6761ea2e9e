"""The CLI/load-harness Diameter client seeds End-to-End ids per RFC 6733 §3."""

from __future__ import annotations

import asyncio

from icx.diameter_client import ClientPeer


def test_two_clients_in_the_same_second_do_not_share_end_to_end_ids() -> None:
    """The server's duplicate cache keys on Origin-Host + End-to-End-Id: two `icx ccr` runs
    (same Origin-Host) started in one second must not reuse ids, or the second run is
    answered with the first run's stored answer."""

    async def first_ids() -> list[int]:
        seen = []
        for _ in range(3):  # 20 random bits each: a clash is ~3e-6
            peer = ClientPeer("icx-ccr.icx.test", "icx.test")
            seen.append(peer.next_ids()[1])
        return seen

    e2e = asyncio.run(first_ids())
    assert len(set(e2e)) == len(e2e)
    assert all(0 <= x <= 0xFFFFFFFF for x in e2e)
