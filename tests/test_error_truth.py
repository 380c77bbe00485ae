"""Errors that tell the truth: what may be retried and when, what is not a connection
failure, and where the API key can never be found."""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

import aiohttp
import pytest
import trustme
from livekit.agents import APIConnectionError, APIConnectOptions, APIError, APIStatusError

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator

from .conftest import speak
from .hostile import hostile

pytestmark = pytest.mark.asyncio

SENTINEL = "xai-CONTEXT-SENTINEL-0123456789"


# -- 429 and Retry-After ---------------------------------------------------------------


async def test_retry_after_is_exposed() -> None:
    async with hostile(refuse=429, refuse_headers={"Retry-After": "2", "x-trace-id": "trace-429"}) as server:
        async with xai_voice.Client(api_key="k", base_url=server.url) as client:
            with pytest.raises(xai_voice.XaiStatusError) as info:
                await client.speak("Busy?")
    err = info.value
    assert err.status == 429 and err.retryable and err.retry_after == 2.0
    assert err.trace_id == "trace-429" and "trace-429" in str(err) and "retry after 2 s" in str(err)
    assert "refused by script" in str(err)  # the service's own words, from the upgrade's body


async def test_livekit_waits_as_long_as_retry_after_asks() -> None:
    """Issue 11.11: livekit's own retry comes at +0.1 s; the service asked for 1 s."""
    opts = APIConnectOptions(max_retry=1, timeout=5.0, retry_interval=0.01)
    async with hostile(refuse=429, refuse_headers={"Retry-After": "1"}) as server:
        tts = lk.TTS(api_key="k", base_url=server.url)
        try:
            with pytest.raises(APIStatusError):
                await speak(tts, "Busy?", conn_options=opts)
        finally:
            await tts.aclose()
    first, second = server.upgrade_times
    assert second - first >= 0.95


async def test_livekit_does_not_retry_past_its_budget() -> None:
    opts = APIConnectOptions(max_retry=3, timeout=5.0, retry_interval=0.01)
    async with hostile(refuse=429, refuse_headers={"Retry-After": "30"}) as server:
        tts = lk.TTS(api_key="k", base_url=server.url)
        try:
            with pytest.raises(APIStatusError) as info:
                await speak(tts, "Busy?", conn_options=opts)
        finally:
            await tts.aclose()
    assert server.upgrades == 1 and not info.value.retryable


# -- TLS -------------------------------------------------------------------------------


async def test_a_refused_certificate_is_not_retried() -> None:
    """Issue 11.12: retrying cannot fix a certificate the client does not trust."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    opts = APIConnectOptions(max_retry=3, timeout=2.0, retry_interval=0.3)
    async with hostile(ssl_context=server_ctx) as server:
        tts = lk.TTS(api_key="k", base_url=server.url)  # the system store: the CA is unknown
        try:
            start = time.monotonic()
            with pytest.raises(APIConnectionError) as info:
                await speak(tts, "Hello.", conn_options=opts)
            assert time.monotonic() - start < 0.3  # no retry
            assert not info.value.retryable and "certificate" in str(info.value)
        finally:
            await tts.aclose()
        # and with the CA trusted, it works
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with xai_voice.Client(api_key="k", base_url=server.url, ssl=client_ctx) as client:
            assert await client.speak("Trusted now.")


# -- not connection failures -----------------------------------------------------------


async def test_a_closed_livekit_tts_is_not_retried(emulator: Emulator) -> None:
    """Issue 11.13: a closed TTS is not a connection failure worth three retries."""
    tts = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    await tts.aclose()
    opts = APIConnectOptions(max_retry=3, timeout=2.0, retry_interval=0.3)
    start = time.monotonic()
    with pytest.raises(APIError) as info:
        await speak(tts, "Anyone there?", conn_options=opts)
    assert time.monotonic() - start < 0.3 and not info.value.retryable
    assert "closed" in str(info.value)


async def test_an_error_in_the_callers_own_sink_is_the_callers(
    client: xai_voice.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11.13: an exception from the ``deliver()`` callback is raised as it is, not
    as a retryable connection error with its traceback at DEBUG."""
    caplog.set_level(logging.DEBUG)

    class Mine(Exception):
        pass

    def sink(chunk: Any) -> None:
        raise Mine("the caller's own bug")

    async with client.stream() as utt:
        await utt.send("Some audio for a broken sink.")
        await utt.finish()
        with pytest.raises(Mine):
            await utt.deliver(sink)
    assert not any("reader failed" in r.getMessage() for r in caplog.records)
    assert await client.speak("The client still works.")


# -- the key ---------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return seen


def _holds(obj: object, depth: int = 0) -> bool:
    """Whether the sentinel key can be reached from ``obj`` through its attributes."""
    if depth > 4:
        return False
    try:
        if SENTINEL in repr(obj) or SENTINEL in str(obj):
            return True
    except Exception:
        pass
    if isinstance(obj, (str, bytes, int, float, type(None))):
        return False
    if isinstance(obj, dict):
        return any(_holds(k, depth + 1) or _holds(v, depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return any(_holds(v, depth + 1) for v in obj)
    attrs = getattr(obj, "__dict__", None)
    values = list(attrs.values()) if attrs else []
    for name in ("request_info", "headers", "args"):
        if hasattr(obj, name):
            values.append(getattr(obj, name))
    return any(_holds(v, depth + 1) for v in values)


async def test_the_key_is_not_reachable_through_context() -> None:
    """Issue 11.14: every error's ``__cause__`` and ``__context__``, and everything they
    hold, is free of the key (aiohttp's exceptions hold the request headers)."""
    captured: list[BaseException] = []
    async with Emulator(tone=True, api_key="the-right-key") as emu:
        async with xai_voice.Client(api_key=SENTINEL, base_url=emu.url) as client:
            for call in (
                lambda: client.speak("Hi."),
                lambda: client.synthesize("Hi.").read_all(),
                client.voices,
            ):
                with pytest.raises(xai_voice.XaiStatusError) as info:
                    await call()
                captured.append(info.value)
        tts = lk.TTS(api_key=SENTINEL, base_url=emu.url)
        try:
            with pytest.raises(APIStatusError) as lk_info:
                await speak(tts, "Hi.", conn_options=APIConnectOptions(max_retry=0))
            captured.append(lk_info.value)
        finally:
            await tts.aclose()
    async with xai_voice.Client(api_key=SENTINEL, base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(xai_voice.XaiConnectionError) as conn_info:
            await client.speak("Nobody listens on port 9.")
        captured.append(conn_info.value)
    for exc in captured:
        for link in _chain(exc):
            assert not isinstance(link, aiohttp.ClientError), f"{type(exc).__name__} leads to {link!r}"
            assert not _holds(link), f"the key is reachable from {link!r}"
