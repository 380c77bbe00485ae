"""The sans-IO layer: each service's messages, their encoding, and the client connection's
state machine (:mod:`.tts` and :mod:`.stt`, side by side), with the errors they raise.

Nothing here imports asyncio or aiohttp, so every rule can be tested without a network.
"""

from . import stt, tts
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError, XaiVoiceError
from .tts import AudioChunk, Timestamps

__all__ = [
    "AudioChunk",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Timestamps",
    "XaiVoiceError",
    "stt",
    "tts",
]
