"""Admin HTTP (aiohttp): /healthz, /metrics (Prometheus text) and the JSON operator API.

Routes (all JSON unless noted; amounts are decimal strings):

=========================================  ==================================================
``GET  /healthz``                           ``{"status": "ok", "sessions": N}``; 503 and
                                            ``"failed"`` once the ledger failed closed
``GET  /metrics``                           Prometheus text 0.0.4
``GET  /api/accounts/{id}``                 account + balances (id or an identity)
``POST /api/accounts/{id}/topup``           body ``{"amount": "10.00", "key"?: "...",
                                            "balance"?: "EUR", "reauth"?: true}`` (other
                                            fields: 400); sends RAR to the account's open
                                            sessions (facts D; not those killed and
                                            awaiting their CCR-T) unless false
``GET  /api/sessions[?account=ID]``         open sessions (of the account with that id or
                                            identity)
``POST /api/sessions/{sid}/kill``           ASR to the client; ASA 2001: the session waits for
                                            its CCR-T (``awaiting_ccr_t``, at most
                                            ``kill_grace_seconds``), else ``released``
``POST /api/sessions/{sid}/reauth``         RAR to the client (kill, reauth: 404 for no open
                                            session, 409 for an Rf one: no ASR/RAR there)
``POST /api/reauth``                        RAR to every open session (but killed ones)
``POST /api/rates/reload``                  use the deck versions imported since start (``icx
                                            rates import``): calls from the next second on;
                                            calls in progress keep theirs; body ``{"reauth"?:
                                            true}``: RAR to the changed decks' sessions
=========================================  ==================================================

Business logic lives in charging/operator.py and the charging service; this layer only parses
and formats.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from charging.operator import (
    OperatorError,
    account_json,
    find_account,
    reauth_targets,
    topup,
)
from charging.ports import Accounts, Ledger
from charging.service import ChargingService
from mediation.agent import ChargingAgent

KEY_APP = web.AppKey("icx_admin", dict)
# POST /api/accounts/{id}/topup: the fields its body may have
_TOPUP_FIELDS = frozenset({"amount", "key", "balance", "reauth"})
_TOPUP_BODY = '{"amount": "10.00", "key"?: "...", "balance"?: "EUR", "reauth"?: true}'
_JSON_NAMES = {str: "string", bool: "boolean"}
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format 0.0.4


def _json_type(value: Any) -> str:
    """The JSON type name of a decoded value (for error messages)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else type(value).__name__


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def build_app(*, service: ChargingService, agent: ChargingAgent | None, accounts: Accounts,
              ledger: Ledger, clock: Callable[[], float] = time.time) -> web.Application:
    """The aiohttp application. Caller runs it (see :func:`start_admin`)."""
    app = web.Application()
    ctx = {"service": service, "agent": agent, "accounts": accounts, "ledger": ledger,
           "clock": clock}
    app[KEY_APP] = ctx

    async def healthz(_: web.Request) -> web.Response:
        # A ledger that failed closed (its journal could not write: disk full, EIO) refuses
        # every money op until a restart recovers it: unhealthy, so a supervisor restarts us.
        if getattr(ledger, "failed", False):
            return _json({"status": "failed", "reason": "the journal failed: money ops are "
                          "refused until a restart", "sessions": len(service.sessions)}, 503)
        return _json({"status": "ok", "sessions": len(service.sessions)})

    async def metrics(_: web.Request) -> web.Response:
        body = agent.metrics.render() if agent is not None else ""
        # the text format names its version in the Content-Type (a scraper picks its parser
        # by it); aiohttp's content_type= cannot carry the parameter
        return web.Response(body=body.encode(), headers={"Content-Type": _METRICS_TYPE})

    async def get_account(request: web.Request) -> web.Response:
        try:
            view = await find_account(accounts, request.match_info["id"])
        except OperatorError as exc:
            return _json({"error": str(exc)}, exc.status)
        return _json(account_json(view))

    async def post_topup(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, ValueError):
            return _json({"error": "body must be JSON"}, 400)
        if not isinstance(body, dict) or "amount" not in body:
            return _json({"error": "need {\"amount\": \"10.00\"}"}, 400)
        # A misspelt "key" would make a retried top-up credit twice; a "reauth": "no" would
        # read as true: refuse both rather than guess.
        unknown = sorted(set(body) - _TOPUP_FIELDS)
        if unknown:
            return _json({"error": f"unknown field {unknown[0]!r}; the body is {_TOPUP_BODY}"},
                         400)
        for name, kind in (("key", str), ("balance", str), ("reauth", bool)):
            if name in body and not isinstance(body[name], kind):
                return _json({"error": f"{name} must be a JSON {_JSON_NAMES[kind]}, not JSON "
                                       f"{_json_type(body[name])}"}, 400)
        amount = body["amount"]
        # JSON numbers with a fraction arrive as binary floats (10.1 is not exactly 10.1):
        # money is a decimal string, or a whole number of major units; bool is no amount.
        if type(amount) is not str and type(amount) is not int:
            return _json({"error": "amount must be a decimal string such as \"10.50\" "
                                   f"(or a whole number), not JSON {_json_type(amount)} "
                                   f"{json.dumps(amount)}"}, 400)
        try:
            out = await topup(accounts, ledger, request.match_info["id"], str(amount),
                              now=clock(), balance=body.get("balance"), key=body.get("key"))
        except OperatorError as exc:
            return _json({"error": str(exc)}, exc.status)
        if agent is not None and body.get("reauth", True):
            # (not those killed and awaiting their CCR-T: reauth_targets)
            sids = reauth_targets(service.sessions, account=out["account"])
            out["reauth"] = await _reauth_many(agent, sids)
        return _json(out)

    async def list_sessions(request: web.Request) -> web.Response:
        account = request.query.get("account")
        wanted: set[str | None] | None = None
        if account is not None:
            wanted = {account}
            # an id or any identity of the account, as GET /api/accounts/{id} takes (an
            # unknown one: no sessions)
            try:
                wanted.add((await find_account(accounts, account)).account)
            except OperatorError:
                pass
        rows = [s.as_dict() for s in service.open_sessions()
                if wanted is None or s.account in wanted]
        return _json({"sessions": rows, "count": len(rows)})

    def not_online(sid: str) -> web.Response | None:
        """The answer to a kill/re-auth of *sid* when it is no open online session."""
        if service.sessions.get(sid) is not None:
            return None
        if service.offline.get(sid) is not None:  # listed by /api/sessions too
            return _json({"error": f"{sid!r} is an offline (Rf) accounting session: it holds "
                                   "no credit and takes no ASR or RAR"}, 409)
        return _json({"error": f"no open session {sid!r}"}, 404)

    async def kill(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        refused = not_online(sid)
        if refused is not None:
            return refused
        asa = await agent.abort(sid) if agent is not None else None
        # ASA 2001: the client will send its CCR-T (protocol-facts D), the session waits for it
        # with its hold (kill_grace bounds the wait); any other answer: released now
        await service.kill(sid, now=clock(), asa_result_code=asa)
        waiting = service.sessions.get(sid) is not None
        out: dict[str, Any] = {"session_id": sid, "asa_result_code": asa,
                               "released": not waiting, "awaiting_ccr_t": waiting}
        if waiting:
            out["kill_grace_seconds"] = service.config.kill_grace
        return _json(out)

    async def reauth(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        refused = not_online(sid)
        if refused is not None:
            return refused
        raa = await agent.reauth(sid) if agent is not None else None
        return _json({"session_id": sid, "raa_result_code": raa})

    async def reauth_all(_: web.Request) -> web.Response:
        if agent is None:
            return _json({"sent": 0})
        results = await _reauth_many(agent, reauth_targets(service.sessions))
        return _json({"sent": len(results), "results": results})

    async def reload_rates(request: web.Request) -> web.Response:
        body: Any = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except (json.JSONDecodeError, ValueError):
                return _json({"error": "body must be JSON"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("reauth", True), bool):
            return _json({"error": "body is {\"reauth\"?: true|false}"}, 400)
        preload = getattr(service.rater, "preload", None)
        if preload is not None:  # load and index the new versions off the loop
            await asyncio.get_running_loop().run_in_executor(None, preload)
        changed = service.reload_rates(clock())
        out: dict[str, Any] = {"changed": {deck: {"from": old, "to": new}
                                           for deck, (old, new) in sorted(changed.items())}}
        if agent is not None and changed and body.get("reauth", True):
            # RFC 4006 §5.5: the clients re-authorise; a call in progress keeps the tariff it
            # started with (it is rated by its total usage at its start), the next get the new
            sids = reauth_targets(service.sessions, decks=changed)
            out["reauth"] = await _reauth_many(agent, sids)
        return _json(out)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/accounts/{id}", get_account)
    app.router.add_post("/api/accounts/{id}/topup", post_topup)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_post("/api/sessions/{sid}/kill", kill)
    app.router.add_post("/api/sessions/{sid}/reauth", reauth)
    app.router.add_post("/api/reauth", reauth_all)
    app.router.add_post("/api/rates/reload", reload_rates)
    return app


async def _reauth_many(agent: ChargingAgent, sids: list[str]) -> dict[str, int | None]:
    codes = await asyncio.gather(*(agent.reauth(s) for s in sids), return_exceptions=True)
    return {s: (c if isinstance(c, int) else None) for s, c in zip(sids, codes, strict=True)}


async def start_admin(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving *app* on host:port; return the runner (call ``await runner.cleanup()``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
