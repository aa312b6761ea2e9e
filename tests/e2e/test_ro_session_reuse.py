"""A Session-Id reused over a real socket: a client that starts a new call on the Session-Id
of one that ended long before (past ``[store] session_retention``; RFC 6733 §8.8 asks for
unique ids, clients do not always comply) gets it granted and charged as a call of its own
-- not every CCR answered with the first call's CCA and nothing charged. A CCR resent within
the window is still answered again and charged once (RFC 4006 §5.1, facts A9/B5). The
server's clock is moved on by 1,000 s between the calls (the agent's clock)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from icx.diameter_client import mscc
from mediation.agent import ChargingAgent
from tests.e2e.conftest import e2e_settings, serving
from tests.e2e.test_rar_asr_audit import HOST, SUB, ccr
from tests.e2e.test_ro_restart import send


def test_a_reused_session_id_is_a_new_call(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    skew = [0.0]
    monkeypatch.setitem(ChargingAgent.__init__.__kwdefaults__, "clock",
                        lambda: time.time() + skew[0])
    settings, data = e2e_settings(tmp_path), tmp_path / "data"
    sid = f"{HOST};reused;1"

    def call() -> list[tuple[int, ...]]:
        answers = send(srv.port,
                       ccr(sid, 1, 0, mscc(100, rsu=("CC-Time", 60))),
                       ccr(sid, 2, 1, mscc(100, rsu=("CC-Time", 60), usu=("CC-Time", 60))),
                       ccr(sid, 3, 2, mscc(100, usu=("CC-Time", 30))))
        return [(a.get("Result-Code"), a.get("CC-Request-Number")) for a in answers]

    with serving(settings, data) as srv:
        start = srv.balance(SUB)
        assert call() == [(2001, 0), (2001, 1), (2001, 2)]
        assert srv.balance(SUB) == (start[0] - 180_000, 0)  # 90 s at 0.12/min
        # resent within the window (a client that lost the CCAs): answered, not charged
        assert call() == [(2001, 0), (2001, 1), (2001, 2)]
        assert srv.balance(SUB) == (start[0] - 180_000, 0)
        skew[0] = 1000.0
        assert call() == [(2001, 0), (2001, 1), (2001, 2)]
        assert srv.balance(SUB) == (start[0] - 360_000, 0)  # a second call of 0.18
        # the two calls' records: each op key names its own call (Session.tag)
        keys = [r["idem"] for r in srv.journal() if r.get("session") == sid]
        tags = {m[0] for k in keys if (m := re.search(r"~[0-9a-f]+", k))}
        assert len(tags) == 2 and all("~" in k for k in keys), keys
        rated = [r for r in srv.journal() if r.get("session") == sid and r["type"] == "rated"]
        assert [r["price"] for r in rated] == ["0.12", "0.06", "0.12", "0.06"]
