"""Hostile and edge inputs: odd text, huge text, options at their bounds, cancellation at
every await, closing in the middle.  A clear error or exact delivery; never a crash inside
a task, a hang or a leak."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.agents import APIConnectOptions, APIError

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator
from xai_voice.emulator.background import BackgroundEmulator

from .conftest import FAST, client_sockets, our_tasks


@pytest.fixture
async def tiny() -> AsyncIterator[Emulator]:
    """Tone mode with a microsecond of tone per character: huge texts stay cheap."""
    async with Emulator(tone=True, tone_char_seconds=1e-5, keep_audio=True) as emu:
        yield emu


async def test_a_megabyte_of_text_goes_in_legal_deltas(tiny: Emulator) -> None:
    text = ("All work and no play makes a long text. " * 26_000)[:1_000_000]
    async with xai_voice.Client(api_key=tiny.api_key, base_url=tiny.url, timeouts=FAST) as client:
        audio = await client.speak(text, codec="mulaw", sample_rate=8000)
    rec = tiny.utterances[0]
    assert rec.text == text  # every character arrived, none cut by the 15,000 cap
    assert audio == bytes(rec.audio)


PLANES = "A é Ω ऄ 中 😀 𝄞 𠀀 𪚥 \U000e0041 \U000f0000 \U0010fffd \x00 \x1b \u200b \ufeff end"


async def test_every_unicode_plane_and_control_characters(tiny: Emulator) -> None:
    async with xai_voice.Client(api_key=tiny.api_key, base_url=tiny.url, timeouts=FAST) as client:
        await client.speak(PLANES)
        assert (await client.synthesize(PLANES).read_all()) == bytes(tiny.utterances[1].audio)
    assert [u.text for u in tiny.utterances] == [PLANES, PLANES]


async def test_lone_surrogates_are_a_clear_error(tiny: Emulator) -> None:
    async with xai_voice.Client(api_key=tiny.api_key, base_url=tiny.url, timeouts=FAST) as client:
        for bad in ("\ud800", "ok \udfff ok"):
            with pytest.raises(xai_voice.OptionError, match="surrogate"):
                await client.speak(bad)
        assert await client.speak("Still fine.")  # nothing broke
    assert [u.text for u in tiny.utterances] == ["Still fine."]


async def test_single_characters_and_speech_tags(emulator: Emulator) -> None:
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        for text in [
            "a",
            ".",
            "[laugh]",
            "<whisper>quiet</whisper> [pause] loud",
            "<soft><slow>x</slow></soft>",
        ]:
            assert await client.speak(text) == bytes(emulator.utterances[-1].audio)
    assert emulator.utterances[3].text == "<whisper>quiet</whisper> [pause] loud"


async def test_speech_tags_with_real_speech(speech_emulator: Emulator) -> None:
    emu = speech_emulator
    async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url) as client:
        plain = await client.speak("one two")
        paused = await client.speak("one [long-pause] two")
    assert len(paused) > len(plain) + 0.8 * 48000  # the pause is silence, not the word "pause"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=8)
)
def test_any_text_in_any_pieces_arrives_exactly(pieces: list[str], bg_tiny: BackgroundEmulator) -> None:
    async def go() -> None:
        async with (
            xai_voice.Client(api_key=bg_tiny.api_key, base_url=bg_tiny.url, timeouts=FAST) as client,
            client.stream() as utt,
        ):
            for piece in pieces:
                await utt.send(piece)
            await utt.finish()
            audio = await utt.read_all()
        text = "".join(pieces)
        if text.strip():
            rec = bg_tiny.utterances[-1]
            assert rec.text == text and audio == bytes(rec.audio)
        else:
            assert audio == b""

    asyncio.run(go())


@pytest.fixture(scope="module")
def bg_tiny() -> BackgroundEmulator:  # type: ignore[misc]
    with BackgroundEmulator(tone=True, tone_char_seconds=1e-4, keep_audio=True) as emu:
        yield emu


async def test_pronunciation_map_at_its_limits(tiny: Emulator) -> None:
    biggest = {f"word{i}": "x" * 128 for i in range(200)}
    async with xai_voice.Client(api_key=tiny.api_key, base_url=tiny.url, timeouts=FAST) as client:
        await client.speak("word7 is replaced", replace=biggest)
        with pytest.raises(xai_voice.OptionError, match="at most 200"):
            await client.speak("too many", replace={**biggest, "one_more": "x"})
    assert tiny.utterances[0].replace == biggest


async def test_cancellation_at_every_await(emulator: Emulator) -> None:
    """Cancel a speak() after 0, 1, 2, ... loop iterations: every time the client stays
    usable and nothing leaks."""
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        for steps in range(60):
            task = asyncio.ensure_future(client.speak(f"Cancel me after {steps} steps, please."))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            assert client.pool.busy_count == 0, steps
        assert await client.speak("Still works.") == bytes(emulator.utterances[-1].audio)
    assert our_tasks() == []
    assert client_sockets(emulator.port) == 0


async def test_livekit_update_options_during_a_stream(emulator: Emulator) -> None:
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        stream = t.stream()
        stream.push_text("Started as eve, ")
        await asyncio.sleep(0.05)
        t.update_options(voice="rex")
        stream.push_text("and stays eve.")
        stream.end_input()
        [ev async for ev in stream]
        await stream.aclose()
        stream = t.stream()
        stream.push_text("Now rex.")
        stream.end_input()
        [ev async for ev in stream]
        await stream.aclose()
    finally:
        await t.aclose()
    assert [(u.text, u.voice) for u in emulator.utterances] == [
        ("Started as eve, and stays eve.", "eve"),
        ("Now rex.", "rex"),
    ]


async def test_livekit_aclose_during_a_stream(emulator: Emulator) -> None:
    emulator.config.realtime = 1.0
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    stream = t.stream(conn_options=APIConnectOptions(max_retry=0, timeout=1.0))
    stream.push_text("Closing the whole TTS while this plays. " * 3)
    stream.end_input()
    await stream.__anext__()
    await asyncio.wait_for(t.aclose(), 5)
    with pytest.raises((StopAsyncIteration, APIError)):
        while True:
            await asyncio.wait_for(stream.__anext__(), 5)
    assert our_tasks() == []
    assert client_sockets(emulator.port) == 0


async def test_livekit_speaks_through_a_lone_surrogate(emulator: Emulator) -> None:
    """A voice agent would rather say something than fail on one bad character: a lone
    surrogate (LLM output cut mid-pair, never completed) becomes U+FFFD."""
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        stream = t.stream(conn_options=APIConnectOptions(max_retry=0))
        stream.push_text("bad \ud800 surrogate")
        stream.end_input()
        frames = [ev async for ev in stream]
        await stream.aclose()
        assert frames and emulator.utterances[0].text == "bad \ufffd surrogate"
    finally:
        await t.aclose()


@pytest.fixture(scope="module")
def bg_tone() -> BackgroundEmulator:  # type: ignore[misc]
    """Seconds of tone, not milliseconds: with audio that short, livekit's emitter flushes
    early and marks the end with 10 ms of silence of its own, which is not ours to test."""
    with BackgroundEmulator(tone=True, keep_audio=True) as emu:
        yield emu


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(["update_options", "stream.aclose", "tts.aclose", "cancel"]),
    steps=st.integers(min_value=0, max_value=120),
)
def test_livekit_interrupted_at_any_step(action: str, steps: int, bg_tone: BackgroundEmulator) -> None:
    """Change options, close the stream, close the TTS or cancel the consumer after any
    number of loop iterations of a LiveKit stream: it ends (in time) with exact audio or
    an ``APIError``, and after ``aclose()`` no task or socket of ours is left."""

    async def go() -> None:
        t = lk.TTS(api_key=bg_tone.api_key, base_url=bg_tone.url)
        text = f"Interrupt me with {action} after {steps} steps."
        stream = t.stream(conn_options=APIConnectOptions(max_retry=0, timeout=2.0))
        stream.push_text(text)
        stream.end_input()

        async def consume() -> bytes:
            return b"".join([bytes(ev.frame.data) async for ev in stream])

        consumer = asyncio.ensure_future(consume())
        for _ in range(steps):
            await asyncio.sleep(0)
        outcome: bytes | BaseException | None = None
        try:
            if action == "update_options":
                t.update_options(voice="rex")  # for the next stream, not this one
            elif action == "stream.aclose":
                await asyncio.wait_for(stream.aclose(), 5)
            elif action == "tts.aclose":
                await asyncio.wait_for(t.aclose(), 5)
            elif action == "cancel":
                consumer.cancel()
            outcome = await asyncio.wait_for(consumer, 5)
        except (APIError, asyncio.CancelledError) as exc:
            outcome = exc
        finally:
            await asyncio.wait_for(stream.aclose(), 5)
            await asyncio.wait_for(t.aclose(), 5)
        assert outcome is not None  # a hang would have been a TimeoutError above
        if action == "update_options":
            rec = next(u for u in reversed(bg_tone.utterances) if u.text == text)
            assert outcome == bytes(rec.audio) and rec.voice == "eve"
        assert our_tasks() == []
        assert client_sockets(bg_tone.port) == 0

    asyncio.run(go())
