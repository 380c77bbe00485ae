"""The pool holds no session it does not need, leaks nothing when a caller gives up, and
never hands out a dead socket for long; a connection's bookkeeping stays constant."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from livekit.agents import APIConnectOptions

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator

from .conftest import FAST, client_sockets, eventually, our_tasks, speak
from .hostile import hostile

pytestmark = pytest.mark.asyncio

OPTS = APIConnectOptions(max_retry=0, timeout=2.0)


async def test_switching_voices_mid_stream_holds_no_stale_sessions(emulator: Emulator) -> None:
    """Issue 11.5: with a session limit of 2, a connection busy when update_options()
    retired its options must be closed when its stream ends, or the third turn is 429."""
    emulator.config.max_sessions = 2
    tts = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        for voice in ("rex", "ara", "leo"):
            stream = tts.stream(conn_options=OPTS)
            stream.push_text("A turn long enough to switch voices in the middle of it.")
            stream.flush()
            assert (await stream.__anext__()).frame.data
            tts.update_options(voice=voice)  # mid-stream: applies from the next one
            stream.end_input()
            _ = [ev async for ev in stream]
            await stream.aclose()
            await eventually(lambda: emulator.open_connections <= 1)
        audio, finals, _ = await speak(tts, "The turn after all that.", conn_options=OPTS)
        assert audio and finals == 1 and emulator.utterances[-1].voice == "leo"
    finally:
        await tts.aclose()


async def test_idle_sessions_are_capped_and_closed_after_a_while(emulator: Emulator) -> None:
    async with xai_voice.Client(
        api_key=emulator.api_key, base_url=emulator.url, max_idle_connections=1, max_idle_time=0.3
    ) as client:
        for voice in ("eve", "rex", "ara", "leo"):
            await client.speak("One each.", voice=voice)
        # four option sets, but never more than one in use at once: one idle session kept
        assert client.pool.idle_count == 1
        await eventually(lambda: client.pool.idle_count == 0 and emulator.open_connections == 0)


async def test_a_cancel_the_moment_the_socket_opens_leaks_nothing(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11.6: the caller is cancelled exactly as its connection finishes opening (the
    connect is done, the caller has not resumed).  The connection must be closed, not
    left neither busy nor idle with its reader running."""
    from xai_voice.transport.websocket import WsConnection

    original = WsConnection.connect.__func__  # type: ignore[attr-defined]
    victim: list[asyncio.Task[None]] = []

    async def connect(cls: type[WsConnection], *args: object, **kwargs: object) -> WsConnection:
        conn = await original(cls, *args, **kwargs)
        victim[0].cancel()  # the caller gives up just as the socket opens
        return conn

    monkeypatch.setattr(WsConnection, "connect", classmethod(connect))
    # a session that outlives the client (livekit's per-job session does): closing it
    # must not be what closes our sockets
    async with aiohttp.ClientSession() as session:
        client = xai_voice.Client(
            api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST, session=session
        )
        victim.append(asyncio.ensure_future(client.stream().start()))
        await asyncio.gather(victim[0], return_exceptions=True)
        assert victim[0].cancelled()
        await client.aclose()
        await asyncio.sleep(0.01)
        assert our_tasks() == []
        assert client_sockets(emulator.port) == 0
        await eventually(lambda: emulator.open_connections == 0)


@pytest.mark.parametrize("what", ["start", "prewarm"])
async def test_giving_up_at_any_step_of_the_connect_leaks_nothing(emulator: Emulator, what: str) -> None:
    """A cancel (or close) at any step of the connect leaves no socket and no task."""
    for steps in range(0, 40):
        client = xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST)
        if what == "start":
            task = asyncio.ensure_future(client.stream().start())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        else:
            client.prewarm()
            for _ in range(steps):
                await asyncio.sleep(0)
        await client.aclose()
        await asyncio.sleep(0)
        assert our_tasks() == [], steps
        assert client_sockets(emulator.port) == 0, steps
    await eventually(lambda: emulator.open_connections == 0)


async def test_a_silently_dead_pooled_socket_costs_well_under_a_second() -> None:
    """Issue 11.7, bare client: the pooled socket went silent (a NAT dropped it: no FIN,
    no RST, no pong).  The next reply is replayed on a new socket, with no error."""
    timeouts = xai_voice.Timeouts(first_audio=3, chunk_gap=3)
    async with hostile(silent_after_first=True) as server:
        async with xai_voice.Client(api_key="k", base_url=server.url, timeouts=timeouts) as client:
            assert await client.speak("First.")
            await asyncio.sleep(1.2)
            start = time.monotonic()
            audio = await client.speak("Second.")
            elapsed = time.monotonic() - start
    assert audio and len(set(audio)) == 1
    assert elapsed < 1.0
    assert server.connections == 2 and server.texts == ["First.", "Second."]


async def test_livekit_a_silently_dead_pooled_socket_costs_well_under_a_second() -> None:
    """Issue 11.7 through the LiveKit face."""
    async with hostile(silent_after_first=True) as server:
        tts = lk.TTS(api_key="k", base_url=server.url)
        try:
            await speak(tts, "First.", conn_options=APIConnectOptions(max_retry=0, timeout=3.0))
            await asyncio.sleep(1.2)
            start = time.monotonic()
            audio, finals, _ = await speak(
                tts, "Second.", conn_options=APIConnectOptions(max_retry=0, timeout=3.0)
            )
            elapsed = time.monotonic() - start
        finally:
            await tts.aclose()
    assert audio and finals == 1 and elapsed < 1.0
    assert server.texts == ["First.", "Second."]


async def test_keepalive_drops_a_dead_idle_socket_without_traffic() -> None:
    timeouts = xai_voice.Timeouts(keepalive=0.2, pong=0.2)
    async with hostile(silent_after_first=True) as server:
        async with xai_voice.Client(api_key="k", base_url=server.url, timeouts=timeouts) as client:
            await client.speak("First.")
            assert client.pool.idle_count == 1
            await eventually(lambda: client.pool.idle_count == 0, timeout=2.0)


async def test_keepalive_keeps_a_live_idle_socket(emulator: Emulator) -> None:
    timeouts = xai_voice.Timeouts(keepalive=0.1, pong=0.5)
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=timeouts) as client:
        await client.speak("First.")
        await asyncio.sleep(0.8)  # several keepalive rounds
        assert client.pool.idle_count == 1
        assert await client.speak("Second, on the same socket.") and client.pool.connects == 1


async def test_bookkeeping_per_connection_is_constant() -> None:
    """Issue 11.8: 10,000 writes on one connection leave no trace in its watchdog."""
    async with (
        Emulator(tone=True, tone_char_seconds=1e-4) as emulator,
        xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url) as client,
    ):
        utt = client.stream()
        await utt.start()
        for _ in range(10_000):
            await utt.send("a ")
        conn = utt._acquired.conn  # type: ignore[union-attr]
        watchdog = conn._watchdog
        entries = len(watchdog._deadlines) + len(getattr(watchdog, "_spans", {}))
        assert entries < 10
        await utt.finish()
        assert len(await utt.read_all()) > 0
