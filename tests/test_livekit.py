"""The LiveKit face, driven through livekit-agents' own stream machinery against the
emulator over loopback."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError, APITimeoutError, tokenize
from livekit.agents.metrics import TTSMetrics

from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .conftest import NO_RETRY, eventually, speak


async def test_stream_delivers_exact_audio_and_one_final(plugin: lk.TTS, emulator: Emulator) -> None:
    metrics: list[TTSMetrics] = []
    plugin.on("metrics_collected", metrics.append)
    audio, finals, frames = await speak(plugin, "Hello ", "from ", "LiveKit.")
    rec = emulator.utterances[0]
    assert rec.text == "Hello from LiveKit."
    assert audio == bytes(rec.audio)
    assert finals == 1 and frames[-1].is_final
    assert all(ev.frame.sample_rate == 24000 and ev.frame.num_channels == 1 for ev in frames)
    [m] = metrics
    assert 0 < m.ttfb < 1.0 and m.acquire_time > 0 and not m.connection_reused
    assert m.audio_duration == pytest.approx(len(audio) / 48000, abs=0.01)
    await speak(plugin, "Second.")
    assert metrics[-1].connection_reused and emulator.connections_total == 1


async def test_synthesize_over_rest(plugin: lk.TTS, emulator: Emulator) -> None:
    frames = [ev async for ev in plugin.synthesize("Chunked over REST.")]
    audio = b"".join(bytes(ev.frame.data) for ev in frames)
    rec = emulator.utterances[0]
    assert rec.transport == "rest" and rec.text == "Chunked over REST."
    # the emitter pads the last frame of a non-streamed answer with silence
    assert audio[: len(rec.audio)] == bytes(rec.audio)
    assert not any(audio[len(rec.audio) :])


@pytest.mark.parametrize("codec", ["pcm", "mulaw", "alaw", "wav", "mp3"])
async def test_every_codec(emulator: Emulator, codec: str) -> None:
    rate = 8000 if codec in ("mulaw", "alaw") else 24000
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url, codec=codec, sample_rate=rate)
    try:
        assert t.sample_rate == rate
        audio, finals, frames = await speak(t, "Codec round trip.")
    finally:
        await t.aclose()
    assert finals == 1
    assert all(ev.frame.sample_rate == rate for ev in frames)
    seconds = len(audio) / 2 / rate
    assert seconds == pytest.approx(0.06 * len("Codec round trip."), abs=0.15)
    pcm = np.frombuffer(audio, dtype=np.int16)
    assert np.abs(pcm).max() > 4000  # the tone survived decoding


async def test_aligned_transcript(emulator: Emulator) -> None:
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url, with_timestamps=True)
    try:
        assert t.capabilities.aligned_transcript
        _, _, frames = await speak(t, "Words with times.")
    finally:
        await t.aclose()
    words = [w for ev in frames for w in ev.frame.userdata.get("lk.timed_transcripts", [])]
    assert [str(w) for w in words] == ["Words ", "with ", "times."]
    starts = [w.start_time for w in words]
    assert starts == sorted(starts) and all(w.end_time >= w.start_time for w in words)


async def test_refused_key_is_not_retried(plugin: lk.TTS, emulator: Emulator) -> None:
    fault = emulator.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=401, times=None)
    with pytest.raises(APIStatusError) as info:
        await speak(plugin, "Refused.", conn_options=APIConnectOptions(max_retry=3, retry_interval=0.01))
    assert info.value.status_code == 401 and not info.value.retryable
    assert fault.fired == 1  # one attempt, no retry


async def test_server_error_status_is_retried(plugin: lk.TTS, emulator: Emulator) -> None:
    emulator.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=503)
    audio, finals, _ = await speak(
        plugin, "Retried.", conn_options=APIConnectOptions(max_retry=2, retry_interval=0.01)
    )
    assert audio == bytes(emulator.utterances[-1].audio) and finals == 1


async def test_stall_is_a_timeout_within_the_configured_timeout(plugin: lk.TTS, emulator: Emulator) -> None:
    emulator.fail_next(FaultKind.STALL, FaultPoint.MID_AUDIO)
    start = time.monotonic()
    with pytest.raises(APITimeoutError):
        await speak(plugin, "A stall half way through the audio of this sentence.",
                    conn_options=APIConnectOptions(max_retry=0, timeout=0.5))  # fmt: skip
    assert time.monotonic() - start < 1.5


async def test_retry_before_audio_never_duplicates(plugin: lk.TTS, emulator: Emulator) -> None:
    emulator.fail_next(FaultKind.DROP, FaultPoint.BEFORE_AUDIO)
    audio, finals, _ = await speak(plugin, "Dropped, then retried.",
                                   conn_options=APIConnectOptions(max_retry=1, retry_interval=0.01))  # fmt: skip
    assert [u.text for u in emulator.utterances] == ["Dropped, then retried."] * 2
    assert audio == bytes(emulator.utterances[1].audio) and finals == 1


async def test_no_retry_after_partial_audio(plugin: lk.TTS, emulator: Emulator) -> None:
    emulator.fail_next(FaultKind.DROP, FaultPoint.MID_AUDIO)
    with pytest.raises(APIConnectionError):
        await speak(plugin, "Dropped half way through, so no retry.",
                    conn_options=APIConnectOptions(max_retry=3, retry_interval=0.01))  # fmt: skip
    assert len(emulator.utterances) == 1


async def test_interruption_clears_and_the_next_turn_is_warm(plugin: lk.TTS, emulator: Emulator) -> None:
    emulator.config.realtime = 1.0
    stream = plugin.stream(conn_options=NO_RETRY)
    stream.push_text("A long answer the user talks over. " * 4)
    stream.flush()
    first = await stream.__anext__()
    assert first.frame.data
    await stream.aclose()  # what the agent does on barge-in
    await emulator.server.wait_for(lambda: emulator.utterances[0].cleared, 2)
    emulator.config.realtime = 0.0
    await eventually(lambda: plugin.client.pool.idle_count == 1)
    next_turn = plugin.stream(conn_options=NO_RETRY)
    next_turn.push_text("Next turn.")
    next_turn.end_input()
    frames = [ev async for ev in next_turn]
    await next_turn.aclose()
    audio = b"".join(bytes(ev.frame.data) for ev in frames)
    assert audio == bytes(emulator.utterances[1].audio)  # nothing of the first leaked
    # the cleared connection was closed, not reused; a replacement opened at the barge-in
    # served the next turn, warm
    assert emulator.connections_total == 2 and next_turn._connection_reused
    assert emulator.utterances[1].connection == 1


async def test_stale_pooled_connection_is_replaced_silently(plugin: lk.TTS, emulator: Emulator) -> None:
    await speak(plugin, "First.")
    emulator.fail_next(FaultKind.DROP, FaultPoint.IDLE)
    audio, finals, _ = await speak(plugin, "Second, on a dead socket.")
    assert audio == bytes(emulator.utterances[-1].audio) and finals == 1


async def test_update_options_retires_connections(plugin: lk.TTS, emulator: Emulator) -> None:
    await speak(plugin, "As eve.")
    plugin.update_options(voice="rex", replace={"GPU": "gee pee you"})
    await speak(plugin, "As rex.")
    assert [u.voice for u in emulator.utterances] == ["eve", "rex"]
    assert emulator.utterances[1].replace == {"GPU": "gee pee you"}
    with pytest.raises(ValueError, match="speed"):
        plugin.update_options(speed=9.0)


async def test_empty_input_ends_without_audio_or_requests(plugin: lk.TTS, emulator: Emulator) -> None:
    for pieces in [(), ("   ",)]:
        audio, finals, _ = await asyncio.wait_for(speak(plugin, *pieces), 5)
        assert audio == b"" and finals == 0
    assert emulator.utterances == []


async def test_sentence_tokenizer(emulator: Emulator) -> None:
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url, tokenizer=tokenize.basic.SentenceTokenizer())
    try:
        audio, _finals, _ = await speak(t, "First sentence here. ", "Second sentence there.")
    finally:
        await t.aclose()
    assert emulator.utterances[0].text.split() == [
        "First",
        "sentence",
        "here.",
        "Second",
        "sentence",
        "there.",
    ]
    assert audio == bytes(emulator.utterances[0].audio)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        lk.TTS(api_key="k", sample_rate=12345)
    t = lk.TTS(api_key="k")
    assert (t.provider, t.model, t.sample_rate, t.num_channels) == ("xAI", "tts", 24000, 1)
    assert t.markup._provider_key() == "xai"
