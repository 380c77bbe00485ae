"""Word timings from the service's character timings (text to speech).  A :class:`Word`
here is the same type as a recognised word (speech to text): text, start and end in
seconds from the start of the utterance (a spoken word's text keeps the whitespace that
followed it, so captions built by joining words keep them apart).

The service sends ``audio_timestamps`` as characters with (start, end) times, in batches
that are decoupled from the audio: a batch may cover several seconds, come before, with or
after the audio it describes, or arrive in a frame with no audio at all.  Times are
absolute from the start of the utterance, so words can be built from the characters alone,
whatever order batches and audio come in: :class:`WordAssembler` emits each word once, in
order, with the start of its first character and the end of its last, as soon as the
whitespace after it arrives (or at :meth:`~WordAssembler.flush`).

Speech tags are spoken, not read: ``[laugh]`` and ``<whisper>`` never become words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .protocol.stt import Word
from .protocol.tts import Timestamps

__all__ = ["Word", "WordAssembler"]

_TAG = re.compile(r"^(\[[a-z-]+\]|</?[a-z-]+>)+$")


class WordAssembler:
    __slots__ = ("_chars", "_end", "_last", "_start", "_trailing")

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._trailing = ""
        self._start = 0.0
        self._end = 0.0
        #: the latest character time seen: batches overlap at most by repetition
        self._last = -1.0

    def feed(self, stamps: Timestamps) -> list[Word]:
        """The words completed by one batch of timings."""
        out: list[Word] = []
        for char, (start, end) in zip(stamps.chars, stamps.times, strict=True):
            if start < self._last - 1e-9:
                continue  # a character already placed (a batch re-sent): each word once
            self._last = start
            if char.isspace():
                if self._chars:  # the word is complete: emit it with the space after it
                    self._trailing = char
                    out.extend(self._emit())
                continue
            if not self._chars:
                self._start = start
            self._chars.append(char)
            self._end = max(self._end, end)
        return out

    def feed_all(self, batches: Iterable[Timestamps]) -> list[Word]:
        out: list[Word] = []
        for stamps in batches:
            out.extend(self.feed(stamps))
        return out + self.flush()

    def flush(self) -> list[Word]:
        """The last word, if one is pending (call at the end of the utterance)."""
        return self._emit()

    def _emit(self) -> list[Word]:
        if not self._chars:
            return []
        text = "".join(self._chars)
        word = Word(text + (self._trailing or ""), self._start, self._end)
        self._chars = []
        self._trailing = ""
        self._end = 0.0
        if _TAG.match(text):
            return []
        return [word]
