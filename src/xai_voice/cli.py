"""The ``xai-voice`` command: ``say``, ``voices``, ``emulate``.

Expected failures (a bad option, a refused key, a timeout) print one line and exit
non-zero; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO

from .audio import wav_header
from .client import Client
from .errors import OptionError, XaiVoiceError
from .options import CODECS, LANGUAGES, SAMPLE_RATES, TTSOptions
from .protocol.speedups import ACCELERATED
from .version import __version__

__all__ = ["main"]

_EXT_CODECS = {
    ".wav": "pcm",  # PCM from the service, wrapped here in a WAV header we can finish
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


class _Usage(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xai-voice",
        description="xAI (Grok) text-to-speech. Without XAI_API_KEY, `say` and `voices` use "
        "a local emulator with an offline voice.",
    )
    speed = ", ".join(ACCELERATED) or "none: pip install 'xai-voice[fast]'"
    p.add_argument("--version", action="version", version=f"xai-voice {__version__} (accelerators: {speed})")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True)

    say = sub.add_parser("say", help="speak TEXT (or stdin with -) into a file")
    say.add_argument("text", help="the text, or - to read stdin")
    say.add_argument("-o", "--output", required=True, help="output file (.wav .mp3 .pcm .ulaw .alaw)")
    say.add_argument("--codec", choices=[*CODECS, "ulaw"], help="default: from the file extension")
    say.add_argument("--voice", default="eve", help="voice id (see `xai-voice voices`); default eve")
    say.add_argument("--language", default="auto", help=f"one of: {' '.join(LANGUAGES)}")
    say.add_argument(
        "--rate", type=int, default=24000, help=f"sample rate: {' '.join(map(str, SAMPLE_RATES))}"
    )
    say.add_argument("--speed", type=float, help="0.7 to 1.5")
    say.add_argument("--rest", action="store_true", help="use one REST request instead of the WebSocket")
    say.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                     help="progress bar on stderr (auto: when stderr is a terminal)")  # fmt: skip

    sub.add_parser("voices", help="list the voices")

    emu = sub.add_parser("emulate", help="run the local emulator until interrupted")
    emu.add_argument("--port", type=int, default=8765)
    emu.add_argument("--key", default=None, help="the API key it accepts (default: a fixed emulator key)")
    emu.add_argument("--tone", action="store_true", help="a tone instead of speech (for load tests)")
    emu.add_argument("--realtime", type=float, default=2.0,
                     help="pace audio at this multiple of real time (0: no pacing)")  # fmt: skip
    emu.add_argument("--chunk-ms", type=int, default=100, help="audio per audio.delta")
    emu.add_argument("--max-sessions", type=int, default=50, help="concurrent sessions before 429")
    emu.add_argument("--fault", action="append", default=[], metavar="SPEC",
                     help="inject a fault: kind[@point][*N|*][:status], e.g. stall@mid_audio, "
                     "refuse:401, drop@idle*2")  # fmt: skip
    return p


# -- helpers ---------------------------------------------------------------------------


def _split_utterances(text: str, limit: int = _UTTERANCE_CHARS) -> list[str]:
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


class _Progress:
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

    def close(self) -> None:
        if self.enabled:
            self.expected = max(self.expected, self.seconds)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


@contextlib.asynccontextmanager
async def _client() -> AsyncIterator[Client]:
    """A client for the real service, or for an in-process emulator when there is no key."""
    if os.environ.get("XAI_API_KEY"):
        async with Client() as client:
            yield client
        return
    from .emulator import Emulator

    async with Emulator() as emu:
        print(
            f"xai-voice: XAI_API_KEY is not set; using the local emulator (offline espeak-ng "
            f"voice) at {emu.url}",
            file=sys.stderr,
        )
        async with Client(api_key=emu.api_key, base_url=emu.url) as client:
            yield client


# -- commands --------------------------------------------------------------------------


async def _say(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise _Usage("there is no text to say")
    out = Path(args.output)
    ext = out.suffix.lower()
    codec = args.codec or _EXT_CODECS.get(ext)
    if codec is None:
        raise _Usage(f"cannot tell the codec from {out.name!r}; pass --codec ({', '.join(CODECS)})")
    codec = "mulaw" if codec == "ulaw" else codec
    wrap_wav = ext == ".wav" and codec in ("pcm", "mulaw", "alaw")
    options = TTSOptions(
        voice=args.voice,
        language=args.language,
        codec=codec,
        sample_rate=args.rate,
        speed=args.speed,
    )
    bytes_per_second = options.bytes_per_second or 16000.0  # mp3/wav: the bar is a guess
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    progress = _Progress(len(text) / _CHARS_PER_SECOND, show, sys.stderr)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".xai-voice-", dir=out.parent)
    total = 0
    try:
        with os.fdopen(fd, "wb") as f:
            if wrap_wav:
                f.write(b"\0" * 44)  # header written once the length is known
            async with _client() as client:
                if args.rest:
                    for part in _split_utterances(text, 15000):
                        async with client.synthesize(part, options) as rest:
                            async for chunk in rest:
                                f.write(chunk.data)
                                total += len(chunk.data)
                                progress.advance(len(chunk.data) / bytes_per_second)
                else:
                    for part in _split_utterances(text):
                        async with client.stream(options) as utt:
                            await utt.send(part)
                            await utt.finish()
                            async for chunk in utt:
                                f.write(chunk.data)
                                total += len(chunk.data)
                                progress.advance(len(chunk.data) / bytes_per_second)
            if wrap_wav:
                f.seek(0)
                if codec == "pcm":
                    f.write(wav_header(options.sample_rate, total))
                else:  # G.711 inside WAV: format 7 (mu-law) or 6 (A-law), 8 bits
                    tag = 7 if codec == "mulaw" else 6
                    f.write(wav_header(options.sample_rate, total, bits=8, format_tag=tag))
        os.replace(tmp_name, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    finally:
        progress.close()
    seconds = total / options.bytes_per_second if options.bytes_per_second else None
    length = f", {seconds:.1f} s of audio" if seconds is not None else ""
    print(f"wrote {out} ({total} bytes{length})", file=sys.stderr)
    return 0


async def _voices(args: argparse.Namespace) -> int:
    async with _client() as client:
        for voice in await client.voices():
            print(f"{voice.voice_id}\t{voice.name}")
    return 0


async def _emulate(args: argparse.Namespace) -> int:
    from .emulator import DEFAULT_KEY, Emulator, EmulatorConfig, Fault, FaultPlan

    try:
        plan = FaultPlan([Fault.parse(spec) for spec in args.fault])
    except ValueError as exc:
        raise _Usage(f"bad --fault: {exc}") from None
    config = EmulatorConfig(
        api_key=args.key or DEFAULT_KEY,
        tone=args.tone,
        realtime=args.realtime,
        chunk_ms=args.chunk_ms,
        max_sessions=args.max_sessions,
    )
    emu = Emulator(config, faults=plan, port=args.port)
    async with emu:
        print(f"xai-voice emulator listening on {emu.url}", file=sys.stderr)
        print(f"export XAI_BASE_URL={emu.url} XAI_API_KEY={emu.api_key}", file=sys.stderr)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command = {"say": _say, "voices": _voices, "emulate": _emulate}[args.command]
    try:
        return asyncio.run(command(args))
    except (_Usage, OptionError) as exc:
        print(f"xai-voice: {exc}", file=sys.stderr)
        return 2
    except XaiVoiceError as exc:
        print(f"xai-voice: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"xai-voice: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xai-voice: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
