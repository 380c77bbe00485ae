"""The asyncio client against the emulator, over loopback sockets."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

import xai_voice
from xai_voice import audio as codecs
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .conftest import FAST, client_sockets, our_tasks

pytestmark = pytest.mark.asyncio


async def test_utterances_reuse_one_connection(client: xai_voice.Client, emulator: Emulator) -> None:
    texts = ["Hello there.", "A second sentence.", "And a third one, a little longer."]
    for text in texts:
        audio = await client.speak(text)
        assert audio
    assert client.pool.connects == 1 and client.pool.reuses == 2
    assert [u.text for u in emulator.utterances] == texts
    assert {u.connection for u in emulator.utterances} == {0}
    # exact audio: what the client got is what the emulator sent
    again = await client.speak("Exact bytes.")
    assert again == bytes(emulator.utterances[-1].audio)


async def test_stream_yields_audio_in_order_and_trace_id(
    client: xai_voice.Client, emulator: Emulator
) -> None:
    async with client.stream(voice="ara") as utt:
        for word in ["Streaming ", "text ", "in ", "pieces."]:
            await utt.send(word)
        await utt.finish()
        chunks = [c.data async for c in utt]
    rec = emulator.utterances[0]
    assert rec.text == "Streaming text in pieces."
    assert rec.voice == "ara"
    assert b"".join(chunks) == bytes(rec.audio)
    assert len(chunks) == rec.audio_chunks > 1
    assert utt.trace_id == rec.trace_id


async def test_reader_in_another_task(client: xai_voice.Client, emulator: Emulator) -> None:
    utt = client.stream()
    reader = asyncio.ensure_future(utt.read_all())
    await utt.send("Read while I write.")
    await asyncio.sleep(0.01)
    await utt.finish()
    audio = await asyncio.wait_for(reader, 5)
    assert audio == bytes(emulator.utterances[0].audio)


@pytest.mark.parametrize("codec", ["pcm", "mulaw", "alaw", "wav", "mp3"])
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
async def test_every_codec_and_rate(
    client: xai_voice.Client, emulator: Emulator, codec: str, rate: int
) -> None:
    text = "Codec check."
    audio = await client.speak(text, codec=codec, sample_rate=rate)
    assert audio == bytes(emulator.utterances[-1].audio)
    seconds = _duration(audio, codec, rate)
    # tone mode: 60 ms per character; an mp3 encoder pads up to a few frames
    slack = 0.2 if codec == "mp3" else 0.01
    assert seconds == pytest.approx(0.06 * len(text), abs=slack)
    rest = await client.synthesize(text, codec=codec, sample_rate=rate).read_all()
    assert _duration(rest, codec, rate) == pytest.approx(seconds, abs=slack)


def _duration(data: bytes, codec: str, rate: int) -> float:
    if codec == "pcm":
        assert len(data) % 2 == 0
        return len(data) / 2 / rate
    if codec in ("mulaw", "alaw"):
        return len(data) / rate
    if codec == "wav":
        sr, channels, bits, offset = codecs.parse_wav_header(data)
        assert (sr, channels, bits) == (rate, 1, 16)
        assert int.from_bytes(data[40:44], "little") == len(data) - offset
        return (len(data) - offset) / 2 / rate
    assert codec == "mp3"
    import av  # PyAV comes with livekit-agents (the dev extra)

    with av.open(__import__("io").BytesIO(data), format="mp3") as f:
        frames = list(f.decode(audio=0))
    assert frames[0].sample_rate == rate
    return sum(fr.samples for fr in frames) / rate


async def test_timestamps(client: xai_voice.Client) -> None:
    async with client.stream(with_timestamps=True) as utt:
        await utt.send("Time me now.")
        await utt.finish()
        chunks = [c async for c in utt]
    chars = "".join(c for ch in chunks if ch.timestamps for c in ch.timestamps.chars)
    assert chars == "Time me now."
    starts = [t[0] for ch in chunks if ch.timestamps for t in ch.timestamps.times]
    assert starts == sorted(starts)
    rest = [c async for c in client.synthesize("Time me now.", with_timestamps=True)]
    assert len(rest) == 1 and rest[0].timestamps is not None
    assert "".join(rest[0].timestamps.chars) == "Time me now."


async def test_pronunciation_map_is_sent_once_per_connection(
    client: xai_voice.Client, emulator: Emulator
) -> None:
    opts = client.options.replace_with(replace={"GPU": "gee pee you"})
    await client.speak("The GPU is hot.", opts)
    await client.speak("Another GPU.", opts)
    await client.speak("No map now.")
    assert [u.replace for u in emulator.utterances] == [{"GPU": "gee pee you"}] * 2 + [{}]
    assert client.pool.connects == 1


async def test_empty_and_whitespace_text_never_touch_the_network(
    client: xai_voice.Client, emulator: Emulator
) -> None:
    for text in ["", "   ", "\n\t"]:
        assert await client.speak(text) == b""
    assert emulator.utterances == []
    assert client.pool.connects == 0


async def test_leading_whitespace_is_kept_with_the_text(client: xai_voice.Client, emulator: Emulator) -> None:
    async with client.stream() as utt:
        await utt.send("  ")
        await utt.send("hello")
        await utt.finish()
        await utt.read_all()
    assert emulator.utterances[0].text == "  hello"


async def test_cancel_clears_and_the_next_reply_starts_on_a_warm_replacement(emulator: Emulator) -> None:
    emulator.config.realtime = 1.0  # slow enough to interrupt
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        utt = client.stream()
        await utt.send("A long sentence that we will interrupt before it ends, " * 3)
        await utt.finish()
        first = await utt.__anext__()
        assert first.data
        await utt.cancel()
        assert utt.ending is xai_voice.transport.Ending.CLEARED
        assert [c async for c in utt] == []  # nothing leaks after the cancel
        await emulator.server.wait_for(lambda: emulator.utterances[0].cleared, 2.0)
        emulator.config.realtime = 0.0
        nxt = client.stream()
        await nxt.send("Next one.")
        await nxt.finish()
        audio = await nxt.read_all()
        assert audio == bytes(emulator.utterances[1].audio)  # no audio of the first leaked in
        # the cleared socket was closed, and its replacement (opened at the cancel) served
        assert client.pool.replenished == 1 and client.pool.connects == 2
        assert emulator.utterances[1].connection != emulator.utterances[0].connection


async def test_concurrent_utterances_use_separate_connections(
    client: xai_voice.Client, emulator: Emulator
) -> None:
    texts = [f"Utterance number {i}." for i in range(8)]
    results = await asyncio.gather(*(client.speak(t) for t in texts))
    by_text = {u.text: bytes(u.audio) for u in emulator.utterances}
    assert [by_text[t] for t in texts] == list(results)
    assert client.pool.busy_count == 0 and client.pool.idle_count == client.pool.connects


async def test_the_pool_keeps_as_many_idle_connections_as_were_in_use(emulator: Emulator) -> None:
    """Above ``max_idle``, the pool holds what was in use at once during the window, so the
    next wave of concurrent utterances reuses every socket; then a timer trims back."""
    async with xai_voice.Client(
        api_key=emulator.api_key, base_url=emulator.url, max_idle_connections=2, idle_peak_window=1.0
    ) as client:
        wave = [f"Wave utterance {i}." for i in range(6)]
        await asyncio.gather(*(client.speak(t) for t in wave))
        assert (client.pool.connects, client.pool.idle_count) == (6, 6)
        await asyncio.sleep(0.6)
        await asyncio.gather(*(client.speak(t) for t in wave[:5]))  # a smaller wave
        await asyncio.sleep(0.6)  # now the first wave is out of the window, the second is not
        await client.speak("Alone.")
        assert client.pool.idle_count == 5  # what the second wave used
        await asyncio.gather(*(client.speak(t) for t in wave[:5]))
        assert client.pool.connects == 6  # no new handshakes
        await asyncio.sleep(2.5)  # no traffic at all: the timer trims to max_idle
        assert client.pool.idle_count == 2


async def test_the_idle_allowance_is_per_set_of_options_and_capped_across_them(emulator: Emulator) -> None:
    async with xai_voice.Client(
        api_key=emulator.api_key, base_url=emulator.url, max_idle_connections=1
    ) as client:
        await asyncio.gather(*(client.speak(f"Eve {i}.") for i in range(4)))
        await client.speak("Rex once.", voice="rex")
        await client.speak("Rex twice.", voice="rex")
        # rex's one use does not inherit eve's peak of 4; and across all options no more
        # sessions are held idle than were ever in use at once (4): eve's oldest is closed
        keys = {conn.key.split("voice=")[1].split("&")[0] for q in client.pool._idle.values() for conn in q}
        assert client.pool.idle_count == 4 and keys == {"eve", "rex"}
        assert len(client.pool._idle[client.options.replace_with(voice="rex").connection_key()]) == 1


async def test_a_zero_window_makes_max_idle_a_plain_cap(emulator: Emulator) -> None:
    async with xai_voice.Client(
        api_key=emulator.api_key, base_url=emulator.url, max_idle_connections=2, idle_peak_window=0
    ) as client:
        await asyncio.gather(*(client.speak(f"Capped {i}.") for i in range(5)))
        assert client.pool.idle_count == 2


async def test_prewarm_makes_the_first_utterance_reuse(client: xai_voice.Client) -> None:
    client.prewarm()
    for _ in range(200):
        if client.pool.idle_count:
            break
        await asyncio.sleep(0.01)
    async with client.stream() as utt:
        await utt.send("Warm.")
        await utt.finish()
        await utt.read_all()
    assert utt.connection_reused


async def test_connections_rotate_after_max_age(emulator: Emulator) -> None:
    async with xai_voice.Client(
        api_key=emulator.api_key, base_url=emulator.url, max_connection_age=0.05
    ) as client:
        await client.speak("One.")
        await asyncio.sleep(0.1)
        await client.speak("Two.")
        assert client.pool.connects == 2


async def test_voices(client: xai_voice.Client) -> None:
    voices = await client.voices()
    assert {v.voice_id for v in voices} == set(xai_voice.VOICES)


async def test_aclose_mid_stream_fails_the_utterance_and_leaks_nothing(emulator: Emulator) -> None:
    emulator.config.realtime = 1.0
    client = xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST)
    utt = client.stream()
    await utt.send("This will be cut off by closing the client. " * 3)
    await utt.finish()
    await utt.__anext__()
    await client.aclose()
    with pytest.raises(xai_voice.XaiConnectionError):
        async for _ in utt:
            pass
    assert our_tasks() == []
    assert client_sockets(emulator.port) == 0


async def test_consumer_backpressure_bounds_the_buffer(emulator: Emulator) -> None:
    async with xai_voice.Client(
        api_key=emulator.api_key, base_url=emulator.url, max_buffered_bytes=4096
    ) as client:
        utt = client.stream()
        await utt.send("Plenty of audio for a tiny buffer. " * 5)
        await utt.finish()
        await asyncio.sleep(0.2)  # the server has sent everything; we read nothing
        assert utt._inbox._buffered <= 4096 + 4800  # at most one chunk past the mark
        audio = await utt.read_all()
        assert audio == bytes(emulator.utterances[0].audio)


async def test_speech_is_real(speech_emulator: Emulator) -> None:
    emu = speech_emulator
    async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url) as client:
        short = np.frombuffer(await client.speak("Hello."), dtype=np.int16)
        long = np.frombuffer(
            await client.speak("Hello. This sentence is a good deal longer than the first."), dtype=np.int16
        )
        other = np.frombuffer(await client.speak("Hello.", voice="rex"), dtype=np.int16)
    assert len(long) > 3 * len(short)
    rms = float(np.sqrt(np.mean(short.astype(np.float64) ** 2)))
    assert rms > 500  # speech, not silence
    # not a tone: the spectrum is spread, and voices differ
    spectrum = np.abs(np.fft.rfft(long.astype(np.float64)))
    assert spectrum.max() < 0.2 * spectrum.sum()
    assert len(other) != len(short) or not np.array_equal(other, short)


async def test_stall_is_a_timeout_within_the_deadline(client: xai_voice.Client, emulator: Emulator) -> None:
    emulator.fail_next(FaultKind.STALL, FaultPoint.MID_AUDIO)
    start = time.monotonic()
    with pytest.raises(xai_voice.XaiTimeoutError) as info:
        await client.speak("This one stalls half way through its audio.")
    assert info.value.phase == "chunk_gap"
    assert time.monotonic() - start < FAST.chunk_gap + 1.0
