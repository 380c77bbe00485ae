"""Speaking to the real service, as messy as the public sources allow: timings in batches
decoupled from the audio, a pronunciation map the WebSocket will not take, languages and
voices outside the documented lists, trace ids, proxies, custom voices, speech tags."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme
from livekit.agents import APIConnectOptions
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .conftest import FAST
from .proxy import connect_proxy

pytestmark = pytest.mark.asyncio

TEXT = "Timings come in batches that cover several seconds, sometimes with no audio at all, and every word must still be right."
OPTS = APIConnectOptions(max_retry=0, timeout=3.0)


def expected_words(timings: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Words from the emulator's own record of the character timings it sent."""
    words: list[tuple[str, float, float]] = []
    current: list[tuple[str, float, float]] = []
    for ch in [*timings, (" ", 0.0, 0.0)]:
        if ch[0].isspace():
            if current:
                words.append(("".join(c for c, _, _ in current), current[0][1], current[-1][2]))
                current = []
        else:
            current.append(ch)
    return words


@pytest.fixture(params=["batched", "per_chunk"])
async def timed(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    async with Emulator(tone=True, keep_audio=True, timestamps=request.param) as emu:
        yield emu


async def test_word_timings_are_exact_however_timings_travel(timed: Emulator) -> None:
    async with xai_voice.Client(api_key=timed.api_key, base_url=timed.url, timeouts=FAST) as client:
        async with client.stream(with_timestamps=True) as utt:
            await utt.send(TEXT)
            await utt.finish()
            audio = await utt.read_all()
        [rec] = timed.utterances
        assert audio == bytes(rec.audio)
        got = [(w.text.strip(), w.start, w.end) for w in utt.words]
        assert got == expected_words(rec.timings) and len(got) == len(TEXT.split())


async def test_livekit_timed_strings_are_exact_however_timings_travel(timed: Emulator) -> None:
    tts = lk.TTS(api_key=timed.api_key, base_url=timed.url, with_timestamps=True)
    try:
        stream = tts.stream(conn_options=OPTS)
        stream.push_text(TEXT)
        stream.end_input()
        words = []
        async for ev in stream:
            words.extend(ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT) or [])
        await stream.aclose()
    finally:
        await tts.aclose()
    [rec] = timed.utterances
    got = [(str(w).strip(), w.start_time, w.end_time) for w in words]
    assert got == expected_words(rec.timings) and len(got) == len(TEXT.split())


async def test_timing_batches_really_are_decoupled() -> None:
    """The messy mode is the default, and it does send timing-only frames."""
    async with Emulator(tone=True) as emu:
        assert emu.config.timestamps == "batched"
        async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url) as client:
            timing_only = 0
            async with client.stream(with_timestamps=True) as utt:
                await utt.send(TEXT)
                await utt.finish()
                async for chunk in utt:
                    timing_only += not chunk.data and chunk.timestamps is not None
            assert timing_only > 0


# -- the pronunciation map ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "said"), [(FaultKind.STALL, "did not answer"), (FaultKind.ERROR, "refused")]
)
async def test_a_map_the_websocket_will_not_take_still_applies(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, kind: FaultKind, said: str
) -> None:
    caplog.set_level(logging.WARNING)
    emulator.fail_next(kind, FaultPoint.SESSION_UPDATE, times=None)
    timeouts = xai_voice.Timeouts(session_update=0.3)
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=timeouts) as client:
        for text in ("I use LiveKit daily.", "LiveKit again, and live kit."):
            async with client.stream(replace={"LiveKit": "live kit", "live kit": "LK"}) as utt:
                for piece in text.split(" "):  # a key may be cut across pieces
                    await utt.send(piece + " ")
                await utt.finish()
                assert await utt.read_all()
                assert utt.map_applied_locally
    assert [u.text.strip() for u in emulator.utterances] == [
        "I use live kit daily.",
        "live kit again, and LK.",
    ]
    assert all(u.replace == {} for u in emulator.utterances)  # the service never held it
    warnings = [r for r in caplog.records if "pronunciation map" in r.getMessage()]
    assert len(warnings) == 1 and said in warnings[0].getMessage()


async def test_a_map_the_websocket_takes_is_left_to_the_service(emulator: Emulator) -> None:
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url) as client:
        async with client.stream(replace={"LiveKit": "live kit"}) as utt:
            await utt.send("I use LiveKit.")
            await utt.finish()
            await utt.read_all()
            assert not utt.map_applied_locally
    [rec] = emulator.utterances
    assert rec.text == "I use LiveKit." and rec.replace == {"LiveKit": "live kit"}


# -- open vocabularies ---------------------------------------------------------------------


async def test_a_language_outside_the_list_goes_through_with_a_warning(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    options = xai_voice.TTSOptions(language="sw")
    assert options.language == "sw"
    assert any("not in the documented list" in r.getMessage() for r in caplog.records)
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url) as client:
        assert await client.speak("Habari.", options)
    assert emulator.utterances[0].options["language"] == "sw"
    with pytest.raises(xai_voice.OptionError, match="not a language code"):
        xai_voice.TTSOptions(language="english!")


async def test_custom_voices_are_voices(emulator: Emulator) -> None:
    voice_id = emulator.add_custom_voice("Narrator")
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url) as client:
        assert await client.speak("In my own voice.", voice=voice_id)
        listed = await client.voices()
        assert [v.voice_id for v in listed if v.kind == "custom"] == [voice_id]
        assert {v.kind for v in listed} == {"builtin", "custom"}
        with pytest.raises(xai_voice.XaiStatusError) as info:
            await client.speak("Nobody.", voice="zzzz9999")
    assert info.value.status == 404 and "no voice 'zzzz9999'" in str(info.value)


async def test_creating_and_deleting_custom_voices(emulator: Emulator) -> None:
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url) as client:
        made = await client.create_custom_voice("Clone", b"RIFF fake reference audio", description="mine")
        assert made.kind == "custom" and len(made.voice_id) == 8 and made.voice_id.isalnum()
        assert made.voice_id in [v.voice_id for v in await client.voices()]
        await client.delete_custom_voice(made.voice_id)
        assert made.voice_id not in [v.voice_id for v in await client.voices()]
        emulator.config.enterprise = False
        with pytest.raises(xai_voice.XaiStatusError) as info:
            await client.create_custom_voice("Clone", b"audio")
    assert info.value.status == 403 and "Enterprise" in str(info.value)


# -- trace ids -----------------------------------------------------------------------------


async def test_trace_ids_reach_errors_and_utterances(emulator: Emulator) -> None:
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        async with client.stream() as utt:
            await utt.send("Traced.")
            await utt.finish()
            await utt.read_all()
        assert utt.trace_id and utt.trace_id == emulator.utterances[-1].trace_id
        async with client.synthesize("Traced over REST.") as rest:
            await rest.read_all()
        assert rest.trace_id and rest.trace_id == emulator.utterances[-1].trace_id
        emulator.fail_next(FaultKind.ERROR, FaultPoint.MID_AUDIO)
        with pytest.raises(xai_voice.XaiServerError) as frame_error:
            await client.speak("An error frame, with a trace id in its words.")
        emulator.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=503)
        with pytest.raises(xai_voice.XaiStatusError) as refusal:
            await client.speak("Refused.", voice="rex")
    for err in (frame_error.value, refusal.value):
        assert err.trace_id and err.trace_id in str(err)


# -- proxies -------------------------------------------------------------------------------


@pytest.fixture
async def tls_emulator() -> AsyncIterator[tuple[Emulator, ssl.SSLContext]]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with Emulator(tone=True, ssl_context=server_ctx) as emu:
        yield emu, client_ctx


async def test_traffic_goes_through_the_proxy_the_environment_names(
    tls_emulator: tuple[Emulator, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, trust = tls_emulator
    async with connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url, ssl=trust) as client:
            assert await client.speak("Through the proxy.")  # wss, tunnelled
            assert await client.synthesize("And REST too.").read_all()
        assert len(proxy.tunnels) == 2 and all(t.endswith(f":{emu.port}") for t in proxy.tunnels)
        tts = lk.TTS(api_key=emu.api_key, base_url=emu.url)
        tts.client.service = type(tts.client.service)(
            tts.client.service.endpoint, tts.client.service.session, ssl=trust
        )
        try:
            stream = tts.stream(conn_options=OPTS)
            stream.push_text("The LiveKit face, outside a job.")
            stream.end_input()
            assert [ev async for ev in stream]
            await stream.aclose()
        finally:
            await tts.aclose()
        assert len(proxy.tunnels) == 3
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url, ssl=trust) as client:
            assert await client.speak("Not through it.")
        assert len(proxy.tunnels) == 3


# -- speech as a streaming service makes it ------------------------------------------------


async def test_a_reply_made_only_of_a_tag_is_voiced(emulator: Emulator) -> None:
    tts = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        stream = tts.stream(conn_options=OPTS)
        stream.push_text("[laugh]")
        stream.end_input()
        frames = [ev async for ev in stream]  # "no audio frames were pushed" is an error
        await stream.aclose()
        assert frames and emulator.utterances[0].audio_bytes > 0
    finally:
        await tts.aclose()


async def test_audio_starts_before_text_done_once_a_phrase_is_complete(emulator: Emulator) -> None:
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        async with client.stream() as utt:
            await utt.send("The first sentence is complete. ")
            start = time.monotonic()
            first = await utt.__anext__()  # before finish(): the service speaks as it reads
            assert first.data and time.monotonic() - start < 1.0
            await utt.send("The rest follows.")
            await utt.finish()
            rest = await utt.read_all()
        assert first.data + rest == bytes(emulator.utterances[0].audio)
