"""The Diameter message (RFC 6733 §3): 20-byte header + AVPs; decode, encode and builders."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from diameter.avp import EXT, Avp, AvpPy, _find, _find_all, _walk_py
from diameter.errors import DiameterError

__all__ = [
    "Message",
    "MessagePy",
    "decode_message",
    "decode_message_py",
    "decode_header",
    "FLAG_R",
    "FLAG_P",
    "FLAG_E",
    "FLAG_T",
]

FLAG_R = 0x80
FLAG_P = 0x40
FLAG_E = 0x20
FLAG_T = 0x10

_HDR = struct.Struct("!IIIII")
_UNPACK = _HDR.unpack_from
_PACK = _HDR.pack


class MessagePy:
    """A Diameter message. ``avps`` is a plain list you may edit; ``encode()`` rebuilds the
    header (length) and joins the AVPs, each reusing its received bytes when unmodified, so
    decode -> encode of any valid message is byte-identical.

    Name access: ``msg.get("Session-Id")`` (value or default), ``msg["CC-Request-Number"]``
    (value or KeyError), ``msg.find(code, vendor)`` / ``find_all`` (Avp objects).
    """

    __slots__ = ("version", "flags", "code", "app_id", "hop_by_hop", "end_to_end", "avps")

    def __init__(
        self,
        code: int,
        app_id: int = 0,
        avps: Iterable[Avp] = (),
        *,
        flags: int = 0,
        hop_by_hop: int = 0,
        end_to_end: int = 0,
        version: int = 1,
    ) -> None:
        self.version = version
        self.flags = flags
        self.code = code
        self.app_id = app_id
        self.hop_by_hop = hop_by_hop
        self.end_to_end = end_to_end
        self.avps: list[Avp] = list(avps)

    # --- builders ----------------------------------------------------------------------------
    @classmethod
    def request(
        cls,
        code: int,
        app_id: int,
        avps: Iterable[Avp] = (),
        *,
        proxiable: bool = False,
        flags: int | None = None,
        hop_by_hop: int = 0,
        end_to_end: int = 0,
    ) -> MessagePy:
        """A request (R set; P when ``proxiable``; or exactly ``flags`` when given, R forced)."""
        f = (FLAG_R | (FLAG_P if proxiable else 0)) if flags is None else (flags | FLAG_R)
        return cls(code, app_id, avps, flags=f, hop_by_hop=hop_by_hop, end_to_end=end_to_end)

    def answer(self, avps: Iterable[Avp] = (), *, error: bool = False) -> MessagePy:
        """An answer to this request: same code and App-Id, copies Hop-by-Hop, End-to-End and
        the P bit (RFC 6733 §6.2); E set when ``error``. The caller supplies every AVP
        (Session-Id first, Origin-*, Result-Code, copied Proxy-Info) in wire order."""
        f = (self.flags & FLAG_P) | (FLAG_E if error else 0)
        return MessagePy(
            self.code,
            self.app_id,
            avps,
            flags=f,
            hop_by_hop=self.hop_by_hop,
            end_to_end=self.end_to_end,
        )

    # --- header flags ------------------------------------------------------------------------
    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_R)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_P)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_E)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_T)

    @property
    def header(self) -> tuple[int, int, int, int, int, int]:
        """(version, flags, code, app_id, hop_by_hop, end_to_end)."""
        return (self.version, self.flags, self.code, self.app_id, self.hop_by_hop, self.end_to_end)

    # --- AVP access --------------------------------------------------------------------------
    def find(self, name_or_code: str | int, vendor: int = 0) -> Avp | None:
        """The first top-level AVP with this name (or code + vendor), or None."""
        return _find(self.avps, name_or_code, vendor)

    def find_all(self, name_or_code: str | int, vendor: int = 0) -> list[Avp]:
        """Every top-level AVP with this name (or code + vendor), in order."""
        return _find_all(self.avps, name_or_code, vendor)

    def get(self, name_or_code: str | int, default: Any = None) -> Any:
        """The value of the first top-level AVP with this name/code, else ``default``."""
        a = _find(self.avps, name_or_code, 0)
        return default if a is None else a.value

    def __getitem__(self, name_or_code: str | int) -> Any:
        a = _find(self.avps, name_or_code, 0)
        if a is None:
            raise KeyError(name_or_code)
        return a.value

    def __contains__(self, name_or_code: str | int) -> bool:
        return _find(self.avps, name_or_code, 0) is not None

    def __iter__(self) -> Iterator[Avp]:
        return iter(self.avps)

    def __len__(self) -> int:
        return len(self.avps)

    # --- encoding ----------------------------------------------------------------------------
    def encode(self) -> bytes:
        """Wire bytes (deterministic; byte-identical to the input for unmodified decodes)."""
        body = b"".join([a.encode() for a in self.avps])
        n = 20 + len(body)
        return (
            _PACK(
                (self.version << 24) | n,
                (self.flags << 24) | self.code,
                self.app_id,
                self.hop_by_hop,
                self.end_to_end,
            )
            + body
        )

    def __repr__(self) -> str:
        kind = "request" if self.is_request else "answer"
        return (
            f"Message(code={self.code}, app={self.app_id}, {kind}, flags=0x{self.flags:02x}, "
            f"hbh=0x{self.hop_by_hop:08x}, e2e=0x{self.end_to_end:08x}, avps={self.avps!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessagePy):
            return NotImplemented
        return self.encode() == other.encode()

    __hash__ = None  # type: ignore[assignment]


def decode_header(data: bytes) -> tuple[int, int, int, int, int, int, int]:
    """(version, length, flags, code, app_id, hop_by_hop, end_to_end) of the first 20 bytes."""
    w0, w1, app, hbh, e2e = _UNPACK(data, 0)
    return (w0 >> 24, w0 & 0xFFFFFF, w1 >> 24, w1 & 0xFFFFFF, app, hbh, e2e)


def decode_message_py(data: bytes) -> MessagePy:
    """Decode one whole message (exactly one frame, as FrameBuffer yields).

    Header problems are fatal (framing cannot be trusted): version != 1 -> 5011, a Message
    Length below 20, not a multiple of 4, or different from len(data) -> 5015. AVP-level
    problems (truncated/overlong AVP) -> 5014, not fatal, with ``header`` and ``partial`` set
    so the caller can answer. Grouped AVPs are split lazily, on first access.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data)
    if n < 20:
        raise DiameterError(5015, f"message of {n} octets is shorter than the header", fatal=True)
    w0, w1, app, hbh, e2e = _UNPACK(data, 0)
    version = w0 >> 24
    length = w0 & 0xFFFFFF
    flags = w1 >> 24
    code = w1 & 0xFFFFFF
    header = (version, flags, code, app, hbh, e2e)
    if version != 1:
        raise DiameterError(5011, f"version {version}", fatal=True, header=header)
    if length != n or length & 3:
        raise DiameterError(
            5015, f"Message Length {length} for {n} octets", fatal=True, header=header
        )
    msg = MessagePy.__new__(MessagePy)
    msg.version = version
    msg.flags = flags
    msg.code = code
    msg.app_id = app
    msg.hop_by_hop = hbh
    msg.end_to_end = e2e
    try:
        msg.avps = _walk_py(data, 20, n)  # type: ignore[assignment]
    except DiameterError as exc:
        exc.header = header
        msg.avps = _partial(data, 20, n)  # type: ignore[assignment]
        exc.partial = msg
        raise
    return msg


def _partial(data: bytes, start: int, end: int) -> list[AvpPy]:
    """The AVPs that decode before the first bad one (for Session-Id/Proxy-Info copies)."""
    good: list[AvpPy] = []
    off = start
    while off < end:
        try:
            one = _walk_py(data, off, min(end, off + max(8, _len_at(data, off, end))))
        except DiameterError:
            break
        if not one:
            break
        good.append(one[0])
        off = one[0]._end
    return good


def _len_at(data: bytes, off: int, end: int) -> int:
    if end - off < 8:
        return 0
    return ((int.from_bytes(data[off + 5 : off + 8], "big")) + 3) & ~3


Message = MessagePy
decode_message = decode_message_py
if EXT is not None:
    Message = EXT.Message  # type: ignore[misc]
    decode_message = EXT.decode_message
