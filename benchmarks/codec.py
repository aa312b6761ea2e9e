"""Codec benchmark: decode a CCR-Update, read what a charging agent reads, encode the CCA.

Ours (compiled twin when built, plus the pure-Python figure measured in a subprocess with
ICX_NO_EXTENSIONS=1) against python-diameter 0.9.0 doing the same decode + encode on the
SAME bytes, out of process in .venv-pydiameter (it imports as `diameter` and clashes with
ours). Prints one JSON line; value = our median µs per decode+encode pair.

    .venv/bin/python -m benchmarks.codec [--reps 7] [--seconds 0.4]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from diameter import Avp, Message, check_request, codec_info, decode_message

ROOT = Path(__file__).resolve().parent.parent
PYDIAMETER = ROOT / ".venv-pydiameter" / "bin" / "python"

ORIGIN_HOST = "ocs.icx.local"
ORIGIN_REALM = "icx.local"


def build_ccr_u() -> bytes:
    """The CCR-Update every contender decodes (Ro, 32251@3gpp.org, one MSCC with USU+RSU)."""
    ps = [
        Avp.new("3GPP-Charging-Id", 0x1A2B3C4D),
        Avp.new("3GPP-PDP-Type", 0),
        Avp.new("PDP-Address", ipaddress.ip_address("10.45.0.7")),
        Avp.new("SGSN-Address", ipaddress.ip_address("172.16.10.101")),
        Avp.new("GGSN-Address", ipaddress.ip_address("172.16.10.102")),
        Avp.new("3GPP-IMSI-MCC-MNC", "00101"),
        Avp.new("3GPP-GGSN-MCC-MNC", "00101"),
        Avp.new("Called-Station-Id", "internet"),
        Avp.new("3GPP-RAT-Type", b"\x06"),
        Avp.new("3GPP-User-Location-Info", bytes.fromhex("8200f110000100f11000000101")),
    ]
    m = Message.request(
        272,
        4,
        [
            Avp.new("Session-Id", "pgw.example.net;1620183172;42;IMSI001010000000001"),
            Avp.new("Origin-Host", "pgw.example.net"),
            Avp.new("Origin-Realm", "example.net"),
            Avp.new("Destination-Realm", ORIGIN_REALM),
            Avp.new("Auth-Application-Id", 4),
            Avp.new("Service-Context-Id", "32251@3gpp.org"),
            Avp.new("CC-Request-Type", 2),
            Avp.new("CC-Request-Number", 3),
            Avp.new("Event-Timestamp", 1_700_000_000),
            Avp.new(
                "Subscription-Id",
                [Avp.new("Subscription-Id-Type", 0), Avp.new("Subscription-Id-Data", "491701234567")],
            ),
            Avp.new("Multiple-Services-Indicator", 1),
            Avp.new(
                "Multiple-Services-Credit-Control",
                [
                    Avp.new("Requested-Service-Unit", [Avp.new("CC-Total-Octets", 0)]),
                    Avp.new(
                        "Used-Service-Unit",
                        [
                            Avp.new("CC-Total-Octets", 1_500_000),
                            Avp.new("CC-Input-Octets", 500_000),
                            Avp.new("CC-Output-Octets", 1_000_000),
                        ],
                    ),
                    Avp.new("Rating-Group", 32),
                    Avp.new("Reporting-Reason", 0),
                ],
            ),
            Avp.new("Service-Information", [Avp.new("PS-Information", ps)]),
        ],
        proxiable=True,
        hop_by_hop=0x11223344,
        end_to_end=0x55667788,
    )
    return m.encode()


def ours_pair(raw: bytes) -> bytes:
    """Decode, read the charging inputs, build and encode the CCA."""
    new = Avp.new
    m = decode_message(raw)
    sid = m.find(263)
    req_type = m["CC-Request-Type"]
    req_num = m["CC-Request-Number"]
    _ = m["Service-Context-Id"]
    sub = m.find("Subscription-Id")
    assert sub is not None
    _ = sub["Subscription-Id-Data"]
    mscc = m.find("Multiple-Services-Credit-Control")
    assert mscc is not None
    rg = mscc["Rating-Group"]
    usu = mscc.find("Used-Service-Unit")
    assert usu is not None
    used = usu["CC-Total-Octets"] + usu["CC-Input-Octets"] * 0 + usu["CC-Output-Octets"] * 0
    assert used == 1_500_000
    cca = m.answer(
        [
            sid,  # type: ignore[list-item]
            new("Result-Code", 2001),
            new("Origin-Host", ORIGIN_HOST),
            new("Origin-Realm", ORIGIN_REALM),
            new("Auth-Application-Id", 4),
            new("CC-Request-Type", req_type),
            new("CC-Request-Number", req_num),
            new(
                "Multiple-Services-Credit-Control",
                [
                    new("Granted-Service-Unit", [new("CC-Total-Octets", 2_000_000)]),
                    new("Rating-Group", rg),
                    new("Validity-Time", 3600),
                    new("Result-Code", 2001),
                ],
            ),
        ]
    )
    return cca.encode()


def ours_decode_check(raw: bytes) -> None:
    """What the peer does with every request before the agent sees it: decode + RFC 6733 §7."""
    check_request(decode_message(raw))


def _time(fn: Any, arg: bytes, reps: int, seconds: float) -> list[tuple[float, float]]:
    """(wall µs, CPU µs) per call for ``reps`` runs of about ``seconds`` each. CPU time is
    reported too because the machine is shared: it excludes time spent waiting for a core."""
    n = 1
    while True:  # calibrate
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 2
    n = max(1, int(n * seconds / dt))
    out = []
    for _ in range(reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        t1 = time.perf_counter()
        c1 = time.process_time()
        out.append(((t1 - t0) / n * 1e6, (c1 - c0) / n * 1e6))
    return out


PYDIAMETER_SCRIPT = r"""
import json, sys, time, statistics
from diameter.message import Message
from diameter.message.commands.credit_control import CreditControlAnswer
from diameter.message.avp.grouped import MultipleServicesCreditControl, GrantedServiceUnit
raw = bytes.fromhex(sys.argv[1]); reps = int(sys.argv[2]); seconds = float(sys.argv[3])
def pair(raw):
    m = Message.from_bytes(raw)
    sid = m.session_id
    rt = m.cc_request_type
    rn = m.cc_request_number
    _ = m.service_context_id
    _ = m.subscription_id[0].subscription_id_data
    mscc = m.multiple_services_credit_control[0]
    rg = mscc.rating_group
    usu = mscc.used_service_unit[0]
    used = usu.cc_total_octets + usu.cc_input_octets * 0 + usu.cc_output_octets * 0
    assert used == 1500000, used
    a = m.to_answer()
    a.session_id = sid
    a.result_code = 2001
    a.origin_host = b"ocs.icx.local"
    a.origin_realm = b"icx.local"
    a.auth_application_id = 4
    a.cc_request_type = rt
    a.cc_request_number = rn
    a.multiple_services_credit_control.append(MultipleServicesCreditControl(
        granted_service_unit=GrantedServiceUnit(cc_total_octets=2000000),
        rating_group=rg, validity_time=3600, result_code=2001))
    return a.as_bytes()
out_bytes = pair(raw)
n = 1
while True:
    t0 = time.perf_counter()
    for _ in range(n): pair(raw)
    dt = time.perf_counter() - t0
    if dt > 0.05: break
    n *= 2
n = max(1, int(n * seconds / dt))
res = []
for _ in range(reps):
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(n): pair(raw)
    t1 = time.perf_counter()
    c1 = time.process_time()
    res.append(((t1 - t0) / n * 1e6, (c1 - c0) / n * 1e6))
print(json.dumps({"runs": res, "cca_len": len(out_bytes)}))
"""


def _measure_pydiameter(raw: bytes, reps: int, seconds: float) -> dict[str, Any] | None:
    if not PYDIAMETER.exists():
        return None
    r = subprocess.run(
        [str(PYDIAMETER), "-c", PYDIAMETER_SCRIPT, raw.hex(), str(reps), str(seconds)],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def _measure_pure(reps: int, seconds: float) -> list[list[float]] | None:
    env = dict(os.environ, ICX_NO_EXTENSIONS="1")
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.codec", "--inner", "--reps", str(reps), "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env=env,
        check=False,
    )
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        return None
    runs: list[list[float]] = json.loads(r.stdout.strip().splitlines()[-1])["runs"]
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.4, help="duration of one repetition")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    raw = build_ccr_u()
    cca = decode_message(ours_pair(raw))
    assert cca["Result-Code"] == 2001 and cca.hop_by_hop == 0x11223344
    runs = _time(ours_pair, raw, args.reps, args.seconds)
    if args.inner:
        print(json.dumps({"runs": runs}))
        return 0
    ext = codec_info()["ext"]
    ours = statistics.median(r[0] for r in runs)
    ours_cpu = statistics.median(r[1] for r in runs)
    check_runs = _time(ours_decode_check, raw, args.reps, args.seconds / 2)
    pure_runs = _measure_pure(args.reps, args.seconds) if ext else [list(r) for r in runs]
    pure = statistics.median(r[0] for r in pure_runs) if pure_runs else None
    pure_cpu = statistics.median(r[1] for r in pure_runs) if pure_runs else None
    pd = _measure_pydiameter(raw, args.reps, args.seconds)
    theirs = statistics.median(r[0] for r in pd["runs"]) if pd else None
    theirs_cpu = statistics.median(r[1] for r in pd["runs"]) if pd else None
    result = {
        "bench": "codec",
        "unit": "us/pair",
        "value": round(ours, 2),
        "baseline": {"name": "python-diameter 0.9.0", "value": round(theirs, 2) if theirs else None},
        "ratio": round(theirs / ours, 1) if theirs else None,
        "ext": ext,
        "pure_us": round(pure, 2) if pure else None,
        "pure_ratio": round(theirs / pure, 1) if theirs and pure else None,
        "cpu_us": round(ours_cpu, 2),
        "baseline_cpu_us": round(theirs_cpu, 2) if theirs_cpu else None,
        "cpu_ratio": round(theirs_cpu / ours_cpu, 1) if theirs_cpu and ours_cpu else None,
        "pure_cpu_us": round(pure_cpu, 2) if pure_cpu else None,
        "decode_check_cpu_us": round(statistics.median(r[1] for r in check_runs), 2),
        "ccr_bytes": len(raw),
        "cca_bytes": len(ours_pair(raw)),
        "reps": args.reps,
        "runs_us": [round(x[0], 2) for x in runs],
        "load1": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
