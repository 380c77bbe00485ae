"""Every fault of the emulator, at every point, ends in complete audio or one typed error,
within its deadline, and leaves nothing behind (the ``client`` fixture checks tasks and
sockets after ``aclose``)."""

from __future__ import annotations

import asyncio
import time

import pytest

import xai_voice
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .conftest import FAST

pytestmark = pytest.mark.asyncio

K, P = FaultKind, FaultPoint
_TEXT = "Fault injection needs a sentence with a few chunks of audio in it."

STREAM_POINTS = [P.BEFORE_AUDIO, P.MID_AUDIO, P.AFTER_AUDIO]
EXPECTED: dict[FaultKind, type[Exception]] = {
    K.DROP: xai_voice.XaiConnectionError,
    K.CLOSE: xai_voice.XaiConnectionError,
    K.ERROR: xai_voice.XaiServerError,
    K.DEADLINE: xai_voice.XaiServerError,
    K.MALFORMED: xai_voice.RemoteProtocolError,
    K.OVERSIZED: xai_voice.RemoteProtocolError,
    K.STALL: xai_voice.XaiTimeoutError,
}


@pytest.mark.parametrize("at", STREAM_POINTS, ids=lambda p: p.value)
@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.value)
async def test_fault_during_an_utterance(client: xai_voice.Client, emulator: Emulator,
                                         kind: FaultKind, at: FaultPoint) -> None:  # fmt: skip
    emulator.fail_next(kind, at)
    start = time.monotonic()
    with pytest.raises(EXPECTED[kind]) as info:
        await client.speak(_TEXT)
    elapsed = time.monotonic() - start
    assert elapsed < FAST.first_audio + 1.0
    if kind is K.STALL:
        assert info.value.phase == ("first_audio" if at is P.BEFORE_AUDIO else "chunk_gap")  # type: ignore[attr-defined]
    if kind is K.DEADLINE:
        assert "timed out" in str(info.value)
    # the broken connection was discarded; the next utterance is whole
    audio = await client.speak("After the fault.")
    assert audio == bytes(emulator.utterances[-1].audio)


@pytest.mark.parametrize("at", STREAM_POINTS, ids=lambda p: p.value)
@pytest.mark.parametrize("kind", [K.BINARY, K.UNKNOWN_TYPE], ids=lambda k: k.value)
async def test_frames_we_do_not_understand_are_skipped(client: xai_voice.Client, emulator: Emulator,
                                                       kind: FaultKind, at: FaultPoint) -> None:  # fmt: skip
    """Tolerance: an unknown frame type or a binary frame mid-utterance is skipped (and
    counted); the audio is whole and the connection stays in use."""
    emulator.fail_next(kind, at)
    async with client.stream() as utt:
        await utt.send(_TEXT)
        await utt.finish()
        audio = await utt.read_all()
        assert utt.frames_skipped == 0  # released: the count lives with the connection
    assert audio == bytes(emulator.utterances[0].audio)
    [conn] = client.pool._idle[client.options.connection_key()]
    assert conn.skipped == 1
    assert await client.speak("Still the same connection.") and client.pool.connects == 1


@pytest.mark.parametrize(
    ("kind", "reused"),
    [(K.AUDIO_AFTER_DONE, False), (K.DEADLINE, False), (K.DONE_WITHOUT_UTTERANCE, True)],
    ids=lambda v: getattr(v, "value", str(v)),
)
async def test_unsolicited_frames_on_an_idle_connection_are_silent(client: xai_voice.Client, emulator: Emulator,
                                                                  kind: FaultKind, reused: bool) -> None:  # fmt: skip
    """Audio nobody can own, or the deadline's error, retires the idle connection; an
    audio.done of nothing is skipped and the connection serves on.  Either way the user
    sees nothing."""
    emulator.fail_next(kind, P.IDLE)
    first = await client.speak("First.")
    assert first == bytes(emulator.utterances[0].audio)
    await asyncio.sleep(0.05)  # the unsolicited frame arrives
    second = await client.speak("Second.")
    assert second == bytes(emulator.utterances[1].audio)
    assert client.pool.connects == (1 if reused else 2)


@pytest.mark.parametrize("kind", [K.DROP, K.CLOSE], ids=lambda k: k.value)
async def test_dead_pooled_connection_is_replaced_silently(client: xai_voice.Client, emulator: Emulator,
                                                           kind: FaultKind) -> None:  # fmt: skip
    await client.speak("First.")
    emulator.fail_next(kind, P.IDLE)  # dies the moment it is reused
    audio = await client.speak("Second, replayed on a new connection.")
    assert audio == bytes(emulator.utterances[-1].audio)
    assert emulator.utterances[-1].text == "Second, replayed on a new connection."
    assert client.pool.connects == 2


async def test_stall_on_an_idle_connection_times_out(client: xai_voice.Client, emulator: Emulator) -> None:
    await client.speak("First.")
    emulator.fail_next(K.STALL, P.IDLE)
    with pytest.raises(xai_voice.XaiTimeoutError):
        await client.speak("Second.")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
async def test_refused_upgrade(client: xai_voice.Client, emulator: Emulator, status: int) -> None:
    emulator.fail_next(K.REFUSE, P.UPGRADE, status=status)
    with pytest.raises(xai_voice.XaiStatusError) as info:
        await client.speak("Refused.")
    assert info.value.status == status
    assert info.value.retryable is (status in (429, 500, 503))
    assert f"HTTP {status}" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
async def test_refused_rest(client: xai_voice.Client, emulator: Emulator, status: int) -> None:
    emulator.fail_next(K.REFUSE, P.UPGRADE, status=status)
    with pytest.raises(xai_voice.XaiStatusError) as info:
        await client.synthesize("Refused.").read_all()
    assert info.value.status == status
    assert "injected fault" in str(info.value)  # the service's own words are kept


async def test_stalled_upgrade_is_a_connect_timeout(emulator: Emulator) -> None:
    emulator.fail_next(K.STALL, P.UPGRADE)
    timeouts = xai_voice.Timeouts(connect=0.3)
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=timeouts) as c:
        start = time.monotonic()
        with pytest.raises(xai_voice.XaiTimeoutError) as info:
            await c.speak("Nobody answers.")
        assert info.value.phase == "connect"
        assert time.monotonic() - start < 1.5


async def test_dropped_upgrade(client: xai_voice.Client, emulator: Emulator) -> None:
    # aiohttp retries an idempotent request once after a disconnect: one drop is absorbed
    emulator.fail_next(K.DROP, P.UPGRADE)
    assert await client.speak("Dropped once.")
    emulator.fail_next(K.DROP, P.UPGRADE, times=2)
    with pytest.raises(xai_voice.XaiConnectionError):
        await client.speak("Dropped twice.", voice="rex")  # a new connection


@pytest.mark.parametrize(("kind", "at", "error"), [
    (K.STALL, P.BEFORE_AUDIO, xai_voice.XaiTimeoutError),
    (K.STALL, P.MID_AUDIO, xai_voice.XaiTimeoutError),
    (K.DROP, P.BEFORE_AUDIO, xai_voice.XaiConnectionError),
    (K.DROP, P.MID_AUDIO, xai_voice.XaiConnectionError),
])  # fmt: skip
async def test_rest_faults(client: xai_voice.Client, emulator: Emulator, kind: FaultKind, at: FaultPoint,
                           error: type[Exception]) -> None:  # fmt: skip
    emulator.fail_next(kind, at)
    start = time.monotonic()
    with pytest.raises(error):
        await client.synthesize(_TEXT).read_all()
    assert time.monotonic() - start < FAST.first_audio + 1.0


async def test_session_limit_is_429(emulator: Emulator) -> None:
    emulator.config.max_sessions = 1
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as c:
        first = c.stream()
        await first.send("Hold the only session.")
        with pytest.raises(xai_voice.XaiStatusError) as info:
            await c.speak("No room.")
        assert info.value.status == 429 and info.value.retryable
        await first.aclose()


async def test_connection_deadline_ends_an_idle_pooled_connection(emulator: Emulator) -> None:
    emulator.config.connection_deadline = 0.2
    async with xai_voice.Client(api_key=emulator.api_key, base_url=emulator.url, timeouts=FAST) as c:
        await c.speak("Before the deadline.")
        await __import__("asyncio").sleep(0.4)
        audio = await c.speak("After it: a new connection, no error.")
        assert audio == bytes(emulator.utterances[-1].audio)
        assert c.pool.connects == 2


async def test_instant_done_with_audio(client: xai_voice.Client, emulator: Emulator) -> None:
    emulator.fail_next(K.INSTANT_DONE, P.BEFORE_AUDIO)
    audio = await client.speak("Answered at once.")
    assert audio and audio == bytes(emulator.utterances[0].audio)


async def test_slow_reading_server(client: xai_voice.Client, emulator: Emulator) -> None:
    emulator.fail_next(K.SLOW_READ, P.BEFORE_AUDIO, seconds=0.02)
    async with client.stream() as utt:
        for word in ["a", "server", "that", "reads", "slowly", "still", "gets", "every", "word"]:
            await utt.send(word + " ")
        await utt.finish()
        audio = await utt.read_all()
    assert emulator.utterances[0].text.split() == [
        "a",
        "server",
        "that",
        "reads",
        "slowly",
        "still",
        "gets",
        "every",
        "word",
    ]
    assert audio == bytes(emulator.utterances[0].audio)
