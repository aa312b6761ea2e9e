"""AVP data types (RFC 6733 §4.2 basic, §4.3 derived) and their value codecs.

`decode_value` turns an AVP payload into a Python value; `encode_value` does the reverse.
Both raise DiameterError for payloads that break the type's rules: a wrong fixed length is
5014 (DIAMETER_INVALID_AVP_LENGTH), a bad value (bad UTF-8, bad Address length) is 5004.
The caller (diameter.avp.Avp) supplies the encoded AVP for Failed-AVP.
"""

from __future__ import annotations

import ipaddress
import struct
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, NamedTuple

__all__ = [
    "AvpType",
    "RawAddress",
    "NTP_UNIX_OFFSET",
    "FIXED_SIZE",
    "ntp_to_unix",
    "unix_to_ntp",
    "TypeError_",
]


class AvpType(IntEnum):
    """AVP data types. CHARGING_ID is the 3GPP-Charging-Id special case (protocol-facts H3)."""

    OCTET_STRING = 1
    INTEGER32 = 2
    INTEGER64 = 3
    UNSIGNED32 = 4
    UNSIGNED64 = 5
    FLOAT32 = 6
    FLOAT64 = 7
    GROUPED = 8
    ADDRESS = 9
    TIME = 10
    UTF8STRING = 11
    DIAMETER_IDENTITY = 12
    DIAMETER_URI = 13
    ENUMERATED = 14
    IP_FILTER_RULE = 15
    # 4 octets: OctetString in go-diameter/Wireshark, Unsigned32 in freeDiameter. We decode
    # 4 octets as a big-endian int, keep any other length as bytes, and encode an int as 4 octets.
    CHARGING_ID = 16


TYPE_BY_NAME: dict[str, AvpType] = {
    "OctetString": AvpType.OCTET_STRING,
    "Integer32": AvpType.INTEGER32,
    "Integer64": AvpType.INTEGER64,
    "Unsigned32": AvpType.UNSIGNED32,
    "Unsigned64": AvpType.UNSIGNED64,
    "Float32": AvpType.FLOAT32,
    "Float64": AvpType.FLOAT64,
    "Grouped": AvpType.GROUPED,
    "Address": AvpType.ADDRESS,
    "Time": AvpType.TIME,
    "UTF8String": AvpType.UTF8STRING,
    "DiameterIdentity": AvpType.DIAMETER_IDENTITY,
    "DiameterURI": AvpType.DIAMETER_URI,
    "Enumerated": AvpType.ENUMERATED,
    "IPFilterRule": AvpType.IP_FILTER_RULE,
    "ChargingId": AvpType.CHARGING_ID,
}

# Payload size of the fixed-size types (RFC 6733 §4.2); anything else is 5014.
FIXED_SIZE: dict[int, int] = {
    AvpType.INTEGER32: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED32: 4,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT32: 4,
    AvpType.FLOAT64: 8,
    AvpType.ENUMERATED: 4,
    AvpType.TIME: 4,
}

# Minimum payload for a zero-filled example AVP in Failed-AVP (RFC 6733 §7.5).
def min_size(t: int) -> int:
    """Smallest valid payload of type ``t`` (0 for strings/grouped; 6 for an IPv4 Address)."""
    if t in FIXED_SIZE:
        return FIXED_SIZE[t]
    if t == AvpType.ADDRESS:
        return 6
    return 0


class RawAddress(NamedTuple):
    """An Address AVP whose family is not IPv4/IPv6 (e.g. 8 = E.164 text): kept as raw bytes."""

    family: int
    data: bytes

    @property
    def text(self) -> str:
        """The address bytes as ASCII text (E.164 digits for family 8)."""
        return self.data.decode("ascii", "replace")


class TypeError_(Exception):  # noqa: N801 - internal, converted to DiameterError by the caller
    """Raised by the value codecs; ``code`` is 5004 or 5014."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# RFC 6733 §4.3.1 Time: seconds since 1900-01-01 (NTP). 2 208 988 800 s to the Unix epoch.
NTP_UNIX_OFFSET = 2_208_988_800
_ERA = 1 << 32


def ntp_to_unix(ntp: int) -> int:
    """NTP seconds (32-bit) -> Unix seconds, with the RFC 2030 §3 rollover rule.

    If the MSB is set the value is in 1968-2036 (era 0); if clear, it is in 2036-2104 and is
    counted from 2036-02-07 06:28:16 UTC (era 1), as RFC 6733 §4.3.1 asks (SNTP extension).
    """
    if ntp & 0x80000000:
        return ntp - NTP_UNIX_OFFSET
    return ntp + _ERA - NTP_UNIX_OFFSET


def unix_to_ntp(unix: int) -> int:
    """Unix seconds -> the 32-bit NTP field (inverse of :func:`ntp_to_unix`).

    Representable range: 1968-01-20 03:14:08 UTC (MSB set) up to 2104-02-26 09:42:23 UTC.
    Raises ValueError outside it.
    """
    ntp = unix + NTP_UNIX_OFFSET
    if 0x80000000 <= ntp < _ERA:
        return ntp
    ntp -= _ERA
    if 0 <= ntp < 0x80000000:
        return ntp
    raise ValueError(f"time {unix} not representable as a Diameter Time")


_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_F32 = struct.Struct("!f")
_F64 = struct.Struct("!d")
_H = struct.Struct("!H")

_INT_STRUCTS: dict[int, struct.Struct] = {
    AvpType.INTEGER32: _I32,
    AvpType.INTEGER64: _I64,
    AvpType.UNSIGNED32: _U32,
    AvpType.UNSIGNED64: _U64,
    AvpType.ENUMERATED: _I32,
    AvpType.FLOAT32: _F32,
    AvpType.FLOAT64: _F64,
}

_TEXT_TYPES = frozenset(
    {
        AvpType.UTF8STRING,
        AvpType.DIAMETER_IDENTITY,
        AvpType.DIAMETER_URI,
        AvpType.IP_FILTER_RULE,
    }
)


def decode_scalar(t: int, data: bytes) -> Any:
    """Decode a non-Grouped payload of type ``t``; raises TypeError_ (5004/5014)."""
    s = _INT_STRUCTS.get(t)
    if s is not None:
        if len(data) != s.size:
            raise TypeError_(5014, f"payload of {len(data)} octets, expected {s.size}")
        return s.unpack(data)[0]
    if t in _TEXT_TYPES:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TypeError_(5004, f"invalid UTF-8: {exc.reason}") from None
    if t == AvpType.TIME:
        if len(data) != 4:
            raise TypeError_(5014, f"Time payload of {len(data)} octets, expected 4")
        return ntp_to_unix(_U32.unpack(data)[0])
    if t == AvpType.ADDRESS:
        return decode_address(data)
    if t == AvpType.CHARGING_ID:
        return _U32.unpack(data)[0] if len(data) == 4 else bytes(data)
    return bytes(data)


def decode_address(data: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | RawAddress:
    """Address (RFC 6733 §4.3.1): 2-octet IANA family then the address."""
    if len(data) < 2:
        raise TypeError_(5014, "Address shorter than its 2-octet family")
    family = (data[0] << 8) | data[1]
    if family == 1:
        if len(data) != 6:
            raise TypeError_(5004, f"IPv4 Address of {len(data) - 2} octets")
        return ipaddress.IPv4Address(bytes(data[2:]))
    if family == 2:
        if len(data) != 18:
            raise TypeError_(5004, f"IPv6 Address of {len(data) - 2} octets")
        return ipaddress.IPv6Address(bytes(data[2:]))
    return RawAddress(family, bytes(data[2:]))


def encode_address(value: Any) -> bytes:
    """Encode an ipaddress object, an IP string, a RawAddress or raw bytes (already encoded)."""
    if isinstance(value, ipaddress.IPv4Address):
        return b"\x00\x01" + value.packed
    if isinstance(value, ipaddress.IPv6Address):
        return b"\x00\x02" + value.packed
    if isinstance(value, RawAddress):
        return _H.pack(value.family) + value.data
    if isinstance(value, str):
        return encode_address(ipaddress.ip_address(value))
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise ValueError(f"cannot encode {value!r} as Address")


def encode_scalar(t: int, value: Any) -> bytes:
    """Encode a non-Grouped value of type ``t``; raises ValueError/struct.error when it does not fit."""
    s = _INT_STRUCTS.get(t)
    if s is not None:
        return s.pack(value)
    if t in _TEXT_TYPES:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if t == AvpType.TIME:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            value = int(value.timestamp())
        return _U32.pack(unix_to_ntp(int(value)))
    if t == AvpType.ADDRESS:
        return encode_address(value)
    if t == AvpType.CHARGING_ID:
        return _U32.pack(value) if isinstance(value, int) else bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def time_to_datetime(unix: int) -> datetime:
    """A decoded Time value (Unix seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(unix, UTC)
