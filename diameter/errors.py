"""The one exception the codec, framing and validation raise: a Diameter protocol error.

Every error carries what the peer layer needs to answer it (RFC 6733 §7): the Result-Code,
the Failed-AVP payload, whether the answer takes the E bit (3xxx protocol errors, §7.1.3) and
whether framing is lost so the transport must be closed (§7: "unparseable stream").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diameter.message import Message

__all__ = ["DiameterError"]


class DiameterError(Exception):
    """A protocol error with its wire code.

    Attributes a caller reads to build the error answer:

    - ``result_code``: e.g. 5014.
    - ``failed_avp``: encoded AVP(s) to put inside Failed-AVP (the whole offending AVP, or a
      zero-filled example of a missing one, RFC 6733 §7.5), or None.
    - ``e_bit``: True for 3xxx protocol errors: answer with the E bit and the generic grammar.
    - ``fatal``: framing is lost; close the transport (no answer can be correlated).
    - ``message``: text for Error-Message and logs.
    - ``header``: ``(version, flags, code, app_id, hop_by_hop, end_to_end)`` when the 20-byte
      header was readable (so the answer can copy H-b-H/E2E), else None.
    - ``partial``: a Message holding the top-level AVPs decoded before the error (to copy
      Session-Id/Proxy-Info into the answer), or None.
    """

    __slots__ = ("result_code", "failed_avp", "e_bit", "fatal", "message", "header", "partial")

    def __init__(
        self,
        result_code: int,
        message: str = "",
        *,
        failed_avp: bytes | None = None,
        e_bit: bool | None = None,
        fatal: bool = False,
        header: tuple[int, int, int, int, int, int] | None = None,
        partial: Message | None = None,
    ) -> None:
        super().__init__(f"{result_code}: {message}" if message else str(result_code))
        self.result_code = result_code
        self.failed_avp = failed_avp
        # RFC 6733 §7.1.3: protocol errors (3xxx) are answered with the E bit set.
        self.e_bit = (3000 <= result_code < 4000) if e_bit is None else e_bit
        self.fatal = fatal
        self.message = message
        self.header = header
        self.partial = partial

    def __repr__(self) -> str:
        return (
            f"DiameterError({self.result_code}, {self.message!r}, e_bit={self.e_bit}, "
            f"fatal={self.fatal}, failed_avp={self.failed_avp.hex() if self.failed_avp else None})"
        )

    def key(self) -> tuple[int, bytes | None, bool, bool]:
        """A comparable summary (code, Failed-AVP, E bit, fatal); parity tests compare these."""
        return (self.result_code, self.failed_avp, self.e_bit, self.fatal)
