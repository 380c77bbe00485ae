"""Text -> the audio chunks (and timestamps) the emulator sends, in the asked codec.

Blocking and pure apart from the shared espeak instance; the server runs it in a worker
thread, or inline when a fault asks for an instant answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..audio import Int16Array, alaw_encode, mulaw_encode, resample, wav_header
from ..protocol import Timestamps
from .speech import ESPEAK_RATE, Espeak, Speech, WordTiming, speak_tone, split_tags, voice_for

__all__ = ["MP3_AVAILABLE", "Rendered", "apply_replace", "render"]

try:
    import lameenc

    MP3_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    MP3_AVAILABLE = False


@dataclass(frozen=True)
class RenderRequest:
    text: str
    voice: str
    language: str
    codec: str
    sample_rate: int
    bit_rate: int = 128000
    speed: float = 1.0
    with_timestamps: bool = False
    tone: bool = False
    tone_char_seconds: float = 0.06
    chunk_ms: int = 100


@dataclass(frozen=True)
class Rendered:
    chunks: tuple[bytes, ...]
    timestamps: tuple[Timestamps | None, ...]
    #: seconds of audio per chunk (for pacing)
    chunk_seconds: float
    duration: float

    @property
    def audio(self) -> bytes:
        return b"".join(self.chunks)


def apply_replace(text: str, replace: Mapping[str, str]) -> str:
    """The pronunciation map: whole words, case-insensitive, longest key first."""
    if not replace:
        return text
    keys = sorted(replace, key=len, reverse=True)
    lookup = {k.casefold(): v for k, v in replace.items()}
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in keys) + r")(?!\w)", re.I)
    return pattern.sub(lambda m: lookup.get(m.group(0).casefold(), m.group(0)), text)


def _speak(req: RenderRequest) -> tuple[Int16Array, str, list[tuple[int, int, float, float]]]:
    """PCM at the asked rate, the spoken text, and (char start, length, t0, t1) per word."""
    rate = req.sample_rate
    pieces: list[Int16Array] = []
    spoken = ""
    words: list[tuple[int, int, float, float]] = []
    t = 0.0
    for piece in split_tags(req.text):
        if isinstance(piece, float):
            pieces.append(np.zeros(int(piece * rate), dtype=np.int16))
            t += piece
            continue
        if req.tone:
            speech = speak_tone(piece, req.voice, rate, speed=req.speed, char_seconds=req.tone_char_seconds)
            pcm = speech.pcm
        else:
            espeak_voice, pitch = voice_for(req.voice, req.language)
            speech = Espeak.get().synthesize(piece, espeak_voice, pitch=pitch, speed=req.speed)
            pcm = resample(speech.pcm, ESPEAK_RATE, rate)
        seconds = len(pcm) / rate
        words.extend(_word_spans(speech, len(spoken), t, seconds))
        spoken += piece
        pieces.append(pcm)
        t += seconds
    pcm_all = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    return pcm_all, spoken, words


def _word_spans(
    speech: Speech, offset: int, t0: float, seconds: float
) -> list[tuple[int, int, float, float]]:
    out = []
    ws: tuple[WordTiming, ...] = speech.words
    for i, w in enumerate(ws):
        end = ws[i + 1].seconds if i + 1 < len(ws) else seconds
        out.append((offset + w.start, w.length, t0 + w.seconds, t0 + max(end, w.seconds)))
    return out


def _char_times(
    spoken: str, words: list[tuple[int, int, float, float]], total: float
) -> list[tuple[float, float]]:
    """A (start, end) per character: letters of a word share its span evenly; characters
    between words take the instant the next word starts."""
    times: list[tuple[float, float] | None] = [None] * len(spoken)
    for start, length, t0, t1 in words:
        n = max(1, length)
        step = (t1 - t0) / n
        for j in range(length):
            if 0 <= start + j < len(spoken):
                times[start + j] = (t0 + j * step, t0 + (j + 1) * step)
    out: list[tuple[float, float]] = []
    nxt = total
    for i in range(len(spoken) - 1, -1, -1):
        ti = times[i]
        if ti is None:
            out.append((nxt, nxt))
        else:
            out.append(ti)
            nxt = ti[0]
    out.reverse()
    return out


def render(req: RenderRequest) -> Rendered:
    pcm, spoken, words = _speak(req)
    rate = req.sample_rate
    duration = len(pcm) / rate
    per_chunk = max(1, int(rate * req.chunk_ms / 1000))
    bounds = list(range(0, len(pcm), per_chunk)) or [0]
    chunk_seconds = per_chunk / rate

    if req.codec == "mp3":
        encoder = lameenc.Encoder()
        encoder.set_bit_rate(req.bit_rate // 1000)
        encoder.set_in_sample_rate(rate)
        encoder.set_channels(1)
        encoder.set_quality(7)
        data = bytes(encoder.encode(pcm.tobytes())) + bytes(encoder.flush())
        size = max(1, -(-len(data) // len(bounds)))
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    else:
        chunks = []
        for b in bounds:
            seg = pcm[b : b + per_chunk]
            if req.codec == "mulaw":
                chunks.append(mulaw_encode(seg))
            elif req.codec == "alaw":
                chunks.append(alaw_encode(seg))
            else:
                chunks.append(seg.tobytes())
        if req.codec == "wav":
            chunks[0] = wav_header(rate, len(pcm) * 2) + chunks[0]

    stamps: list[Timestamps | None] = [None] * len(chunks)
    if req.with_timestamps and spoken:
        times = _char_times(spoken, words, duration)
        buckets: list[list[int]] = [[] for _ in chunks]
        for i, (t0, _) in enumerate(times):
            k = min(len(chunks) - 1, int(t0 / chunk_seconds)) if chunk_seconds else 0
            buckets[k].append(i)
        for k, idx in enumerate(buckets):
            stamps[k] = Timestamps(
                tuple(spoken[i] for i in idx),
                tuple((round(times[i][0], 4), round(times[i][1], 4)) for i in idx),
                round(min(chunk_seconds, max(0.0, duration - k * chunk_seconds)), 4),
            )
    return Rendered(tuple(chunks), tuple(stamps), chunk_seconds, duration)
