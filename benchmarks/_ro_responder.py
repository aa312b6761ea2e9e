"""The baseline for benchmarks/ro.py: a minimal Python asyncio Diameter responder.

It answers CER with CEA, DWR with DWA, DPR with DPA, and every CCR with a CCA 2001 that
echoes Session-Id, CC-Request-Type and CC-Request-Number and grants a fixed quota -- no rating,
no balances, no journal. It is the ceiling for a Python server on this machine.

Run: ``python -m benchmarks._ro_responder --port 3870`` (prints ``READY <port>``).
"""

from __future__ import annotations

import argparse
import asyncio
import struct

_HDR = struct.Struct("!IIIII")
_AVP = struct.Struct("!II")


def _avp(code: int, data: bytes) -> bytes:
    n = 8 + len(data)
    return _AVP.pack(code, (0x40 << 24) | n) + data + b"\0" * (-n & 3)


def _u32(code: int, v: int) -> bytes:
    return _avp(code, v.to_bytes(4, "big"))


ORIGIN = _avp(264, b"responder.icx.local") + _avp(296, b"icx.local")
OK = _u32(268, 2001)
CEA_TAIL = (_avp(257, b"\x00\x01\x7f\x00\x00\x01") + _u32(266, 0) + _avp(269, b"responder")
            + _u32(258, 4) + _u32(259, 3))
# MSCC { GSU { CC-Time 60 } Rating-Group 1, Result-Code 2001 } + Validity-Time
GRANT = _avp(456, _avp(431, _u32(420, 60)) + _u32(432, 1) + OK) + _u32(448, 600)


def _scan(body: bytes, want: set[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off, end = 0, len(body)
    while off + 8 <= end:
        code, fl = _AVP.unpack_from(body, off)
        n = fl & 0xFFFFFF
        if n < 8:
            break
        if code in want and code not in out:
            out[code] = body[off:off + ((n + 3) & ~3)]
        off += (n + 3) & ~3
    return out


class Responder(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        while len(buf) >= 20:
            n = int.from_bytes(buf[1:4], "big")
            if len(buf) < n:
                break
            frame = bytes(buf[:n])
            del buf[:n]
            _, cf, app, hbh, e2e = _HDR.unpack_from(frame)
            code = cf & 0xFFFFFF
            if not (cf >> 24) & 0x80:
                continue  # an answer: ignore
            body = frame[20:]
            if code == 272:
                f = _scan(body, {263, 415, 416})
                payload = (f.get(263, b"") + OK + ORIGIN + _u32(258, 4) + f.get(416, b"")
                           + f.get(415, b"") + GRANT)
            elif code == 257:
                payload = OK + ORIGIN + CEA_TAIL
            else:
                payload = OK + ORIGIN
            flags = (cf >> 24) & 0x40
            out.append(_HDR.pack((1 << 24) | (20 + len(payload)), (flags << 24) | code, app,
                                 hbh, e2e) + payload)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(Responder, host, port)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3870)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()

    async def run() -> None:
        server = await serve(args.host, args.port)
        print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
