"""Barge-in: nothing of a cancelled utterance, text or audio, ever reaches the next one;
and the next reply still starts warm."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from livekit.agents import APIConnectOptions

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator

from .conftest import FAST, eventually
from .hostile import STALE, hostile

pytestmark = pytest.mark.asyncio

FIRST = "alpha " * 2500  # exactly 15,000 characters: one whole text.delta
LEFTOVER = "LEFTOVER " * 100  # the second text.delta of the same send


async def test_a_cancelled_send_loop_cannot_write_into_the_next_utterance(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11.1: cancel while a multi-delta write is draining; another utterance takes
    a connection; the old send loop resumes.  The server must hear exactly "Bravo."."""
    gate = asyncio.Event()
    original = aiohttp.ClientWebSocketResponse.send_str

    async def draining(self: aiohttp.ClientWebSocketResponse, data: str, compress: int | None = None) -> None:
        await original(self, data, compress)  # the frame is on the wire...
        if '"delta":"alpha' in data:
            await gate.wait()  # ...and the write waits to drain

    monkeypatch.setattr(aiohttp.ClientWebSocketResponse, "send_str", draining)
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        first = client.stream()
        sending = asyncio.ensure_future(first.send(FIRST + LEFTOVER))
        await eventually(lambda: bool(emulator.utterances))
        await first.cancel()
        second = client.stream()
        await second.send("Bravo.")
        gate.set()  # the old send loop resumes
        await asyncio.sleep(0.1)
        await second.finish()
        audio = await second.read_all()
        [outcome] = await asyncio.gather(sending, return_exceptions=True)
    heard = [u.text for u in emulator.utterances]
    assert heard[-1] == "Bravo." and audio == bytes(emulator.utterances[-1].audio)
    assert not any("LEFTOVER" in text for text in heard)
    assert isinstance(outcome, xai_voice.LocalProtocolError)  # refused: it owns nothing now


@pytest.mark.parametrize("late", [0.0, 0.3], ids=["at-once", "300ms-late"])
async def test_stale_audio_after_a_clear_never_reaches_the_next_reply(late: float) -> None:
    """Issue 11.2, bare client: the server answers text.clear with audio.clear and then
    still sends audio of the cleared utterance (at once, or 300 ms later)."""
    async with hostile(frames=40, pause=0.01, stale_after_clear=late) as server:
        async with xai_voice.Client(api_key="k", base_url=server.url, timeouts=FAST) as client:
            first = client.stream()
            await first.send("A long reply the user talks over.")
            await first.finish()
            assert (await first.__anext__()).data
            await first.cancel()
            await asyncio.sleep(late / 2)
            reply = await client.speak("The next reply.")
            await asyncio.sleep(late + 0.1)  # whatever was still coming has come
            again = await client.speak("And the one after.")
    for audio in (reply, again):
        assert STALE not in audio
        assert len(audio) == 40 * 960 and len(set(audio)) == 1  # one utterance's audio, whole


@pytest.mark.parametrize("late", [0.0, 0.3], ids=["at-once", "300ms-late"])
async def test_livekit_stale_audio_after_a_clear_never_reaches_the_next_reply(late: float) -> None:
    """Issue 11.2 through the LiveKit face: barge-in is ``stream.aclose()``."""
    opts = APIConnectOptions(max_retry=0, timeout=2.0)
    async with hostile(frames=40, pause=0.01, stale_after_clear=late) as server:
        tts = lk.TTS(api_key="k", base_url=server.url)
        try:
            stream = tts.stream(conn_options=opts)
            stream.push_text("A long reply the user talks over.")
            stream.flush()
            assert (await stream.__anext__()).frame.data
            await stream.aclose()
            for _ in range(2):
                await asyncio.sleep(late / 2 + 0.05)
                stream = tts.stream(conn_options=opts)
                stream.push_text("The next reply.")
                stream.end_input()
                audio = b"".join([bytes(ev.frame.data) async for ev in stream])
                await stream.aclose()
                assert STALE not in audio
                # livekit may pad the end with silence of its own; all the rest is ours
                ours = audio.rstrip(b"\x00")
                assert len(set(ours)) == 1 and len(ours) == 40 * 960  # one utterance's audio, whole
        finally:
            await tts.aclose()


async def test_a_reply_half_a_second_after_a_barge_in_starts_on_a_warm_socket(emulator: Emulator) -> None:
    """The cleared socket is closed, but its replacement opens at the barge-in: a reply
    that starts 0.5 s later pays no handshake."""
    emulator.config.realtime = 1.0
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as client:
        first = client.stream()
        await first.send("A long reply that will be interrupted, " * 4)
        await first.finish()
        await first.__anext__()
        await first.cancel()
        await asyncio.sleep(0.5)
        start = time.monotonic()
        nxt = client.stream()
        await nxt.send("Right away.")
        await nxt.finish()
        await nxt.__anext__()
        first_audio = time.monotonic() - start
        await nxt.read_all()
        assert nxt.connection_reused and nxt.acquire_time < 0.01
        assert first_audio < 0.5
        assert client.pool.replenished == 1 and client.pool.connects == 2
