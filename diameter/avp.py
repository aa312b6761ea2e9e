"""The AVP (RFC 6733 §4.1): header with V/M/P flags, optional Vendor-Id, payload, padding.

Decoded AVPs keep a reference to the received buffer and their offsets; the value is decoded
on first access (Grouped members too, so an unread Grouped AVP costs one object), and an AVP
that was not modified encodes back to exactly the bytes it came from, padding included.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from cython_ext import load
from diameter import dictionary
from diameter.errors import DiameterError
from diameter.types import AvpType, TypeError_, decode_scalar, encode_scalar, min_size

__all__ = ["Avp", "AvpPy", "decode_avps", "encode_avps", "example", "zero_filled", "AVP_V", "AVP_M", "AVP_P"]

AVP_V = 0x80
AVP_M = 0x40
AVP_P = 0x20

_GROUPED = int(AvpType.GROUPED)
_TYPES = dictionary.TYPES
_BY_NAME = dictionary.BY_NAME
# name -> (code, vendor, default flags, type) and name -> (code, vendor): one probe per use.
_SPECS: dict[str, tuple[int, int, int, int]] = {
    d.name: (d.code, d.vendor, d.default_flags, int(d.type)) for d in _BY_NAME.values()
}
_KEYS: dict[str, tuple[int, int]] = {d.name: (d.code, d.vendor) for d in _BY_NAME.values()}

_HDR = struct.Struct("!II")  # code, flags<<24 | length
_HDR_V = struct.Struct("!III")  # code, flags<<24 | length, vendor
_II = _HDR.unpack_from
_III = _HDR_V.unpack_from
_PACK = _HDR.pack
_PACK_V = _HDR_V.pack


# Integer types: (payload size, unpack_from) for decoding; (pack without vendor, pack with
# vendor, payload size) to encode header + value in one call.
_FAST_INT: dict[int, tuple[int, Any]] = {
    int(AvpType.UNSIGNED32): (4, struct.Struct("!I").unpack_from),
    int(AvpType.INTEGER32): (4, struct.Struct("!i").unpack_from),
    int(AvpType.ENUMERATED): (4, struct.Struct("!i").unpack_from),
    int(AvpType.UNSIGNED64): (8, struct.Struct("!Q").unpack_from),
    int(AvpType.INTEGER64): (8, struct.Struct("!q").unpack_from),
}
_PACK_INT: dict[int, tuple[Any, Any, int]] = {
    int(t): (struct.Struct("!II" + f).pack, struct.Struct("!III" + f).pack, struct.calcsize("!" + f))
    for t, f in (
        (AvpType.UNSIGNED32, "I"),
        (AvpType.INTEGER32, "i"),
        (AvpType.ENUMERATED, "i"),
        (AvpType.UNSIGNED64, "Q"),
        (AvpType.INTEGER64, "q"),
    )
}


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


class AvpPy:
    """One AVP. ``value`` is decoded by the dictionary type of (code, vendor):

    int (Integer*/Unsigned*/Enumerated; Time as Unix seconds, see diameter.types.ntp_to_unix),
    float, str (UTF8String/DiameterIdentity/DiameterURI/IPFilterRule), bytes (OctetString and
    every AVP unknown to the dictionary), ipaddress.IPv4Address/IPv6Address or RawAddress
    (Address), list[Avp] (Grouped, decoded on first access).

    Build with ``Avp.new("Name", value)`` (type and flags from the dictionary) or
    ``Avp(code, value, vendor=..., flags=..., type=...)``. Assigning ``value`` drops the cached
    wire bytes; mutating a Grouped value list in place is also seen by ``encode()``.
    Reading ``value`` of a malformed AVP raises DiameterError (5004 or 5014, Failed-AVP set).
    """

    __slots__ = ("code", "flags", "vendor", "_type", "_value", "_buf", "_off", "_hlen", "_len", "_end")

    code: int
    flags: int
    vendor: int
    _type: int | None
    _value: Any
    _buf: bytes | None
    _off: int
    _hlen: int
    _len: int
    _end: int

    def __init__(
        self,
        code: int,
        value: Any = _UNSET,
        *,
        vendor: int = 0,
        flags: int | None = None,
        type: int | None = None,  # noqa: A002 - mirrors the dictionary's vocabulary
    ) -> None:
        if flags is None:
            d = dictionary.AVPS.get((code, vendor))
            flags = d.default_flags if d is not None else (AVP_M if not vendor else AVP_V | AVP_M)
        if vendor:
            flags |= AVP_V
        else:
            flags &= ~AVP_V
        self.code = code
        self.flags = flags
        self.vendor = vendor
        self._type = type
        self._value = b"" if value is _UNSET else value
        self._buf = None
        self._off = self._hlen = self._len = self._end = 0

    @classmethod
    def new(
        cls,
        name_or_code: str | int,
        value: Any,
        *,
        vendor: int | None = None,
        flags: int | None = None,
    ) -> AvpPy:
        """Build an AVP by dictionary name (or code); type, vendor and flags come from the
        dictionary unless given. Raises KeyError for an unknown name."""
        if name_or_code.__class__ is str:
            code, dvendor, dflags, t = _SPECS[name_or_code]  # type: ignore[index]
            a = cls.__new__(cls)
            a.code = code
            if vendor is None:
                vendor = dvendor
            a.vendor = vendor
            f = dflags if flags is None else flags
            a.flags = (f | AVP_V) if vendor else (f & ~AVP_V)
            a._type = t
            a._value = value
            a._buf = None
            a._off = a._hlen = a._len = a._end = 0
            return a
        return cls(name_or_code, value, vendor=vendor or 0, flags=flags)  # type: ignore[arg-type]

    # --- flags -------------------------------------------------------------------------------
    @property
    def is_mandatory(self) -> bool:
        return bool(self.flags & AVP_M)

    @property
    def is_vendor(self) -> bool:
        return bool(self.flags & AVP_V)

    @property
    def is_protected(self) -> bool:
        return bool(self.flags & AVP_P)

    @property
    def name(self) -> str | None:
        """Dictionary name, or None when unknown."""
        d = dictionary.AVPS.get((self.code, self.vendor))
        return d.name if d else None

    @property
    def type(self) -> int | None:
        """The AvpType used to decode/encode the value (None = unknown, bytes)."""
        t = self._type
        return t if t is not None else _TYPES.get((self.vendor << 32) | self.code)

    # --- value -------------------------------------------------------------------------------
    @property
    def value(self) -> Any:
        v = self._value
        if v is _UNSET:
            v = self._decode()
            self._value = v
        return v

    @value.setter
    def value(self, v: Any) -> None:
        self._value = v
        self._buf = None

    @property
    def data(self) -> bytes:
        """The payload bytes (no header, no padding)."""
        if self._buf is not None:
            return self._buf[self._off + self._hlen : self._off + self._len]
        return self._encode_data()

    def _decode(self) -> Any:
        buf = self._buf
        if buf is None:  # pragma: no cover - built AVPs always have a value
            return b""
        t = self._type
        if t is None:
            t = _TYPES.get((self.vendor << 32) | self.code)
        start = self._off + self._hlen
        end = self._off + self._len
        if t == _GROUPED:
            return _walk_py(buf, start, end)
        fast = _FAST_INT.get(t)  # type: ignore[arg-type]
        if fast is not None and end - start == fast[0]:
            return fast[1](buf, start)[0]
        data = buf[start:end]
        if t is None:
            return data
        try:
            return decode_scalar(t, data)
        except TypeError_ as exc:
            raise DiameterError(
                exc.code, f"AVP {self.code}/{self.vendor}: {exc.message}", failed_avp=self.encode()
            ) from None

    def __getitem__(self, name_or_code: str | int) -> Any:
        """Grouped only: value of the first member with this name/code; KeyError if absent."""
        a = self.find(name_or_code)
        if a is None:
            raise KeyError(name_or_code)
        return a.value

    def get(self, name_or_code: str | int, default: Any = None) -> Any:
        """Grouped only: value of the first member with this name/code, else ``default``."""
        a = self.find(name_or_code)
        return default if a is None else a.value

    def find(self, name_or_code: str | int, vendor: int = 0) -> Avp | None:
        """Grouped only: the first member AVP with this name (or code + vendor), or None."""
        return _find(self.value, name_or_code, vendor)

    def find_all(self, name_or_code: str | int, vendor: int = 0) -> list[Avp]:
        """Grouped only: every member AVP with this name (or code + vendor), in order."""
        return _find_all(self.value, name_or_code, vendor)

    # --- encoding ----------------------------------------------------------------------------
    def _encode_data(self) -> bytes:
        v = self._value
        t = self.type
        if t == _GROUPED or isinstance(v, list):
            return b"".join([a.encode() for a in v])
        if t is None:
            return v.encode("utf-8") if isinstance(v, str) else bytes(v)
        return encode_scalar(t, v)

    def encode(self) -> bytes:
        """Wire bytes of the AVP including padding (identical to the received bytes when the
        AVP was decoded and not modified). Raises ValueError/struct.error for unencodable values."""
        buf = self._buf
        if buf is not None:
            if self._value.__class__ is not list:
                return buf[self._off : self._end]
            # A read Grouped AVP: members may have been edited in place. Unchanged members
            # re-join to the received payload; then keep the received bytes (and padding).
            data = self._encode_data()
            if data == buf[self._off + self._hlen : self._off + self._len]:
                return buf[self._off : self._end]
        else:
            v = self._value
            if v.__class__ is int:
                packers = _PACK_INT.get(self.type)  # type: ignore[arg-type]
                if packers is not None:
                    # header + value in one struct call; out-of-range values raise struct.error
                    # exactly like the general path below.
                    if self.flags & AVP_V:
                        return packers[1](self.code, (self.flags << 24) | packers[2] + 12, self.vendor, v)
                    return packers[0](self.code, (self.flags << 24) | packers[2] + 8, v)
            data = self._encode_data()
        if self.flags & AVP_V:
            n = 12 + len(data)
            hdr = _PACK_V(self.code, (self.flags << 24) | n, self.vendor)
        else:
            n = 8 + len(data)
            hdr = _PACK(self.code, (self.flags << 24) | n)
        return hdr + data + _PAD[n & 3]

    @property
    def length(self) -> int:
        """The AVP Length field: header + payload, excluding padding (RFC 6733 §4.1)."""
        if self._buf is not None and self._value.__class__ is not list:
            return self._len
        return (12 if self.flags & AVP_V else 8) + len(self._encode_data())

    def zero_example(self) -> bytes:
        """This AVP's header with a zero-filled payload of the type's minimum size (§7.5)."""
        return zero_filled(self.code, self.vendor, self.flags)

    # --- misc --------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AvpPy):
            return NotImplemented
        return self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.encode())

    def __repr__(self) -> str:
        name = self.name or str(self.code)
        try:
            v: Any = self.value
        except DiameterError as exc:
            v = f"<undecodable: {exc.message}>"
        ven = f", vendor={self.vendor}" if self.vendor else ""
        return f"Avp({name}{ven}, flags=0x{self.flags:02x}, {v!r})"


def zero_filled(code: int, vendor: int, flags: int) -> bytes:
    """An AVP header with a zero payload of the minimum size for its type (RFC 6733 §7.5)."""
    t = _TYPES.get((vendor << 32) | code)
    size = min_size(t) if t is not None else 0
    flags &= 0xFF
    if vendor:
        flags |= AVP_V
        n = 12 + size
        hdr = _PACK_V(code, (flags << 24) | n, vendor)
    else:
        flags &= ~AVP_V
        n = 8 + size
        hdr = _PACK(code, (flags << 24) | n)
    return hdr + b"\x00" * size + _PAD[n & 3]


def example(name: str) -> bytes:
    """A zero-filled example of the AVP called ``name`` for Failed-AVP (5005, §7.5)."""
    d = _BY_NAME[name]
    return zero_filled(d.code, d.vendor, d.default_flags)


def _key(name_or_code: str | int, vendor: int) -> tuple[int, int]:
    if name_or_code.__class__ is str:
        return _KEYS[name_or_code]  # type: ignore[index]
    return name_or_code, vendor  # type: ignore[return-value]


def _find(avps: list[AvpPy], name_or_code: str | int, vendor: int) -> AvpPy | None:
    code, vendor = _key(name_or_code, vendor)
    for a in avps:
        if a.code == code and a.vendor == vendor:
            return a
    return None


def _find_all(avps: list[AvpPy], name_or_code: str | int, vendor: int) -> list[AvpPy]:
    code, vendor = _key(name_or_code, vendor)
    return [a for a in avps if a.code == code and a.vendor == vendor]


def _walk_py(buf: bytes, start: int, end: int) -> list[AvpPy]:
    """Split buf[start:end] into AVPs (not recursing into Grouped ones).

    Raises DiameterError 5014 (Failed-AVP = header + zero payload of minimum size, RFC 6733
    §7.1.5) when an AVP header is truncated, its length is below the header size, or it runs
    past ``end``.
    """
    out: list[AvpPy] = []
    append = out.append
    new = AvpPy.__new__
    off = start
    while off < end:
        if end - off < 8:
            raise DiameterError(5014, f"truncated AVP header at offset {off}", failed_avp=None)
        code, fl = _II(buf, off)
        flags = fl >> 24
        length = fl & 0xFFFFFF
        if flags & 0x80:
            if end - off < 12:
                raise DiameterError(
                    5014, f"truncated vendor AVP header at offset {off}",
                    failed_avp=zero_filled(code, 0, flags & ~AVP_V),
                )
            vendor = _III(buf, off)[2]
            hlen = 12
        else:
            vendor = 0
            hlen = 8
        if length < hlen or off + length > end:
            raise DiameterError(
                5014,
                f"AVP {code}/{vendor} length {length} invalid at offset {off}",
                failed_avp=zero_filled(code, vendor, flags),
            )
        nxt = off + ((length + 3) & ~3)
        if nxt > end:
            nxt = end
        a = new(AvpPy)
        a.code = code
        a.flags = flags
        a.vendor = vendor
        a._type = None
        a._value = _UNSET
        a._buf = buf
        a._off = off
        a._hlen = hlen
        a._len = length
        a._end = nxt
        append(a)
        off = nxt
    return out


_EXT_ABI = 2  # must equal cython_ext/diameter_codec.pyx ABI


def _select() -> ModuleType | None:
    """The one selection point of the codec twin (cython_ext.load honours ICX_NO_EXTENSIONS)."""
    ext = load("diameter_codec")
    if ext is None:
        return None
    if getattr(ext, "ABI", None) != _EXT_ABI:
        warnings.warn(
            "cython_ext.diameter_codec is a stale build (rebuild with "
            "`python setup.py build_ext --inplace`); using the pure-Python codec",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    ext.configure(
        types=_TYPES,
        specs=_SPECS,
        keys=_KEYS,
        default_flags={
            (d.vendor << 32) | d.code: d.default_flags for d in dictionary.AVPS.values()
        },
        names={(d.vendor << 32) | d.code: d.name for d in dictionary.AVPS.values()},
        error=DiameterError,
        type_error=TypeError_,
        decode_scalar=decode_scalar,
        encode_scalar=encode_scalar,
        zero_filled=zero_filled,
    )
    return ext


EXT = _select()
Avp = AvpPy
_walk = _walk_py
if EXT is not None:
    Avp = EXT.Avp  # type: ignore[misc]
    _walk = EXT.walk


def decode_avps(data: bytes, start: int = 0, end: int | None = None) -> list[Avp]:
    """Decode a run of AVPs (e.g. a Grouped payload or a Failed-AVP body); raises DiameterError."""
    if not isinstance(data, bytes):
        data = bytes(data)
    return _walk(data, start, len(data) if end is None else end)


def encode_avps(avps: Iterable[Avp]) -> bytes:
    """Concatenate encoded AVPs."""
    return b"".join([a.encode() for a in avps])
