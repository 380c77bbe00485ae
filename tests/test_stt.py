"""Speech to text, the client against the emulator over loopback: REST and streaming,
scripted (exact) and recognised (PocketSphinx), every option on the wire, every fault
ending in its typed error within its deadline, nothing left behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import cache

import numpy as np
import pytest

import xai_voice
from xai_voice.audio import alaw_encode, mulaw_encode, wav_header
from xai_voice.emulator import Emulator, FaultKind, FaultPoint, ScriptEntry
from xai_voice.emulator.render import RenderRequest, render

from .conftest import client_sockets, our_tasks

pytestmark = pytest.mark.asyncio

FAST = xai_voice.Timeouts(connect=2, send=2, created=1, result_gap=1, final=1, clear=0.5)
SAID = ["book a table for two", "at eight tonight"]


@cache
def speech(text: str, rate: int = 16000, voice: str = "cosmo") -> bytes:
    """espeak-ng speech as 16-bit PCM, with a second of silence after it."""
    rendered = render(RenderRequest(text=text, voice=voice, language="en", codec="pcm", sample_rate=rate))
    return rendered.audio + b"\0\0" * rate


def two_sentences(rate: int = 16000) -> bytes:
    return speech("Book a table for two.", rate) + speech("At eight tonight.", rate)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        yield e


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[xai_voice.Client]:
    c = xai_voice.Client(api_key=emu.api_key, base_url=emu.url, timeouts=FAST)
    try:
        yield c
    finally:
        await c.aclose()
        assert our_tasks() == []
        assert client_sockets(emu.port) == 0


async def stream_all(
    client: xai_voice.Client, audio: bytes, *, step: int = 3200, **options: object
) -> list[object]:
    async with client.listen(**options) as rec:  # type: ignore[arg-type]

        async def send() -> None:
            for i in range(0, len(audio), step):
                await rec.send(audio[i : i + step])
            await rec.finish()

        sender = asyncio.ensure_future(send())
        events = [e async for e in rec]
        await sender
    return events


# -- REST --------------------------------------------------------------------------------


async def test_rest_scripted_is_exact(client: xai_voice.Client, emu: Emulator) -> None:
    emu.script_transcripts(SAID)
    audio = two_sentences()
    transcript = await client.transcribe(wav_header(16000, len(audio)) + audio)
    assert transcript.text == "Book a table for two. At eight tonight."
    assert [w.text for w in transcript.words] == [
        "book",
        "a",
        "table",
        "for",
        "two",
        "at",
        "eight",
        "tonight",
    ]
    assert all(a.end <= b.start for a, b in zip(transcript.words, transcript.words[1:], strict=False))
    assert transcript.trace_id and abs((transcript.duration or 0) - len(audio) / 32000) < 0.05
    [rec] = emu.transcripts
    assert rec.transport == "rest" and len(rec.utterances) == 2


async def test_rest_raw_audio_a_path_and_options(client: xai_voice.Client, emu: Emulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    emu.script_transcripts([("hello there", 1)])
    raw = mulaw_encode(np.frombuffer(speech("Hello there.", 8000), dtype="<i2"))
    path = tmp_path / "call.ulaw"
    path.write_bytes(raw)
    transcript = await client.transcribe(
        path, sample_rate=8000, encoding="mulaw", language="en", diarize=True, keyterms=("Grok",)
    )
    assert transcript.text == "Hello there." and {w.speaker for w in transcript.words} == {1}
    opts = emu.transcripts[0].options
    assert (opts["sample_rate"], opts["encoding"], opts["language"], opts["diarize"], opts["keyterms"]) == (
        8000, "mulaw", "en", True, ["Grok"])  # fmt: skip


async def test_rest_refusal_is_an_error_never_an_empty_transcript(emu: Emulator) -> None:
    async with xai_voice.Client(api_key="wrong", base_url=emu.url) as client:
        with pytest.raises(xai_voice.XaiStatusError) as info:
            await client.transcribe(speech("Hi."), sample_rate=16000)
    assert info.value.status == 401 and "invalid API key" in str(info.value)


# -- streaming ---------------------------------------------------------------------------


async def test_streaming_scripted_one_final_per_utterance(client: xai_voice.Client, emu: Emulator) -> None:
    emu.script_transcripts(SAID)
    events = await stream_all(client, two_sentences(), interim_results=True)
    kinds = [type(e).__name__ for e in events]
    finals = [e for e in events if isinstance(e, xai_voice.Final)]
    assert [f.text for f in finals] == ["Book a table for two.", "At eight tonight."]
    assert kinds.count("SpeechStarted") == kinds.count("SpeechEnded") == 2
    assert "Interim" in kinds and kinds[-1] == "Finished"
    # in order: started, interims, final, ended; twice
    for start, end in zip([i for i, k in enumerate(kinds) if k == "SpeechStarted"],
                          [i for i, k in enumerate(kinds) if k == "SpeechEnded"], strict=True):  # fmt: skip
        assert kinds[start + 1 : end].count("Final") == 1 and kinds[end - 1] == "Final"
    finished = events[-1]
    assert (
        isinstance(finished, xai_voice.Finished)
        and abs(finished.duration - len(two_sentences()) / 32000) < 0.1
    )


async def test_no_interim_results_unless_asked(client: xai_voice.Client, emu: Emulator) -> None:
    emu.script_transcripts(SAID[:1])
    events = await stream_all(client, speech("Book a table for two."), interim_results=False)
    assert not any(isinstance(e, xai_voice.Interim) and not e.stable for e in events)


@pytest.mark.parametrize("encoding", ["pcm", "mulaw", "alaw"])
async def test_every_encoding_and_numpy_input(client: xai_voice.Client, emu: Emulator, encoding: str) -> None:
    pcm = np.frombuffer(speech("Book a table for two."), dtype="<i2")
    emu.script_transcripts(SAID[:1] * 2)
    data = {"pcm": pcm.tobytes(), "mulaw": mulaw_encode(pcm), "alaw": alaw_encode(pcm)}[encoding]
    events = await stream_all(client, data, step=1600, encoding=encoding)
    assert [e.text for e in events if isinstance(e, xai_voice.Final)] == ["Book a table for two."]
    async with client.listen(encoding=encoding) as rec:  # floats in -1..1, converted here
        await rec.send(pcm.astype(np.float32) / 32768.0)
        await rec.finish()
        assert [e.text for e in await rec.events() if isinstance(e, xai_voice.Final)] == [
            "Book a table for two."
        ]


async def test_every_option_reaches_the_wire(client: xai_voice.Client, emu: Emulator) -> None:
    emu.script_transcripts(SAID[:1])
    await stream_all(client, speech("Book a table for two.", 24000), sample_rate=24000, language="fr",
                     endpointing=250, vad_threshold=0.1, smart_turn=0.6, smart_turn_timeout=800,
                     filler_words=True, keyterms=("Grok", "xAI"), diarize=True, interim_results=False)  # fmt: skip
    opts = emu.transcripts[0].options
    assert opts == {
        "sample_rate": 24000, "encoding": "pcm", "interim_results": False, "endpointing": 250,
        "language": "fr", "diarize": True, "multichannel": False, "channels": 1, "keyterms": ["Grok", "xAI"],
        "vad_threshold": 0.1, "smart_turn": 0.6, "filler_words": True,
    }  # fmt: skip
    with pytest.raises(xai_voice.OptionError, match="endpointing"):
        client.listen(endpointing=9000)
    with pytest.raises(xai_voice.OptionError, match="keyterms"):
        client.listen(keyterms=("x" * 60,))


async def test_diarization_and_multichannel(client: xai_voice.Client, emu: Emulator) -> None:
    emu.script_transcripts([ScriptEntry("hello from the left", speaker=0, channel=0),
                            ScriptEntry("and hello from the right", speaker=1, channel=1)])  # fmt: skip
    left = np.frombuffer(speech("Hello from the left."), dtype="<i2")
    right = np.frombuffer(speech("And hello from the right."), dtype="<i2")
    n = max(len(left), len(right))
    stereo = np.zeros((n, 2), dtype=np.int16)
    stereo[: len(left), 0], stereo[: len(right), 1] = left, right
    async with client.listen(channels=2, diarize=True) as rec:
        await rec.send(stereo)
        await rec.finish()
        finals = [e for e in await rec.events() if isinstance(e, xai_voice.Final)]
    by_channel = {f.channel: f for f in finals}
    assert by_channel[0].text == "Hello from the left." and by_channel[1].text == "And hello from the right."
    assert {w.speaker for w in by_channel[1].words} == {1}


@pytest.mark.parametrize("after", ["close", "stay", "silent"])
async def test_whatever_the_service_does_after_done_the_stream_ends(after: str) -> None:
    async with (
        Emulator(stt_after_done=after) as emu,
        xai_voice.Client(api_key=emu.api_key, base_url=emu.url, timeouts=FAST) as client,
    ):
        emu.script_transcripts(SAID[:1])
        start = time.monotonic()
        events = await stream_all(client, speech("Book a table for two."))
        assert time.monotonic() - start < 3
        assert isinstance(events[-1], xai_voice.Finished)
    assert our_tasks() == []


async def test_a_recognised_sentence_of_espeak_speech(client: xai_voice.Client) -> None:
    """PocketSphinx on espeak-ng: the word error rates measured across sentences and
    voices are in benchmarks/results/stt_wer.md (``python -m benchmarks.stt_wer``)."""
    transcript = await client.transcribe(speech("Please call my mother tomorrow morning."), sample_rate=16000,
                                         encoding="pcm")  # fmt: skip
    said = ["please", "call", "my", "mother", "tomorrow", "morning"]
    heard = transcript.text.lower().rstrip(".").split()
    assert len(set(heard) & set(said)) >= len(said) - 2


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "at", "error", "phase"),
    [
        (FaultKind.STALL, FaultPoint.CREATED, xai_voice.XaiTimeoutError, "created"),
        (FaultKind.DROP, FaultPoint.CREATED, xai_voice.XaiConnectionError, None),
        (FaultKind.ERROR, FaultPoint.CREATED, xai_voice.XaiServerError, None),
        (FaultKind.STALL, FaultPoint.MID_STREAM, xai_voice.XaiTimeoutError, ("result_gap", "final")),
        (FaultKind.DROP, FaultPoint.MID_STREAM, xai_voice.XaiConnectionError, None),
        (FaultKind.ERROR, FaultPoint.MID_STREAM, xai_voice.XaiServerError, None),
        (FaultKind.CLOSE, FaultPoint.MID_STREAM, xai_voice.XaiConnectionError, None),
        (FaultKind.STALL, FaultPoint.FINISH, xai_voice.XaiTimeoutError, "final"),
        (FaultKind.CLOSE, FaultPoint.FINISH, xai_voice.XaiConnectionError, None),
    ],
    ids=lambda v: getattr(v, "value", None) or getattr(v, "__name__", str(v)),
)
async def test_every_fault_ends_in_its_typed_error_in_time(
    client: xai_voice.Client, emu: Emulator, kind: FaultKind, at: FaultPoint, error: type[Exception],
    phase: str | tuple[str, ...] | None,
) -> None:  # fmt: skip
    emu.script_transcripts(SAID)
    emu.fail_next(kind, at, service="stt")
    start = time.monotonic()
    with pytest.raises(error) as info:
        await stream_all(client, two_sentences(), interim_results=True)
    assert time.monotonic() - start < 1.0 + 1.5
    if phase is not None:
        assert info.value.phase in phase  # type: ignore[attr-defined]
    if kind is FaultKind.ERROR:
        assert info.value.trace_id  # type: ignore[attr-defined]


async def test_a_close_right_after_transcript_done_loses_nothing(
    client: xai_voice.Client, emu: Emulator
) -> None:
    emu.script_transcripts(SAID)
    emu.fail_next(FaultKind.CLOSE, FaultPoint.AFTER_DONE, service="stt")
    events = await stream_all(client, two_sentences())
    assert [e.text for e in events if isinstance(e, xai_voice.Final)] == [
        "Book a table for two.",
        "At eight tonight.",
    ]


async def test_resent_finals_are_said_once_and_an_empty_done_still_finishes_the_words(
    client: xai_voice.Client, emu: Emulator
) -> None:
    emu.script_transcripts(SAID)
    emu.fail_next(FaultKind.RESEND_FINALS, FaultPoint.MID_STREAM, service="stt")
    events = await stream_all(client, two_sentences())
    assert [e.text for e in events if isinstance(e, xai_voice.Final)] == [
        "Book a table for two.",
        "At eight tonight.",
    ]
    emu.script_transcripts(SAID[:1])
    emu.fail_next(FaultKind.EMPTY_DONE, FaultPoint.FINISH, service="stt")
    said = speech("Book a table for two.")
    no_tail = said[: len(said) // 3 // 2 * 2]  # audio.done while the user is speaking
    events = await stream_all(client, no_tail)
    finals = [e for e in events if isinstance(e, xai_voice.Final)]
    assert [f.text for f in finals] == ["book a table for two"] and finals[0].from_done


@pytest.mark.parametrize("status", [401, 429, 503])
async def test_refused_upgrades(client: xai_voice.Client, emu: Emulator, status: int) -> None:
    emu.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=status, service="stt")
    with pytest.raises(xai_voice.XaiStatusError) as info:
        await stream_all(client, speech("Hi."))
    assert info.value.status == status and info.value.retryable is (status != 401)
    if status == 429:
        assert info.value.retry_after == 1.0


async def test_audio_before_the_session_is_ready_is_never_dropped(
    client: xai_voice.Client, emu: Emulator
) -> None:
    """Every byte sent before transcript.created reaches the service (pipecat drops it)."""
    emu.script_transcripts(SAID[:1])
    audio = speech("Book a table for two.")
    async with client.listen() as rec:
        await rec.send(audio)  # all of it at once, before the session can be ready
        await rec.finish()
        events = await rec.events()
    assert emu.transcripts[0].audio_bytes == len(audio)
    assert [e.text for e in events if isinstance(e, xai_voice.Final)] == ["Book a table for two."]


async def test_cancel_and_close_leave_nothing(client: xai_voice.Client, emu: Emulator) -> None:
    rec = client.listen()
    await rec.send(speech("Hi.")[:3200])
    await rec.cancel()
    with pytest.raises(xai_voice.XaiConnectionError):
        await rec.events()
    await rec.aclose()
    rec2 = client.listen()
    await rec2.start()
    await rec2.aclose()
    await asyncio.sleep(0.05)
    assert our_tasks() == [] and client_sockets(emu.port) == 0
