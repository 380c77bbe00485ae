"""Text on its way through the LiveKit face: a tokenizer does not hold the turn, and an
emoji cut by a token boundary is spoken whole."""

from __future__ import annotations

import asyncio
import time

import pytest
from livekit.agents import APIConnectOptions, tokenize

from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator

pytestmark = pytest.mark.asyncio

OPTS = APIConnectOptions(max_retry=0, timeout=2.0)


async def test_a_tokenizer_sends_the_first_sentence_while_the_turn_goes_on(emulator: Emulator) -> None:
    """Issue 11.3: with a sentence tokenizer, the first sentence of a 1 s LLM turn reaches
    the service at once, not when the turn is flushed."""
    tts = lk.TTS(
        api_key=emulator.api_key, base_url=emulator.url, tokenizer=tokenize.basic.SentenceTokenizer()
    )
    try:
        stream = tts.stream(conn_options=OPTS)
        pushed_at = time.monotonic()
        stream.push_text("Here is the first sentence of my answer. ")
        stream.push_text("And then")
        for word in [
            "the",
            "rest",
            "of",
            "it",
            "comes",
            "slowly,",
            "word",
            "by",
            "word,",
            "for",
            "a",
            "second",
        ]:
            await asyncio.sleep(0.1)
            stream.push_text(" " + word)
        flushed_at = time.monotonic()
        stream.flush()
        stream.end_input()
        frames = [ev async for ev in stream]
        await stream.aclose()
        assert frames
        [rec] = emulator.utterances
        assert flushed_at - pushed_at > 0.9
        # the first text reached the service long before the turn was flushed
        assert rec.started_at - pushed_at < 0.4
        assert rec.text.startswith("Here is the first sentence of my answer.")
        assert "word by word, for a second" in rec.text
    finally:
        await tts.aclose()


async def test_an_emoji_cut_across_two_pushes_is_spoken_whole(emulator: Emulator) -> None:
    """Issue 11.4: an LLM token boundary inside a UTF-16 surrogate pair."""
    tts = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        stream = tts.stream(conn_options=OPTS)
        stream.push_text("Great news \ud83d")
        stream.push_text("\ude00 see you soon.")
        stream.end_input()
        frames = [ev async for ev in stream]
        await stream.aclose()
        assert frames and sum(ev.is_final for ev in frames) == 1
        assert emulator.utterances[0].text == "Great news \U0001f600 see you soon."
    finally:
        await tts.aclose()
