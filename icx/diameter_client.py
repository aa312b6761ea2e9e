"""A small, fast Diameter client peer (asyncio) for `icx ccr` and the load harness.

It is a proper peer: it sends CER and waits for CEA (RFC 6733 §5.3), answers DWR with DWA
(§5.5), answers server-initiated RAR/ASR (RFC 4006 §5.5 / facts D) with 2001, and sends DPR on
close. Requests are pipelined; answers are matched by Hop-by-Hop Identifier.

The hot path avoids building Message objects: :class:`CcrTemplate` pre-encodes the AVPs that
stay the same for a session kind, and answers are scanned for Result-Code only.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import struct
import time
from collections.abc import Callable
from typing import Any

from diameter.avp import Avp
from diameter.framing import FrameBuffer
from diameter.message import Message, decode_message

_HDR = struct.Struct("!IIIII")
_AVP_HDR = struct.Struct("!II")
_U32 = struct.Struct("!I")
FLAG_R, FLAG_P = 0x80, 0x40
A = Avp.new

AnswerCallback = Callable[[bytes, int], None]  # (raw answer, result code); (b"", 0): the
# connection was lost before the answer came


def result_code_of(raw: bytes) -> int:
    """The top-level Result-Code of an encoded answer (0 when absent). No full decode."""
    off, end = 20, len(raw)
    while off + 8 <= end:
        code, fl = _AVP_HDR.unpack_from(raw, off)
        length = fl & 0xFFFFFF
        if length < 8:
            return 0
        if code == 268 and not (fl >> 24) & 0x80:
            return int.from_bytes(raw[off + 8:off + 12], "big")
        off += (length + 3) & ~3
    return 0


class ClientPeer(asyncio.Protocol):
    """One TCP connection to a Diameter server. Use :func:`connect` to make one."""

    def __init__(self, origin_host: str, origin_realm: str) -> None:
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.transport: asyncio.Transport | None = None
        self.frames = FrameBuffer(16 * 1024 * 1024)
        self.pending: dict[int, AnswerCallback | asyncio.Future[bytes]] = {}
        self._hbh = itertools.count((os.getpid() & 0xFFF) << 20 | 1)
        # RFC 6733 §3: high 12 bits = low 12 bits of the clock, low 20 bits random. With a
        # zero low part two `icx ccr` runs in the same second reused End-to-End ids and the
        # server's duplicate cache (Origin-Host + End-to-End-Id) answered the second run
        # with the first run's stored answer.
        self._e2e = itertools.count((int(time.time()) & 0xFFF) << 20
                                    | secrets.randbits(20))
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.server_requests: dict[int, int] = {}  # command code -> count (DWR, RAR, ASR)
        # (command code, Session-Id) -> Result-Code of the RAA/ASA; unset: 2001 to every one
        self.on_server_request: Callable[[int, str | None], int] | None = None
        # Requests sent while answers are being processed (a closed loop refills its window
        # from the answer callbacks) leave in one write at the end of that read; others on
        # the next loop turn. One syscall per read instead of one per request.
        self._wbuf: list[bytes] = []
        self._in_read = False
        self._flush_armed = False

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        pending, self.pending = self.pending, {}
        for cb in pending.values():
            if not isinstance(cb, asyncio.Future):
                cb(b"", 0)  # the caller's count of requests in flight must not wait for it
            elif not cb.done():
                cb.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self._in_read = True
        try:
            self._frames_received(data)
        finally:
            self._in_read = False
        self._flush()

    def _frames_received(self, data: bytes) -> None:
        for frame in self.frames.feed(data):
            flags = frame[4]
            if flags & FLAG_R:
                self._server_request(frame)
                continue
            hbh = int.from_bytes(frame[12:16], "big")
            cb = self.pending.pop(hbh, None)
            if cb is None:
                continue
            if isinstance(cb, asyncio.Future):
                if not cb.done():
                    cb.set_result(frame)
            else:
                cb(frame, result_code_of(frame))

    def _server_request(self, frame: bytes) -> None:
        msg = decode_message(frame)
        self.server_requests[msg.code] = self.server_requests.get(msg.code, 0) + 1
        avps: list[Avp] = []
        sid = msg.find(263)
        if sid is not None:
            avps.append(sid)
        rc = 2001
        if msg.code in (258, 274) and self.on_server_request is not None:
            rc = self.on_server_request(msg.code, sid.value if sid is not None else None)
        avps += [A("Result-Code", rc), A("Origin-Host", self.origin_host),
                 A("Origin-Realm", self.origin_realm)]
        if msg.code in (258, 274):
            avps.append(A("Auth-Application-Id", 4))
        self.write(msg.answer(avps).encode())

    # ---------------------------------------------------------------- sending
    def write(self, data: bytes) -> None:
        """Queue *data*; it is written at the end of the current read, else next loop turn."""
        self._wbuf.append(data)
        if not self._in_read and not self._flush_armed:
            self._flush_armed = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_armed = False
        buf = self._wbuf
        if buf and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(buf) if len(buf) > 1 else buf[0])
        buf.clear()

    def next_ids(self) -> tuple[int, int]:
        return next(self._hbh) & 0xFFFFFFFF, next(self._e2e) & 0xFFFFFFFF

    def send_raw(self, body: bytes, code: int, app: int, *, proxiable: bool = True,
                 callback: AnswerCallback | None = None) -> asyncio.Future[bytes] | None:
        """Send a request whose AVPs are already encoded in *body*. With *callback*, it is
        called with (answer bytes, Result-Code), or (b"", 0) if the connection is lost first;
        otherwise a future of the answer is returned."""
        if self.closed.done():  # nothing will answer: say so as connection_lost did
            if callback is not None:
                asyncio.get_running_loop().call_soon(callback, b"", 0)
                return None
            lost: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            lost.set_exception(ConnectionError("connection lost"))
            return lost
        hbh, e2e = self.next_ids()
        flags = FLAG_R | (FLAG_P if proxiable else 0)
        header = _HDR.pack((1 << 24) | (20 + len(body)), (flags << 24) | code, app, hbh, e2e)
        if callback is not None:
            self.pending[hbh] = callback
            self.write(header + body)
            return None
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[hbh] = fut
        self.write(header + body)
        return fut

    async def request(self, msg: Message, timeout: float = 10.0) -> Message:
        """Send a Message request and await its decoded answer."""
        body = b"".join(a.encode() for a in msg.avps)
        fut = self.send_raw(body, msg.code, msg.app_id, proxiable=msg.is_proxiable)
        assert fut is not None
        return decode_message(await asyncio.wait_for(fut, timeout))

    async def close(self) -> None:
        """DPR (Disconnect-Cause REBOOTING=0), wait briefly for DPA, close."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            await self.request(Message.request(282, 0, [
                A("Origin-Host", self.origin_host), A("Origin-Realm", self.origin_realm),
                A("Disconnect-Cause", 0)]), timeout=2.0)
        except (TimeoutError, ConnectionError, OSError):
            pass
        self.transport.close()


async def connect(host: str, port: int, *, origin_host: str, origin_realm: str = "icx.test",
                  timeout: float = 10.0) -> ClientPeer:
    """Open a connection and run the CER/CEA exchange; raise ConnectionError unless 2001,
    TimeoutError (saying which step) when the server is silent for *timeout* seconds."""
    loop = asyncio.get_running_loop()
    try:
        _, peer = await asyncio.wait_for(
            loop.create_connection(lambda: ClientPeer(origin_host, origin_realm), host, port),
            timeout)
    except TimeoutError:
        raise TimeoutError(f"no TCP connection within {timeout:g} s") from None
    cer = Message.request(257, 0, [
        A("Origin-Host", origin_host), A("Origin-Realm", origin_realm),
        A("Host-IP-Address", _ip(peer)), A("Vendor-Id", 0), A("Product-Name", "icx-bench"),
        A("Auth-Application-Id", 4), A("Acct-Application-Id", 3),
    ])
    try:
        cea = await peer.request(cer, timeout)
    except TimeoutError:
        peer.transport.close() if peer.transport else None
        raise TimeoutError(f"no CEA within {timeout:g} s") from None
    code = cea.get("Result-Code")
    if code != 2001:
        peer.transport.close() if peer.transport else None
        raise ConnectionError(f"CEA Result-Code {code}")
    return peer


def _ip(peer: ClientPeer) -> Any:
    import ipaddress

    sock = peer.transport.get_extra_info("sockname") if peer.transport else None
    return ipaddress.ip_address(sock[0] if sock else "127.0.0.1")


# -------------------------------------------------------------------- request templates
class CcrTemplate:
    """Pre-encoded constant AVPs of a session kind; :meth:`body` adds the variable ones."""

    def __init__(self, *, origin_host: str, origin_realm: str, dest_realm: str, context: str,
                 subscriber: str, extra: list[Avp]) -> None:
        self.prefix_tail = b"".join(a.encode() for a in [
            A("Origin-Host", origin_host), A("Origin-Realm", origin_realm),
            A("Destination-Realm", dest_realm), A("Auth-Application-Id", 4),
            A("Service-Context-Id", context)])
        self.suffix = b"".join(a.encode() for a in [
            A("Subscription-Id", [A("Subscription-Id-Type", 0),
                                  A("Subscription-Id-Data", subscriber)]),
            *extra])

    def body(self, session_id: str, rtype: int, number: int, tail: list[Avp]) -> bytes:
        return self.body_bytes(utf8_avp(263, session_id), rtype, number,
                               b"".join(a.encode() for a in tail))

    def body_bytes(self, session_avp: bytes, rtype: int, number: int, tail: bytes) -> bytes:
        """:meth:`body` from pre-encoded pieces: the load harness keeps each session's
        Session-Id AVP and each step's tail encoded, so a request costs one join."""
        return b"".join((session_avp, self.prefix_tail, _u32_avp(416, rtype),
                         _u32_avp(415, number), self.suffix, tail))


def utf8_avp(code: int, text: str) -> bytes:
    """A base (vendor 0) UTF8String/OctetString AVP with the M bit, as the codec writes it."""
    data = text.encode()
    n = 8 + len(data)
    return _AVP_HDR.pack(code, (0x40 << 24) | n) + data + b"\0" * (-n % 4)


_U32_CACHE: dict[tuple[int, int], bytes] = {}


def _u32_avp(code: int, value: int) -> bytes:
    """A base Unsigned32/Enumerated AVP with the M bit (small values are cached)."""
    key = (code, value)
    out = _U32_CACHE.get(key)
    if out is None:
        out = _AVP_HDR.pack(code, (0x40 << 24) | 12) + _U32.pack(value)
        if value < 64:
            _U32_CACHE[key] = out
    return out


def units_avp(name: str, unit: str, amount: int) -> Avp:
    """RSU/USU/... with one unit member: unit is CC-Time / CC-Total-Octets / CC-Service-..."""
    return A(name, [A(unit, amount)])


def mscc(rating_group: int, *, rsu: tuple[str, int] | None = None,
         usu: tuple[str, int] | None = None, reason: int | None = None) -> Avp:
    kids: list[Avp] = []
    if rsu is not None:
        kids.append(units_avp("Requested-Service-Unit", rsu[0], rsu[1]))
    if usu is not None:
        kids.append(units_avp("Used-Service-Unit", usu[0], usu[1]))
    kids.append(A("Rating-Group", rating_group))
    if reason is not None:
        kids.append(A("Reporting-Reason", reason))
    return A("Multiple-Services-Credit-Control", kids)


def voice_info(calling: str, called: str) -> Avp:
    return A("Service-Information", [A("IMS-Information", [
        A("Node-Functionality", 0), A("Calling-Party-Address", f"tel:+{calling}"),
        A("Called-Party-Address", f"tel:+{called}")])])


def sms_info(recipient: str) -> Avp:
    return A("Service-Information", [A("SMS-Information", [A("Recipient-Info", [
        A("Recipient-Address", [A("Address-Type", 1), A("Address-Data", recipient)])])])])


def data_info(apn: str) -> Avp:
    return A("Service-Information", [A("PS-Information", [A("Called-Station-Id", apn)])])
