"""SCTP listening socket for the adapter (RFC 6733 §2.1: Diameter over SCTP, port 3868).

SCTP needs kernel support. :func:`sctp_server_socket` returns a bound, listening one-to-one
(SOCK_STREAM style) SCTP socket that asyncio can serve like TCP — made by pysctp when it is
installed (``pip install icx[sctp]``), else by the standard library, which can open one-to-one
SCTP sockets itself. Where the kernel has no SCTP (this development machine, most containers)
it raises :class:`TransportUnavailable` with a clear reason, and ``icx serve`` exits 2.
"""

from __future__ import annotations

import socket

__all__ = ["TransportUnavailable", "sctp_unavailable_reason", "sctp_server_socket"]


class TransportUnavailable(Exception):
    """The configured transport cannot be used on this machine."""


def sctp_unavailable_reason() -> str | None:
    """None when this kernel can open SCTP sockets, else why not."""
    proto = getattr(socket, "IPPROTO_SCTP", None)
    if proto is None:
        return "SCTP not supported by this Python build (no socket.IPPROTO_SCTP)"
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    except OSError as exc:
        return (
            f"SCTP not supported by this kernel ({exc.strerror}); load the sctp module "
            '(modprobe sctp) or use transport = "tcp"'
        )
    probe.close()
    return None


def sctp_server_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening SCTP socket on (host, port); raises TransportUnavailable."""
    reason = sctp_unavailable_reason()
    if reason is not None:
        raise TransportUnavailable(reason)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        import sctp  # type: ignore[import-not-found]  # pysctp, optional

        sock: socket.socket = sctp.sctpsocket_tcp(family).sock()
    except ImportError:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise TransportUnavailable(f"cannot listen on SCTP {host}:{port}: {exc}") from exc
    return sock
