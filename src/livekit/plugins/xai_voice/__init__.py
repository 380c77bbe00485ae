"""xAI (Grok) voice for LiveKit Agents: text to speech and speech to text.

``from livekit.plugins import xai_voice``;
``AgentSession(stt=xai_voice.STT(), tts=xai_voice.TTS(voice="ara"), ...)``.  Built on the
:mod:`xai_voice` engine: deadlines on every wait, nothing of one utterance in another, and
no dependence on which task resumes first.
"""

import threading

from livekit.agents import Plugin

from .log import logger
from .models import TTSCodecs, TTSLanguages, TTSSampleRates, TTSVoices
from .stt import STT, SpeechStream
from .tts import TTS, ChunkedStream, SynthesizeStream
from .version import __version__

__all__ = [
    "STT",
    "TTS",
    "ChunkedStream",
    "SpeechStream",
    "SynthesizeStream",
    "TTSCodecs",
    "TTSLanguages",
    "TTSSampleRates",
    "TTSVoices",
    "__version__",
]


class XaiVoicePlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


if threading.current_thread() is threading.main_thread():  # livekit registers on the main thread only
    Plugin.register_plugin(XaiVoicePlugin())
