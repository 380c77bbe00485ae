"""I/O: aiohttp WebSockets and REST, deadlines, the connection pool, and one utterance
over a pooled connection."""

from .deadlines import DeadlinePassed, Timeouts, Watchdog, dispose_later, within
from .endpoint import DEFAULT_BASE_URL, Endpoint, is_loopback
from .http import Service, new_session, proxy_from_environment, status_error
from .inbox import Ending, Inbox
from .pool import Acquired, ConnectionPool
from .recognition import Recognition, to_audio_bytes
from .rest import RestSynthesis, Voice, create_custom_voice, delete_custom_voice, list_voices
from .transcription import AudioSource, ChannelTranscript, Transcript, transcribe
from .utterance import MapSupport, Utterance
from .websocket import DEFAULT_MAX_MESSAGE_BYTES, WsConnection

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Acquired",
    "AudioSource",
    "ChannelTranscript",
    "ConnectionPool",
    "DeadlinePassed",
    "Ending",
    "Endpoint",
    "Inbox",
    "MapSupport",
    "Recognition",
    "RestSynthesis",
    "Service",
    "Timeouts",
    "Transcript",
    "Utterance",
    "Voice",
    "Watchdog",
    "WsConnection",
    "create_custom_voice",
    "delete_custom_voice",
    "dispose_later",
    "is_loopback",
    "list_voices",
    "new_session",
    "proxy_from_environment",
    "status_error",
    "to_audio_bytes",
    "transcribe",
    "within",
]
