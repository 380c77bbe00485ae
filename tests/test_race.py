"""The race this project exists for: ``audio.done`` arrives while the client's final
``text.done`` send is still suspended.  Under many seeded schedules: zero hangs, exact
audio.  The deep tier (``pytest -m deep``) runs 10,000 seeds."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import xai_tts
from xai_tts.emulator import FaultKind, FaultPoint
from xai_tts.emulator.background import BackgroundEmulator

from .harness import naive_flag_after_send, run_seeds

QUICK = int(os.environ.get("XAI_TTS_RACE_SEEDS", "300"))
DEEP = 10_000


@pytest.fixture(scope="module")
def instant() -> Iterator[BackgroundEmulator]:
    with BackgroundEmulator(tone=True) as emu:
        # every utterance: all audio and audio.done the instant text.done arrives
        emu.fail_next(FaultKind.INSTANT_DONE, FaultPoint.BEFORE_AUDIO, times=None)
        yield emu


def _client_run(emu: BackgroundEmulator):  # type: ignore[no-untyped-def]
    async def run(seed: int) -> None:
        text = f"Seed {seed} says hello."
        async with xai_tts.Client(api_key=emu.api_key, base_url=emu.url) as client:
            for i in range(2):  # the second reuses the connection
                async with client.stream() as utt:
                    await utt.send(text)
                    await utt.finish()
                    audio = await utt.read_all()
                assert len(audio) == 2 * int(0.06 * len(text) * 24000), (seed, i)

    return run


def test_client_never_hangs_when_done_beats_the_send(instant: BackgroundEmulator) -> None:
    before = len(instant.completed)
    hung = run_seeds(range(QUICK), _client_run(instant), limit=5.0)
    assert hung == []
    assert len(instant.completed) - before == 2 * QUICK


@pytest.mark.deep
def test_client_never_hangs_deep(instant: BackgroundEmulator) -> None:
    hung = run_seeds(range(QUICK, QUICK + DEEP), _client_run(instant), limit=5.0)
    assert hung == []


def test_the_harness_bites_the_flag_after_send_pattern(instant: BackgroundEmulator) -> None:
    """Proof the harness can fail: the naive pattern hangs under it."""

    async def naive(seed: int) -> None:
        await naive_flag_after_send(instant.url, instant.api_key, "Hang me.")

    hung = run_seeds(range(20), naive, limit=0.3)
    assert len(hung) >= 3, f"only {len(hung)} of 20 seeds hung the naive client"
