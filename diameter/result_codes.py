"""Result-Code values (AVP 268) of RFC 6733 §7.1 and RFC 4006 §9.1, declared once.

The E-bit rule (RFC 6733 §7.1.3): 3xxx protocol errors travel only in answers with the E bit;
every other class never sets it. Unknown classes are treated as permanent failures (§7.1).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ResultCode", "e_bit", "is_success", "result_class"]


class ResultCode(IntEnum):
    """Every Result-Code the stack knows (protocol-facts A6, B6)."""

    DIAMETER_MULTI_ROUND_AUTH = 1001
    DIAMETER_SUCCESS = 2001
    DIAMETER_LIMITED_SUCCESS = 2002
    DIAMETER_COMMAND_UNSUPPORTED = 3001
    DIAMETER_UNABLE_TO_DELIVER = 3002
    DIAMETER_REALM_NOT_SERVED = 3003
    DIAMETER_TOO_BUSY = 3004
    DIAMETER_LOOP_DETECTED = 3005
    DIAMETER_REDIRECT_INDICATION = 3006
    DIAMETER_APPLICATION_UNSUPPORTED = 3007
    DIAMETER_INVALID_HDR_BITS = 3008
    DIAMETER_INVALID_AVP_BITS = 3009
    DIAMETER_UNKNOWN_PEER = 3010
    DIAMETER_AUTHENTICATION_REJECTED = 4001
    DIAMETER_OUT_OF_SPACE = 4002
    ELECTION_LOST = 4003
    DIAMETER_END_USER_SERVICE_DENIED = 4010
    DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE = 4011
    DIAMETER_CREDIT_LIMIT_REACHED = 4012
    DIAMETER_AVP_UNSUPPORTED = 5001
    DIAMETER_UNKNOWN_SESSION_ID = 5002
    DIAMETER_AUTHORIZATION_REJECTED = 5003
    DIAMETER_INVALID_AVP_VALUE = 5004
    DIAMETER_MISSING_AVP = 5005
    DIAMETER_RESOURCES_EXCEEDED = 5006
    DIAMETER_CONTRADICTING_AVPS = 5007
    DIAMETER_AVP_NOT_ALLOWED = 5008
    DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = 5009
    DIAMETER_NO_COMMON_APPLICATION = 5010
    DIAMETER_UNSUPPORTED_VERSION = 5011
    DIAMETER_UNABLE_TO_COMPLY = 5012
    DIAMETER_INVALID_BIT_IN_HEADER = 5013
    DIAMETER_INVALID_AVP_LENGTH = 5014
    DIAMETER_INVALID_MESSAGE_LENGTH = 5015
    DIAMETER_INVALID_AVP_BIT_COMBO = 5016
    DIAMETER_NO_COMMON_SECURITY = 5017
    DIAMETER_USER_UNKNOWN = 5030
    DIAMETER_RATING_FAILED = 5031


def result_class(code: int) -> int:
    """The class digit: 1 informational ... 5 permanent; unknown classes count as 5 (§7.1)."""
    cls = code // 1000
    return cls if 1 <= cls <= 5 else 5


def e_bit(code: int) -> bool:
    """True when an answer carrying ``code`` must set the E bit (3xxx only, §7.1.3)."""
    return 3000 <= code < 4000


def is_success(code: int) -> bool:
    """True for 2xxx."""
    return 2000 <= code < 3000
