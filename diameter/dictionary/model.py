"""Dictionary records: what the codec and the validator know about an AVP or a command."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class MRule(IntEnum):
    """The M-bit rule of an AVP definition (RFC 6733 §4.5 flag rules table)."""

    MUST = 1  # M set when we send; accepted either way on receipt
    MAY = 2  # either way (e.g. the TS 29.061 3GPP-* AVPs, protocol-facts H4)
    MUST_NOT = 3  # M set on receipt is 3009 DIAMETER_INVALID_AVP_BITS


@dataclass(frozen=True, slots=True)
class Rule:
    """One grammar element: an AVP key, its count bounds, and whether it has a fixed position."""

    key: tuple[int, int]  # (code, vendor)
    name: str
    min: int
    max: int  # -1 = unbounded
    fixed: bool = False


@dataclass(frozen=True, slots=True)
class Grammar:
    """An ABNF grammar (RFC 6733 §3.2/§4.4): rules in order, and whether *[AVP] is allowed."""

    rules: tuple[Rule, ...]
    any_avp: bool
    by_key: dict[tuple[int, int], Rule] = field(default_factory=dict, compare=False)
    # Precomputed for the validator's hot loop: (vendor << 32 | code) -> max count (-1 =
    # unbounded, 0 = must not appear), and the rules with a minimum.
    limits: dict[int, int] = field(default_factory=dict, compare=False)
    required: list[Rule] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        for r in self.rules:
            self.by_key[r.key] = r
            self.limits[(r.key[1] << 32) | r.key[0]] = r.max
            if r.min:
                self.required.append(r)


@dataclass(frozen=True, slots=True)
class AvpDef:
    """An AVP definition: identity, type, flag rule, enum names, and a grammar if Grouped."""

    code: int
    vendor: int
    name: str
    type: int  # diameter.types.AvpType
    m_rule: MRule
    enum: dict[int, str] = field(default_factory=dict, compare=False)
    grammar: Grammar | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.code, self.vendor)

    @property
    def default_flags(self) -> int:
        """Flags we send: V when vendor-specific, M unless the rule says it must not be set."""
        return (0x80 if self.vendor else 0) | (0x40 if self.m_rule != MRule.MUST_NOT else 0)


@dataclass(frozen=True, slots=True)
class CommandDef:
    """A command: code, the application(s) it belongs to, names and grammars.

    ``app_id`` None means "any application" (session commands STR/ASR/RAR carry the App-Id of
    the application that owns the session, RFC 6733 §8).
    """

    code: int
    app_id: int | None
    name: str
    request_abbrev: str
    answer_abbrev: str
    proxiable: bool
    request: Grammar
    answer: Grammar
