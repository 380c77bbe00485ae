"""Speech-to-text options: validated once, rendered as the WebSocket query (``/v1/stt``) or
the REST form.  Every bound is from docs/protocol.md; languages are the service's to judge
(any well-formed code is sent, with a warning outside the documented list)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptionError
from .common import check_language, choices

__all__ = ["ENCODINGS", "STT_LANGUAGES", "STT_SAMPLE_RATES", "STTOptions"]

STT_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
ENCODINGS: tuple[str, ...] = ("pcm", "mulaw", "alaw")
_ENCODING_ALIASES = {"ulaw": "mulaw"}
#: formatting (numbers, currency) is documented for these; recognition is not limited to them
STT_LANGUAGES: tuple[str, ...] = (
    "ar", "cs", "da", "nl", "en", "fil", "fr", "de", "hi", "id", "it", "ja", "ko", "mk", "ms", "fa",
    "pl", "pt", "ro", "ru", "es", "sv", "th", "tr", "vi",
)  # fmt: skip
MAX_KEYTERMS = 100
MAX_KEYTERM_CHARS = 50


def _number(name: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not float(value).is_integer())
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        kind = "a whole number" if integer else "a number"
        raise OptionError(name, f"{value!r} must be {kind} from {lo:g} to {hi:g}")


@dataclass(frozen=True)
class STTOptions:
    """Everything that shapes one transcription.  ``None`` means "the service's default"
    and is left out of the request.

    ``endpointing`` (ms of silence that ends an utterance) is always sent: the service's
    documented default has changed (10 ms, then 400 ms), so we say what we mean.
    ``channels`` > 1 turns on multichannel audio (interleaved samples).
    """

    sample_rate: int = 16000
    encoding: str = "pcm"
    language: str | None = "en"
    interim_results: bool = True
    endpointing: int = 100
    diarize: bool = False
    channels: int = 1
    keyterms: tuple[str, ...] = field(default=())
    vad_threshold: float | None = None
    smart_turn: float | None = None
    smart_turn_timeout: int | None = None
    filler_words: bool | None = None
    #: REST: number and currency formatting (needs ``language``)
    format: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.sample_rate, bool) or self.sample_rate not in STT_SAMPLE_RATES:
            raise OptionError(
                "sample_rate", f"{self.sample_rate!r} is not supported; allowed: {choices(STT_SAMPLE_RATES)}"
            )
        encoding = _ENCODING_ALIASES.get(str(self.encoding).lower(), str(self.encoding).lower())
        if encoding not in ENCODINGS:
            raise OptionError(
                "encoding", f"{self.encoding!r} is not supported; allowed: {choices(ENCODINGS)}"
            )
        set_(self, "encoding", encoding)
        if self.language is not None:
            set_(self, "language", check_language(self.language, STT_LANGUAGES, "speech to text"))
        for name in ("interim_results", "diarize", "format"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, f"{getattr(self, name)!r} is not a bool")
        if self.filler_words is not None and not isinstance(self.filler_words, bool):
            raise OptionError("filler_words", f"{self.filler_words!r} is not a bool")
        _number("endpointing", self.endpointing, 0, 5000, integer=True)
        set_(self, "endpointing", int(self.endpointing))
        _number("channels", self.channels, 1, 8, integer=True)
        set_(self, "channels", int(self.channels))
        if self.vad_threshold is not None:
            _number("vad_threshold", self.vad_threshold, 0, 1)
        if self.smart_turn is not None:
            _number("smart_turn", self.smart_turn, 0, 1)
        if self.smart_turn_timeout is not None:
            _number("smart_turn_timeout", self.smart_turn_timeout, 1, 5000, integer=True)
            set_(self, "smart_turn_timeout", int(self.smart_turn_timeout))
        terms = self.keyterms
        if isinstance(terms, str) or not isinstance(terms, Sequence):
            raise OptionError("keyterms", "must be a list of words or phrases")
        terms = tuple(terms)
        if len(terms) > MAX_KEYTERMS:
            raise OptionError("keyterms", f"has {len(terms)} terms; at most {MAX_KEYTERMS} are allowed")
        for term in terms:
            if not isinstance(term, str) or not term.strip():
                raise OptionError("keyterms", f"{term!r} is not a word or phrase")
            if len(term) > MAX_KEYTERM_CHARS:
                raise OptionError(
                    "keyterms", f"{term[:20]!r}... is longer than {MAX_KEYTERM_CHARS} characters"
                )
        set_(self, "keyterms", terms)

    def replace_with(self, **changes: Any) -> STTOptions:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    @property
    def bytes_per_second(self) -> int:
        """Audio bytes per second of all channels together."""
        width = 2 if self.encoding == "pcm" else 1
        return self.sample_rate * width * self.channels

    def query(self) -> list[tuple[str, str]]:
        """The WebSocket query parameters, in pairs (``keyterm`` repeats)."""
        q: list[tuple[str, str]] = [
            ("sample_rate", str(self.sample_rate)),
            ("encoding", self.encoding),
            ("interim_results", _flag(self.interim_results)),
            ("endpointing", str(self.endpointing)),
        ]
        if self.language is not None:
            q.append(("language", self.language))
        if self.diarize:
            q.append(("diarize", "true"))
        if self.channels > 1:
            q += [("multichannel", "true"), ("channels", str(self.channels))]
        q += [("keyterm", term) for term in self.keyterms]
        if self.vad_threshold is not None:
            q.append(("vad_threshold", repr(float(self.vad_threshold))))
        if self.smart_turn is not None:
            q.append(("smart_turn", repr(float(self.smart_turn))))
        if self.smart_turn_timeout is not None:
            q.append(("smart_turn_timeout", str(self.smart_turn_timeout)))
        if self.filler_words is not None:
            q.append(("filler_words", _flag(self.filler_words)))
        return q

    def rest_fields(self, *, raw: bool) -> list[tuple[str, str]]:
        """The REST form's fields but the audio.  ``raw``: the file is headerless audio in
        this encoding and rate (a container such as WAV speaks for itself)."""
        f: list[tuple[str, str]] = []
        if raw:
            f += [("audio_format", self.encoding), ("sample_rate", str(self.sample_rate))]
        if self.language is not None:
            f.append(("language", self.language))
            if self.format:
                f.append(("format", "true"))
        if self.diarize:
            f.append(("diarize", "true"))
        if self.channels > 1:
            f += [("multichannel", "true"), ("channels", str(self.channels))]
        f += [("keyterm", term) for term in self.keyterms]
        if self.filler_words is not None:
            f.append(("filler_words", _flag(self.filler_words)))
        return f


def _flag(value: bool) -> str:
    return "true" if value else "false"
