"""Text -> the audio chunks and character timings the emulator sends, in the asked codec.

Blocking and pure apart from the shared espeak instance; the server runs it in a worker
thread, or inline when a fault asks for an instant answer.

Timings are kept per spoken character (speech tags are voiced but not timed: they are not
words a caption should show).  How they travel is the session's choice
(:func:`timed_frames`): in batches decoupled from the audio, as xAI sends them, or one
batch per audio chunk.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..audio import Int16Array, alaw_encode, mulaw_encode, resample, wav_header
from ..protocol.tts import Timestamps
from .speech import ESPEAK_RATE, Espeak, Noise, Speech, Voiced, speak_tone, split_tags, voice_for

__all__ = ["MP3_AVAILABLE", "RenderRequest", "Rendered", "render", "timed_frames"]

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
    #: seconds of this utterance already sent (a later phrase continues its timeline)
    offset: float = 0.0
    #: start a WAV stream (the first piece of a wav utterance)
    wav_header: bool = True


@dataclass(frozen=True)
class Rendered:
    chunks: tuple[bytes, ...]
    #: seconds of audio per chunk (for pacing)
    chunk_seconds: float
    duration: float
    #: every spoken character with its (start, end), offset applied
    chars: tuple[tuple[str, float, float], ...] = ()

    @property
    def audio(self) -> bytes:
        return b"".join(self.chunks)


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
        if isinstance(piece, Noise):
            pcm = piece.pcm(rate)
            pieces.append(pcm)
            t += len(pcm) / rate
            continue
        speech = _voice(piece.text if isinstance(piece, Voiced) else piece, req)
        pcm = speech.pcm if req.tone else resample(speech.pcm, ESPEAK_RATE, rate)
        seconds = len(pcm) / rate
        if isinstance(piece, str):  # a voiced tag is heard, not timed
            words.extend(_word_spans(speech, len(spoken), t, seconds))
            spoken += piece
        pieces.append(pcm)
        t += seconds
    pcm_all = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    return pcm_all, spoken, words


def _voice(piece: str, req: RenderRequest) -> Speech:
    if req.tone:
        return speak_tone(
            piece, req.voice, req.sample_rate, speed=req.speed, char_seconds=req.tone_char_seconds
        )
    espeak_voice, pitch = voice_for(req.voice, req.language)
    return Espeak.get().synthesize(piece, espeak_voice, pitch=pitch, speed=req.speed)


def _word_spans(
    speech: Speech, offset: int, t0: float, seconds: float
) -> list[tuple[int, int, float, float]]:
    out = []
    ws = speech.words
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
        if req.codec == "wav" and req.wav_header:
            chunks[0] = wav_header(rate, len(pcm) * 2) + chunks[0]

    chars: tuple[tuple[str, float, float], ...] = ()
    if req.with_timestamps and spoken:
        off = req.offset
        chars = tuple(
            (c, round(off + t0, 4), round(off + t1, 4))
            for c, (t0, t1) in zip(spoken, _char_times(spoken, words, duration), strict=True)
        )
    return Rendered(tuple(chunks), chunk_seconds, duration, chars)


def _stamps(chars: list[tuple[str, float, float]]) -> Timestamps:
    return Timestamps(tuple(c for c, _, _ in chars), tuple((a, b) for _, a, b in chars))


def timed_frames(
    rendered: Rendered, *, mode: str, seed: int, batch_seconds: float = 1.5
) -> list[tuple[bytes, Timestamps | None]]:
    """The frames to send for ``rendered``: (audio, timings), either may be empty.

    ``per_chunk``: each chunk carries the timings of the characters that start in it.
    ``batched`` (as xAI does): timings go in batches covering ``batch_seconds`` of audio,
    each one placed, by a seeded draw, before the audio it covers (in a timing-only
    frame), with its last chunk, or after it (in a timing-only frame following the next
    chunk): a client must get every word right whichever comes first.
    """
    chunks = rendered.chunks
    frames: list[tuple[bytes, Timestamps | None]] = [(c, None) for c in chunks]
    if not rendered.chars:
        return frames
    step = rendered.chunk_seconds or 1.0
    offset = rendered.chars[0][1] if rendered.chars else 0.0
    offset -= offset % step if step else 0.0

    def chunk_of(t: float) -> int:
        return min(len(chunks) - 1, max(0, int((t - offset) / step)))

    if mode == "per_chunk":
        buckets: list[list[tuple[str, float, float]]] = [[] for _ in chunks]
        for ch in rendered.chars:
            buckets[chunk_of(ch[1])].append(ch)
        return [(c, _stamps(b) if b else None) for c, b in zip(chunks, buckets, strict=True)]
    rng = random.Random(seed)
    per_batch = max(1, int(batch_seconds / step))
    groups: dict[int, list[tuple[str, float, float]]] = {}
    for ch in rendered.chars:
        groups.setdefault(chunk_of(ch[1]) // per_batch, []).append(ch)
    # inserts: position in the chunk list (before index) -> timing-only frames
    before: dict[int, list[Timestamps]] = {}
    attached: dict[int, Timestamps] = {}
    for g, chars in sorted(groups.items()):
        first = g * per_batch
        last = min(len(chunks) - 1, first + per_batch - 1)
        where = rng.choice(("before", "with", "after"))
        if where == "before":
            before.setdefault(first, []).append(_stamps(chars))
        elif where == "with" and last not in attached:
            attached[last] = _stamps(chars)
        else:
            before.setdefault(min(len(chunks), last + 2), []).append(_stamps(chars))
    out: list[tuple[bytes, Timestamps | None]] = []
    for i, c in enumerate(chunks):
        out.extend((b"", ts) for ts in before.get(i, ()))
        out.append((c, attached.get(i)))
    out.extend((b"", ts) for ts in before.get(len(chunks), ()))
    return out
