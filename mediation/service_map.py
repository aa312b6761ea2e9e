"""Which service a CCR/ACR is for: Service-Context-Id + Rating-Group -> ServiceKind.

Configuration, not code ([ro].contexts / [ro].rating_groups in config/icx.toml). RFC 4006 §8.42:
Service-Context-Id names the service; TS 32.299 uses ``[ext.]MNC.MCC.Release.NNNNN@3gpp.org``,
so we match on the ``NNNNN@3gpp.org`` suffix (facts C2). A Rating-Group entry overrides the
context (time-metered data rating groups are the usual case).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from charging.requests import ServiceKind

DEFAULT_CONTEXTS: dict[str, ServiceKind] = {
    "32260@3gpp.org": ServiceKind.VOICE,  # IMS (TS 32.260)
    "32276@3gpp.org": ServiceKind.VOICE,  # CS voice call service
    "32275@3gpp.org": ServiceKind.VOICE,  # MMTel
    "32251@3gpp.org": ServiceKind.DATA,  # PS / EPC data
    "32274@3gpp.org": ServiceKind.SMS,
    "32270@3gpp.org": ServiceKind.MMS,
    "content@icx.local": ServiceKind.CONTENT,
}


@dataclass(frozen=True, slots=True)
class ServiceMap:
    """Maps (Service-Context-Id, Rating-Group) to a service. Build it from settings."""

    contexts: Mapping[str, ServiceKind] = field(default_factory=lambda: dict(DEFAULT_CONTEXTS))
    rating_groups: Mapping[int, ServiceKind] = field(default_factory=dict)
    default: ServiceKind | None = ServiceKind.DATA

    @classmethod
    def from_config(cls, contexts: Mapping[str, str], rating_groups: Mapping[str, str],
                    default: str) -> ServiceMap:
        """Build from the plain [ro] values (strings); raises ValueError on unknown names."""
        return cls(
            contexts={k.lower(): ServiceKind(v) for k, v in contexts.items()},
            rating_groups={int(k): ServiceKind(v) for k, v in rating_groups.items()},
            default=ServiceKind(default) if default else None,
        )

    def context_service(self, context: str | None) -> ServiceKind | None:
        """The service of a Service-Context-Id, matching the longest configured suffix."""
        if not context:
            return self.default
        ctx = context.lower()
        hit = self.contexts.get(ctx)
        if hit is not None:
            return hit
        # "10.32260@3gpp.org" / "ext.01.001.8.32260@3gpp.org": keep the last dotted token.
        at = ctx.rfind("@")
        if at > 0:
            local = ctx[:at]
            suffix = local.rsplit(".", 1)[-1] + ctx[at:]
            hit = self.contexts.get(suffix)
            if hit is not None:
                return hit
        return self.default

    def service(self, context: str | None, rating_group: int | None) -> ServiceKind | None:
        """The service for one MSCC: a configured rating group wins over the context."""
        if rating_group is not None:
            hit = self.rating_groups.get(rating_group)
            if hit is not None:
                return hit
        return self.context_service(context)
