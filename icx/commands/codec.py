"""`icx codec decode`: decode Diameter messages (hex or a binary stream) and show them.

    icx codec decode 0100001480000101000000000000000000000000
    icx codec decode --file frames.bin --check --json

Each message is framed (diameter.framing.FrameBuffer), decoded, optionally validated as a
request/answer (RFC 6733 §7, ``--check``) and printed with dictionary names, or as JSON.
Exit codes: 0 every message decoded (and passed --check); 1 a message failed to decode or
validate; 2 bad input (not hex, unreadable file) as ``source:line: what is wrong``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from diameter import DiameterError, FrameBuffer, check_request, decode_message
from diameter.dump import dump
from diameter.validate import check_answer

_MAX = 16 * 1024 * 1024


def _avp_json(avps: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in avps:
        item: dict[str, Any] = {"code": a.code, "vendor": a.vendor, "flags": a.flags, "name": a.name}
        try:
            v = a.value
        except DiameterError as exc:
            item["error"] = {"result_code": exc.result_code, "message": exc.message}
            out.append(item)
            continue
        if isinstance(v, list):
            item["avps"] = _avp_json(v)
        elif isinstance(v, bytes):
            item["hex"] = v.hex()
        elif isinstance(v, int | float | str):
            item["value"] = v
        else:
            item["value"] = str(v)
        out.append(item)
    return out


def _error_json(exc: DiameterError) -> dict[str, Any]:
    return {
        "result_code": exc.result_code,
        "message": exc.message,
        "e_bit": exc.e_bit,
        "fatal": exc.fatal,
        "failed_avp": exc.failed_avp.hex() if exc.failed_avp else None,
    }


@click.group(name="codec")
def codec() -> None:
    """Diameter codec tools."""


@codec.command(name="decode")
@click.argument("hex_messages", nargs=-1)
@click.option("--file", "path", type=click.Path(dir_okay=False), help="Binary stream of messages.")
@click.option("--check", is_flag=True, help="Also run the RFC 6733 §7 request/answer checks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
def decode(hex_messages: tuple[str, ...], path: str | None, check: bool, as_json: bool) -> None:
    """Decode HEX_MESSAGES (hex strings) or --file and print every message."""
    streams: list[tuple[str, bytes]] = []
    for i, h in enumerate(hex_messages, 1):
        try:
            streams.append((f"<arg{i}>", bytes.fromhex(h)))
        except ValueError as exc:
            click.echo(f"<arg{i}>:1: not hex: {exc}", err=True)
            sys.exit(2)
    if path:
        try:
            streams.append((path, Path(path).read_bytes()))
        except OSError as exc:
            click.echo(f"{path}:1: cannot read: {exc.strerror}", err=True)
            sys.exit(2)
    if not streams:
        click.echo("-:1: give hex messages or --file", err=True)
        sys.exit(2)
    failed = False
    for source, data in streams:
        fb = FrameBuffer(_MAX)
        try:
            frames = fb.feed(data)
        except DiameterError as exc:
            frames = []
            failed = True
            _emit(as_json, source, None, exc)
        if fb.buffered:
            failed = True
            _emit(as_json, source, None, DiameterError(5015, f"{fb.buffered} trailing octets", fatal=True))
        for raw in frames:
            try:
                msg = decode_message(raw)
            except DiameterError as exc:
                failed = True
                _emit(as_json, source, None, exc)
                continue
            err = None
            if check:
                try:
                    (check_request if msg.is_request else check_answer)(msg)
                except DiameterError as exc:
                    err = exc
                    failed = True
            _emit(as_json, source, msg, err)
    sys.exit(1 if failed else 0)


def _emit(as_json: bool, source: str, msg: Any, err: DiameterError | None) -> None:
    if as_json:
        doc: dict[str, Any] = {"source": source}
        if msg is not None:
            doc.update(
                code=msg.code, app_id=msg.app_id, flags=msg.flags, hop_by_hop=msg.hop_by_hop,
                end_to_end=msg.end_to_end, avps=_avp_json(msg.avps),
            )
        if err is not None:
            doc["error"] = _error_json(err)
        click.echo(json.dumps(doc))
        return
    if msg is not None:
        click.echo(dump(msg))
    if err is not None:
        click.echo(f"{source}: error {err.result_code}: {err.message}", err=True)


commands = [codec]
