"""icx's Diameter protocol library: codec, dictionary, framing, validation (sans-IO), plus the
peer state machine and a thin asyncio adapter.

Core API (stable names): DiameterError, Avp, Message, decode_message, FrameBuffer,
check_request; dictionary lookups in ``diameter.dictionary``; Result-Codes in
``diameter.result_codes``.
"""

from diameter.avp import Avp
from diameter.errors import DiameterError
from diameter.framing import FrameBuffer
from diameter.message import Message, decode_message
from diameter.result_codes import ResultCode
from diameter.validate import check_request

__all__ = ["Avp", "DiameterError", "FrameBuffer", "Message", "ResultCode", "check_request", "decode_message"]


def codec_info() -> dict[str, bool]:
    """Which codec implementation is active: {"ext": True} when the Cython twin is in use."""
    from diameter import avp

    return {"ext": avp.EXT is not None}


__all__ += ["codec_info"]
