"""Building answers and error answers (RFC 6733 §6.2, §7; protocol-facts A5 "Building any answer").

Every answer built here:

1. copies Hop-by-Hop, End-to-End and the P bit from the request (never R, never T);
2. puts Session-Id first when the request had one;
3. carries our own Origin-Host and Origin-Realm and the Result-Code;
4. copies every Proxy-Info AVP, in the original order, at the end.

Error answers come in two shapes (§7.2): the *generic E-bit grammar* for protocol errors (3xxx,
E bit set, :func:`error_answer`), and the command's normal answer grammar for permanent
failures (5xxx, E bit clear) with Failed-AVP — :func:`error_answer` builds the latter too when
the caller passes ``e_bit=False``; application answers that need more AVPs (CC-Request-Type...)
add them through ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from diameter import dictionary
from diameter.avp import AVP_M, Avp
from diameter.errors import DiameterError
from diameter.message import FLAG_E, FLAG_P, Message
from diameter.result_codes import e_bit as _needs_e_bit
from diameter.types import AvpType

__all__ = [
    "LocalIdentity",
    "answer_for",
    "error_answer",
    "answer_from_error",
    "failed_avp",
    "patch_hop_by_hop",
    "result_code_of",
    "unencodable_avp",
]


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    """Who we are in every answer we build."""

    origin_host: str
    origin_realm: str
    origin_state_id: int = 0


def failed_avp(payload: bytes | Sequence[Avp]) -> Avp:
    """A Failed-AVP (279, Grouped, §7.5) holding the offending AVP(s).

    *payload* is either AVP objects or the encoded AVP bytes a DiameterError carries. Bytes are
    copied verbatim (never re-decoded: for 5014 they describe an AVP whose length is wrong, which
    a decoder would refuse); each encoded AVP is already padded, so the Grouped length is right.
    """
    if isinstance(payload, bytes | bytearray):
        return Avp(279, bytes(payload), flags=AVP_M, type=int(AvpType.OCTET_STRING))
    return Avp.new("Failed-AVP", list(payload))


def _head_and_tail(request_avps: Iterable[Avp]) -> tuple[Avp | None, list[Avp]]:
    session: Avp | None = None
    proxy: list[Avp] = []
    for a in request_avps:
        if a.vendor == 0:
            if a.code == 263 and session is None:  # Session-Id
                session = a
            elif a.code == 284:  # Proxy-Info
                proxy.append(a)
    return session, proxy


# Always in an answer we build ourselves: never echoed from the request.
_OWN = frozenset(((263, 0), (264, 0), (296, 0), (268, 0)))
_AUTH_APP_ID, _ACCT_APP_ID = (258, 0), (259, 0)


def _echoed(code: int, app_id: int, request_avps: Sequence[Avp],
            extra: Sequence[Avp]) -> list[Avp]:
    """The AVPs a 5xxx answer in the command's own grammar (E bit clear, facts A6) must carry
    besides ours: each {required} AVP of the answer grammar that the caller did not supply,
    echoed from the request (CCA: CC-Request-Type/-Number, facts B1; ACA: Accounting-Record-
    Type/-Number, C1), and Auth-/Acct-Application-Id from the header when the request lacked
    it. Application commands only: a base answer's required AVPs (CEA's Host-IP-Address...)
    describe us, not the request."""
    if app_id == 0:
        return []
    cmd = dictionary.command(code, app_id)
    if cmd is None:
        return []
    given = {(a.code, a.vendor) for a in extra}
    out: list[Avp] = []
    for rule in cmd.answer.required:
        key = rule.key
        if key in _OWN or key in given:
            continue
        for a in request_avps:
            if a.code == key[0] and a.vendor == key[1]:
                out.append(a)
                break
        else:
            if key == _AUTH_APP_ID or key == _ACCT_APP_ID:
                out.append(Avp.new(key[0], app_id))
    return out


def _build(
    header: tuple[int, int, int, int, int, int],
    request_avps: Iterable[Avp],
    me: LocalIdentity,
    result_code: int,
    *,
    e_bit: bool,
    extra: Iterable[Avp] = (),
    error_message: str | None = None,
    failed: bytes | Sequence[Avp] | None = None,
    error_reporting_host: str | None = None,
) -> Message:
    _version, flags, code, app_id, hbh, e2e = header
    if not e_bit and result_code >= 5000:  # success answers carry their AVPs in *extra*
        request_avps = list(request_avps)
        extra = list(extra)
        extra.extend(_echoed(code, app_id, request_avps, extra))
    session, proxies = _head_and_tail(request_avps)
    avps: list[Avp] = []
    if session is not None:
        avps.append(session)  # <Session-Id> is fixed first (§3.2 grammar, A9)
    # Generic E-bit grammar order (§7.2): Origin-Host, Origin-Realm, Result-Code, ...
    avps.append(Avp.new("Origin-Host", me.origin_host))
    avps.append(Avp.new("Origin-Realm", me.origin_realm))
    avps.append(Avp.new("Result-Code", result_code))
    avps.extend(extra)
    if me.origin_state_id:
        avps.append(Avp.new("Origin-State-Id", me.origin_state_id))
    if error_message:
        avps.append(Avp.new("Error-Message", error_message))
    if error_reporting_host:
        avps.append(Avp.new("Error-Reporting-Host", error_reporting_host))
    if failed:
        avps.append(failed_avp(failed))
    avps.extend(proxies)
    return Message(
        code,
        app_id,
        avps,
        flags=(flags & FLAG_P) | (FLAG_E if e_bit else 0),
        hop_by_hop=hbh,
        end_to_end=e2e,
    )


def answer_for(
    request: Message,
    me: LocalIdentity,
    result_code: int,
    extra: Iterable[Avp] = (),
    *,
    error_message: str | None = None,
    failed: bytes | Sequence[Avp] | None = None,
) -> Message:
    """An answer to *request* with *result_code* and the *extra* AVPs after Result-Code.

    The E bit follows the Result-Code class (set for 3xxx only, §7.1.3). Use this for success
    answers and for 5xxx answers in the command's own grammar.
    """
    return _build(
        request.header,
        request.avps,
        me,
        result_code,
        e_bit=_needs_e_bit(result_code),
        extra=extra,
        error_message=error_message,
        failed=failed,
    )


def error_answer(
    request: Message,
    me: LocalIdentity,
    result_code: int,
    *,
    error_message: str | None = None,
    failed: bytes | Sequence[Avp] | None = None,
    e_bit: bool | None = None,
) -> Message:
    """The generic error answer of §7.2 for *request* (E bit set for 3xxx unless told)."""
    return _build(
        request.header,
        request.avps,
        me,
        result_code,
        e_bit=_needs_e_bit(result_code) if e_bit is None else e_bit,
        error_message=error_message,
        failed=failed,
    )


def answer_from_error(err: DiameterError, me: LocalIdentity) -> Message | None:
    """The error answer for a request that failed to decode or validate, or None.

    None when nothing can be answered: the header was unreadable, or the failing message was
    itself an answer (§7: answers are never answered; an answer with an unknown/invalid body
    is dropped). The caller closes the transport when ``err.fatal``.
    """
    header = err.header
    if header is None or not header[1] & 0x80:
        return None
    # 5011 (unsupported version): answer as version 1 — ours — since Message always encodes 1.
    avps = err.partial.avps if err.partial is not None else ()
    return _build(
        header,
        avps,
        me,
        err.result_code,
        e_bit=err.e_bit,
        error_message=err.message or None,
        failed=err.failed_avp,
    )


def patch_hop_by_hop(encoded_answer: bytes, hop_by_hop: int) -> bytes:
    """A stored encoded answer re-sent for a duplicate request carries the duplicate's
    Hop-by-Hop (the only header field allowed to differ, §6.2 / A9)."""
    return encoded_answer[:12] + hop_by_hop.to_bytes(4, "big") + encoded_answer[16:]


def result_code_of(data: bytes) -> int | None:
    """Result-Code (268, base) of an encoded answer: a scan of the top-level AVP headers."""
    i, n = 20, len(data)
    while i + 8 <= n:
        code = int.from_bytes(data[i:i + 4], "big")
        flags = data[i + 4]
        length = int.from_bytes(data[i + 5:i + 8], "big")
        if length < 8:
            return None
        if code == 268 and not flags & 0x80 and length == 12:
            return int.from_bytes(data[i + 8:i + 12], "big")
        i += (length + 3) & ~3
    return None


def unencodable_avp(avps: Iterable[Avp], _path: str = "") -> str | None:
    """``Name/Member=value`` of the first AVP among *avps* that does not encode (descending
    into Grouped members), or None. For a log line after a message's ``encode()`` raised:
    the codec's own error does not say which AVP. Exception path only (it encodes again)."""
    for a in avps:
        try:
            a.encode()
        except Exception:  # noqa: BLE001 -- what the codec refuses is what we look for
            name = f"{_path}{a.name or a.code}"
            value = a.value
            if isinstance(value, list):
                inner = unencodable_avp(value, name + "/")
                if inner is not None:
                    return inner
            return f"{name}={value!r}"
    return None
