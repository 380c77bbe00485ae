"""The sans-IO layer: each service's messages, their encoding, and the client connection's
state machine (:mod:`.tts`; speech to text beside it), with the errors they raise.

Nothing here imports asyncio or aiohttp, so every rule can be tested without a network.
"""

from . import tts
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError, XaiVoiceError
from .tts import AudioChunk, Timestamps

__all__ = [
    "AudioChunk",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Timestamps",
    "XaiVoiceError",
    "tts",
]
