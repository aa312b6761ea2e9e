"""Capabilities exchange (RFC 6733 §5.3): build CER/CEA, read the peer's, negotiate.

Negotiation (§5.3, protocol-facts A5): intersect our applications with every
Auth-Application-Id, Acct-Application-Id and Vendor-Specific-Application-Id the peer lists,
ignoring the Vendor-Id inside Vendor-Specific-Application-Id. The relay id 0xFFFFFFFF on either
side matches every application of the other side. Nothing in common -> 5010
(DIAMETER_NO_COMMON_APPLICATION, the connection is then closed). A Vendor-Specific-Application-Id
with neither application id -> 5005, with both -> 5009 (§6.11).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from diameter.avp import Avp, example
from diameter.constants import (
    APP_COMMON,
    APP_RELAY,
    CMD_CAPABILITIES_EXCHANGE,
)
from diameter.errors import DiameterError
from diameter.message import Message
from diameter.peer_config import PeerConfig

__all__ = ["RemoteCapabilities", "read_capabilities", "negotiate", "build_cer", "cea_avps"]


@dataclass(frozen=True, slots=True)
class RemoteCapabilities:
    """What the peer said about itself in its CER (or CEA)."""

    origin_host: str
    origin_realm: str
    applications: frozenset[int]
    supported_vendor_ids: frozenset[int]
    origin_state_id: int
    product_name: str
    inband_security_ids: frozenset[int] = frozenset()


def read_capabilities(msg: Message) -> RemoteCapabilities:
    """Read a CER/CEA; raise DiameterError 5005/5009 for a bad Vendor-Specific-Application-Id."""
    apps: set[int] = set()
    for a in msg.avps:
        if a.vendor:
            continue
        if a.code in (258, 259):  # Auth-/Acct-Application-Id
            apps.add(a.value)
        elif a.code == 260:  # Vendor-Specific-Application-Id
            auth = a.find("Auth-Application-Id")
            acct = a.find("Acct-Application-Id")
            if auth is None and acct is None:
                raise DiameterError(
                    5005,
                    "Vendor-Specific-Application-Id without Auth- or Acct-Application-Id",
                    failed_avp=example("Auth-Application-Id"),
                )
            if auth is not None and acct is not None:
                raise DiameterError(
                    5009,
                    "Vendor-Specific-Application-Id with both Auth- and Acct-Application-Id",
                    failed_avp=acct.encode(),
                )
            apps.add((auth or acct).value)  # type: ignore[union-attr]
    svids = frozenset(a.value for a in msg.find_all("Supported-Vendor-Id"))
    host = msg.get("Origin-Host", "")
    realm = msg.get("Origin-Realm", "")
    return RemoteCapabilities(
        origin_host=host if isinstance(host, str) else "",
        origin_realm=realm if isinstance(realm, str) else "",
        applications=frozenset(apps),
        supported_vendor_ids=svids,
        origin_state_id=msg.get("Origin-State-Id", 0) or 0,
        product_name=msg.get("Product-Name", "") or "",
        inband_security_ids=frozenset(a.value for a in msg.find_all("Inband-Security-Id")),
    )


def negotiate(config: PeerConfig, remote: RemoteCapabilities) -> frozenset[int]:
    """The common application ids; raise DiameterError(5010) when there are none, or 5017
    when the peer insists on in-band security (TLS) we do not offer (§6.10)."""
    inband = remote.inband_security_ids
    if inband and 0 not in inband:  # 0 = NO_INBAND_SECURITY
        raise DiameterError(5017, f"no common security: peer offers {sorted(inband)}")
    local = config.local_applications()
    theirs = remote.applications
    if APP_RELAY in theirs:
        common = set(local)
    elif APP_RELAY in local:
        common = set(theirs)
    else:
        common = set(local & theirs)
    common.discard(APP_COMMON)  # the base application is implicit, never "in common"
    if not common:
        raise DiameterError(
            5010,
            f"no common application: peer offers {sorted(theirs)}, we support {sorted(local)}",
        )
    return frozenset(common)


def _identity_avps(config: PeerConfig) -> list[Avp]:
    """Everything CER and CEA share, in the CER grammar's order (§5.3.1)."""
    avps = [
        Avp.new("Origin-Host", config.origin_host),
        Avp.new("Origin-Realm", config.origin_realm),
    ]
    avps += [
        Avp.new("Host-IP-Address", ipaddress.ip_address(ip)) for ip in config.host_ip_addresses
    ]
    avps.append(Avp.new("Vendor-Id", config.vendor_id))
    avps.append(Avp.new("Product-Name", config.product_name))
    if config.origin_state_id:
        avps.append(Avp.new("Origin-State-Id", config.origin_state_id))
    avps += [Avp.new("Supported-Vendor-Id", v) for v in config.supported_vendor_ids]
    avps += [Avp.new("Auth-Application-Id", a) for a in config.auth_application_ids]
    avps += [Avp.new("Acct-Application-Id", a) for a in config.acct_application_ids]
    for vendor, auth, acct in config.vendor_specific_application_ids:
        members = [Avp.new("Vendor-Id", vendor)]
        if auth is not None:
            members.append(Avp.new("Auth-Application-Id", auth))
        if acct is not None:
            members.append(Avp.new("Acct-Application-Id", acct))
        avps.append(Avp.new("Vendor-Specific-Application-Id", members))
    if config.firmware_revision is not None:
        avps.append(Avp.new("Firmware-Revision", config.firmware_revision))
    return avps


def build_cer(config: PeerConfig, hop_by_hop: int, end_to_end: int) -> Message:
    """Our CER (§5.3.1): identity, addresses and every application we support."""
    return Message.request(
        CMD_CAPABILITIES_EXCHANGE,
        APP_COMMON,
        _identity_avps(config),
        hop_by_hop=hop_by_hop,
        end_to_end=end_to_end,
    )


def cea_avps(config: PeerConfig) -> list[Avp]:
    """The AVPs a successful CEA carries after Result-Code, minus Origin-Host/Realm (which
    :mod:`diameter.answers` puts first) and Origin-State-Id (which it adds after these).
    The CEA lists all our applications (§5.3.2)."""
    return [a for a in _identity_avps(config)[2:] if a.code != 278]
