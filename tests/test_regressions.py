"""Bugs found in review, each reproduced here so it stays fixed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .conftest import FAST, client_sockets, our_tasks


@contextlib.contextmanager
def draining_sends(delay: float) -> Iterator[None]:
    """Every send puts its frame on the wire, then waits ``delay`` as if draining."""
    original = aiohttp.ClientWebSocketResponse.send_str

    async def send_str(self: aiohttp.ClientWebSocketResponse, data: str, compress: int | None = None) -> None:
        await original(self, data, compress)
        await asyncio.sleep(delay)

    aiohttp.ClientWebSocketResponse.send_str = send_str  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiohttp.ClientWebSocketResponse.send_str = original  # type: ignore[method-assign]


async def test_cancel_while_another_task_reads(client: xai_voice.Client, emulator: Emulator) -> None:
    """Two waiters on one utterance (a reader, and cancel() waiting for audio.clear):
    both are woken."""
    emulator.config.realtime = 1.0
    utt = client.stream()
    await utt.send("A sentence read in one task and cancelled from another.")
    await utt.finish()
    await utt.__anext__()
    reader = asyncio.ensure_future(utt.read_all())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(utt.cancel(), 2)
    assert await asyncio.wait_for(reader, 2) == b""
    # and the other order: cancel first, then a reader arrives
    utt = client.stream()
    await utt.send("Cancelled before anyone reads.")
    await utt.finish()
    canceller = asyncio.ensure_future(utt.cancel())
    await asyncio.sleep(0)
    assert await asyncio.wait_for(utt.read_all(), 2) == b""
    await asyncio.wait_for(canceller, 2)


async def test_clear_between_the_pieces_of_a_long_send(client: xai_voice.Client, emulator: Emulator) -> None:
    """A cancel while the first of several deltas drains: the rest of that text must not
    follow the text.clear into the next utterance."""
    with draining_sends(0.02):
        utt = client.stream()
        await utt.start()
        sender = asyncio.ensure_future(utt.send("a " * 7500 + "LEFTOVER " * 10))  # two deltas
        await asyncio.sleep(0.005)
        await utt.cancel()
        with contextlib.suppress(xai_voice.XaiVoiceError):
            await sender
        await client.speak("Bravo.")
    assert emulator.utterances[-1].text == "Bravo."


async def test_replay_after_a_dead_pooled_connection_keeps_order(
    client: xai_voice.Client, emulator: Emulator
) -> None:
    await client.speak("Warm.")
    emulator.fail_next(FaultKind.DROP, FaultPoint.IDLE)
    with draining_sends(0.01):
        async with client.stream() as utt:
            reader = asyncio.ensure_future(utt.read_all())
            for piece in ["One. ", "Two. ", "Three. ", "Four."]:
                await utt.send(piece)
            await utt.finish()
            audio = await asyncio.wait_for(reader, 5)
    assert emulator.utterances[-1].text == "One. Two. Three. Four."
    assert audio == bytes(emulator.utterances[-1].audio)


async def test_reader_first_still_recovers(client: xai_voice.Client, emulator: Emulator) -> None:
    """The reader starts before the first send has a connection; the pooled connection
    turns out dead; the replay still happens."""
    await client.speak("Warm.")
    emulator.fail_next(FaultKind.DROP, FaultPoint.IDLE)
    async with client.stream() as utt:
        reader = asyncio.ensure_future(utt.read_all())
        await asyncio.sleep(0)
        await utt.send("Read first, then speak.")
        await asyncio.sleep(0.05)  # the reader sees the drop before we finish
        await utt.finish()
        audio = await asyncio.wait_for(reader, 5)
    assert audio == bytes(emulator.utterances[-1].audio)


async def test_failed_reconnect_fails_the_utterance(client: xai_voice.Client, emulator: Emulator) -> None:
    await client.speak("Warm.")
    emulator.fail_next(FaultKind.DROP, FaultPoint.IDLE)
    emulator.fail_next(FaultKind.REFUSE, FaultPoint.UPGRADE, status=503)
    utt = client.stream()
    await utt.send("Alpha. ")
    with pytest.raises(xai_voice.XaiStatusError):
        await asyncio.wait_for(utt.read_all(), 5)
    with pytest.raises(xai_voice.XaiStatusError):
        await utt.send("Beta.")
    assert client.pool.busy_count == 0


async def test_cancel_during_connect_leaks_no_connection(
    client: xai_voice.Client, emulator: Emulator
) -> None:
    emulator.config.first_audio_delay = 0
    utt = client.stream()
    sender = asyncio.ensure_future(utt.send("Cancelled while connecting."))
    await asyncio.sleep(0)  # the connect is under way
    await utt.cancel()
    with pytest.raises(xai_voice.XaiConnectionError):
        await sender
    await asyncio.sleep(0.05)
    assert client.pool.busy_count == 0
    assert emulator.utterances == []


async def test_aclose_during_connect_is_typed_and_clean(emulator: Emulator) -> None:
    client = xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST)
    sender = asyncio.ensure_future(client.speak("Closing while connecting."))
    await asyncio.sleep(0)
    await client.aclose()
    with pytest.raises(xai_voice.ClientClosedError) as info:
        await sender
    assert not info.value.retryable  # a closed client is not a connection failure
    await asyncio.sleep(0.05)
    assert our_tasks() == []
    assert client_sockets(emulator.port) == 0


async def test_rest_timestamps_for_long_text(client: xai_voice.Client, emulator: Emulator) -> None:
    text = "A longer text for a timestamped answer. " * 40
    [chunk] = [c async for c in client.synthesize(text, with_timestamps=True)]
    assert chunk.data == bytes(emulator.utterances[-1].audio)
    assert chunk.timestamps is not None and len(chunk.timestamps.chars) > 1000


# -- a server that echoes the key, and one that stops reading --------------------------------

SENTINEL = "sk-REGRESSION-SENTINEL-123456"


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """Accepts the upgrade, then sends the Authorization header back in a bad frame."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.send_str("garbage " + request.headers["Authorization"])
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/v1/tts", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_key_echoed_by_the_server_is_scrubbed(echo_server: str) -> None:
    async with xai_voice.Client(api_key=SENTINEL, base_url=echo_server, timeouts=FAST) as client:
        with pytest.raises(xai_voice.RemoteProtocolError) as info:
            await client.speak("Echo my key, please.")
    assert SENTINEL not in str(info.value) and SENTINEL not in repr(info.value)


async def test_send_deadline_unblocks_a_write_to_a_peer_that_stopped_reading() -> None:
    """A peer that accepts the upgrade and then stops reading at the TCP level: the send
    deadline must end the stuck write with a typed timeout."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.transport is not None
        request.transport.pause_reading()  # our sends stop draining
        await asyncio.sleep(30)
        return ws

    app = web.Application()
    app.router.add_get("/v1/tts", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    timeouts = xai_voice.Timeouts(connect=2, send=0.5, first_audio=30, chunk_gap=30, completion=60)
    try:
        async with xai_voice.Client(
            api_key="k" * 20, base_url=f"http://127.0.0.1:{port}/v1", timeouts=timeouts
        ) as client:
            start = time.monotonic()
            with pytest.raises(xai_voice.XaiTimeoutError) as info:
                async with client.stream() as utt:
                    for _ in range(4000):  # megabytes: the socket buffers fill up
                        await utt.send("lorem ipsum " * 1200)
            assert info.value.phase == "send"
            assert time.monotonic() - start < 3
    finally:
        await runner.cleanup()


async def test_livekit_streams_are_not_kept_forever(emulator: Emulator) -> None:
    import gc

    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        for i in range(5):
            stream = t.stream()
            stream.push_text(f"Turn {i}.")
            stream.end_input()
            [ev async for ev in stream]
            await stream.aclose()
        del stream
        gc.collect()
        assert len(t._streams) == 0
    finally:
        await t.aclose()


async def test_an_idle_connection_keeps_nothing_of_its_last_utterance(emulator: Emulator) -> None:
    """The reader's frame lives as long as the connection: it held the last utterance's
    inbox, and through its sink a LiveKit stream's emitter, until the next utterance."""
    import gc

    from livekit.agents.tts import AudioEmitter

    from xai_voice.transport.inbox import Inbox

    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        stream = t.stream()
        stream.push_text("Leave nothing behind.")
        stream.end_input()
        [ev async for ev in stream]
        await stream.aclose()
        del stream
        await t.client.speak("Nor this one.")
        gc.collect()
        assert t.client.pool.idle_count == 1
        alive = [o for o in gc.get_objects() if isinstance(o, (Inbox, AudioEmitter))]
        assert alive == []
    finally:
        await t.aclose()
