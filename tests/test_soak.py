"""Soak and load: many LiveKit streams at once, then many in a row over pooled
connections, with faults injected at a low rate.  Zero hangs, exact audio for every
utterance that was not faulted, one typed error for each that was, memory flat.

CI runs a small version; ``pytest -m deep -s tests/test_soak.py`` runs 200 concurrent
streams and 2,000 sequential utterances and prints the figures in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
import zlib
from collections import Counter

import psutil
import pytest
from livekit.agents import APIConnectOptions, APIError

from livekit.plugins import xai_voice as lk
from xai_voice.emulator import Fault, FaultKind, FaultPlan, FaultPoint
from xai_voice.emulator.background import BackgroundEmulator

K, P = FaultKind, FaultPoint


def _faults(rate: float, seed: int) -> FaultPlan:
    kinds = [(K.DROP, P.MID_AUDIO), (K.ERROR, P.BEFORE_AUDIO), (K.STALL, P.MID_AUDIO),
             (K.CLOSE, P.AFTER_AUDIO), (K.DROP, P.IDLE), (K.MALFORMED, P.MID_AUDIO)]  # fmt: skip
    return FaultPlan([Fault(k, p, times=None, probability=rate / len(kinds)) for k, p in kinds], seed=seed)


def soak(concurrent: int, sequential: int, *, fault_rate: float, seed: int = 1) -> dict[str, object]:
    plan = _faults(fault_rate, seed)
    with BackgroundEmulator(tone=True, faults=plan, max_sessions=10_000, keep_audio=False) as emu:
        results: dict[str, object] = {}

        async def speak(t: lk.TTS, text: str) -> int | BaseException:
            """The CRC-32 of the audio (not the audio: memory must stay flat)."""
            stream = t.stream(conn_options=APIConnectOptions(max_retry=1, timeout=1.0, retry_interval=0.01))
            try:
                stream.push_text(text)
                stream.end_input()
                crc = 0
                async for ev in stream:
                    crc = zlib.crc32(bytes(ev.frame.data), crc)
                return crc
            except APIError as exc:
                return exc
            finally:
                await stream.aclose()

        async def bounded(t: lk.TTS, text: str) -> int | BaseException | None:
            try:
                return await asyncio.wait_for(speak(t, text), 15)
            except asyncio.TimeoutError:
                return None  # a hang

        async def run() -> None:
            rng = random.Random(seed)
            proc = psutil.Process()
            t = lk.TTS(api_key=emu.api_key, base_url=emu.url)
            try:
                await bounded(t, "warm up")
                gc.collect()
                rss_start = proc.memory_info().rss
                start = time.monotonic()
                texts = [f"Concurrent stream {i} says {rng.randint(0, 10**6)}." for i in range(concurrent)]
                outcomes = list(await asyncio.gather(*(bounded(t, x) for x in texts)))
                gc.collect()
                rss_mid = proc.memory_info().rss  # the pool is as big as it gets
                seq_texts = [f"Sequential utterance {i} of {sequential}." for i in range(sequential)]
                for x in seq_texts:
                    outcomes.append(await bounded(t, x))
                elapsed = time.monotonic() - start
                gc.collect()
                rss_end = proc.memory_info().rss
            finally:
                await t.aclose()
            faulted = {
                emu.utterances[i].text for _, _, i in plan.log if i is not None and i < len(emu.utterances)
            }
            by_text: dict[str, int] = {}
            for rec in emu.utterances:
                if rec.completed and rec.error is None:
                    by_text[rec.text] = rec.audio_crc
            exact = wrong = 0
            errors: Counter[str] = Counter()
            for text, outcome in zip(texts + seq_texts, outcomes, strict=True):
                if outcome is None:
                    continue
                if isinstance(outcome, BaseException):
                    errors[type(outcome).__name__] += 1
                    assert text in faulted, f"{text!r} failed without a fault: {outcome!r}"
                elif outcome == by_text.get(text):
                    exact += 1
                else:
                    wrong += 1
            results.update(
                utterances=len(outcomes),
                hangs=sum(o is None for o in outcomes),
                exact=exact,
                wrong_audio=wrong,
                errors=dict(errors),
                faults_fired=len(plan.log),
                seconds=round(elapsed, 1),
                rss_start_mib=round(rss_start / 2**20, 1),
                rss_after_concurrent_mib=round(rss_mid / 2**20, 1),
                rss_end_mib=round(rss_end / 2**20, 1),
            )

        asyncio.run(run())
    print("soak:", json.dumps(results))
    return results


def _check(r: dict[str, object], n: int) -> None:
    assert r["hangs"] == 0
    assert r["wrong_audio"] == 0
    assert r["utterances"] == n
    assert r["exact"] + sum(r["errors"].values()) == n  # type: ignore[attr-defined, operator]
    # flat across the sequential run (the concurrent phase grows the pool first)
    assert float(r["rss_end_mib"]) - float(r["rss_after_concurrent_mib"]) < 10  # type: ignore[arg-type]


def test_soak_quick() -> None:
    r = soak(concurrent=60, sequential=200, fault_rate=0.03)
    _check(r, 260)
    assert r["faults_fired"] > 0


@pytest.mark.deep
@pytest.mark.timeout(3600)
def test_soak_deep() -> None:
    r = soak(concurrent=200, sequential=2000, fault_rate=0.02)
    _check(r, 2200)
