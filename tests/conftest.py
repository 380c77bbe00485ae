"""Shared fixtures: an emulator per test, a client pointed at it, and a leak check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import hypothesis  # noqa: F401  (imported here, not first in the terminal summary: CPython 3.11.7's
import psutil  # ast.parse can fail there with "recursion depth mismatch", gh-106905)
import pytest
from livekit.agents import APIConnectOptions

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator

#: short deadlines so fault tests end in well under a second or two
FAST = xai_voice.Timeouts(connect=2, send=2, first_audio=1, chunk_gap=1, completion=5, clear=0.5,
                        session_update=1)  # fmt: skip


def client_sockets(port: int) -> int:
    """Open TCP connections of this process to ``port`` (the client side)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (polling) until ``predicate()`` holds; fail the test if it does not in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.005)


def our_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("xai-voice") and not t.done()]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(tone=True, keep_audio=True) as emu:
        yield emu


@pytest.fixture
async def speech_emulator() -> AsyncIterator[Emulator]:
    async with Emulator(keep_audio=True) as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[xai_voice.Client]:
    c = xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST)
    try:
        yield c
    finally:
        await c.aclose()
        # nothing of ours outlives the client: no task, no socket
        assert our_tasks() == []
        assert client_sockets(emulator.port) == 0


NO_RETRY = APIConnectOptions(max_retry=0, timeout=1.0)


@pytest.fixture
async def plugin(emulator: Emulator) -> AsyncIterator[lk.TTS]:
    """Our LiveKit TTS pointed at the emulator; checks for leaks after aclose."""
    t = lk.TTS(api_key=emulator.api_key, base_url=emulator.url)
    try:
        yield t
    finally:
        await t.aclose()
        assert our_tasks() == []
        assert client_sockets(emulator.port) == 0


async def speak(
    t: lk.TTS, *pieces: str, conn_options: APIConnectOptions = NO_RETRY
) -> tuple[bytes, int, list]:
    """Push text through ``stream()``; (pcm bytes, number of is_final frames, frames)."""
    stream = t.stream(conn_options=conn_options)
    for piece in pieces:
        stream.push_text(piece)
    stream.end_input()
    frames = [ev async for ev in stream]
    await stream.aclose()
    return b"".join(bytes(ev.frame.data) for ev in frames), sum(ev.is_final for ev in frames), frames
