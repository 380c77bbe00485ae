"""Our LiveKit STT through livekit-agents' own machinery, against the emulator: exact
transcripts, one FINAL_TRANSCRIPT per utterance, speech events in order, usage that adds
up, the fault matrix, options changed mid-utterance, REST recognize, and an AgentSession
that hears a scripted user through our STT and answers through our TTS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import cache

import pytest
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    stt,
)

from livekit import rtc
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator, FaultKind, FaultPoint
from xai_voice.emulator.render import RenderRequest, render
from xai_voice.protocol.stt import Final, Finished

from .agent_fakes import ScriptedLLM, start_session
from .conftest import client_sockets, eventually, our_tasks

pytestmark = pytest.mark.asyncio

E = stt.SpeechEventType
OPTS = APIConnectOptions(max_retry=0, timeout=1.0)
SAID = ["book a table for two", "at eight tonight"]


@cache
def speech(text: str, rate: int = 48000) -> bytes:
    """espeak-ng speech (48 kHz, as a LiveKit room delivers it) and a second of silence."""
    req = RenderRequest(text=text, voice="cosmo", language="en", codec="pcm", sample_rate=rate)
    return render(req).audio + b"\0\0" * rate


def frames(pcm: bytes, rate: int = 48000, ms: int = 20) -> list[rtc.AudioFrame]:
    n = rate * ms // 1000 * 2
    return [rtc.AudioFrame(pcm[i : i + n], rate, 1, len(pcm[i : i + n]) // 2) for i in range(0, len(pcm), n)]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        yield e


@pytest.fixture
async def plugin(emu: Emulator) -> AsyncIterator[lk.STT]:
    s = lk.STT(api_key=emu.api_key, base_url=emu.url)
    try:
        yield s
    finally:
        await s.aclose()
        assert our_tasks() == []
        assert client_sockets(emu.port) == 0


async def hear(s: lk.STT, *pieces: bytes | None, opts: APIConnectOptions = OPTS) -> list[stt.SpeechEvent]:
    """Push audio (None: a flush) and end; every event."""
    stream = s.stream(conn_options=opts)

    async def feed() -> None:
        for piece in pieces:
            if piece is None:
                stream.flush()
                continue
            for f in frames(piece):
                stream.push_frame(f)
                await asyncio.sleep(0)
        stream.end_input()

    feeder = asyncio.ensure_future(feed())
    try:
        return [ev async for ev in stream]
    finally:
        feeder.cancel()
        await stream.aclose()


def finals(events: list[stt.SpeechEvent]) -> list[str]:
    return [ev.alternatives[0].text for ev in events if ev.type is E.FINAL_TRANSCRIPT]


async def test_exact_transcripts_one_final_per_utterance_and_usage(plugin: lk.STT, emu: Emulator) -> None:
    emu.script_transcripts(SAID)
    audio = speech("Book a table for two.") + speech("At eight tonight.")
    events = await hear(plugin, audio)
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    order = [
        ev.type for ev in events if ev.type is not E.INTERIM_TRANSCRIPT and ev.type is not E.RECOGNITION_USAGE
    ]
    assert order == [E.START_OF_SPEECH, E.FINAL_TRANSCRIPT, E.END_OF_SPEECH] * 2
    first = next(ev for ev in events if ev.type is E.FINAL_TRANSCRIPT).alternatives[0]
    assert [str(w) for w in first.words or []] == ["book", "a", "table", "for", "two"]
    assert first.words and first.start_time == first.words[0].start_time and first.end_time > first.start_time
    usage = sum(ev.recognition_usage.audio_duration for ev in events if ev.recognition_usage is not None)
    assert abs(usage - len(audio) / 96000) < 0.05  # what was sent, resampled to 16 kHz
    assert abs(usage - emu.transcripts[0].audio_seconds) < 0.01


async def test_capabilities_and_names(plugin: lk.STT) -> None:
    caps = plugin.capabilities
    assert (
        caps.streaming and caps.interim_results and caps.aligned_transcript == "word" and not caps.diarization
    )
    assert (plugin.model, plugin.provider) == ("stt", "xAI")
    with pytest.raises(ValueError, match="endpointing"):
        lk.STT(api_key="k", endpointing=-1)


async def test_diarization_names_the_speaker(emu: Emulator) -> None:
    emu.script_transcripts([("book a table for two", 1)])
    s = lk.STT(api_key=emu.api_key, base_url=emu.url, enable_diarization=True)
    try:
        events = await hear(s, speech("Book a table for two."))
    finally:
        await s.aclose()
    final = next(ev for ev in events if ev.type is E.FINAL_TRANSCRIPT).alternatives[0]
    assert final.speaker_id == "S1" and emu.transcripts[0].options["diarize"]


async def test_a_flush_ends_the_utterance_and_nothing_is_lost(plugin: lk.STT, emu: Emulator) -> None:
    emu.script_transcripts(SAID)
    one, two = speech("Book a table for two."), speech("At eight tonight.")
    events = await hear(plugin, one, None, two)
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    assert len(emu.transcripts) == 2  # a new connection after the flush
    heard = sum(t.audio_seconds for t in emu.transcripts)
    assert abs(heard - (len(one) + len(two)) / 96000) < 0.05  # every byte, once


async def test_update_options_mid_utterance_loses_nothing(plugin: lk.STT, emu: Emulator) -> None:
    emu.script_transcripts(SAID)
    one = speech("Book a table for two.")
    stream = plugin.stream(conn_options=OPTS)
    fs = frames(one + speech("At eight tonight."))
    half = len(frames(one)) // 3
    for f in fs[:half]:
        stream.push_frame(f)
    await eventually(lambda: bool(emu.transcripts) and emu.transcripts[0].audio_bytes > 0)
    plugin.update_options(language="fr", endpointing=200)  # mid-utterance
    for f in fs[half:]:
        stream.push_frame(f)
        await asyncio.sleep(0)
    stream.end_input()
    events = [ev async for ev in stream]
    await stream.aclose()
    assert finals(events) == ["Book a table for two.", "At eight tonight."]  # the first was not cut
    assert [t.options["language"] for t in emu.transcripts] == ["en", "fr"]
    assert (
        abs(sum(t.audio_seconds for t in emu.transcripts) - len(b"".join(bytes(f.data) for f in fs)) / 96000)
        < 0.05
    )


async def test_update_options_between_utterances_applies_at_once(plugin: lk.STT, emu: Emulator) -> None:
    """Nobody speaking: the next utterance is heard with the new options already."""
    emu.script_transcripts(SAID)
    stream = plugin.stream(conn_options=OPTS)
    events: list[stt.SpeechEvent] = []

    async def read() -> None:
        async for ev in stream:
            events.append(ev)

    reader = asyncio.ensure_future(read())
    for f in frames(speech("Book a table for two.")):
        stream.push_frame(f)
    await eventually(lambda: finals(events) == ["Book a table for two."])
    plugin.update_options(language="fr")
    for f in frames(bytes(2 * 48000 // 5)):  # a room's frames keep coming while nobody speaks
        stream.push_frame(f)
        await asyncio.sleep(0.005)
    await eventually(lambda: len(emu.transcripts) == 2)  # moved before anyone spoke again
    for f in frames(speech("At eight tonight.")):
        stream.push_frame(f)
    stream.end_input()
    await reader
    await stream.aclose()
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    assert [(t.options["language"], t.text) for t in emu.transcripts] == [
        ("en", "Book a table for two."),
        ("fr", "At eight tonight."),
    ]


@pytest.mark.parametrize("after_frames", [1, 5, 15])
async def test_update_options_as_speech_starts_does_not_cut_it(
    plugin: lk.STT, emu: Emulator, after_frames: int
) -> None:
    """The user has just started (the service has not said so yet): the utterance is
    heard whole on the old connection; the new options come after it."""
    emu.script_transcripts(SAID[:1])
    stream = plugin.stream(conn_options=OPTS)
    fs = frames(speech("Book a table for two."))
    for f in fs[:after_frames]:
        stream.push_frame(f)
    await asyncio.sleep(0.02)
    plugin.update_options(language="fr")
    for f in fs[after_frames:]:
        stream.push_frame(f)
        await asyncio.sleep(0)
    stream.end_input()
    events = [ev async for ev in stream]
    await stream.aclose()
    assert finals(events) == ["Book a table for two."]
    # heard whole on one connection (the first, or the second if the first heard only the
    # silence before it)
    assert [t.text for t in emu.transcripts if t.text] == ["Book a table for two."]


async def test_recognize_over_rest(plugin: lk.STT, emu: Emulator) -> None:
    emu.script_transcripts(SAID[:1])
    event = await plugin.recognize(frames(speech("Book a table for two.")), conn_options=OPTS)
    assert event.type is E.FINAL_TRANSCRIPT and event.alternatives[0].text == "Book a table for two."
    assert [str(w) for w in event.alternatives[0].words or []] == SAID[0].split()
    emu.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=403, service="stt")
    with pytest.raises(APIStatusError) as info:
        await plugin.recognize(frames(speech("Hi.")), conn_options=OPTS)
    assert info.value.status_code == 403  # the real status, never an empty transcript


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "at", "error"),
    [
        (FaultKind.STALL, FaultPoint.CREATED, APITimeoutError),
        (FaultKind.STALL, FaultPoint.MID_STREAM, APITimeoutError),
        (FaultKind.DROP, FaultPoint.CREATED, APIConnectionError),
        (FaultKind.DROP, FaultPoint.MID_STREAM, APIConnectionError),
        (FaultKind.ERROR, FaultPoint.MID_STREAM, APIError),
        (FaultKind.STALL, FaultPoint.FINISH, APITimeoutError),
    ],
    ids=lambda v: getattr(v, "value", None) or getattr(v, "__name__", str(v)),
)
async def test_fault_matrix(
    plugin: lk.STT, emu: Emulator, kind: FaultKind, at: FaultPoint, error: type
) -> None:
    emu.script_transcripts(SAID)
    emu.fail_next(kind, at, service="stt")
    start = time.monotonic()
    with pytest.raises(error):
        await hear(plugin, speech("Book a table for two.") + speech("At eight tonight."))
    assert time.monotonic() - start < OPTS.timeout * 2 + 1.5


@pytest.mark.parametrize("status", [401, 429, 503])
async def test_refused_upgrades_are_livekit_errors_with_the_real_status(
    plugin: lk.STT, emu: Emulator, status: int
) -> None:
    emu.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=status, service="stt")
    with pytest.raises(APIStatusError) as info:
        await hear(plugin, speech("Hi."))
    assert info.value.status_code == status and info.value.retryable is (status != 401)


async def test_retried_after_a_refusal_and_nothing_said_twice(plugin: lk.STT, emu: Emulator) -> None:
    emu.script_transcripts(SAID[:1])
    emu.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=503, service="stt")
    events = await hear(
        plugin,
        speech("Book a table for two."),
        opts=APIConnectOptions(max_retry=2, timeout=1.0, retry_interval=0.01),
    )
    assert finals(events) == ["Book a table for two."]


async def test_audio_goes_in_frames_of_100_ms(plugin: lk.STT, emu: Emulator) -> None:
    """livekit's 20 ms frames at 48 kHz arrive resampled to 16 kHz and sent 100 ms at a
    time (the last one shorter)."""
    emu.script_transcripts(SAID[:1])
    pcm = speech("Book a table for two.")
    await hear(plugin, pcm)
    (rec,) = emu.transcripts
    assert rec.audio_messages == -(-rec.audio_bytes // 3200)
    assert rec.audio_seconds == pytest.approx(len(pcm) / 2 / 48000, abs=0.03)


RETRY = APIConnectOptions(max_retry=1, timeout=1.0, retry_interval=0.01)


async def test_a_retry_hears_again_what_had_no_final(plugin: lk.STT, emu: Emulator) -> None:
    """The connection drops in the middle of the first utterance: livekit retries, and the
    retry hears that utterance from its start (not from where the drop happened)."""
    emu.script_transcripts([SAID[0], *SAID])  # the dropped connection takes one entry
    emu.fail_next(FaultKind.DROP, FaultPoint.MID_STREAM, service="stt")
    pcm = speech("Book a table for two.") + speech("At eight tonight.")
    events = await hear(plugin, pcm, opts=RETRY)
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    first, retry = emu.transcripts
    assert first.error is not None and retry.completed
    total = len(pcm) / 2 / 48000
    assert retry.audio_seconds == pytest.approx(total, abs=0.05)  # all of it, again
    kinds = [ev.type for ev in events if ev.type in (E.START_OF_SPEECH, E.END_OF_SPEECH)]
    assert kinds == [E.START_OF_SPEECH, E.END_OF_SPEECH] * 2  # the retried start not said twice


async def test_a_retry_never_repeats_a_final(plugin: lk.STT, emu: Emulator) -> None:
    """The connection drops after audio.done, when both utterances had their finals: the
    retry hears only the silence after the last one, and nothing is said twice."""
    emu.script_transcripts(SAID * 2)
    emu.fail_next(FaultKind.DROP, FaultPoint.FINISH, service="stt")
    pcm = speech("Book a table for two.") + speech("At eight tonight.")
    events = await hear(plugin, pcm, opts=RETRY)
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    first, retry = emu.transcripts
    assert first.error is not None and retry.completed
    # the silence after the last final's words, at most the last IDLE_REPLAY_SECONDS of it
    silence_after = len(pcm) / 2 / 48000 - first.utterances[-1][2]
    assert silence_after > lk.stt.IDLE_REPLAY_SECONDS
    assert retry.audio_seconds == pytest.approx(lk.stt.IDLE_REPLAY_SECONDS, abs=0.11)
    usage = sum(ev.recognition_usage.audio_duration for ev in events if ev.recognition_usage)
    assert usage == pytest.approx(first.audio_seconds + retry.audio_seconds, abs=0.01)


async def test_the_service_ending_a_connection_loses_no_audio(plugin: lk.STT, emu: Emulator) -> None:
    """The service finalises and closes mid-utterance on its own: the stream goes on on a
    new connection, which hears everything the first heard without a final (the rest of
    the utterance, and what the engine still held), so the audio heard covers all of it."""
    emu.script_transcripts(["book a table", "for two", SAID[1]])
    emu.fail_next(FaultKind.ENDS_EARLY, FaultPoint.MID_STREAM, service="stt")
    pcm = speech("Book a table for two.") + speech("At eight tonight.")
    events = await hear(plugin, pcm)
    assert finals(events)[0] == "Book a table." and finals(events)[-1] == "At eight tonight."
    first, *rest = emu.transcripts
    assert first.error == "fault:ends_early" and rest and all(t.completed for t in rest)
    heard_after = sum(t.audio_seconds for t in rest)
    assert heard_after >= len(pcm) / 2 / 48000 - first.utterances[0][2] - 0.01  # nothing lost
    kinds = [ev.type for ev in events if ev.type in (E.START_OF_SPEECH, E.END_OF_SPEECH)]
    assert kinds == [E.START_OF_SPEECH, E.END_OF_SPEECH] * (len(kinds) // 2)


async def test_a_retry_keeps_the_timestamps_of_the_stream(plugin: lk.STT, emu: Emulator) -> None:
    """livekit moves its offset by the wall time of each failed attempt (here a second of
    retry interval too); the retried utterance is still placed where it is in the audio."""
    emu.script_transcripts([SAID[0]] * 3)
    emu.fail_next(FaultKind.DROP, FaultPoint.MID_STREAM, service="stt", times=2)
    # livekit's first retry comes after 0.1 s, the second after retry_interval
    slow = APIConnectOptions(max_retry=2, timeout=1.0, retry_interval=1.0)
    stream = plugin.stream(conn_options=slow)

    async def room() -> None:  # in real time: the drop comes while the user is speaking
        for f in frames(speech("Book a table for two.")):
            stream.push_frame(f)
            await asyncio.sleep(0.02)
        stream.end_input()

    feeder = asyncio.ensure_future(room())
    events = [ev async for ev in stream]
    await feeder
    await stream.aclose()
    [final] = [ev.alternatives[0] for ev in events if ev.type is E.FINAL_TRANSCRIPT]
    assert final.text == "Book a table for two."
    assert final.start_time < 0.3  # the speech starts at once; a second late without the fix


async def test_mu_law_is_encoded_from_livekit_pcm() -> None:
    """livekit's frames are 16-bit PCM; with encoding="mulaw" they go out as G.711 at the
    STT's rate, and every duration counts samples, not bytes."""
    async with Emulator() as emu:
        emu.script_transcripts(SAID[:1])
        ears = lk.STT(api_key=emu.api_key, base_url=emu.url, encoding="mulaw", sample_rate=8000)
        try:
            pcm = speech("Book a table for two.")
            events = await hear(ears, pcm)
        finally:
            await ears.aclose()
        assert finals(events) == ["Book a table for two."]
        (rec,) = emu.transcripts
        assert rec.options["encoding"] == "mulaw"
        assert rec.audio_seconds == pytest.approx(len(pcm) / 2 / 48000, abs=0.03)
        usage = sum(ev.recognition_usage.audio_duration for ev in events if ev.recognition_usage)
        assert usage == pytest.approx(len(pcm) / 2 / 48000, abs=0.03)


async def test_an_utterance_left_open_still_ends() -> None:
    """A connection that ends with the utterance still open as far as the service said
    (a retry that heard only its end, say): END_OF_SPEECH still follows its final."""
    s = lk.STT(api_key="k", base_url="http://127.0.0.1:9/v1")
    stream = s.stream()
    stream._speaking = True  # the failed connection said the user started speaking

    class Replay:  # what the retry's connection says: only the remainder, then the end
        def __init__(self) -> None:
            self.events = iter([Final("book a table", (), 0, 0.0, 1.0, from_done=True), Finished(1.0)])

        def __aiter__(self) -> Replay:
            return self

        async def __anext__(self) -> object:
            try:
                return next(self.events)
            except StopIteration:
                raise StopAsyncIteration from None

    # (Replay never suspends, so the stream's own task, which would try to connect, does
    # not run before the events are read)
    await stream._receive(Replay(), s.options, "r", 0.0, lambda: None)  # type: ignore[arg-type]
    kinds = []
    while not stream._event_ch.empty():
        kinds.append(stream._event_ch.recv_nowait().type)
    await stream.aclose()
    await s.aclose()
    assert kinds == [E.FINAL_TRANSCRIPT, E.END_OF_SPEECH]


async def test_new_options_wait_out_noise_then_apply(plugin: lk.STT, emu: Emulator) -> None:
    """Options changed over noise the service does not call speech: they apply once the
    noise stops, before the user speaks again, not after the next utterance."""
    import numpy as np

    emu.script_transcripts(SAID)
    stream = plugin.stream(conn_options=OPTS)
    events: list[stt.SpeechEvent] = []

    async def read() -> None:
        async for ev in stream:
            events.append(ev)

    async def room(pcm: bytes, pace: float = 0.005) -> None:
        for f in frames(pcm):
            stream.push_frame(f)
            await asyncio.sleep(pace)

    reader = asyncio.ensure_future(read())
    await room(speech("Book a table for two."))
    await eventually(lambda: finals(events) == ["Book a table for two."])
    # a soft hum with a click every 50 ms: peaks over QUIET_PEAK, far too soft for the VAD
    hum_samples = np.random.default_rng(1).integers(-400, 400, 48000 * 6 // 10, dtype=np.int16)
    hum_samples[::2400] = 3 * lk.stt.QUIET_PEAK
    hum = hum_samples.tobytes()
    changer = asyncio.get_running_loop().call_later(0.3, lambda: plugin.update_options(language="fr"))
    await room(hum, pace=0.02)  # in real time: the change comes while it plays
    await room(bytes(2 * 48000 * 3 // 2), pace=0.02)  # 1.5 s of silence, in real time
    await eventually(lambda: len(emu.transcripts) == 2)
    await room(speech("At eight tonight."))
    stream.end_input()
    await reader
    await stream.aclose()
    changer.cancel()
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    assert [t.options["language"] for t in emu.transcripts] == ["en", "fr"]


async def test_messy_finals(plugin: lk.STT, emu: Emulator) -> None:
    """A close right after transcript.done, finals sent twice, an empty transcript.done:
    one FINAL per utterance, none lost."""
    emu.script_transcripts(SAID)
    emu.fail_next(FaultKind.CLOSE, FaultPoint.AFTER_DONE, service="stt")
    emu.fail_next(FaultKind.RESEND_FINALS, FaultPoint.MID_STREAM, service="stt")
    events = await hear(plugin, speech("Book a table for two.") + speech("At eight tonight."))
    assert finals(events) == ["Book a table for two.", "At eight tonight."]
    emu.script_transcripts(SAID[:1])
    emu.fail_next(FaultKind.EMPTY_DONE, FaultPoint.FINISH, service="stt")
    cut = speech("Book a table for two.")
    events = await hear(plugin, cut[: len(cut) // 3 // 2 * 2])  # the user is still talking at the end
    assert finals(events) == ["book a table for two"]
    assert [ev.type for ev in events if ev.type in (E.START_OF_SPEECH, E.END_OF_SPEECH)] == [
        E.START_OF_SPEECH,
        E.END_OF_SPEECH,
    ]


# -- in a real agent -----------------------------------------------------------------------


class _Mic:
    """Push speech into the session's audio input, in real time."""

    def __init__(self, mic: object) -> None:
        self.mic = mic

    async def say(self, pcm: bytes, rate: int = 16000) -> None:
        step = rate // 50 * 2  # 20 ms
        for i in range(0, len(pcm), step):
            self.mic.push(pcm[i : i + step])  # type: ignore[attr-defined]
            await asyncio.sleep(0.002)


async def test_an_agent_hears_a_scripted_user_and_answers(emu: Emulator) -> None:
    emu.config.tone = False
    emu.script_transcripts(["book a table for two"])
    ears = lk.STT(api_key=emu.api_key, base_url=emu.url, endpointing=300)
    voice = lk.TTS(api_key=emu.api_key, base_url=emu.url)
    llm = ScriptedLLM("Done: a table for two at eight.")
    session, _out, _transcript, mic = await start_session(
        stt=ears, tts=voice, llm=llm, turn_handling={
            "turn_detection": "stt",
            "endpointing": {"min_delay": 0.0, "max_delay": 0.5},
            "preemptive_generation": {"enabled": False},
            "interruption": {"resume_false_interruption": False, "false_interruption_timeout": None},
        },
    )  # fmt: skip
    try:
        await _Mic(mic).say(speech("Book a table for two.", 16000) + b"\0\0" * 16000)
        await emu.wait_for_utterances(1, timeout=10)
        user = [m.text_content for m in session.history.items if getattr(m, "role", None) == "user"]
        assert user == ["Book a table for two."]
        assert llm.calls == 1
        assert emu.utterances[0].text.strip() == "Done: a table for two at eight."
    finally:
        await session.aclose()
        await ears.aclose()
        await voice.aclose()
