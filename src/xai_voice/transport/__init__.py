"""I/O: aiohttp WebSockets and REST, deadlines, and the connection pool."""

from .deadlines import Timeouts, Watchdog
from .endpoint import DEFAULT_BASE_URL, Endpoint, is_loopback
from .inbox import Ending, Inbox
from .pool import Acquired, ConnectionPool
from .rest import RestSynthesis, Voice, list_voices
from .websocket import DEFAULT_MAX_MESSAGE_BYTES, WsConnection, status_error

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Acquired",
    "ConnectionPool",
    "Ending",
    "Endpoint",
    "Inbox",
    "RestSynthesis",
    "Timeouts",
    "Voice",
    "Watchdog",
    "WsConnection",
    "is_loopback",
    "list_voices",
    "status_error",
]
