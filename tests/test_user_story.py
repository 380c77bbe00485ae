"""Written as a user of xai-voice writes tests for their agent: public API only, the
``xai_emulator`` fixture by name (no conftest help).  docs/testing.md walks through it."""

import pytest
from livekit.agents import APIConnectOptions, APIStatusError, APITimeoutError

import xai_voice
from livekit.plugins import xai_voice as xai_lk


async def say_with_livekit(tts, text):
    """What an agent's TTS node does: push the reply, end it, collect the frames."""
    stream = tts.stream(conn_options=APIConnectOptions(max_retry=0, timeout=1.0))
    stream.push_text(text)
    stream.end_input()
    frames = [event.frame async for event in stream]
    await stream.aclose()
    return frames


@pytest.mark.xai_emulator(tone=True)
async def test_the_agent_greets_with_the_right_voice(xai_emulator):
    tts = xai_lk.TTS(voice="ara", sample_rate=16000)  # XAI_* env points at the emulator
    try:
        frames = await say_with_livekit(tts, "Hello! How can I help you today?")
    finally:
        await tts.aclose()

    [utterance] = await xai_emulator.wait_for_utterances(1)
    assert utterance.text == "Hello! How can I help you today?"
    assert utterance.voice == "ara"
    assert utterance.options["sample_rate"] == 16000 and utterance.options["codec"] == "pcm"
    assert not utterance.cleared
    assert sum(f.samples_per_channel for f in frames) / 16000 > 1.0  # real audio came back


@pytest.mark.xai_emulator(tone=True)
async def test_the_bare_client_too(xai_emulator):
    async with xai_voice.Client() as client:
        audio = await client.speak("Your order has shipped.", voice="rex", language="en")
    [utterance] = await xai_emulator.wait_for_utterances(1)
    assert (utterance.text, utterance.voice, utterance.options["language"]) == (
        "Your order has shipped.",
        "rex",
        "en",
    )
    assert audio == bytes(utterance.audio)


@pytest.mark.xai_emulator(tone=True)
async def test_a_stalled_service_is_a_timeout_not_a_hang(xai_emulator):
    xai_emulator.fail_next("stall", at="mid_audio")
    tts = xai_lk.TTS()
    try:
        with pytest.raises(APITimeoutError):
            await say_with_livekit(tts, "This answer stalls half way through, so the agent must recover.")
        # the agent carries on: the next reply works
        assert await say_with_livekit(tts, "Sorry, let me try again.")
    finally:
        await tts.aclose()


@pytest.mark.xai_emulator(tone=True)
async def test_a_refused_key_is_reported_not_retried(xai_emulator, monkeypatch):
    monkeypatch.setenv("XAI_API_KEY", "a-key-that-was-revoked")
    tts = xai_lk.TTS()
    try:
        with pytest.raises(APIStatusError) as info:
            await say_with_livekit(tts, "Hello?")
        assert info.value.status_code == 401 and not info.value.retryable
    finally:
        await tts.aclose()
    async with xai_voice.Client() as client:
        with pytest.raises(xai_voice.XaiStatusError) as error:
            await client.speak("Hello?")
        assert error.value.status == 401
    assert xai_emulator.utterances == []
