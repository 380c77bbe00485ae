"""Options, validated once when built: text to speech (:mod:`.tts`), with speech to text
beside it, and what both share (:mod:`.common`)."""

from .common import check_language, choices
from .tts import (
    BIT_RATES,
    CODECS,
    LANGUAGES,
    MAX_REPLACE_ENTRIES,
    MAX_TEXT_CHARS,
    SAMPLE_RATES,
    VOICES,
    Codec,
    TTSOptions,
    mime_type,
    validate_replace,
)

__all__ = [
    "BIT_RATES",
    "CODECS",
    "LANGUAGES",
    "MAX_REPLACE_ENTRIES",
    "MAX_TEXT_CHARS",
    "SAMPLE_RATES",
    "VOICES",
    "Codec",
    "TTSOptions",
    "check_language",
    "choices",
    "mime_type",
    "validate_replace",
]
