"""Human-readable text of a message (for logs at debug level, tests and operator tools).

Names and enum labels come from the dictionary; unknown AVPs show code/vendor and hex.
Values that do not decode are shown as <undecodable: ...> instead of raising.
"""

from __future__ import annotations

from typing import Any

from diameter import dictionary
from diameter.errors import DiameterError

__all__ = ["dump", "dump_avps"]


def _command_name(code: int, app_id: int, request: bool) -> str:
    c = dictionary.command(code, app_id)
    if c is None:
        return f"Command-{code}"
    return c.request_abbrev if request else c.answer_abbrev


def dump(msg: Any) -> str:
    """Multi-line text of ``msg`` (a diameter.message.Message): header line, then AVPs."""
    flags = "".join(ch for bit, ch in ((0x80, "R"), (0x40, "P"), (0x20, "E"), (0x10, "T")) if msg.flags & bit)
    head = (
        f"{_command_name(msg.code, msg.app_id, msg.is_request)} code={msg.code} app={msg.app_id} "
        f"flags={flags or '-'} hbh=0x{msg.hop_by_hop:08x} e2e=0x{msg.end_to_end:08x}"
    )
    return "\n".join([head, *dump_avps(msg.avps, 1)])


def dump_avps(avps: list[Any], depth: int = 0) -> list[str]:
    """One line per AVP, members of Grouped AVPs indented below their group."""
    out: list[str] = []
    pad = "  " * depth
    for a in avps:
        d = dictionary.avp(a.code, a.vendor)
        name = d.name if d else f"AVP-{a.code}" + (f"/{a.vendor}" if a.vendor else "")
        try:
            v = a.value
        except DiameterError as exc:
            out.append(f"{pad}{name} <undecodable: {exc.result_code} {exc.message}>")
            continue
        if isinstance(v, list):
            out.append(f"{pad}{name}")
            out += dump_avps(v, depth + 1)
            continue
        label = d.enum.get(v) if d and d.enum and isinstance(v, int) else None
        shown = f"{v} ({label})" if label else (v.hex() if isinstance(v, bytes) else str(v))
        out.append(f"{pad}{name} = {shown}")
    return out
