"""A tiny JSON client for the admin HTTP API, shared by `icx balance` and `icx sessions`.

Exit codes per the CLI convention: 2 for bad input (an --admin that is no http(s) URL; the
API's HTTP 400/404/409: bad amount, unknown account/session, a reused key), 1 for runtime
failures (server unreachable, 5xx, an answer that is not the API's JSON).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

DEFAULT_ADMIN = "http://127.0.0.1:8080"

admin_option = click.option(
    "--admin", "admin", default=lambda: os.environ.get("ICX_ADMIN_URL", DEFAULT_ADMIN),
    show_default="env ICX_ADMIN_URL or " + DEFAULT_ADMIN,
    help="Base URL of the server's admin HTTP API.")


def call(admin: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Do one request; on failure print the reason to stderr and exit 1 or 2."""
    _check_url(admin)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(admin.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read())["error"]
        except (ValueError, TypeError, KeyError, OSError):
            # no icx answer: some other web server at that address (its error page), or a
            # proxy's -- its 404 is no "unknown account", so not exit 2 (bad input)
            where = f"{admin.rstrip('/')}{path} answered HTTP {exc.code} ({exc.reason})"
            click.echo(f"error: {where}, not JSON: is --admin an icx admin API?"
                       if exc.code < 500 else f"error: {where}", err=True)
            sys.exit(1)
        click.echo(f"error: {msg}", err=True)
        sys.exit(2 if exc.code in (400, 404, 409) else 1)
    except (urllib.error.URLError, OSError) as exc:
        click.echo(f"error: cannot reach the admin API at {admin}: {exc}", err=True)
        sys.exit(1)
    try:
        return json.loads(raw or b"null")
    except ValueError:  # some other HTTP server at that address (or a proxy's page)
        click.echo(f"error: {admin}{path} did not answer JSON: is --admin an icx admin API?",
                   err=True)
        sys.exit(1)


def segment(value: str) -> str:
    """*value* (an account id, an identity, a Session-Id) as one URL path segment: quoted,
    so "a b" is no InvalidURL traceback and "41790000001#2" or "x?y" not another account."""
    return urllib.parse.quote(value, safe="")


def _check_url(admin: str) -> None:
    """Exit 2 with one line when *admin* is no http(s) URL: urllib would raise ValueError
    (a traceback) for "nowhere" or "http://[::1", and call "host:8080" an unknown URL type."""
    try:
        parts = urllib.parse.urlsplit(admin)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok:
        click.echo(f"error: --admin {admin!r} is not an http(s) URL such as {DEFAULT_ADMIN}",
                   err=True)
        sys.exit(2)
