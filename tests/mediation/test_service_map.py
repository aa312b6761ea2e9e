"""Service mapping by Service-Context-Id suffix and rating group (facts C2)."""

from __future__ import annotations

from charging.requests import ServiceKind
from mediation.service_map import ServiceMap


def test_minimal_and_prefixed_contexts_match_the_suffix() -> None:
    m = ServiceMap()
    assert m.context_service("32260@3gpp.org") is ServiceKind.VOICE
    assert m.context_service("10.32260@3gpp.org") is ServiceKind.VOICE
    assert m.context_service("ext.01.001.8.32251@3gpp.org") is ServiceKind.DATA
    assert m.context_service("32274@3GPP.ORG") is ServiceKind.SMS
    assert m.context_service("32270@3gpp.org") is ServiceKind.MMS


def test_unknown_context_falls_back_to_default_or_none() -> None:
    assert ServiceMap().context_service("foo@bar") is ServiceKind.DATA
    assert ServiceMap(default=None).context_service("foo@bar") is None


def test_rating_group_overrides_context() -> None:
    m = ServiceMap.from_config({"32251@3gpp.org": "data"}, {"200": "data_time"}, "")
    assert m.service("32251@3gpp.org", 200) is ServiceKind.DATA_TIME
    assert m.service("32251@3gpp.org", 1) is ServiceKind.DATA
    assert m.service("nope@x", None) is None
