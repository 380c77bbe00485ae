"""Where one subject's CPU goes while it streams, as a pyinstrument call tree.

    python -m benchmarks.profile                      # our LiveKit face, 24 kHz PCM
    python -m benchmarks.profile --subject upstream   # the upstream plugin, same audio
    python -m benchmarks.profile --paced --streams 400   # the capacity scenario instead

The emulator runs in its own process (as in ``benchmarks.run``); only the client is
sampled.  The text tree goes to stdout and, with an HTML one, to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import time
from typing import Any

from .run import KEY, RESULTS, emulator
from .subjects import FLOORS, SUBJECTS, Subject

NAMES = {"livekit": SUBJECTS[0], "client": SUBJECTS[1], "upstream": SUBJECTS[2], "floor": FLOORS[0]}
LONG = "This is a long utterance for measuring the cost of streaming. " * 10


async def _run(cls: type[Subject], url: str, args: argparse.Namespace, profiler: Any) -> tuple[float, float]:
    subj = cls(url, KEY)
    await subj.start()
    await asyncio.gather(*(subj.speak(f"warm up {i}") for i in range(args.streams)))
    gc.collect()
    gc.freeze()  # as livekit's job processes do: the start-up heap is not the subject
    seconds = 0.0

    async def one(i: int) -> float:
        if args.paced:
            await asyncio.sleep(random.random())
        return (await subj.speak(f"Profiledsentencenumber{i:04d}." if args.paced else LONG)).audio_seconds

    profiler.start()  # after start-up and warm-up: only the streaming is sampled
    t0 = time.process_time()
    for _ in range(args.rounds):
        seconds += sum(await asyncio.gather(*(one(i) for i in range(args.streams))))
    used = time.process_time() - t0
    profiler.stop()
    await subj.close()
    return used, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subject", choices=sorted(NAMES), default="livekit")
    p.add_argument("--paced", action="store_true", help="real-time pacing (the capacity scenario)")
    p.add_argument("--streams", type=int, default=1, help="concurrent streams")
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    if args.paced and args.streams == 1:
        args.streams, args.rounds = 400, 1
    from pyinstrument import Profiler

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    cls = NAMES[args.subject]
    profiler = Profiler(interval=0.0005)
    with emulator(realtime=1.0 if args.paced else 0.0) as emu:
        used, seconds = asyncio.run(_run(cls, emu.url, args, profiler))
    head = (f"{cls.name}: {used / seconds * 1000:.3f} ms CPU per second of audio, {seconds:.0f} s of audio "
            "(inflated by the profiler; benchmarks.run gives the real figure)")  # fmt: skip
    text = head + "\n" + profiler.output_text(color=False, unicode=False)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"profile-{args.subject}{'-paced' if args.paced else ''}"
    stem.with_suffix(".txt").write_text(text)
    stem.with_suffix(".html").write_text(profiler.output_html())
    print(f"written: {stem}.txt, {stem}.html")


if __name__ == "__main__":
    main()
