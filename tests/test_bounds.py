"""Memory and waits stay bounded whatever the server does: endless audio, dripped
headers, a peer that stops reading while we close, a slow consumer."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest
from livekit.agents import APIConnectOptions, APIError

import xai_voice
from livekit.plugins import xai_voice as lk

from .conftest import our_tasks
from .hostile import hostile

pytestmark = pytest.mark.asyncio


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def test_livekit_endless_audio_ends_in_a_typed_error_with_bounded_memory() -> None:
    """Issue 11.9: a server that never ends an utterance, sending as fast as it can."""
    async with hostile(endless=True, frame_bytes=48_000) as server:
        tts = lk.TTS(api_key="k", base_url=server.url)
        try:
            before = rss_mib()
            stream = tts.stream(conn_options=APIConnectOptions(max_retry=0, timeout=2.0))
            stream.push_text("Hello.")
            stream.end_input()
            start = time.monotonic()
            with pytest.raises(APIError, match=r"more than .* bytes of audio"):
                async with asyncio.timeout(8):
                    async for _ in stream:
                        pass
            await stream.aclose()
            assert time.monotonic() - start < 5.0
            assert rss_mib() - before < 100  # the bound is ~3 MB of audio for "Hello."
        finally:
            await tts.aclose()


async def test_endless_audio_ends_the_bare_client_too() -> None:
    async with hostile(endless=True, frame_bytes=48_000) as server:
        async with xai_voice.Client(api_key="k", base_url=server.url) as client:
            with pytest.raises(xai_voice.RemoteProtocolError, match="more than"):
                async with asyncio.timeout(8):
                    await client.speak("Hello.")


async def test_dripped_rest_headers_are_bounded() -> None:
    """Issue 11.10: headers dripped a byte at a time cannot stretch ``synthesize()``
    past ``connect + first_audio``."""
    timeouts = xai_voice.Timeouts(connect=0.5, first_audio=0.5, chunk_gap=0.5)
    async with hostile(drip=0.05) as server:
        async with xai_voice.Client(api_key="k", base_url=server.url, timeouts=timeouts) as client:
            start = time.monotonic()
            with pytest.raises(xai_voice.XaiTimeoutError) as info:
                async with asyncio.timeout(8):
                    await client.synthesize("Hi.").read_all()
            assert time.monotonic() - start < 1.5
            assert info.value.phase == "headers"


async def test_closing_against_a_peer_that_stopped_reading_is_bounded() -> None:
    """Issue 11.10: writing our close frame has a deadline too."""
    timeouts = xai_voice.Timeouts(send=30, clear=0.3, connect=2)
    async with hostile(deaf=True) as server:
        client = xai_voice.Client(api_key="k", base_url=server.url, timeouts=timeouts)
        utt = client.stream()

        async def flood() -> None:
            for _ in range(4000):  # megabytes: the socket buffers fill up
                await utt.send("lorem ipsum " * 1200)

        sending = asyncio.ensure_future(flood())
        await asyncio.sleep(1.0)  # the socket buffers are full; the write waits to drain
        assert not sending.done()
        start = time.monotonic()
        await asyncio.wait_for(utt.cancel(), 3)
        await asyncio.wait_for(client.aclose(), 3)
        assert time.monotonic() - start < 1.5
        await asyncio.gather(sending, return_exceptions=True)
        assert our_tasks() == []


async def test_completion_bounds_an_utterance_across_back_pressure_pauses() -> None:
    """Issue 11.10: resuming after a pause for a slow consumer must not give the
    utterance a fresh ``completion``: pauses are not counted, the rest is."""
    timeouts = xai_voice.Timeouts(completion=1.0, chunk_gap=5, first_audio=5)
    async with (
        hostile(endless=True, pause=0.05) as server,
        xai_voice.Client(
            api_key="k", base_url=server.url, timeouts=timeouts, max_buffered_bytes=1000
        ) as client,
    ):
        start = time.monotonic()
        with pytest.raises(xai_voice.XaiTimeoutError) as info:
            async with asyncio.timeout(8), client.stream() as utt:
                await utt.send("Never ending.")
                await utt.finish()
                n = 0
                async for _ in utt:
                    n += 1
                    if n % 10 == 0:
                        await asyncio.sleep(0.3)  # now and then the consumer falls behind
        assert info.value.phase == "completion"
        assert time.monotonic() - start < 5.0
