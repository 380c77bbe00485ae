"""How well the emulator's offline ears hear its own voice: word error rate of
PocketSphinx (the ``stt`` extra) on espeak-ng speech, per built-in voice, end to end
(speech rendered as the TTS emulator renders it, sent with ``Client.transcribe`` to the
emulator, recognised there).

    python -m benchmarks.stt_wer                 # every voice, 12 sentences
    python -m benchmarks.stt_wer --voices cosmo,eve --out /tmp/wer

Writes ``stt_wer.md`` (and ``.json``) to ``--out`` (default ``benchmarks/results``).
What it tells a test author: script transcripts when the words matter; recognition is
there for a demo and for tests that can take approximate words.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import xai_voice
from xai_voice.emulator import Emulator
from xai_voice.emulator.render import RenderRequest, render
from xai_voice.options.tts import VOICES

SENTENCES = [
    "Book a table for two at eight tonight.",
    "Please call my mother tomorrow morning.",
    "What is the weather like in Paris?",
    "Turn off the lights in the kitchen.",
    "I would like to order a large pizza.",
    "Can you send the report before noon?",
    "The train leaves from platform nine.",
    "Remind me to buy milk and bread.",
    "How long does it take to get there?",
    "Play some music in the living room.",
    "My flight was delayed by two hours.",
    "Thank you very much for your help.",
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def wer(said: list[str], heard: list[str]) -> tuple[int, int]:
    """(edits, words said): substitutions, deletions and insertions, by edit distance."""
    prev = list(range(len(heard) + 1))
    for i, s in enumerate(said, 1):
        cur = [i] + [0] * len(heard)
        for j, h in enumerate(heard, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s != h))
        prev = cur
    return prev[-1], len(said)


async def measure(voices: list[str]) -> dict[str, Any]:
    per_voice: dict[str, Any] = {}
    async with Emulator() as emu, xai_voice.Client(api_key=emu.api_key, base_url=emu.url) as client:
        for voice in voices:
            edits = total = 0
            worst: tuple[float, str, str] = (0.0, "", "")
            t0 = time.perf_counter()
            for sentence in SENTENCES:
                req = RenderRequest(text=sentence, voice=voice, language="en", codec="pcm", sample_rate=16000)
                pcm = render(req).audio
                heard = (await client.transcribe(pcm, sample_rate=16000, encoding="pcm")).text
                e, n = wer(words(sentence), words(heard))
                edits, total = edits + e, total + n
                if e / n >= worst[0]:
                    worst = (e / n, sentence, heard)
            per_voice[voice] = {"wer": edits / total, "words": total, "seconds": time.perf_counter() - t0,
                                "worst": {"said": worst[1], "heard": worst[2], "wer": worst[0]}}  # fmt: skip
            print(f"{voice:8} {edits / total:6.1%}", flush=True)
    rates = [v["wer"] for v in per_voice.values()]
    return {"voices": per_voice, "median": statistics.median(rates),
            "overall": sum(v["wer"] * v["words"] for v in per_voice.values()) / sum(v["words"] for v in per_voice.values())}  # fmt: skip


def report(res: dict[str, Any], command: str) -> str:
    lines = ["# PocketSphinx on espeak-ng: word error rate", "", f"Command: `{command}`", "",
             f"{len(SENTENCES)} sentences per voice, end to end through the emulator's REST "
             f"transcription. Overall {res['overall']:.1%}, median voice {res['median']:.1%}.", "",
             "| voice | WER | words | worst sentence: said / heard |", "|---|---|---|---|"]  # fmt: skip
    for voice, row in sorted(res["voices"].items(), key=lambda kv: kv[1]["wer"]):
        w = row["worst"]
        lines.append(
            f"| {voice} | {row['wer']:.1%} | {row['words']} | {w['said']} / {w['heard'] or '(nothing)'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--voices", type=lambda s: s.split(","), default=list(VOICES))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()
    import sys

    res = asyncio.run(measure(args.voices))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.stt_wer " + " ".join(sys.argv[1:])
    (args.out / "stt_wer.json").write_text(json.dumps(res, indent=1))
    text = report(res, command.strip())
    (args.out / "stt_wer.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
