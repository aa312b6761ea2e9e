"""A tiny capture reader for replaying Diameter traffic in tests (no third-party deps).

``diameter_messages(path)`` returns every Diameter message in a libpcap or pcapng file, in
the order the packets completing them were captured. It understands Ethernet (with VLAN
tags), Linux SLL/SLL2, BSD loopback and raw IP link layers; IPv4 and IPv6; TCP with per-stream
reassembly by sequence number (retransmissions and out-of-order segments handled) followed by
Diameter framing (RFC 6733 §3 Message Length); SCTP DATA chunks (one Diameter message per
user message, fragments joined with the B/E flags, retransmitted TSNs dropped).
Only ports are not used to classify: any TCP payload on port 3868, or any SCTP DATA with PPID
46 or on port 3868, is taken as Diameter.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DIAMETER_PORT = 3868


@dataclass
class Packet:
    ts: float
    linktype: int
    data: bytes


def read_packets(path: str | Path) -> Iterator[Packet]:
    """Yield link-layer frames from a pcap or pcapng file."""
    raw = Path(path).read_bytes()
    magic = raw[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(raw)
    else:
        yield from _pcap(raw)


def _pcap(raw: bytes) -> Iterator[Packet]:
    m = raw[:4]
    if m in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif m in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("not a pcap file")
    nano = m in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(e + "I", raw, 20)[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(raw):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", raw, off)
        off += 16
        yield Packet(sec + frac / (1e9 if nano else 1e6), linktype, raw[off : off + incl])
        off += incl


def _pcapng(raw: bytes) -> Iterator[Packet]:
    off = 0
    e = "<"
    ifaces: list[tuple[int, float]] = []
    while off + 12 <= len(raw):
        btype_b = raw[off : off + 4]
        if btype_b == b"\x0a\x0d\x0d\x0a":
            bom = raw[off + 8 : off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack_from(e + "II", raw, off)
        if blen < 12:
            raise ValueError(f"bad pcapng block length {blen} at {off}")
        body = raw[off + 8 : off + blen - 4]
        if btype == 1:  # Interface Description Block
            linktype = struct.unpack_from(e + "H", body, 0)[0]
            res = 1e-6
            opt = 8
            while opt + 4 <= len(body):
                code, olen = struct.unpack_from(e + "HH", body, opt)
                if code == 0:
                    break
                if code == 9 and olen >= 1:  # if_tsresol
                    v = body[opt + 4]
                    res = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
                opt += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, res))
        elif btype == 6:  # Enhanced Packet Block
            iface, hi, lo, cap, _orig = struct.unpack_from(e + "IIIII", body, 0)
            linktype, res = ifaces[iface]
            yield Packet(((hi << 32) | lo) * res, linktype, body[20 : 20 + cap])
        elif btype == 3:  # Simple Packet Block
            orig = struct.unpack_from(e + "I", body, 0)[0]
            linktype, _ = ifaces[0]
            yield Packet(0.0, linktype, body[4 : 4 + orig])
        off += blen


def _network_layer(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, payload) for the link types we know."""
    if linktype == 1:  # Ethernet
        if len(frame) < 14:
            return None
        et = struct.unpack_from("!H", frame, 12)[0]
        off = 14
        while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
            et = struct.unpack_from("!H", frame, off + 2)[0]
            off += 4
        return et, frame[off:]
    if linktype == 113:  # Linux cooked v1
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype == 276:  # Linux cooked v2
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype == 0:  # BSD loopback: host-order AF
        af = struct.unpack_from("<I", frame, 0)[0]
        return (0x0800 if af == 2 else 0x86DD), frame[4:]
    if linktype in (101, 12, 228, 229):  # raw IP
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame
    return None


def _transport(et: int, pkt: bytes) -> tuple[int, bytes, bytes, bytes] | None:
    """(ip protocol, src addr, dst addr, transport payload)."""
    if et == 0x0800 and len(pkt) >= 20:
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack_from("!H", pkt, 2)[0] or len(pkt)
        return pkt[9], pkt[12:16], pkt[16:20], pkt[ihl:total]
    if et == 0x86DD and len(pkt) >= 40:
        nxt = pkt[6]
        plen = struct.unpack_from("!H", pkt, 4)[0]
        src, dst = pkt[8:24], pkt[24:40]
        off = 40
        end = 40 + plen
        while nxt in (0, 43, 60, 44):  # hop-by-hop, routing, dest opts, fragment
            if nxt == 44:
                nxt, off = pkt[off], off + 8
            else:
                nxt, off = pkt[off], off + (pkt[off + 1] + 1) * 8
        return nxt, src, dst, pkt[off:end]
    return None


@dataclass
class _TcpStream:
    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    buf: bytearray = field(default_factory=bytearray)


def _tcp_push(st: _TcpStream, seq: int, syn: bool, payload: bytes) -> None:
    if syn:
        st.next_seq = (seq + 1) & 0xFFFFFFFF
    if not payload:
        return
    if st.next_seq is None:
        st.next_seq = seq
    st.pending.setdefault(seq, payload)
    progressed = True
    while progressed:
        progressed = False
        for s in list(st.pending):
            data = st.pending[s]
            assert st.next_seq is not None
            delta = (st.next_seq - s) & 0xFFFFFFFF
            if delta < 0x80000000:  # segment starts at or before next_seq
                del st.pending[s]
                if delta < len(data):
                    st.buf += data[delta:]
                    st.next_seq = (s + len(data)) & 0xFFFFFFFF
                progressed = True


def _frames(buf: bytearray) -> list[bytes]:
    out = []
    while len(buf) >= 20:
        n = int.from_bytes(buf[1:4], "big")
        if buf[0] != 1 or n < 20 or n & 3:
            raise ValueError(f"TCP stream lost Diameter framing (version {buf[0]}, length {n})")
        if len(buf) < n:
            break
        out.append(bytes(buf[:n]))
        del buf[:n]
    return out


def diameter_messages(path: str | Path) -> list[bytes]:
    """Every Diameter message in the capture, whole, in capture order of completion."""
    out: list[bytes] = []
    tcp: dict[tuple[bytes, int, bytes, int], _TcpStream] = {}
    sctp_seen: set[tuple[bytes, int, bytes, int, int]] = set()
    sctp_frag: dict[tuple[bytes, int, bytes, int, int], bytearray] = {}
    for p in read_packets(path):
        nl = _network_layer(p.linktype, p.data)
        if nl is None:
            continue
        tl = _transport(*nl)
        if tl is None:
            continue
        proto, src, dst, seg = tl
        if proto == 6 and len(seg) >= 20:
            sport, dport, seq = struct.unpack_from("!HHI", seg, 0)
            if DIAMETER_PORT not in (sport, dport):
                continue
            doff = (seg[12] >> 4) * 4
            syn = bool(seg[13] & 0x02)
            st = tcp.setdefault((src, sport, dst, dport), _TcpStream())
            _tcp_push(st, seq, syn, seg[doff:])
            out += _frames(st.buf)
        elif proto == 132 and len(seg) >= 12:
            sport, dport = struct.unpack_from("!HH", seg, 0)
            off = 12
            while off + 4 <= len(seg):
                ctype, cflags, clen = struct.unpack_from("!BBH", seg, off)
                if clen < 4:
                    break
                if ctype == 0 and clen >= 16:
                    tsn, sid, _ssn, ppid = struct.unpack_from("!IHHI", seg, off + 4)
                    data = seg[off + 16 : off + clen]
                    if ppid == 46 or DIAMETER_PORT in (sport, dport):
                        key = (src, sport, dst, dport, tsn)
                        if key not in sctp_seen:
                            sctp_seen.add(key)
                            fk = (src, sport, dst, dport, sid)
                            if cflags & 0x02:  # B: first fragment
                                sctp_frag[fk] = bytearray()
                            sctp_frag.setdefault(fk, bytearray()).extend(data)
                            if cflags & 0x01:  # E: last fragment
                                out += _frames(sctp_frag.pop(fk))
                off += (clen + 3) & ~3
    return out
