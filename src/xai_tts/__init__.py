"""xai-tts: xAI (Grok) text-to-speech for asyncio programs, LiveKit Agents and the shell.

The layers, each importing only those before it: :mod:`xai_tts.protocol` (sans-IO),
:mod:`xai_tts.options` and :mod:`xai_tts.errors`, :mod:`xai_tts.transport` (aiohttp), and
the faces: :class:`Client`, the ``xai-tts`` CLI and the LiveKit plugin.  The emulator
(:mod:`xai_tts.emulator`) is built on the protocol layer alone.
"""

from .client import Client, Utterance
from .errors import (
    InsecureTransportError,
    LocalProtocolError,
    OptionError,
    ProtocolError,
    RemoteProtocolError,
    XaiConnectionError,
    XaiServerError,
    XaiStatusError,
    XaiTimeoutError,
    XaiTTSError,
)
from .options import CODECS, LANGUAGES, SAMPLE_RATES, VOICES, TTSOptions
from .protocol import AudioChunk, Timestamps
from .transport import RestSynthesis, Timeouts, Voice
from .version import __version__

__all__ = [
    "CODECS",
    "LANGUAGES",
    "SAMPLE_RATES",
    "VOICES",
    "AudioChunk",
    "Client",
    "InsecureTransportError",
    "LocalProtocolError",
    "OptionError",
    "ProtocolError",
    "RemoteProtocolError",
    "RestSynthesis",
    "TTSOptions",
    "Timeouts",
    "Timestamps",
    "Utterance",
    "Voice",
    "XaiConnectionError",
    "XaiServerError",
    "XaiStatusError",
    "XaiTTSError",
    "XaiTimeoutError",
    "__version__",
]
