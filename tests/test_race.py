"""The race this project exists for: ``audio.done`` arrives while the client's final
``text.done`` send is still suspended.  Under many seeded schedules, for the bare client
and for the LiveKit face: zero hangs, exact audio.  The deep tier (``pytest -m deep``)
runs 10,000 seeds of each."""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections.abc import Iterator

import psutil
import pytest

import xai_voice
from livekit.plugins import xai_voice as lk
from xai_voice.emulator import FaultKind, FaultPoint
from xai_voice.emulator.background import BackgroundEmulator

from .conftest import speak
from .harness import naive_flag_after_send, run_seeds

QUICK = int(os.environ.get("XAI_VOICE_RACE_SEEDS", "300"))
LK_QUICK = int(os.environ.get("XAI_VOICE_LK_RACE_SEEDS", "1000"))
DEEP = 10_000


@pytest.fixture(scope="module")
def instant() -> Iterator[BackgroundEmulator]:
    with BackgroundEmulator(tone=True, keep_audio=False) as emu:
        # every utterance: all audio and audio.done the instant text.done arrives
        emu.fail_next(FaultKind.INSTANT_DONE, FaultPoint.BEFORE_AUDIO, times=None)
        yield emu


@contextlib.contextmanager
def _report(face: str, utterances: int) -> Iterator[None]:
    """Print what a deep run did (``-s`` shows it): the figures in docs/RELIABILITY.md."""
    proc = psutil.Process()
    rss, t0 = proc.memory_info().rss, time.monotonic()
    yield
    print(f"\nrace deep ({face}): {DEEP} seeds, {utterances} utterances, {time.monotonic() - t0:.0f} s, "
          f"RSS {rss / 2**20:.0f} -> {proc.memory_info().rss / 2**20:.0f} MiB")  # fmt: skip


Heard = dict[str, list[int]]  # text -> CRC-32 of the audio each utterance of it received


def _assert_exact(emu: BackgroundEmulator, heard: Heard, utterances: int) -> None:
    """Every utterance got exactly the bytes the emulator sent for its text."""
    sent = {rec.text: rec.audio_crc for rec in emu.completed}
    assert sum(map(len, heard.values())) == utterances
    wrong = [text for text, crcs in heard.items() if any(crc != sent.get(text) for crc in crcs)]
    assert wrong == []


def _client_run(emu: BackgroundEmulator, heard: Heard):  # type: ignore[no-untyped-def]
    async def run(seed: int) -> None:
        text = f"Seed {seed} says hello."
        async with xai_voice.Client(api_key=emu.api_key, base_url=emu.url) as client:
            for _ in range(2):  # the second reuses the connection
                async with client.stream() as utt:
                    await utt.send(text)
                    await utt.finish()
                    audio = await utt.read_all()
                heard.setdefault(text, []).append(zlib.crc32(audio))

    return run


def test_client_never_hangs_when_done_beats_the_send(instant: BackgroundEmulator) -> None:
    heard: Heard = {}
    hung = run_seeds(range(QUICK), _client_run(instant, heard), limit=5.0)
    assert hung == []
    _assert_exact(instant, heard, 2 * QUICK)


@pytest.mark.deep
@pytest.mark.timeout(3600)
def test_client_never_hangs_deep(instant: BackgroundEmulator) -> None:
    heard: Heard = {}
    with _report("client", 2 * DEEP):
        hung = run_seeds(range(QUICK, QUICK + DEEP), _client_run(instant, heard), limit=5.0)
    assert hung == []
    _assert_exact(instant, heard, 2 * DEEP)


def _livekit_run(emu: BackgroundEmulator, heard: Heard):  # type: ignore[no-untyped-def]
    async def run(seed: int) -> None:
        t = lk.TTS(api_key=emu.api_key, base_url=emu.url)
        try:
            audio, finals, _ = await speak(t, f"Seed {seed} ", "says hi.")
            assert finals == 1
            heard.setdefault(f"Seed {seed} says hi.", []).append(zlib.crc32(audio))
        finally:
            await t.aclose()

    return run


def test_livekit_never_hangs_when_done_beats_the_send(instant: BackgroundEmulator) -> None:
    heard: Heard = {}
    hung = run_seeds(range(LK_QUICK), _livekit_run(instant, heard), limit=5.0)
    assert hung == []
    _assert_exact(instant, heard, LK_QUICK)


@pytest.mark.deep
@pytest.mark.timeout(3600)
def test_livekit_never_hangs_deep(instant: BackgroundEmulator) -> None:
    heard: Heard = {}
    with _report("LiveKit face", DEEP):
        hung = run_seeds(range(LK_QUICK, LK_QUICK + DEEP), _livekit_run(instant, heard), limit=5.0)
    assert hung == []
    _assert_exact(instant, heard, DEEP)


def test_the_harness_bites_the_flag_after_send_pattern(instant: BackgroundEmulator) -> None:
    """Proof the harness can fail: the naive pattern hangs under it."""

    async def naive(seed: int) -> None:
        await naive_flag_after_send(instant.url, instant.api_key, "Hang me.")

    hung = run_seeds(range(20), naive, limit=0.3)
    assert len(hung) >= 3, f"only {len(hung)} of 20 seeds hung the naive client"
