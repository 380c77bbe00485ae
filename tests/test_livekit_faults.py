"""The fault matrix through the LiveKit face: every fault at every point ends the stream
within its deadline with complete audio or one livekit error; retries only when nothing
was pushed; no duplicated audio; nothing leaked (the ``plugin`` fixture checks)."""

from __future__ import annotations

import time

import pytest
from livekit.agents import APIConnectionError, APIConnectOptions, APIError, APIStatusError, APITimeoutError

from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Emulator, FaultKind, FaultPoint

from .conftest import speak

K, P = FaultKind, FaultPoint
TEXT = "Fault injection through LiveKit needs a few chunks of audio in it."
OPTS = APIConnectOptions(max_retry=0, timeout=0.5)

EXPECTED: dict[FaultKind, type[APIError]] = {
    K.DROP: APIConnectionError,
    K.CLOSE: APIConnectionError,
    K.STALL: APITimeoutError,
    K.ERROR: APIError,
    K.DEADLINE: APIError,
    K.MALFORMED: APIError,
    K.OVERSIZED: APIError,
}


@pytest.mark.parametrize("at", [P.BEFORE_AUDIO, P.MID_AUDIO, P.AFTER_AUDIO], ids=lambda p: p.value)
@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.value)
async def test_fault_matrix(plugin: lk.TTS, emulator: Emulator, kind: FaultKind, at: FaultPoint) -> None:
    emulator.fail_next(kind, at)
    start = time.monotonic()
    with pytest.raises(EXPECTED[kind]) as info:
        await speak(plugin, TEXT, conn_options=OPTS)
    assert time.monotonic() - start < OPTS.timeout + 1.0
    assert info.value.retryable  # all of these are worth another try...
    # ...and livekit retries only while nothing was pushed: with retries allowed, a fault
    # before audio heals and one after audio is final, never duplicating audio
    emulator.fail_next(kind, at)
    retry = APIConnectOptions(max_retry=1, timeout=0.5, retry_interval=0.01)
    if at is P.BEFORE_AUDIO:
        audio, finals, _ = await speak(plugin, TEXT, conn_options=retry)
        assert audio == bytes(emulator.utterances[-1].audio) and finals == 1
    else:
        n = len(emulator.utterances)
        with pytest.raises(EXPECTED[kind]):
            await speak(plugin, TEXT, conn_options=retry)
        assert len(emulator.utterances) == n + 1  # no second attempt


@pytest.mark.parametrize("at", [P.BEFORE_AUDIO, P.MID_AUDIO, P.AFTER_AUDIO], ids=lambda p: p.value)
@pytest.mark.parametrize("kind", [K.BINARY, K.UNKNOWN_TYPE], ids=lambda k: k.value)
async def test_frames_we_do_not_understand_are_skipped(
    plugin: lk.TTS, emulator: Emulator, kind: FaultKind, at: FaultPoint
) -> None:
    emulator.fail_next(kind, at)
    audio, finals, _ = await speak(plugin, TEXT, conn_options=OPTS)
    assert audio == bytes(emulator.utterances[-1].audio) and finals == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
async def test_refused_upgrade_and_rest(plugin: lk.TTS, emulator: Emulator, status: int) -> None:
    for call in ("stream", "synthesize"):
        emulator.fail_next(K.REFUSE, P.UPGRADE, status=status)
        with pytest.raises(APIStatusError) as info:
            if call == "stream":
                await speak(plugin, "Refused.", conn_options=OPTS)
            else:
                [ev async for ev in plugin.synthesize("Refused.", conn_options=OPTS)]
        assert info.value.status_code == status
        assert info.value.retryable is (status in (429, 500, 503))


@pytest.mark.parametrize("kind", [K.AUDIO_AFTER_DONE, K.DONE_WITHOUT_UTTERANCE, K.DEADLINE, K.DROP, K.CLOSE])
async def test_idle_pooled_connection_faults_are_invisible(
    plugin: lk.TTS, emulator: Emulator, kind: FaultKind
) -> None:
    await speak(plugin, "First.")
    emulator.fail_next(kind, P.IDLE)
    audio, finals, _ = await speak(plugin, "Second, after a fault on the idle connection.")
    assert audio == bytes(emulator.utterances[-1].audio) and finals == 1


@pytest.mark.parametrize(
    ("kind", "at"), [(K.STALL, P.BEFORE_AUDIO), (K.DROP, P.BEFORE_AUDIO), (K.DROP, P.MID_AUDIO)]
)
async def test_rest_faults(plugin: lk.TTS, emulator: Emulator, kind: FaultKind, at: FaultPoint) -> None:
    emulator.fail_next(kind, at)
    retry = APIConnectOptions(max_retry=3, timeout=0.5, retry_interval=0.01)
    start = time.monotonic()
    if at is P.BEFORE_AUDIO:
        # nothing went out: the retry heals it, and the audio is said once
        frames = [ev async for ev in plugin.synthesize(TEXT, conn_options=retry)]
        audio = b"".join(bytes(ev.frame.data) for ev in frames)
        rec = emulator.utterances[-1]
        assert audio[: len(rec.audio)] == bytes(rec.audio) and not any(audio[len(rec.audio) :])
    else:
        with pytest.raises(APIConnectionError) as info:
            [ev async for ev in plugin.synthesize(TEXT, conn_options=retry)]
        # audio had gone out: the failure is final, not retried into a duplicate, and the
        # message says what happened (not aiohttp's parser "400" as if it were a status)
        assert len(emulator.utterances) == 1 and not info.value.retryable
        assert "broke off after" in str(info.value) and "400" not in str(info.value)
    assert time.monotonic() - start < 2 * 0.5 + 1.0
