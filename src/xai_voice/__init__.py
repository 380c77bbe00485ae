"""xai-voice: xAI (Grok) voice APIs for asyncio programs, LiveKit Agents and the shell.

The layers, each importing only those before it: :mod:`xai_voice.protocol` (sans-IO),
:mod:`xai_voice.options` and :mod:`xai_voice.errors`, :mod:`xai_voice.transport` (aiohttp), and
the faces: :class:`Client`, the ``xai-voice`` CLI and the LiveKit plugin.  The emulator
(:mod:`xai_voice.emulator`) is built on the protocol layer alone.
"""

from .client import Client, Utterance
from .errors import (
    CertificateError,
    ClientClosedError,
    InsecureTransportError,
    LocalProtocolError,
    OptionError,
    ProtocolError,
    RemoteProtocolError,
    XaiConnectionError,
    XaiServerError,
    XaiStatusError,
    XaiTimeoutError,
    XaiVoiceError,
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
    "CertificateError",
    "Client",
    "ClientClosedError",
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
    "XaiTimeoutError",
    "XaiVoiceError",
    "__version__",
]
