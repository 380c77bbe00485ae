"""Our TTS inside a real ``AgentSession`` (and as the primary of livekit's
``FallbackAdapter``), against the emulator: turns, barge-in, a session closed mid-reply,
and failures at each point."""

from __future__ import annotations

import time

import pytest
from livekit.agents import APIConnectOptions, tts

from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .agent_fakes import ScriptedLLM, start_session
from .conftest import client_sockets, eventually, our_tasks

pytestmark = pytest.mark.asyncio

REPLIES = (
    "Sure, I can help with that.",
    "The table is booked for two at eight.",
    "Anything else?",
)
LONG = "Let me tell you about all of the options we have for you tonight, one by one. " * 3


@pytest.fixture
async def paced() -> Emulator:  # type: ignore[misc]
    async with Emulator(tone=True, keep_audio=True) as emu:
        yield emu


async def test_several_turns_on_one_connection(paced: Emulator) -> None:
    voice = lk.TTS(api_key=paced.api_key, base_url=paced.url)
    session, out, transcript, _ = await start_session(tts=voice, llm=ScriptedLLM(*REPLIES))
    try:
        for i in range(3):
            handle = session.generate_reply(user_input=f"question {i}")
            await handle
            assert not handle.interrupted
        assert [u.text.strip() for u in paced.utterances] == list(REPLIES)
        assert all(u.completed for u in paced.utterances)
        assert paced.connections_total == 1  # every turn reused the one socket
        assert [m.strip() for m in transcript.messages] == list(REPLIES)  # what the user read
        heard = out.audio()
        sent = b"".join(bytes(u.audio) for u in paced.utterances)
        assert heard.rstrip(b"\x00") and sent.startswith(heard.rstrip(b"\x00")[: len(sent) // 2])
    finally:
        await session.aclose()
        await voice.aclose()
    assert our_tasks() == [] and client_sockets(paced.port) == 0


async def test_a_user_interrupting_stops_the_reply_at_once(paced: Emulator) -> None:
    paced.config.realtime = 1.0
    paced.fail_next(FaultKind.STALE_AUDIO, FaultPoint.CLEAR)  # and the server is messy about it
    voice = lk.TTS(api_key=paced.api_key, base_url=paced.url)
    session, out, _, _ = await start_session(tts=voice, llm=ScriptedLLM(LONG, REPLIES[1]), realtime=True)
    try:
        handle = session.generate_reply(user_input="what are the options?")
        await eventually(lambda: len(out.frames) > 3, timeout=5)
        interrupted_at = time.monotonic()
        await session.interrupt()
        await handle
        assert handle.interrupted
        await paced.server.wait_for(lambda: paced.utterances[0].cleared, 2)
        assert time.monotonic() - interrupted_at < 0.5  # the service was told to stop at once
        frames_before = len(out.frames)
        paced.config.realtime = 0.0
        await session.generate_reply(user_input="book it")
        second = out.audio(frames_before)
        assert b"\x11\x22\x11\x22" not in second  # none of the stale audio after the clear
        rec = paced.utterances[-1]
        assert rec.text.strip() == REPLIES[1] and rec.completed
        # the cleared socket was closed; its warm replacement served the next reply
        assert rec.connection == 1 and paced.connections_total == 2
    finally:
        await session.aclose()
        await voice.aclose()
    assert our_tasks() == [] and client_sockets(paced.port) == 0


async def test_closing_the_session_mid_reply(paced: Emulator) -> None:
    paced.config.realtime = 1.0
    voice = lk.TTS(api_key=paced.api_key, base_url=paced.url)
    session, out, _, _ = await start_session(tts=voice, llm=ScriptedLLM(LONG), realtime=True)
    handle = session.generate_reply(user_input="go on")
    await eventually(lambda: len(out.frames) > 2, timeout=5)
    start = time.monotonic()
    await session.aclose()
    assert handle.done() and time.monotonic() - start < 2.0
    await paced.server.wait_for(lambda: paced.utterances[0].cleared, 2)
    await voice.aclose()
    assert our_tasks() == [] and client_sockets(paced.port) == 0


async def _fallback_session(primary: Emulator, secondary: Emulator) -> tuple[
    tts.FallbackAdapter, lk.TTS, lk.TTS
]:  # fmt: skip
    first = lk.TTS(api_key=primary.api_key, base_url=primary.url)
    second = lk.TTS(api_key=secondary.api_key, base_url=secondary.url)
    return tts.FallbackAdapter([first, second], max_retry_per_tts=0), first, second


@pytest.mark.parametrize(
    ("kind", "at"),
    [
        (FaultKind.REFUSE, FaultPoint.UPGRADE),
        (FaultKind.STALL, FaultPoint.BEFORE_AUDIO),
        (FaultKind.ERROR, FaultPoint.BEFORE_AUDIO),
        (FaultKind.DROP, FaultPoint.BEFORE_AUDIO),
    ],
    ids=lambda v: v.value,
)
async def test_fallback_takes_over_before_any_audio(paced: Emulator, kind: FaultKind, at: FaultPoint) -> None:
    async with Emulator(tone=True, keep_audio=True) as secondary:
        adapter, first, second = await _fallback_session(paced, secondary)
        if kind is FaultKind.REFUSE:
            paced.fail_next(kind, at, times=None)  # the session prewarms: refuse that too
        elif kind is FaultKind.STALL:
            paced.fail_next(kind, at, seconds=30.0)
        else:
            paced.fail_next(kind, at)
        session, out, _, _ = await start_session(
            tts=adapter,
            llm=ScriptedLLM(REPLIES[0]),
            tts_conn_options=APIConnectOptions(max_retry=0, timeout=1.0, retry_interval=0.05),
        )
        try:
            await session.generate_reply(user_input="hello")
            [served] = [u for u in secondary.utterances if u.text.strip() == REPLIES[0]]
            assert served.completed
            heard = out.audio().rstrip(b"\x00")
            assert heard == bytes(served.audio)[: len(heard)] and len(heard) >= len(served.audio) * 0.9
        finally:
            await session.aclose()
            await adapter.aclose()
            await first.aclose()
            await second.aclose()


async def test_fallback_never_duplicates_after_audio(paced: Emulator) -> None:
    async with Emulator(tone=True, keep_audio=True) as secondary:
        adapter, first, second = await _fallback_session(paced, secondary)
        paced.fail_next(FaultKind.DROP, FaultPoint.MID_AUDIO)
        session, out, _, _ = await start_session(
            tts=adapter,
            llm=ScriptedLLM(LONG),
            tts_conn_options=APIConnectOptions(max_retry=0, timeout=1.0, retry_interval=0.05),
        )
        try:
            await session.generate_reply(user_input="hello")
            # audio went out before the failure: nothing of that reply is said again
            assert not [u for u in secondary.utterances if u.text.strip() == LONG.strip()]
            assert len(out.frames) > 0
        finally:
            await session.aclose()
            await adapter.aclose()
            await first.aclose()
            await second.aclose()
