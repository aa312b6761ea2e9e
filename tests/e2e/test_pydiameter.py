"""python-diameter (its own venv, out of process) charges against the real server.

Balances must move by exactly the rated amounts of config/decks/retail.csv and the journal
must hold matching records.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from charging.money import parse_amount
from tests.e2e.conftest import PYD, ROOT, Server

# Skipped on a dev box without the venv; under CI=true the missing peer fails the run instead.
pytestmark = pytest.mark.skipif(not PYD.exists() and os.environ.get("CI") != "true",
                                reason="needs .venv-pydiameter (make build)")

DRIVER = ROOT / "tests" / "e2e" / "pyd_driver.py"


def drive(server: Server, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = json.dumps({"port": server.port, "steps": steps})
    proc = subprocess.run([str(PYD), str(DRIVER)], input=spec, capture_output=True, text=True,
                          timeout=120, cwd="/")  # cwd="/": never import our `diameter`
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def voice(sid: str, rtype: int, n: int, sub: str = "41790000001", **mscc: Any) -> dict:
    return {"cmd": "ccr", "session": sid, "type": rtype, "number": n, "subscriber": sub,
            "context": "32260@3gpp.org", "called": "tel:+41791234567", "aoc": 1,
            "msccs": [{"rg": 100, **mscc}]}


def effects(records: list[dict], account: str) -> int:
    return sum(parse_amount(e["amount"]) for r in records for e in r["balance_effects"]
               if e["account"] == account)


def test_voice_data_and_sms_move_balances_by_the_rated_amounts(server: Server) -> None:
    out = drive(server, [
        voice("pyd;v;1", 1, 0, rsu={"cc_time": 120}),
        voice("pyd;v;1", 2, 1, usu={"cc_time": 90}, rsu={"cc_time": 120}, reason=3),
        voice("pyd;v;1", 3, 2, usu={"cc_time": 31}, reason=2),
        {"cmd": "ccr", "session": "pyd;d;1", "type": 1, "number": 0, "subscriber": "41790000002",
         "context": "32251@3gpp.org", "apn": "internet",
         "msccs": [{"rg": 1, "rsu": {"cc_total_octets": 5_000_000}}]},
        {"cmd": "ccr", "session": "pyd;d;1", "type": 3, "number": 1, "subscriber": "41790000002",
         "context": "32251@3gpp.org", "apn": "internet",
         "msccs": [{"rg": 1, "usu": {"cc_total_octets": 4_000_000}}]},
        {"cmd": "ccr", "session": "pyd;s;1", "type": 4, "number": 0, "subscriber": "41790000003",
         "context": "32274@3gpp.org", "sms_to": "447700900123", "action": 0, "aoc": 1,
         "rsu": {"cc_service_specific_units": 1}},
    ])
    assert [a["result_code"] for a in out] == [2001] * 6
    assert [(a["cc_request_type"], a["cc_request_number"]) for a in out] == [
        (1, 0), (2, 1), (3, 2), (1, 0), (3, 1), (4, 0)]
    assert out[0]["session_id"] == "pyd;v;1"
    assert out[0]["msccs"][0]["granted"] == {"cc_time": 120}
    assert out[0]["msccs"][0]["validity_time"] == 600
    assert out[2]["cost"] == [242, -3, 978]  # 121 s at 0.12 EUR/min, 60/1
    assert out[3]["msccs"][0]["granted"] == {"cc_total_octets": 5_000_000}
    # voice 0.242, data 4 MB at 0.01 = 0.04, SMS 0.05
    assert server.balance("41790000001") == (50_000_000 - 242_000, 0)
    assert server.balance("41790000002") == (50_000_000 - 40_000, 0)
    assert server.balance("41790000003") == (50_000_000 - 50_000, 0)
    recs = server.journal()
    for acct, amount in (("41790000001", -242_000), ("41790000002", -40_000),
                         ("41790000003", -50_000)):
        assert effects(recs, acct) == amount
    rated = [r for r in recs if r.get("type") == "rated" and r.get("session") == "pyd;v;1"]
    assert sum(r["usage"] for r in rated) == 121 and {r["b"] for r in rated} == {"41791234567"}


def test_accounting_records_are_rated_once(server: Server) -> None:
    steps = [{"cmd": "acr", "session": "pyd;rf;1", "record_type": t, "record_number": n}
             for t, n in ((2, 0), (3, 1), (3, 1), (4, 2))]
    out = drive(server, steps)
    assert [a["result_code"] for a in out] == [2001] * 4
    assert [(a["accounting_record_type"], a["accounting_record_number"]) for a in out] == [
        (2, 0), (3, 1), (3, 1), (4, 2)]
    journal = server.journal()
    recs = [r for r in journal if r.get("session") == "pyd;rf;1" and r["type"] == "rated"]
    assert len(recs) == 1 and recs[0]["balance_effects"] == []
    # each ACR journaled once before its ACA (the duplicate INTERIM not again)
    acct = [r["idem"] for r in journal if r["idem"].startswith("rf:pyd;rf;1:")
            and r["idem"].endswith(":acct")]
    assert acct == ["rf:pyd;rf;1:0:acct", "rf:pyd;rf;1:1:acct", "rf:pyd;rf;1:2:acct"]


def test_error_cases_get_the_right_answers(server: Server) -> None:
    out = drive(server, [
        voice("pyd;e;1", 1, 0, sub="999000111", rsu={"cc_time": 60}),  # unknown subscriber
        voice("pyd;e;2", 1, 0, sub="41790000000", rsu={"cc_time": 60}),  # empty balance
        {**voice("pyd;e;3", 1, 0, rsu={"cc_time": 60}), "drop": ["cc_request_number"]},
        voice("pyd;e;4", 2, 1, usu={"cc_time": 10}),  # update of an unknown session
        voice("pyd;dup;1", 1, 0, rsu={"cc_time": 60}),
        voice("pyd;dup;1", 1, 0, rsu={"cc_time": 60}),  # the same request again
    ])
    assert out[0]["result_code"] == 5030
    assert out[1]["result_code"] == 4012
    assert out[2]["result_code"] == 5005 and out[2].get("failed_avp")
    assert out[3]["result_code"] == 5002
    assert out[4] == out[5] and out[4]["result_code"] == 2001
    assert server.balance("41790000001") == (50_000_000, 120_000)  # one hold, not two
    assert server.balance("41790000000") == (0, 0)
