"""RFC 6733 §7 checks of a decoded message against the dictionary and command grammars.

``check_request(msg)`` raises the first problem found as a DiameterError the peer layer turns
into the error answer (Result-Code, Failed-AVP, E bit). Checks, in order:

1. header bits (§3): E on a request, R clear, P on a non-proxiable command -> 3008 (E bit)
2. command code unknown -> 3001 (E bit); known code, unknown application -> 3007 (E bit)
3. for every AVP, depth first in wire order (Grouped members against the group's grammar):
   reserved AVP flag bits, V with Vendor-Id 0 -> 3009 (E bit); M set on an AVP whose rule
   says it must not be (Product-Name, Error-Message, ...) -> 3009 only with ``strict=True``:
   python-diameter and other stacks send Product-Name with M set, and refusing their CER
   would break interop for no gain (RFC 6733 §1.1 robustness);
   unknown AVP with M set -> 5001 (unknown without M: kept and ignored, §4.1);
   AVP not allowed by the grammar -> 5008; more than allowed -> 5009 (the first one over);
   undecodable value (bad UTF-8, bad Address, enum out of range) -> 5004;
   wrong payload length for the type or a broken Grouped payload -> 5014
4. a required AVP missing -> 5005 with a zero-filled example in Failed-AVP (§7.5)

Before all that, a received message over ``8 * MAX_NESTING`` bytes is checked for Grouped AVPs
nested deeper than :data:`MAX_NESTING` (-> 5004, a zero-filled example of the too-deep AVP in
Failed-AVP): the checks recurse per level, and Failed-AVP and every Grouped AVP with
``* [ AVP ]`` may hold itself, so a 64 KiB message can nest ~8000 levels -- enough to overflow
the C stack of the compiled twin (the process dies) or the interpreter's recursion limit.
"""

from __future__ import annotations

import struct

from diameter import dictionary
from diameter.avp import EXT, Avp, example, zero_filled
from diameter.dictionary.model import Grammar, MRule
from diameter.errors import DiameterError
from diameter.message import FLAG_E, FLAG_P, FLAG_R, Message
from diameter.types import FIXED_SIZE, AvpType

__all__ = ["check_request", "check_answer", "check_avps", "check_avps_py"]

_GROUPED = int(AvpType.GROUPED)
_ADDRESS = int(AvpType.ADDRESS)
_ENUMERATED = int(AvpType.ENUMERATED)
_ANY = Grammar((), True)
# (vendor << 32 | code) -> (name, type as a plain int, M must not be set, enum, grammar):
# plain tuples, because IntEnum members hash through a Python-level __hash__.
_DEFS: dict[int, tuple[str, int, bool, dict[int, str], Grammar | None]] = {
    (k[1] << 32) | k[0]: (d.name, int(d.type), d.m_rule == MRule.MUST_NOT, d.enum, d.grammar)
    for k, d in dictionary.AVPS.items()
}
_FIXED = {int(t): n for t, n in FIXED_SIZE.items()}
_TEXT = frozenset(
    int(t)
    for t in (AvpType.UTF8STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI, AvpType.IP_FILTER_RULE)
)
_VSAI = 260
# Deepest Grouped nesting accepted. Real Ro/Gy messages nest < 10 levels; 256 keeps the pure
# spec far below the recursion limit, and a message shorter than 8 * MAX_NESTING bytes
# (every hot-path CCR) cannot nest that deep, so it is never walked.
MAX_NESTING = 256
_HEAD = struct.Struct(">II")
_AUTH_APP = (258, 0)
_ACCT_APP = (259, 0)


def check_request(msg: Message, *, strict: bool = False,
                  header: tuple[int, int, int, int, int, int] | None = None) -> None:
    """Validate a received request; raises DiameterError (see the module doc for the codes).
    ``strict`` also refuses M on must-not-M AVPs (3009). *header*: ``msg.header`` when the
    caller already read it (one attribute lookup instead of four)."""
    version, flags, code, app, _, _ = msg.header if header is None else header
    cmd = _COMMANDS.get((code, app))
    if (version != 1 or flags & _BAD_BITS != FLAG_R or cmd is None
            or (flags & FLAG_P and not cmd.proxiable)):
        # the first header problem, in the documented order (raises); or the command seen
        # for the first time
        cmd = _header_error(msg)
    avps = msg.avps
    try:
        if avps:
            buf = getattr(avps[0], "_buf", None)
            if buf is not None and len(buf) >= 8 * MAX_NESTING:
                _check_nesting(avps)
        check_avps(avps, cmd.request, strict=strict)
    except DiameterError as exc:
        exc.header = msg.header
        exc.partial = msg
        raise


_BAD_BITS = FLAG_R | FLAG_E
# (code, app) -> command, filled on first use from dictionary.command(). Session commands
# match any application, so a peer could name endless (code, app) pairs: bounded.
_COMMANDS_MAX = 1024
_COMMANDS: dict[tuple[int, int], dictionary.CommandDef] = {}


def _remember_command(code: int, app_id: int) -> dictionary.CommandDef | None:
    cmd = dictionary.command(code, app_id)
    if cmd is not None and dictionary.command_known(code) and len(_COMMANDS) < _COMMANDS_MAX:
        _COMMANDS[(code, app_id)] = cmd
    return cmd


def _header_error(msg: Message) -> dictionary.CommandDef:
    """Raise the first header problem of *msg* (RFC 6733 §3, §7.1.3), in the module doc's
    order; returns the command only when the header is fine (one not remembered yet)."""
    hdr = msg.header
    if msg.version != 1:
        raise DiameterError(5011, f"version {msg.version}", header=hdr, partial=msg)
    if not msg.flags & FLAG_R:
        raise DiameterError(3008, "R bit clear in a request", header=hdr, partial=msg)
    if msg.flags & FLAG_E:
        raise DiameterError(3008, "E bit set in a request", header=hdr, partial=msg)
    if not dictionary.command_known(msg.code):
        raise DiameterError(3001, f"command {msg.code} unsupported", header=hdr, partial=msg)
    cmd = _remember_command(msg.code, msg.app_id)
    if cmd is None:
        raise DiameterError(
            3007, f"command {msg.code} in application {msg.app_id}", header=hdr, partial=msg
        )
    if msg.flags & FLAG_P and not cmd.proxiable:
        raise DiameterError(3008, f"P bit set on {cmd.request_abbrev}", header=hdr, partial=msg)
    return cmd


def check_answer(msg: Message, *, strict: bool = False) -> None:
    """Validate a received answer: AVP rules always; the grammar unless the E bit is set
    (E-bit answers follow the generic grammar, §7.2). Raises DiameterError."""
    cmd = dictionary.command(msg.code, msg.app_id)
    grammar = cmd.answer if cmd is not None and not msg.flags & FLAG_E else _ANY
    _check_nesting(msg.avps)
    check_avps(msg.avps, grammar, strict=strict)


def _check_nesting(avps: list[Avp]) -> None:
    """Raise 5004 when a received message nests known Grouped AVPs :data:`MAX_NESTING` deep
    or more (see the module docstring). Walks the frame bytes iteratively (no recursion, no
    Avp objects) and only for frames long enough to nest that deep; a broken length stops the
    walk of its level (the checks proper report it). Messages built in Python are not walked."""
    if not avps:
        return
    buf = getattr(avps[0], "_buf", None)
    if buf is None or len(buf) < 8 * MAX_NESTING:
        return
    head = _HEAD.unpack_from
    defs = _DEFS
    todo = [(avps[0]._off, len(buf), 1)]
    while todo:
        off, end, depth = todo.pop()
        while end - off >= 8:
            code, fl = head(buf, off)
            length = fl & 0xFFFFFF
            flags = fl >> 24
            hlen = 12 if flags & 0x80 else 8
            if length < hlen or off + length > end:
                break
            vendor = head(buf, off + 4)[1] if hlen == 12 else 0
            d = defs.get((vendor << 32) | code)
            if d is not None and d[1] == _GROUPED:
                if depth >= MAX_NESTING:
                    raise DiameterError(
                        5004, f"Grouped AVPs nested deeper than {MAX_NESTING} levels",
                        failed_avp=zero_filled(code, vendor, flags))
                todo.append((off + hlen, off + length, depth + 1))
            off += (length + 3) & ~3


def check_avps_py(avps: list[Avp], grammar: Grammar, *, strict: bool = False) -> None:
    """Check a run of AVPs (a message body or a Grouped payload) against ``grammar``.
    The executable spec; ``check_avps`` is the compiled twin when it is built."""
    counts: dict[int, int] = {}
    limits = grammar.limits
    for a in avps:
        flags = a.flags
        if flags & 0x1F or (flags & 0x80 and a.vendor == 0):
            raise DiameterError(3009, f"AVP {a.code} flags 0x{flags:02x}", failed_avp=a.encode())
        key = (a.vendor << 32) | a.code
        d = _DEFS.get(key)
        if d is None:
            if flags & 0x40:
                raise DiameterError(
                    5001, f"unsupported AVP {a.code}/{a.vendor} with M bit", failed_avp=a.encode()
                )
            continue  # unknown, not mandatory: kept and ignored (§4.1)
        name, t, must_not_m, enum, sub = d
        if strict and must_not_m and flags & 0x40:
            raise DiameterError(3009, f"M bit set on {name}", failed_avp=a.encode())
        mx = limits.get(key)
        if mx is None:
            if not grammar.any_avp:
                raise DiameterError(5008, f"{name} not allowed here", failed_avp=a.encode())
        elif mx == 0:
            raise DiameterError(5008, f"{name} not allowed here", failed_avp=a.encode())
        else:
            c = counts.get(key, 0) + 1
            counts[key] = c
            if c > mx > 0:
                raise DiameterError(5009, f"{name} occurs too many times", failed_avp=a.encode())
        # Payload checks without building values nobody asked for (ipaddress objects are
        # slow): fixed sizes by length, Address by family/length; text is decoded (UTF-8
        # validity) and Grouped split, both cached on the AVP for the application.
        if t == _GROUPED:
            v = a.value  # raises 5014 for a broken member
            check_avps_py(v, sub or _ANY, strict=strict)
            if key == _VSAI:
                _check_vsai(v)
        elif t in _FIXED:
            n = a.length - (12 if flags & 0x80 else 8)
            if n != _FIXED[t]:
                raise DiameterError(5014, f"{name} payload length {n}", failed_avp=a.encode())
            if t == _ENUMERATED and enum and a.value not in enum:
                raise DiameterError(5004, f"{name} value {a.value} unknown", failed_avp=a.encode())
        elif t in _TEXT:
            a.value  # noqa: B018 - raises 5004 for invalid UTF-8
        elif t == _ADDRESS:
            _check_address(a, name)
    for rule in grammar.required:
        if counts.get((rule.key[1] << 32) | rule.key[0], 0) < rule.min:
            raise DiameterError(5005, f"missing {rule.name}", failed_avp=example(rule.name))


def _check_vsai(members: list[Avp]) -> None:
    """Vendor-Specific-Application-Id holds exactly one of Auth-/Acct-Application-Id
    (RFC 6733 §6.11): neither -> 5005, both -> 5009 with the second one in Failed-AVP."""
    apps = [a for a in members if (a.code, a.vendor) in (_AUTH_APP, _ACCT_APP)]
    if not apps:
        raise DiameterError(
            5005, "Vendor-Specific-Application-Id without an application id",
            failed_avp=example("Auth-Application-Id"),
        )
    if len(apps) > 1:
        raise DiameterError(
            5009, "Vendor-Specific-Application-Id with two application ids",
            failed_avp=apps[1].encode(),
        )


def _check_address(a: Avp, name: str) -> None:
    """Address payload (RFC 6733 §4.3.1): 2-octet family; IPv4 4 octets, IPv6 16 octets;
    families 0 and 65535 are reserved (5004). Same codes as decoding the value."""
    data = a.data
    if len(data) < 2:
        raise DiameterError(5014, f"{name} shorter than its address family", failed_avp=a.encode())
    family = (data[0] << 8) | data[1]
    if (family == 1 and len(data) != 6) or (family == 2 and len(data) != 18):
        raise DiameterError(5004, f"{name} family {family} with {len(data) - 2} octets", failed_avp=a.encode())
    if family in (0, 65535):
        raise DiameterError(5004, f"{name} address family {family}", failed_avp=a.encode())


check_avps = check_avps_py
if EXT is not None:
    EXT.configure_validate(
        defs=_DEFS,
        fixed_sizes=_FIXED,
        any_grammar=_ANY,
        example=example,
        check_vsai=_check_vsai,
        check_avps_py=check_avps_py,
    )
    check_avps = EXT.check_avps
