"""The sans-IO layer: messages, their encoding, and the client connection's state machine.

Nothing here imports asyncio or aiohttp, so every rule can be tested without a network.
"""

from .connection import (
    AudioChunk,
    Cleared,
    ClientConnection,
    Event,
    ServerError,
    SessionRejected,
    State,
    UtteranceDone,
)
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError, XaiVoiceError
from .messages import (
    MAX_DELTA_CHARS,
    AudioClear,
    AudioDelta,
    AudioDone,
    ClientMessage,
    ErrorMessage,
    ServerMessage,
    SessionUpdate,
    SessionUpdated,
    TextClear,
    TextDelta,
    TextDone,
    Timestamps,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
    split_text,
)

__all__ = [
    "MAX_DELTA_CHARS",
    "AudioChunk",
    "AudioClear",
    "AudioDelta",
    "AudioDone",
    "Cleared",
    "ClientConnection",
    "ClientMessage",
    "ErrorMessage",
    "Event",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerError",
    "ServerMessage",
    "SessionRejected",
    "SessionUpdate",
    "SessionUpdated",
    "State",
    "TextClear",
    "TextDelta",
    "TextDone",
    "Timestamps",
    "UtteranceDone",
    "XaiVoiceError",
    "decode_client",
    "decode_server",
    "encode_client",
    "encode_server",
    "split_text",
]
