"""Sans-IO Diameter framing over a byte stream (RFC 6733 §3), with hard limits.

Each complete message is cut from the stream by its 24-bit Message Length. The 4-byte prefix
(version + length) is checked as soon as it arrives, so an oversized or nonsensical length
claim is refused before a single body byte is buffered: the buffer never holds more than
``max_message_size - 1`` bytes. Work is O(bytes consumed).
"""

from __future__ import annotations

from diameter.errors import DiameterError

__all__ = ["FrameBuffer"]


class FrameBuffer:
    """Feed stream bytes, get whole frames (bytes objects, one per Diameter message).

    ``feed`` raises DiameterError(fatal=True) when the stream cannot be framed any more:
    version != 1 (5011); Message Length < 20 or not a multiple of 4 (5015); Message Length >
    ``max_message_size`` (5015). The caller must then close the transport; further feeds
    raise the same error again. Frames before the bad header in the same feed are lost with it
    (the caller closes anyway).
    """

    __slots__ = ("_max", "_buf", "_need", "_error", "frames_total")

    def __init__(self, max_message_size: int) -> None:
        if max_message_size < 20:
            raise ValueError("max_message_size must be at least 20")
        self._max = max_message_size
        self._buf = bytearray()
        self._need = 0  # length of the frame being assembled, 0 when not known yet
        self._error: DiameterError | None = None
        self.frames_total = 0

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (always < max_message_size)."""
        return len(self._buf)

    def _check(self, b0: int, length: int) -> None:
        if b0 != 1:
            err = DiameterError(5011, f"version {b0}", fatal=True)
        elif length < 20 or length & 3:
            err = DiameterError(5015, f"Message Length {length}", fatal=True)
        elif length > self._max:
            err = DiameterError(
                5015, f"Message Length {length} exceeds the limit {self._max}", fatal=True
            )
        else:
            return
        self._error = err
        self._buf = bytearray()
        raise err

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return every frame it completes, in order."""
        if self._error is not None:
            raise self._error
        out: list[bytes] = []
        mv = memoryview(data)
        pos = 0
        n = len(mv)
        buf = self._buf
        # 1. Finish the frame already in progress.
        if buf:
            if self._need == 0:
                take = min(4 - len(buf), n)
                buf += mv[:take]
                pos = take
                if len(buf) < 4:
                    return out
                self._need = int.from_bytes(buf[1:4], "big")
                self._check(buf[0], self._need)
            take = min(self._need - len(buf), n - pos)
            buf += mv[pos : pos + take]
            pos += take
            if len(buf) < self._need:
                return out
            out.append(bytes(buf))
            self._buf = buf = bytearray()
            self._need = 0
        # 2. Whole frames straight from ``data`` (no copy into the buffer).
        while n - pos >= 4:
            length = int.from_bytes(mv[pos + 1 : pos + 4], "big")
            self._check(mv[pos], length)
            if n - pos < length:
                self._need = length
                break
            out.append(bytes(mv[pos : pos + length]))
            pos += length
        # 3. Keep the tail (a partial frame: < length <= max bytes).
        if pos < n:
            buf += mv[pos:]
        self.frames_total += len(out)
        return out
