"""Word timings as livekit's ``TimedString``s (``aligned_transcript="word"``)."""

from __future__ import annotations

from collections.abc import Iterable

from livekit.agents.types import TimedString

from xai_voice.words import Word

__all__ = ["timed_strings"]


def timed_strings(words: Iterable[Word], *, offset: float = 0.0) -> list[TimedString]:
    """One ``TimedString`` per word, its times shifted by ``offset`` seconds."""
    return [TimedString(w.text, start_time=w.start + offset, end_time=w.end + offset) for w in words]
