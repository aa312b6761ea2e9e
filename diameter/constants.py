"""Wire constants of RFC 6733 §3/§4 and the application ids we use (protocol-facts A1–A5)."""

from __future__ import annotations

from typing import Final

VERSION: Final = 1
HEADER_LEN: Final = 20

# Command flags (RFC 6733 §3).
FLAG_REQUEST: Final = 0x80
FLAG_PROXIABLE: Final = 0x40
FLAG_ERROR: Final = 0x20
FLAG_RETRANSMIT: Final = 0x10
FLAGS_RESERVED: Final = 0x0F

# AVP flags (RFC 6733 §4.1).
AVP_VENDOR: Final = 0x80
AVP_MANDATORY: Final = 0x40
AVP_PROTECTED: Final = 0x20
AVP_FLAGS_RESERVED: Final = 0x1F

# Vendor ids.
VENDOR_NONE: Final = 0
VENDOR_3GPP: Final = 10415

# Application ids (protocol-facts A1, C1).
APP_COMMON: Final = 0
APP_ACCOUNTING: Final = 3
APP_CREDIT_CONTROL: Final = 4
APP_GX: Final = 16777238
APP_S6A: Final = 16777251
APP_RELAY: Final = 0xFFFFFFFF

# Command codes (protocol-facts A5, D; S6a from TS 29.272).
CMD_CAPABILITIES_EXCHANGE: Final = 257
CMD_RE_AUTH: Final = 258
CMD_ACCOUNTING: Final = 271
CMD_CREDIT_CONTROL: Final = 272
CMD_ABORT_SESSION: Final = 274
CMD_SESSION_TERMINATION: Final = 275
CMD_DEVICE_WATCHDOG: Final = 280
CMD_DISCONNECT_PEER: Final = 282
CMD_S6A_UPDATE_LOCATION: Final = 316
CMD_S6A_CANCEL_LOCATION: Final = 317
CMD_S6A_AUTHENTICATION_INFORMATION: Final = 318
CMD_S6A_INSERT_SUBSCRIBER_DATA: Final = 319
CMD_S6A_DELETE_SUBSCRIBER_DATA: Final = 320
CMD_S6A_PURGE_UE: Final = 321
CMD_S6A_RESET: Final = 322
CMD_S6A_NOTIFY: Final = 323
