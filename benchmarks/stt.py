"""Speech to text, side by side: our LiveKit ``STT`` and the upstream
``livekit.plugins.xai.STT``, against the same emulator (tone speech with scripted
transcripts, on its own thread), driven as an agent drives them: 20 ms frames of 48 kHz
room audio, in real time.

* latency: end of speech to the final transcript, and the first result of an utterance,
  right after the stream connects and right after a reconnect (options changed between
  utterances), directly and over a link with a real round trip (:mod:`.delay`);
* CPU per second of audio sent (the client's thread only);
* the ``audio.done`` race: lost, errored and hung finals under the reliability harness.

Run through ``python -m benchmarks.run --only stt``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp

from xai_voice.emulator.background import BackgroundEmulator
from xai_voice.emulator.render import RenderRequest, render

from .delay import DelayProxy

RATE = 48000  # what a LiveKit room delivers
FRAME = 0.02
SAID = ("book a table for two", "at eight tonight")


@cache
def tone_speech(text: str, rate: int = RATE) -> bytes:
    req = RenderRequest(text=text, voice="eve", language="en", codec="pcm", sample_rate=rate, tone=True)
    return render(req).audio


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(int(seconds * rate) * 2)


# -- the subjects ------------------------------------------------------------------------


class SttSubject:
    name = ""

    def __init__(self, base_url: str, api_key: str, session: aiohttp.ClientSession) -> None:
        self.base_url, self.api_key, self.session = base_url, api_key, session

    def make(self) -> Any:
        raise NotImplementedError


class OursStt(SttSubject):
    name = "ours (LiveKit)"

    def make(self) -> Any:
        from livekit.plugins import xai_voice

        return xai_voice.STT(
            api_key=self.api_key, base_url=self.base_url, endpointing=100, http_session=self.session
        )


class UpstreamStt(SttSubject):
    name = "upstream livekit-plugins-xai"

    def make(self) -> Any:
        from livekit.plugins.xai import stt as upstream

        # its URL is a module constant; point it at the emulator
        upstream.XAI_WEBSOCKET_URL = self.base_url.replace("http", "ws", 1) + "/stt"
        return upstream.STT(api_key=self.api_key, endpointing=100, http_session=self.session)


STT_SUBJECTS: list[type[SttSubject]] = [OursStt, UpstreamStt]


# -- latency -------------------------------------------------------------------------------


@dataclass
class Conversation:
    """What one stream heard, with the wall times that matter."""

    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, kind, text)
    starts: list[float] = field(default_factory=list)  # first frame of each utterance pushed
    ends: list[float] = field(default_factory=list)  # last frame of speech of each pushed

    def first_result(self, i: int) -> float:
        """Seconds from the start of utterance ``i`` to its first transcript (any kind)."""
        t = next(t for t, kind, text in self.events if t >= self.starts[i] and kind != "START" and text)
        return t - self.starts[i]

    def final(self, i: int) -> float:
        """Seconds from the end of utterance ``i``'s speech to its final transcript."""
        t = next(t for t, kind, _ in self.events if t >= self.ends[i] and kind == "FINAL")
        return t - self.ends[i]


async def converse(ears: Any, *, reconnect: bool, tag: int) -> Conversation:
    """Utterance A from the moment the stream opens, a pause, new options (when
    ``reconnect``), 100 ms later utterance B; audio in real time."""
    from livekit.agents import APIConnectOptions

    from livekit import rtc

    conv = Conversation()
    stream = ears.stream(conn_options=APIConnectOptions(max_retry=0, timeout=5.0))
    final_a = asyncio.Event()

    async def read() -> None:
        async for ev in stream:
            kind = ev.type.name.split("_")[0]  # START, INTERIM, FINAL, END, RECOGNITION
            text = ev.alternatives[0].text if ev.alternatives else ""
            conv.events.append((time.perf_counter(), kind, text))
            if kind == "FINAL":
                final_a.set()

    reader = asyncio.ensure_future(read())
    step = int(RATE * FRAME) * 2
    clock = time.perf_counter()

    async def push(pcm: bytes) -> None:
        nonlocal clock
        for i in range(0, len(pcm), step):
            piece = pcm[i : i + step]
            await asyncio.sleep(max(0.0, clock - time.perf_counter()))
            stream.push_frame(rtc.AudioFrame(piece, RATE, 1, len(piece) // 2))
            clock += FRAME

    for text, pause in ((SAID[0], 0.8), (SAID[1], 1.0)):
        conv.starts.append(time.perf_counter())
        await push(tone_speech(text))
        conv.ends.append(time.perf_counter())
        await push(silence(pause))
        if text == SAID[0]:
            try:
                await asyncio.wait_for(final_a.wait(), 3.0)
            except asyncio.TimeoutError:
                pass
            if reconnect:
                ears.update_options(keyterm=[f"table {tag}"])
            await push(silence(0.1))
    stream.end_input()
    await asyncio.wait_for(reader, 10.0)
    await stream.aclose()
    return conv


async def latency(emu: BackgroundEmulator, rtts: list[float], repeats: int) -> dict[str, Any]:
    """Per round trip: medians over ``repeats`` (subjects interleaved) of connect -> first
    result, end of speech -> final, and the same for the utterance after a reconnect."""
    out: dict[str, Any] = {}
    for rtt in rtts:
        with DelayProxy(emu.port, rtt=rtt) if rtt else _Direct(emu.port) as link:
            url = f"http://127.0.0.1:{link.port}/v1"
            rows: dict[str, dict[str, list[float]]] = {}
            async with aiohttp.ClientSession() as session:
                for r in range(repeats):
                    for cls in STT_SUBJECTS:
                        emu.script_transcripts(list(SAID))
                        ears = cls(url, emu.api_key, session).make()
                        try:
                            conv = await converse(ears, reconnect=True, tag=r)
                        finally:
                            await ears.aclose()
                        row = rows.setdefault(cls.name, {})
                        for key, value in (
                            ("first_after_connect", conv.first_result(0)),
                            ("final_a", conv.final(0)),
                            ("first_after_reconnect", conv.first_result(1)),
                            ("final_b", conv.final(1)),
                        ):
                            row.setdefault(key, []).append(value * 1000)
                        finals = [text for _, kind, text in conv.events if kind == "FINAL"]
                        row.setdefault("finals_ok", []).append(
                            float([_norm(t) for t in finals] == list(SAID))
                        )
            out[f"{rtt * 1000:.0f}"] = {
                name: {
                    k: statistics.median(v) if k != "finals_ok" else sum(v) / len(v) for k, v in row.items()
                }
                for name, row in rows.items()
            }
    return out


class _Direct:
    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> _Direct:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _norm(text: str) -> str:
    return text.lower().strip(" .")


# -- CPU -----------------------------------------------------------------------------------


async def cpu(emu: BackgroundEmulator, repeats: int, seconds: float = 20.0) -> dict[str, float]:
    """ms of the client thread's CPU per second of audio: room frames pushed as fast as the
    stream takes them, every event read.  The emulator's thread is not counted."""
    from livekit.agents import APIConnectOptions

    from livekit import rtc

    one = tone_speech(SAID[0]) + silence(0.6) + tone_speech(SAID[1]) + silence(0.6)
    pcm = one * max(1, int(seconds / (len(one) / 2 / RATE)))
    audio_seconds = len(pcm) / 2 / RATE
    step = int(RATE * FRAME) * 2
    samples: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(repeats):
            for cls in STT_SUBJECTS:
                emu.script_transcripts(list(SAID) * (len(pcm) // len(one)))
                ears = cls(emu.url, emu.api_key, session).make()
                gc.collect()
                t0 = time.thread_time()
                stream = ears.stream(conn_options=APIConnectOptions(max_retry=0, timeout=10.0))

                async def feed(stream: Any = stream) -> None:
                    for i in range(0, len(pcm), step):
                        piece = pcm[i : i + step]
                        stream.push_frame(rtc.AudioFrame(piece, RATE, 1, len(piece) // 2))
                        await asyncio.sleep(0)
                    stream.end_input()

                feeder = asyncio.ensure_future(feed())
                async for _ in stream:
                    pass
                await feeder
                await stream.aclose()
                await ears.aclose()
                samples.setdefault(cls.name, []).append((time.thread_time() - t0) / audio_seconds * 1000)
    return {name: statistics.median(v) for name, v in samples.items()}


# -- the race ------------------------------------------------------------------------------


def race(emu: BackgroundEmulator, counts: dict[str, int], limit: float = 5.0) -> dict[str, Any]:
    """The service answers audio.done with transcript.done and closes at once, while the
    client's write of audio.done waits to drain (the reliability harness: shuffled task
    order, congested sends).  Lost: the final never came out.  Errored: it came out, and
    then the stream failed anyway."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from livekit.agents import APIConnectOptions
    from tests.harness import run_seeds

    from livekit import rtc

    audio = tone_speech("x" * 12, 16000) + silence(0.1, 16000)
    out: dict[str, Any] = {}
    for cls in STT_SUBJECTS:
        lost: list[int] = []
        errored: list[int] = []

        def factory(
            seed: int, cls: type[SttSubject] = cls, lost: list[int] = lost, errored: list[int] = errored
        ) -> Awaitable[None]:
            async def go() -> None:
                emu.script_transcripts([f"seed {seed} said this"])
                async with aiohttp.ClientSession() as session:
                    subject = cls(emu.url, emu.api_key, session)
                    ears = subject.make()
                    ears.update_options(endpointing=5000)  # the final comes with audio.done
                    stream = ears.stream(conn_options=APIConnectOptions(max_retry=0, timeout=3.0))
                    for i in range(0, len(audio), 640):
                        piece = audio[i : i + 640]
                        stream.push_frame(rtc.AudioFrame(piece, 16000, 1, len(piece) // 2))
                    stream.end_input()
                    said: list[str] = []
                    failed = False
                    try:
                        async for ev in stream:
                            if ev.type.name == "FINAL_TRANSCRIPT":
                                said.append(_norm(ev.alternatives[0].text))
                    except Exception:
                        failed = True
                    if f"seed {seed} said this" not in said:
                        lost.append(seed)
                    elif failed:
                        errored.append(seed)
                    await stream.aclose()
                    await ears.aclose()

            return go()

        n = counts[cls.name]
        t0 = time.perf_counter()
        hung = run_seeds(range(n), factory, limit=limit)
        out[cls.name] = {"finals": n, "lost": len(lost), "errored": len(errored), "hung": len(hung),
                         "seconds": time.perf_counter() - t0}  # fmt: skip
    return out


# -- all of it -----------------------------------------------------------------------------


async def _async_part(emu: BackgroundEmulator, rtts: list[float], repeats: int) -> dict[str, Any]:
    return {
        "latency": await latency(emu, rtts, repeats),
        "cpu": await cpu(emu, max(3, repeats // 2)),
    }


def run(*, rtts: list[float], repeats: int, race_counts: dict[str, int]) -> dict[str, Any]:
    with BackgroundEmulator(tone=True, keep_audio=False, max_records=2000) as emu:
        res = asyncio.run(_async_part(emu, rtts, repeats))
        res["race"] = race(emu, race_counts)
    return res


def report(res: dict[str, Any]) -> list[str]:
    lines = ["## Speech to text: latency (ms, median of repeats; 48 kHz room audio in real time)", "",
             "Each run: utterance A from the moment the stream opens; after its final, new options "
             "(a reconnect for both), and 100 ms later utterance B.", "",
             "| round trip | subject | A: first result after connect | A: end of speech -> final "
             "| B: first result after reconnect | B: end of speech -> final | runs with both finals right |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for rtt, table in res["latency"].items():
        for name, row in table.items():
            lines.append(f"| {rtt} ms | {name} | {row['first_after_connect']:.0f} | {row['final_a']:.0f} | "
                         f"{row['first_after_reconnect']:.0f} | {row['final_b']:.0f} | "
                         f"{row['finals_ok'] * 100:.0f} % |")  # fmt: skip
    lines += ["", "## Speech to text: client CPU per second of audio (ms, median of repeats)", "",
              "| subject | ms CPU / s audio |", "|---|---|"]  # fmt: skip
    for name, value in res["cpu"].items():
        lines.append(f"| {name} | {value:.2f} |")
    lines += ["", "## Speech to text: the audio.done race (harness: drained sends, shuffled task order; "
              "the service closes right after transcript.done)", "",
              "| subject | finals | lost | errored after the final | hung |", "|---|---|---|---|---|"]  # fmt: skip
    for name, row in res["race"].items():
        lines.append(f"| {name} | {row['finals']} | {row['lost']} | {row['errored']} | {row['hung']} |")
    return [*lines, ""]
