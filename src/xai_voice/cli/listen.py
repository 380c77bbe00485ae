"""``xai-voice listen``: what was said in an audio file (or standard input)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ..audio import parse_wav_header
from ..options.stt import STTOptions
from ..protocol.stt import Final, Finished, Interim, Word
from .service import Usage, allow_insecure, client_for

__all__ = ["listen"]

log = logging.getLogger("xai_voice.cli")


def _read(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    path = Path(arg)
    if not path.is_file():
        raise Usage(f"{arg} is not a file")
    return path.read_bytes()


def _word_json(w: Word) -> dict[str, Any]:
    obj: dict[str, Any] = {"text": w.text, "start": w.start, "end": w.end}
    if w.speaker is not None:
        obj["speaker"] = w.speaker
    return obj


def _options(args: argparse.Namespace, *, rate: int, channels: int, encoding: str) -> STTOptions:
    return STTOptions(
        sample_rate=rate,
        encoding=encoding,
        language=args.language,
        interim_results=False,
        diarize=args.diarize,
        channels=channels,
        keyterms=tuple(args.keyterm),
        endpointing=args.endpointing,
    )


async def listen(args: argparse.Namespace) -> int:
    data = await asyncio.to_thread(_read, args.file)
    if not data:
        raise Usage("there is no audio to listen to")
    if data[:4] == b"RIFF":
        try:
            rate, channels, bits, offset = parse_wav_header(data)
        except ValueError as exc:
            raise Usage(f"{args.file}: {exc}") from None
        if bits != 16:
            raise Usage(f"{args.file}: only 16-bit PCM WAV files (or raw audio with --encoding and --rate)")
        audio, encoding = data[offset:], "pcm"
    else:
        if args.rate is None:
            raise Usage(f"{args.file} is not a WAV file: say what it holds with --encoding and --rate")
        audio, rate, channels, encoding = data, args.rate, args.channels, args.encoding
    options = _options(args, rate=rate, channels=channels, encoding=encoding)
    log.info("options: %s", options.query())
    async with client_for(insecure=allow_insecure(args.allow_insecure), listening=True) as client:
        start = time.monotonic()
        if not args.stream:
            transcript = await client.transcribe(data if data[:4] == b"RIFF" else audio, options)
            log.info("transcribed in %.2f s, trace id %s", time.monotonic() - start, transcript.trace_id)
            if args.json:
                print(json.dumps({
                    "text": transcript.text,
                    "duration": transcript.duration,
                    "words": [_word_json(w) for w in transcript.words],
                }))  # fmt: skip
            else:
                print(transcript.text)
            return 0
        finals: list[Final] = []
        async with client.listen(options) as rec:

            async def send() -> None:
                step = options.bytes_per_second // 10  # 100 ms at a time
                for i in range(0, len(audio), step):
                    await rec.send(audio[i : i + step])
                    if args.realtime:
                        await asyncio.sleep(0.1)
                await rec.finish()

            sender = asyncio.ensure_future(send())
            try:
                async for event in rec:
                    if isinstance(event, Final):
                        finals.append(event)
                        if not args.json:
                            print(event.text, flush=True)
                    elif isinstance(event, Interim):
                        log.info("interim: %s", event.text)
                    elif isinstance(event, Finished):
                        break
                await sender
            finally:
                sender.cancel()
        log.info("streamed in %.2f s, session %s, trace id %s", time.monotonic() - start, rec.session_id,
                 rec.trace_id)  # fmt: skip
        if args.json:
            print(json.dumps({
                "text": " ".join(f.text for f in finals),
                "duration": rec.duration,
                "words": [_word_json(w) for f in finals for w in f.words],
                "utterances": [
                    {"text": f.text, "start": f.start, "end": f.end, "channel": f.channel} for f in finals
                ],
            }))  # fmt: skip
    return 0
