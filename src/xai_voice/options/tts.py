"""Text-to-speech options: validated once, rendered as the WebSocket query or the REST body.

Every bound here is from docs/protocol.md.  Options are checked when the object is built, so a
typo fails on the line that made it, with the parameter named and the allowed values
listed, instead of as an HTTP 400 at the first utterance.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import OptionError
from ..text import MAX_TEXT_CHARS, check_text
from .common import check_language, choices

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
    "mime_type",
]

#: Built-in voices (docs/protocol.md); ``GET /v1/tts/voices`` is authoritative.
VOICES: tuple[str, ...] = (
    "ara", "eve", "leo", "rex", "sal", "carina", "zagan", "helix", "orion", "luna", "iris",
    "altair", "zenith", "perseus", "helios", "lux", "kepler", "rigel", "cosmo", "celeste",
    "ursa", "sirius", "lumen", "castor", "naksh", "atlas",
)  # fmt: skip

LANGUAGES: tuple[str, ...] = (
    "auto", "en", "ar-EG", "ar-SA", "ar-AE", "bn", "zh", "fr", "de", "hi", "id", "it", "ja",
    "ko", "pt-BR", "pt-PT", "ru", "es-MX", "es-ES", "tr", "vi",
)  # fmt: skip

Codec = Literal["mp3", "wav", "pcm", "mulaw", "alaw"]
CODECS: tuple[str, ...] = ("mp3", "wav", "pcm", "mulaw", "alaw")
_CODEC_ALIASES = {"ulaw": "mulaw"}
SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
BIT_RATES: tuple[int, ...] = (32000, 64000, 96000, 128000, 192000)
SPEED_RANGE = (0.7, 1.5)
LATENCY_LEVELS = (0, 1, 2)

#: REST limits on the pronunciation map.
MAX_REPLACE_ENTRIES = 200
MAX_REPLACE_KEY_CHARS = 100
MAX_REPLACE_VALUE_CHARS = 128
_VOICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

_MIME = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "mulaw": "audio/basic",
    "alaw": "audio/alaw",
}


def mime_type(codec: str) -> str:
    """The Content-Type the service uses for ``codec``."""
    return _MIME[codec]


def validate_replace(replace: Mapping[str, str]) -> dict[str, str]:
    """Check a pronunciation map against the documented limits; return a plain copy."""
    if not isinstance(replace, Mapping):
        raise OptionError("replace", "must be a mapping of word -> spoken form")
    if len(replace) > MAX_REPLACE_ENTRIES:
        raise OptionError("replace", f"has {len(replace)} entries; at most {MAX_REPLACE_ENTRIES} are allowed")
    seen: set[str] = set()
    out: dict[str, str] = {}
    for key, value in replace.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise OptionError("replace", "keys and values must be strings")
        if not key.strip():
            raise OptionError("replace", "a key is blank")
        if len(key) > MAX_REPLACE_KEY_CHARS:
            raise OptionError(
                "replace", f"key {key[:20]!r}... is longer than {MAX_REPLACE_KEY_CHARS} characters"
            )
        if not all(c.isalnum() or c in " '" for c in key):
            raise OptionError(
                "replace",
                f"key {key!r} may hold only letters, digits, apostrophes and spaces",
            )
        if len(value) > MAX_REPLACE_VALUE_CHARS:
            raise OptionError(
                "replace",
                f"the value for {key!r} is longer than {MAX_REPLACE_VALUE_CHARS} characters",
            )
        folded = key.strip().casefold()
        if folded in seen:
            raise OptionError("replace", f"key {key!r} appears twice (keys ignore case)")
        seen.add(folded)
        out[key] = value
    return out


@dataclass(frozen=True)
class TTSOptions:
    """Everything that shapes one synthesis.

    ``None`` means "the service's default" and is left out of the request.  ``codec``
    defaults to ``pcm`` here (16-bit little-endian mono), which needs no decoder; the
    service's own default is mp3.
    """

    voice: str = "eve"
    language: str = "auto"
    codec: str = "pcm"
    sample_rate: int = 24000
    bit_rate: int | None = None
    speed: float | None = None
    optimize_streaming_latency: int | None = None
    text_normalization: bool | None = None
    with_timestamps: bool = False
    replace: Mapping[str, str] | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.voice, str) or not _VOICE_ID.fullmatch(self.voice):
            raise OptionError(
                "voice",
                f"{self.voice!r} is not a voice id; built-in voices: {choices(VOICES)}",
            )
        set_(self, "voice", self.voice.lower())
        set_(self, "language", check_language(self.language, LANGUAGES, "text to speech"))
        codec = _CODEC_ALIASES.get(str(self.codec).lower(), str(self.codec).lower())
        if codec not in CODECS:
            raise OptionError("codec", f"{self.codec!r} is not supported; allowed: "
                              f"{choices(CODECS)} (ulaw = mulaw)")  # fmt: skip
        set_(self, "codec", codec)
        if isinstance(self.sample_rate, bool) or self.sample_rate not in SAMPLE_RATES:
            raise OptionError(
                "sample_rate",
                f"{self.sample_rate!r} is not supported; allowed: {choices(SAMPLE_RATES)}",
            )
        if self.bit_rate is not None:
            if codec != "mp3":
                raise OptionError("bit_rate", "applies to the mp3 codec only")
            if isinstance(self.bit_rate, bool) or self.bit_rate not in BIT_RATES:
                raise OptionError(
                    "bit_rate",
                    f"{self.bit_rate!r} is not supported; allowed: {choices(BIT_RATES)}",
                )
        if self.speed is not None:
            lo, hi = SPEED_RANGE
            if (
                isinstance(self.speed, bool)
                or not isinstance(self.speed, (int, float))
                or not math.isfinite(self.speed)
                or not lo <= self.speed <= hi
            ):
                raise OptionError("speed", f"{self.speed!r} is out of range; allowed: {lo} to {hi}")
            set_(self, "speed", float(self.speed))
        if self.optimize_streaming_latency is not None and (
            isinstance(self.optimize_streaming_latency, bool)
            or self.optimize_streaming_latency not in LATENCY_LEVELS
        ):
            raise OptionError(
                "optimize_streaming_latency",
                f"{self.optimize_streaming_latency!r} is not supported; allowed: 0, 1, 2",
            )
        for name in ("text_normalization", "with_timestamps"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise OptionError(name, f"{value!r} is not a bool")
        if self.replace is not None:
            set_(self, "replace", validate_replace(self.replace))

    def replace_with(self, **changes: Any) -> TTSOptions:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    @property
    def mime_type(self) -> str:
        return _MIME[self.codec]

    @property
    def bytes_per_second(self) -> float | None:
        """Audio bytes per second for the raw codecs; None for mp3 and wav (containers)."""
        if self.codec == "pcm":
            return self.sample_rate * 2.0
        if self.codec in ("mulaw", "alaw"):
            return float(self.sample_rate)
        return None

    @property
    def max_bytes_per_second(self) -> float:
        """The most bytes a second of audio can take in this codec (for bounds)."""
        if self.codec == "mp3":
            return (self.bit_rate or max(BIT_RATES)) / 8.0
        if self.codec == "wav":
            return self.sample_rate * 2.0
        rate = self.bytes_per_second
        assert rate is not None
        return rate

    def query(self) -> dict[str, str]:
        """The WebSocket query parameters.  These are fixed for a connection's life."""
        q = {
            "language": self.language,
            "voice": self.voice,
            "codec": self.codec,
            "sample_rate": str(self.sample_rate),
        }
        if self.bit_rate is not None:
            q["bit_rate"] = str(self.bit_rate)
        if self.speed is not None:
            q["speed"] = repr(self.speed)
        if self.optimize_streaming_latency is not None:
            q["optimize_streaming_latency"] = str(self.optimize_streaming_latency)
        if self.text_normalization is not None:
            q["text_normalization"] = "true" if self.text_normalization else "false"
        if self.with_timestamps:
            q["with_timestamps"] = "true"
        return q

    def connection_key(self) -> str:
        """Identifies connections interchangeable for these options (the pool's key)."""
        return "&".join(f"{k}={v}" for k, v in sorted(self.query().items()))

    def rest_body(self, text: str) -> dict[str, Any]:
        """The JSON body of ``POST /v1/tts`` for ``text``."""
        check_text(text, rest=True)
        fmt: dict[str, Any] = {"codec": self.codec, "sample_rate": self.sample_rate}
        if self.bit_rate is not None:
            fmt["bit_rate"] = self.bit_rate
        body: dict[str, Any] = {
            "text": text,
            "language": self.language,
            "voice_id": self.voice,
            "output_format": fmt,
        }
        if self.speed is not None:
            body["speed"] = self.speed
        if self.optimize_streaming_latency is not None:
            body["optimize_streaming_latency"] = self.optimize_streaming_latency
        if self.text_normalization is not None:
            body["text_normalization"] = self.text_normalization
        if self.with_timestamps:
            body["with_timestamps"] = True
        if self.replace:
            body["replace"] = dict(self.replace)
        return body
