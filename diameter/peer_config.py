"""What a :class:`diameter.peer.PeerConnection` needs to know about us and its limits.

Plain values only: the composition root (icx/wiring.py) builds one from the settings, tests
build one directly. Application ids follow RFC 6733 §2.4 / protocol-facts A1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from diameter.constants import APP_ACCOUNTING, APP_CREDIT_CONTROL, VENDOR_3GPP


class Role(enum.Enum):
    """Who opened the transport: we did (INITIATOR) or the peer did (RESPONDER)."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Our identity, what we advertise in CER/CEA, and the per-connection limits."""

    origin_host: str = "ocs.icx.local"
    origin_realm: str = "icx.local"
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    vendor_id: int = 0
    product_name: str = "icx"
    # RFC 6733 §8.16: bumped on every restart that loses state; 0 = "make no inference".
    origin_state_id: int = 0
    firmware_revision: int | None = None
    # Advertised in CER/CEA (RFC 6733 §5.3.1): Ro = credit control 4 (auth), Rf = accounting 3.
    auth_application_ids: tuple[int, ...] = (APP_CREDIT_CONTROL,)
    acct_application_ids: tuple[int, ...] = (APP_ACCOUNTING,)
    # (vendor_id, auth_app_id or None, acct_app_id or None) for Vendor-Specific-Application-Id.
    vendor_specific_application_ids: tuple[tuple[int, int | None, int | None], ...] = ()
    supported_vendor_ids: tuple[int, ...] = (VENDOR_3GPP,)
    # Empty: accept any peer. Otherwise a CER from an Origin-Host not listed gets 3010 + close.
    allowed_peers: tuple[str, ...] = ()
    # RFC 3539 Tw (>= 6 s); None disables the watchdog (tests of other parts only).
    watchdog_seconds: float | None = 30.0
    # A responder closes a connection whose CER does not arrive within this time (facts A7);
    # an initiator gives up waiting for the CEA (or the DPA) after the same time.
    cer_timeout_seconds: float = 10.0
    # After sending DPR, wait this long for the DPA before closing anyway.
    dpa_timeout_seconds: float = 5.0
    max_message_size: int = 65536
    # Requests from the peer being processed at once before we answer 3004 DIAMETER_TOO_BUSY.
    max_inflight: int = 1024
    duplicate_cache_seconds: float = 240.0
    duplicate_cache_entries: int = 100_000
    # Check every application request against the dictionary grammar before the handler sees
    # it (RFC 6733 §7 error answers). Base requests (CER/DWR/DPR) are always checked.
    validate_requests: bool = True
    # The adapter logs one `diameter.request` line per answered request (when INFO is on).
    log_requests: bool = True
    # The Destination-Realm / Destination-Host values (lower case) this node consumes locally
    # (RFC 6733 §6.1.4); a request naming another gets 3003 / 3002 (it routes nowhere).
    # None: every request is taken as local (no check).
    served_realms: frozenset[str] | None = None
    served_hosts: frozenset[str] | None = None

    def local_applications(self) -> frozenset[int]:
        """Every application id we support (auth, acct and vendor-specific)."""
        apps = set(self.auth_application_ids) | set(self.acct_application_ids)
        for _vendor, auth, acct in self.vendor_specific_application_ids:
            if auth is not None:
                apps.add(auth)
            if acct is not None:
                apps.add(acct)
        return frozenset(apps)
