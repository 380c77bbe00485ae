"""``xai-voice say``: text to an audio file (or standard output)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO

from ..options import CODECS, TTSOptions
from .output import AudioOutput, WavFormat
from .service import Usage, allow_insecure, client_for

__all__ = ["read_text", "say"]

log = logging.getLogger("xai_voice.cli")

_EXT_CODECS = {
    ".wav": "pcm",  # PCM from the service, wrapped here in one WAV header for all of it
    ".mp3": "mp3",
    ".pcm": "pcm",
    ".raw": "pcm",
    ".ulaw": "mulaw",
    ".mulaw": "mulaw",
    ".mu": "mulaw",
    ".alaw": "alaw",
    ".al": "alaw",
}
#: one utterance per this many characters at most: the service ends an utterance that
#: runs past 600 s, and a failure then costs less text
_UTTERANCE_CHARS = 4000
#: a rough speaking rate, for the progress bar's estimate
_CHARS_PER_SECOND = 14.0


def read_text(arg: str) -> str:
    """The text: the argument, or standard input for ``-`` (which must be UTF-8)."""
    if arg != "-":
        return arg
    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Usage(
            f"standard input is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert it first, for example with: iconv -f latin1 -t utf-8"
        ) from None


def split_utterances(text: str, limit: int = _UTTERANCE_CHARS) -> list[str]:
    """Cut long text after sentence ends so each utterance stays well inside the limits."""
    if len(text) <= limit:
        return [text]
    out: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?。！？])\s+", text):
        while len(sentence) > limit:  # one enormous sentence: cut at a space
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if current and len(current) + 1 + len(sentence) > limit:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        out.append(current)
    return out


class Progress:
    """``[#####-----]  3.2 s of ~9 s`` on one stderr line, for audio received."""

    def __init__(self, expected_seconds: float, enabled: bool, stream: IO[str]) -> None:
        self.expected = max(expected_seconds, 0.1)
        self.enabled = enabled
        self.stream = stream
        self.seconds = 0.0
        self._last = 0.0

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        now = time.monotonic()
        if self.enabled and now - self._last > 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        frac = min(1.0, self.seconds / self.expected)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r[{bar:<30}] {self.seconds:6.1f} s of ~{self.expected:.0f} s")
        self.stream.flush()

    def close(self, *, complete: bool) -> None:
        if self.enabled:
            if complete:
                self.expected = self.seconds  # the estimate is over: the bar ends full
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def _codec(args: argparse.Namespace) -> tuple[str, bool]:
    """(codec to ask the service for, whether to wrap it in a WAV header)."""
    out = args.output
    if out == "-":
        codec = args.codec or "wav"
        if codec in ("wav", "pcm", "mulaw", "ulaw", "alaw") and args.codec in (None, "wav"):
            return "pcm", True  # one WAV header for all the audio, however many utterances
        return ("mulaw" if codec == "ulaw" else codec), False
    if os.path.isdir(out):
        raise Usage(f"{out} is a directory; give a file name (like {Path(out) / 'speech.wav'})")
    ext = Path(out).suffix.lower()
    from_ext = _EXT_CODECS.get(ext)
    codec = args.codec
    if codec is None:
        if from_ext is None:
            raise Usage(f"cannot tell the codec from {Path(out).name!r}; pass --codec ({', '.join(CODECS)})")
        codec = from_ext
    codec = "mulaw" if codec == "ulaw" else codec
    if ext == ".wav":
        if codec in ("pcm", "wav", "mulaw", "alaw"):
            return ("pcm" if codec == "wav" else codec), True
        raise Usage(
            f"--codec {codec} does not go in a .wav file; use -o {Path(out).with_suffix('.' + codec)}"
        )
    if from_ext is not None and from_ext != codec:
        raise Usage(
            f"--codec {codec} does not match the extension of {out}; use a {codec} extension, or drop --codec"
        )
    if codec == "wav":
        return "pcm", True
    return codec, False


async def say(args: argparse.Namespace) -> int:
    text = read_text(args.text)
    if not text.strip():
        raise Usage("there is no text to say")
    codec, wrap_wav = _codec(args)
    options = TTSOptions(
        voice=args.voice,
        language=args.language,
        codec=codec,
        sample_rate=args.rate,
        speed=args.speed,
    )
    log.info("options: %s", options.query())
    bytes_per_second = options.bytes_per_second or options.max_bytes_per_second
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    progress = Progress(len(text) / _CHARS_PER_SECOND, show and args.output != "-", sys.stderr)
    output = AudioOutput(args.output, wav=WavFormat(options.sample_rate, codec) if wrap_wav else None)
    complete = False
    async with client_for(insecure=allow_insecure(args.allow_insecure)) as client:
        output.open()
        try:
            parts = split_utterances(text, 15000 if args.rest else _UTTERANCE_CHARS)
            for i, part in enumerate(parts, 1):
                start = time.monotonic()
                if args.rest:
                    async with client.synthesize(part, options) as rest:
                        async for chunk in rest:
                            output.write(chunk.data)
                            progress.advance(len(chunk.data) / bytes_per_second)
                    log.info(
                        "part %d/%d over REST: %.2f s, trace id %s",
                        i,
                        len(parts),
                        time.monotonic() - start,
                        rest.trace_id,
                    )
                    continue
                async with client.stream(options) as utt:
                    await utt.send(part)
                    await utt.finish()
                    first: float | None = None
                    async for chunk in utt:
                        if first is None and chunk.data:
                            first = time.monotonic() - start
                        output.write(chunk.data)
                        progress.advance(len(chunk.data) / bytes_per_second)
                log.info(
                    "part %d/%d: connection %s in %.3f s, first audio after %.3f s, done in %.2f s, "
                    "trace id %s",
                    i,
                    len(parts),
                    "reused" if utt.connection_reused else "opened",
                    utt.acquire_time,
                    first or 0.0,
                    time.monotonic() - start,
                    utt.trace_id,
                )
            size = output.finish()
            complete = True
        except BaseException:
            output.abort()
            raise
        finally:
            progress.close(complete=complete)
    if args.output != "-":
        seconds = output.audio_bytes / options.bytes_per_second if options.bytes_per_second else None
        length = f", {seconds:.1f} s of audio" if seconds is not None else ""
        print(f"wrote {args.output} ({size} bytes{length})", file=sys.stderr)
    return 0
