"""The three things measured, behind one small interface: our LiveKit face, our bare
client, and the upstream ``livekit-plugins-xai`` plugin, all pointed at the same
emulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp

#: called with (monotonic time, seconds of audio in this piece) for each piece of audio out
OnAudio = Callable[[float, float], None]


@dataclass
class Run:
    """One utterance as the client saw it."""

    text: str
    end_input_at: float = 0.0
    first_audio_at: float | None = None
    audio_seconds: float = 0.0
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (time, seconds so far)

    def on_audio(self, seconds: float) -> None:
        now = time.perf_counter()
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.audio_seconds += seconds
        self.arrivals.append((now, self.audio_seconds))


class Subject:
    name = ""

    def __init__(self, base_url: str, api_key: str, *, codec: str = "pcm", sample_rate: int = 24000) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.codec = codec
        self.sample_rate = sample_rate

    async def start(self) -> None: ...

    async def prewarm(self) -> None: ...

    async def speak(self, text: str, *, pieces: int = 1) -> Run:
        raise NotImplementedError

    async def close(self) -> None: ...

    def idle_connections(self) -> int:
        """Connections idle in the subject's pool right now."""
        raise NotImplementedError


def _split(text: str, pieces: int) -> list[str]:
    words = text.split(" ")
    step = max(1, len(words) // pieces)
    out = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    return [w + " " for w in out[:-1]] + out[-1:]


async def _until(ready: Callable[[], object]) -> None:
    """Wait (at most a second) for a prewarmed connection to be idle in the pool."""
    for _ in range(500):
        if ready():
            return
        await asyncio.sleep(0.002)


class _LiveKitSubject(Subject):
    """A livekit-agents TTS, driven as an agent drives it."""

    tts: Any

    async def speak(self, text: str, *, pieces: int = 1) -> Run:
        run = Run(text)
        stream = self.tts.stream()
        for piece in _split(text, pieces):
            stream.push_text(piece)
        run.end_input_at = time.perf_counter()
        stream.end_input()
        async for ev in stream:
            run.on_audio(ev.frame.samples_per_channel / ev.frame.sample_rate)
        await stream.aclose()
        return run


class OursLiveKit(_LiveKitSubject):
    name = "ours (LiveKit)"

    async def start(self) -> None:
        from livekit.plugins import xai_voice

        self.tts = xai_voice.TTS(
            api_key=self.api_key, base_url=self.base_url, codec=self.codec, sample_rate=self.sample_rate
        )

    async def prewarm(self) -> None:
        self.tts.prewarm()
        await _until(lambda: self.tts.client.pool.idle_count)

    def idle_connections(self) -> int:
        return int(self.tts.client.pool.idle_count)

    async def close(self) -> None:
        await self.tts.aclose()


class OursClient(Subject):
    name = "ours (client)"

    async def start(self) -> None:
        import xai_voice

        self.client = xai_voice.Client(
            api_key=self.api_key,
            base_url=self.base_url,
            options=xai_voice.TTSOptions(codec=self.codec, sample_rate=self.sample_rate),
        )
        self.bytes_per_second = self.client.options.bytes_per_second or 48000.0

    async def prewarm(self) -> None:
        self.client.prewarm()
        await _until(lambda: self.client.pool.idle_count)

    def idle_connections(self) -> int:
        return self.client.pool.idle_count

    async def speak(self, text: str, *, pieces: int = 1) -> Run:
        run = Run(text)
        async with self.client.stream() as utt:
            for piece in _split(text, pieces):
                await utt.send(piece)
            run.end_input_at = time.perf_counter()
            await utt.finish()
            async for chunk in utt:
                run.on_audio(len(chunk.data) / self.bytes_per_second)
        return run

    async def close(self) -> None:
        await self.client.aclose()


class Upstream(_LiveKitSubject):
    name = "upstream livekit-plugins-xai"

    async def start(self) -> None:
        from livekit.plugins.xai import tts as upstream_tts

        if self.codec != "pcm" or self.sample_rate != 24000:
            raise NotImplementedError("upstream speaks 24 kHz PCM only")
        # its URL is a module constant; point it at the emulator
        upstream_tts.XAI_WEBSOCKET_URL = self.base_url.replace("http", "ws", 1) + "/tts"
        # the same unlimited connector ours uses, so both can hold hundreds of sockets
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.tts = upstream_tts.TTS(api_key=self.api_key, http_session=self.session)

    async def prewarm(self) -> None:
        self.tts.prewarm()
        pool = self.tts._pool
        await _until(lambda: pool._available)

    def idle_connections(self) -> int:
        return len(self.tts._pool._available)

    async def close(self) -> None:
        await self.tts.aclose()
        await self.session.close()


class LiveKitFloor(_LiveKitSubject):
    """What any LiveKit plugin pays on this machine for the same audio: livekit's emitter
    and stream machinery fed over an aiohttp WebSocket, with no JSON parsing and no base64
    (each audio.delta becomes a cached buffer of zeros of the right length).  Not a usable
    plugin; a floor that shows how much of a face's cost is livekit's own."""

    name = "floor: livekit machinery only"

    async def start(self) -> None:
        if self.codec != "pcm":
            raise NotImplementedError("the floor pushes raw PCM only")
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.tts = _floor_tts(self)

    async def prewarm(self) -> None:
        self.tts.idle.append(await self.tts.connect())

    async def close(self) -> None:
        for ws in self.tts.idle:
            await ws.close()
        await self.session.close()


def _floor_tts(subject: LiveKitFloor) -> Any:
    from livekit.agents import APIConnectOptions, tts, utils

    url = (
        subject.base_url.replace("http", "ws", 1)
        + f"/tts?voice=eve&language=auto&codec=pcm&sample_rate={subject.sample_rate}"
    )
    zeros: dict[int, bytes] = {}

    class FloorTTS(tts.TTS[Any]):
        def __init__(self) -> None:
            super().__init__(
                capabilities=tts.TTSCapabilities(streaming=True),
                sample_rate=subject.sample_rate,
                num_channels=1,
            )
            self.idle: list[Any] = []

        async def connect(self) -> Any:
            return await subject.session.ws_connect(
                url, headers={"Authorization": f"Bearer {subject.api_key}"}
            )

        def synthesize(self, text: str, *, conn_options: APIConnectOptions | None = None) -> Any:
            raise NotImplementedError

        def stream(self, *, conn_options: APIConnectOptions | None = None) -> Any:
            return FloorStream(tts=self, conn_options=conn_options or APIConnectOptions())

    class FloorStream(tts.SynthesizeStream):
        async def _run(self, output_emitter: tts.AudioEmitter) -> None:
            output_emitter.initialize(
                request_id=utils.shortuuid(), sample_rate=subject.sample_rate, num_channels=1,
                mime_type="audio/pcm", stream=True,
            )  # fmt: skip
            owner = cast(FloorTTS, self._tts)
            ws = owner.idle.pop() if owner.idle else await owner.connect()
            output_emitter.start_segment(segment_id=utils.shortuuid())
            async for text in self._input_ch:
                if isinstance(text, str):
                    await ws.send_str(json.dumps({"type": "text.delta", "delta": text}))
            await ws.send_str('{"type":"text.done"}')
            while True:
                data = (await ws.receive()).data
                start = data.find('"delta":"') + 9
                if start == 8:  # audio.done
                    break
                end = data.index('"', start)
                n = (end - start) * 3 // 4 - data.count("=", end - 2, end)
                if n not in zeros:
                    zeros[n] = bytes(n)
                output_emitter.push(zeros[n])
            output_emitter.end_segment()
            owner.idle.append(ws)

    return FloorTTS()


SUBJECTS: list[type[Subject]] = [OursLiveKit, OursClient, Upstream]
#: also measured where the question is "how much of this is livekit's own" (cpu, capacity)
FLOORS: list[type[Subject]] = [LiveKitFloor]
