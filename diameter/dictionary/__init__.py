"""The Diameter dictionary: lookups over the tables declared once in ``dictionary/data.py``.

- ``avp(code, vendor)`` / ``avp_by_name(name)`` -> AvpDef (name, type, M rule, enum, grammar)
- ``avp_type(code, vendor)`` -> AvpType int or None (the codec's hot lookup)
- ``command(code, app_id)`` -> CommandDef (name, request/answer grammar), ``command_known(code)``

The tables are built when this package is first imported (a few ms) and never change after.
"""

from __future__ import annotations

import re

from diameter.dictionary import data
from diameter.dictionary.model import AvpDef, CommandDef, Grammar, MRule, Rule
from diameter.types import TYPE_BY_NAME, AvpType

__all__ = [
    "AvpDef",
    "CommandDef",
    "Grammar",
    "MRule",
    "Rule",
    "avp",
    "avp_by_name",
    "avp_type",
    "command",
    "command_known",
    "enum_name",
    "enum_value",
    "TYPES",
    "AVPS",
    "COMMANDS",
]

_MRULES = {"M": MRule.MUST, "m": MRule.MAY, "-": MRule.MUST_NOT}

AVPS: dict[tuple[int, int], AvpDef] = {}
BY_NAME: dict[str, AvpDef] = {}
# (vendor << 32 | code) -> AvpType int: one dict probe per value decode on the hot path.
# Vendor in the high bits: int hashes are their value, so the code varies the low bits
# the dict indexes by (code << 32 would put every vendor-0 AVP in one probe chain).
TYPES: dict[int, int] = {}
COMMANDS: dict[tuple[int, int | None], CommandDef] = {}
_COMMAND_CODES: set[int] = set()


def _parse_avps() -> dict[str, tuple[int, int, str, str, str]]:
    rows: dict[str, tuple[int, int, str, str, str]] = {}
    for lineno, line in enumerate(data.AVPS.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 5 or parts[3] not in TYPE_BY_NAME or parts[4] not in _MRULES:
            raise ValueError(f"dictionary/data.py AVPS:{lineno}: bad row {line!r}")
        code, vendor, name, tname, mrule = int(parts[0]), int(parts[1]), parts[2], parts[3], parts[4]
        if name in rows:
            raise ValueError(f"dictionary/data.py AVPS:{lineno}: duplicate name {name}")
        rows[name] = (code, vendor, name, tname, mrule)
    return rows


def _parse_enums() -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for line in data.ENUMS.strip().splitlines():
        name, _, body = line.partition(":")
        values: dict[int, str] = {}
        for item in body.split(","):
            num, label = item.split()
            values[int(num)] = label
        out[name.strip()] = values
    return out


_TOKEN = re.compile(r"(?:(\d*)\*(\d*))?([<{\[])\s*([\w-]+)\s*[>}\]]|!([\w-]+)")


def _parse_grammar(text: str, rows: dict[str, tuple[int, int, str, str, str]], where: str) -> Grammar:
    rules: list[Rule] = []
    any_avp = False
    pos = 0
    text = text.strip()
    for m in _TOKEN.finditer(text):
        if text[pos : m.start()].strip():
            raise ValueError(f"{where}: cannot parse {text[pos:m.start()]!r}")
        pos = m.end()
        lo_s, hi_s, bracket, name, forbidden = m.groups()
        star = m.group(0).find("*") >= 0 and not forbidden
        if forbidden:
            name, lo, hi, fixed = forbidden, 0, 0, False
        else:
            fixed = bracket == "<"
            lo = 0 if bracket == "[" else 1
            hi = 1
            if star:
                lo = int(lo_s) if lo_s else lo
                hi = int(hi_s) if hi_s else -1
        if name == "AVP":
            any_avp = True
            continue
        if name not in rows:
            raise ValueError(f"{where}: unknown AVP {name}")
        code, vendor = rows[name][0], rows[name][1]
        rules.append(Rule((code, vendor), name, lo, hi, fixed))
    if text[pos:].strip():
        raise ValueError(f"{where}: cannot parse {text[pos:]!r}")
    return Grammar(tuple(rules), any_avp)


def _build() -> None:
    rows = _parse_avps()
    enums = _parse_enums()
    for name in enums:
        if name not in rows:
            raise ValueError(f"dictionary/data.py ENUMS: unknown AVP {name}")
    groups: dict[str, Grammar] = {}
    for line in data.GROUPS.strip().splitlines():
        name, _, body = line.partition("::=")
        name = name.strip()
        if name not in rows or rows[name][3] != "Grouped":
            raise ValueError(f"dictionary/data.py GROUPS: {name} is not a Grouped AVP")
        groups[name] = _parse_grammar(body, rows, f"GROUPS {name}")
    for name, (code, vendor, _, tname, mrule) in rows.items():
        d = AvpDef(
            code,
            vendor,
            name,
            TYPE_BY_NAME[tname],
            _MRULES[mrule],
            enums.get(name, {}),
            groups.get(name),
        )
        AVPS[(code, vendor)] = d
        BY_NAME[name] = d
        TYPES[(vendor << 32) | code] = int(d.type)
    grammars: dict[str, Grammar] = {}
    for line in data.GRAMMARS.strip().splitlines():
        abbrev, _, body = line.partition("::=")
        grammars[abbrev.strip()] = _parse_grammar(body, rows, f"GRAMMARS {abbrev.strip()}")
    for line in data.COMMANDS.strip().splitlines():
        code_s, app_s, name, req, ans, pxy = line.split()
        app = None if app_s == "*" else int(app_s)
        cmd = CommandDef(int(code_s), app, name, req, ans, pxy == "PXY", grammars[req], grammars[ans])
        COMMANDS[(cmd.code, app)] = cmd
        _COMMAND_CODES.add(cmd.code)


_build()


def avp(code: int, vendor: int = 0) -> AvpDef | None:
    """The definition of AVP (code, vendor), or None when unknown."""
    return AVPS.get((code, vendor))


def avp_by_name(name: str) -> AvpDef:
    """The definition named ``name``; raises KeyError when unknown."""
    return BY_NAME[name]


def avp_type(code: int, vendor: int = 0) -> int | None:
    """The AvpType of (code, vendor), or None when unknown (decoded as OctetString)."""
    return TYPES.get((vendor << 32) | code)


def command(code: int, app_id: int) -> CommandDef | None:
    """The command (code, app_id); session commands match any application. None if unknown."""
    c = COMMANDS.get((code, app_id))
    if c is None:
        c = COMMANDS.get((code, None))
    return c


def command_known(code: int) -> bool:
    """True when some application defines command ``code`` (else the answer is 3001)."""
    return code in _COMMAND_CODES


def enum_name(code: int, vendor: int, value: int) -> str | None:
    """The symbolic name of an Enumerated value, or None."""
    d = AVPS.get((code, vendor))
    return d.enum.get(value) if d else None


GROUPED = int(AvpType.GROUPED)


def enum_value(name: str, label: str) -> int:
    """The numeric value of an Enumerated AVP's symbolic name, e.g.
    ``enum_value("CC-Request-Type", "UPDATE_REQUEST") == 2``; KeyError when unknown."""
    for v, lab in BY_NAME[name].enum.items():
        if lab == label:
            return v
    raise KeyError(f"{name}: no value named {label}")
