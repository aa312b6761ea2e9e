"""`icx ccr`: send one charging session (or SMS event) to a server and show what happened.

    icx ccr --to 41791234567 --seconds 60            # voice: CCR-I (RSU 60 s), CCR-T (USU 60 s)
    icx ccr --service sms --to 447700900123          # SMS: CCR-Event DIRECT_DEBITING
    icx ccr --service data --octets 5000000          # data: CCR-I, CCR-T with 5 MB used

Exit status: 0 when every answer's Result-Code is a success (2xxx), 3 when the server answered
with another one (4012 no credit, 5030 unknown subscriber, ...: the answers are still printed),
1 when the server cannot be reached, 2 for bad options -- so a script can tell "charged" from
"refused" without parsing the output.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from typing import Any

import click

from charging.currency import currency_alpha, minor_places
from diameter.message import Message
from icx.diameter_client import A, connect, data_info, mscc, sms_info, voice_info

CONTEXT = {"voice": "32260@3gpp.org", "data": "32251@3gpp.org", "sms": "32274@3gpp.org"}


def _summary(ans: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"result_code": ans.get("Result-Code"),
                           "cc_request_type": ans.get("CC-Request-Type"),
                           "cc_request_number": ans.get("CC-Request-Number")}
    for m in ans.find_all("Multiple-Services-Credit-Control"):
        gsu = m.find("Granted-Service-Unit")
        out.setdefault("mscc", []).append({
            "rating_group": m.get("Rating-Group"), "result_code": m.get("Result-Code"),
            "granted": {a.name: a.value for a in gsu.value} if gsu is not None else None,
            "validity_time": m.get("Validity-Time"),
            "final_unit": m.find("Final-Unit-Indication") is not None})
    cost = ans.find("Cost-Information")
    uv = cost.find("Unit-Value") if cost is not None else None
    if cost is not None and uv is not None:
        digits, exp = uv.get("Value-Digits"), uv.get("Exponent", 0)
        amount = Decimal(digits).scaleb(exp)  # Unit-Value, RFC 4006 §8.8
        # the currency the server priced in (Currency-Code, ISO 4217 numeric, RFC 4006 §8.11):
        # the demo deck's EUR was printed for every deck, a JPY price as "EUR"
        code = cost.get("Currency-Code")
        currency = currency_alpha(code) if isinstance(code, int) else None
        out["currency"] = currency if currency is not None else code
        # at least the currency's minor places, as every amount icx prints ("1.00" EUR,
        # "0.203333" EUR, "12" JPY; not "1"), and every further digit the price has
        places = Decimal(1).scaleb(-minor_places(currency) if currency else -2)
        out["cost"] = str(max(amount, amount.quantize(places), key=_places))
    return out


def refused(steps: list[dict[str, Any]]) -> bool:
    """Whether an answer's Result-Code is not a success (RFC 6733 §7.1: 2xxx)."""
    return any(not (isinstance(s.get("result_code"), int) and 2000 <= s["result_code"] < 3000)
               for s in steps)


def _places(d: Decimal) -> int:
    exponent = d.as_tuple().exponent
    return -exponent if isinstance(exponent, int) else 0


async def _run(host: str, port: int, service: str, sub: str, to: str, seconds: int,
               octets: int, realm: str) -> list[dict[str, Any]]:
    peer = await connect(host, port, origin_host="icx-ccr.icx.test", origin_realm="icx.test")
    sid = f"icx-ccr.icx.test;{int(time.time())};{time.perf_counter_ns() % 10**9}"
    base = [A("Session-Id", sid), A("Origin-Host", peer.origin_host),
            A("Origin-Realm", peer.origin_realm), A("Destination-Realm", realm),
            A("Auth-Application-Id", 4), A("Service-Context-Id", CONTEXT[service])]
    subid = A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", sub)])
    aoc = A("AoC-Request-Type", 1)  # ask for Cost-Information
    steps: list[dict[str, Any]] = []
    try:
        if service == "sms":
            msg = Message.request(272, 4, [*base, A("CC-Request-Type", 4),
                                           A("CC-Request-Number", 0), subid,
                                           A("Requested-Action", 0), aoc,
                                           A("Requested-Service-Unit",
                                             [A("CC-Service-Specific-Units", 1)]),
                                           sms_info(to)], proxiable=True)
            steps.append({"request": "CCR-Event", **_summary(await peer.request(msg))})
            return steps
        unit, amount, rg = (("CC-Time", seconds, 100) if service == "voice"
                            else ("CC-Total-Octets", octets, 1))
        info = voice_info(sub, to) if service == "voice" else data_info(to or "internet")
        ccr_i = Message.request(272, 4, [*base, A("CC-Request-Type", 1),
                                         A("CC-Request-Number", 0), subid,
                                         A("Multiple-Services-Indicator", 1),
                                         mscc(rg, rsu=(unit, amount)), info], proxiable=True)
        ans = await peer.request(ccr_i)
        steps.append({"request": "CCR-I", **_summary(ans)})
        if ans.get("Result-Code") != 2001:
            return steps
        granted = amount
        for m in ans.find_all("Multiple-Services-Credit-Control"):
            gsu = m.find("Granted-Service-Unit")
            if gsu is not None and gsu.get(unit) is not None:
                granted = min(amount, gsu.get(unit))
        ccr_t = Message.request(272, 4, [*base, A("CC-Request-Type", 3),
                                         A("CC-Request-Number", 1), subid, aoc,
                                         mscc(rg, usu=(unit, granted), reason=2), info],
                                proxiable=True)
        steps.append({"request": "CCR-T", "used": granted,
                      **_summary(await peer.request(ccr_t))})
        return steps
    finally:
        await peer.close()


@click.command("ccr")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3868, show_default=True, type=click.IntRange(1, 65535))
@click.option("--service", type=click.Choice(["voice", "data", "sms"]), default="voice",
              show_default=True)
@click.option("--from", "sub", default="41790000001", show_default=True,
              help="The charged subscriber (E.164, Subscription-Id END_USER_E164).")
@click.option("--to", default="41791234567", show_default=True,
              help="B-number (voice), recipient (sms) or APN (data).")
@click.option("--seconds", default=60, show_default=True, type=int, help="Voice call length.")
@click.option("--octets", default=1_000_000, show_default=True, type=int, help="Data used.")
@click.option("--realm", default="icx.local", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def ccr(host: str, port: int, service: str, sub: str, to: str, seconds: int, octets: int,
        realm: str, as_json: bool) -> None:
    """Send one charging session (CCR-I + CCR-T) or an SMS event and print the answers."""
    if seconds < 0 or octets < 0:
        click.echo("--seconds/--octets:1: must not be negative", err=True)
        sys.exit(2)
    # CC-Time is an Unsigned32, CC-Total-Octets an Unsigned64 (RFC 4006 §8.21, §8.23): past
    # them the encoder raised struct.error (a traceback, exit 1)
    for name, value, top, avp in (("--seconds", seconds, 2**32 - 1, "CC-Time, Unsigned32"),
                                  ("--octets", octets, 2**64 - 1,
                                   "CC-Total-Octets, Unsigned64")):
        if value > top:
            click.echo(f"{name}:1: {value} is out of range: at most {top} ({avp})", err=True)
            sys.exit(2)
    try:
        steps = asyncio.run(_run(host, port, service, sub, to, seconds, octets, realm))
    except (OSError, ConnectionError, TimeoutError) as exc:
        click.echo(f"error: cannot talk to {host}:{port}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(steps))
    else:
        for s in steps:
            click.echo(f"{s['request']}: Result-Code {s['result_code']}"
                       + (f", used {s['used']}" if "used" in s else "")
                       + (f", cost {s['cost']} {s['currency']}" if "cost" in s else ""))
            for m in s.get("mscc", []):
                granted = ", ".join(f"{k} {v}" for k, v in (m["granted"] or {}).items())
                click.echo(f"  RG {m['rating_group']}: {m['result_code']}"
                           + (f", granted {granted}" if granted else "")
                           + (" FINAL" if m["final_unit"] else ""))
    if refused(steps):
        sys.exit(3)


commands = [ccr]
