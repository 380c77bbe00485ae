"""xai-voice: xAI (Grok) voice APIs for asyncio programs, LiveKit Agents and the shell.

The layers, each importing only those before it: :mod:`xai_voice.protocol` (sans-IO),
:mod:`xai_voice.options` and :mod:`xai_voice.errors`, :mod:`xai_voice.transport` (aiohttp), and
the faces: :class:`Client`, the ``xai-voice`` CLI and the LiveKit plugin.  The emulator
(:mod:`xai_voice.emulator`) is built on the protocol layer alone.
"""

from .client import Client, Recognition, Utterance
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
from .options.stt import STTOptions
from .protocol import AudioChunk, Timestamps
from .protocol.stt import Final, Finished, Interim, SpeechEnded, SpeechStarted, Word
from .transport import ChannelTranscript, RestSynthesis, Timeouts, Transcript, Voice
from .version import __version__

__all__ = [
    "CODECS",
    "LANGUAGES",
    "SAMPLE_RATES",
    "VOICES",
    "AudioChunk",
    "CertificateError",
    "ChannelTranscript",
    "Client",
    "ClientClosedError",
    "Final",
    "Finished",
    "InsecureTransportError",
    "Interim",
    "LocalProtocolError",
    "OptionError",
    "ProtocolError",
    "Recognition",
    "RemoteProtocolError",
    "RestSynthesis",
    "STTOptions",
    "SpeechEnded",
    "SpeechStarted",
    "TTSOptions",
    "Timeouts",
    "Timestamps",
    "Transcript",
    "Utterance",
    "Voice",
    "Word",
    "XaiConnectionError",
    "XaiServerError",
    "XaiStatusError",
    "XaiTimeoutError",
    "XaiVoiceError",
    "__version__",
]
