"""What the emulator heard and answered, kept for tests' assertions, in bounded memory.

Audio bytes are kept only when asked (``EmulatorConfig.keep_audio``; the pytest fixture
asks); a CRC-32 of every utterance's audio is kept either way.  At most
``EmulatorConfig.max_records`` records are kept: a long-running emulator forgets its
oldest, so its memory stays flat however long it serves.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["RecordLog", "TranscriptRecord", "UtteranceRecord"]


@dataclass
class UtteranceRecord:
    """What the emulator heard and did for one TTS utterance."""

    index: int
    connection: int
    transport: str  # "websocket" or "rest"
    options: dict[str, Any]
    replace: dict[str, str]
    text: str = ""
    started_at: float = 0.0
    text_done_at: float | None = None
    audio_done_at: float | None = None
    first_audio_at: float | None = None
    cleared: bool = False
    audio_bytes: int = 0
    audio_chunks: int = 0
    trace_id: str | None = None
    error: str | None = None
    #: every audio byte sent, when the emulator keeps audio (``keep_audio``)
    audio: bytearray = field(default_factory=bytearray, repr=False)
    #: CRC-32 of the audio sent, kept whether or not the bytes are
    audio_crc: int = 0
    #: with pacing, the most the emulator woke up after a chunk was due (seconds): its
    #: own lateness, so a benchmark can tell it from the client's
    pacing_lateness: float = 0.0
    #: stale frames of this (cleared) utterance sent after its audio.clear
    stale_after_clear: int = 0
    #: with ``with_timestamps``: every character timed, as (char, start, end) seconds
    timings: list[tuple[str, float, float]] = field(default_factory=list, repr=False)

    def add_audio(self, chunk: bytes, keep: bool) -> None:
        if keep:
            self.audio += chunk
        self.audio_crc = zlib.crc32(chunk, self.audio_crc)
        self.audio_bytes += len(chunk)
        self.audio_chunks += 1

    @property
    def voice(self) -> str:
        return str(self.options.get("voice", ""))

    @property
    def completed(self) -> bool:
        return self.audio_done_at is not None

    def summary(self) -> dict[str, Any]:
        """Everything but the audio bytes, as JSON-ready values."""
        return {k: v for k, v in self.__dict__.items() if k not in ("audio", "timings")}


@dataclass
class TranscriptRecord:
    """What the emulator heard and answered for one speech-to-text stream (or request)."""

    index: int
    connection: int
    transport: str  # "websocket" or "rest"
    options: dict[str, Any]
    started_at: float = 0.0
    #: audio received, in bytes and seconds (all channels)
    audio_bytes: int = 0
    audio_seconds: float = 0.0
    #: binary messages of audio received (the client's framing)
    audio_messages: int = 0
    #: every utterance it detected: (channel, start, end, text) in seconds of the stream
    utterances: list[tuple[int, float, float, str]] = field(default_factory=list)
    #: every result it sent, as JSON-ready dicts, in order
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)
    audio_done_at: float | None = None
    done_at: float | None = None
    error: str | None = None
    session_id: str | None = None

    @property
    def text(self) -> str:
        """Everything it recognised, utterance by utterance."""
        return " ".join(t for _, _, _, t in self.utterances if t)

    @property
    def completed(self) -> bool:
        return self.done_at is not None

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "results"}


R = TypeVar("R")


class RecordLog(Generic[R]):
    """An append-only, bounded list of records.  Indexing and iteration see what is still
    kept; ``total`` counts every record ever made (a record's own ``index`` is its number
    among all of them)."""

    def __init__(self, max_records: int) -> None:
        self._items: deque[R] = deque(maxlen=max_records)
        self.total = 0

    def append(self, record: R) -> R:
        self._items.append(record)
        self.total += 1
        return record

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[R]:
        return iter(list(self._items))

    def __getitem__(self, i: int) -> R:
        return self._items[i]
