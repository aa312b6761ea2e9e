"""icx's Diameter protocol library: codec, dictionary, sans-IO peer, asyncio adapter."""
