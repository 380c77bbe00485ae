"""Where one subject's CPU goes while it streams.

    python -m benchmarks.profile                      # our LiveKit face, 24 kHz PCM, py-spy
    python -m benchmarks.profile --subject upstream   # the upstream plugin, same audio
    python -m benchmarks.profile --paced --streams 400   # the capacity scenario instead
    python -m benchmarks.profile --tool pyinstrument  # a call tree (HTML) instead

With py-spy (the default) the client runs under ``py-spy record`` and the table is the
share of busy samples spent in each function itself and in each package, libraries
included: the question is how much of the cost is ours, livekit's, aiohttp's or the
interpreter's.  The emulator runs in its own process, as in ``benchmarks.run``, and is
not sampled.  Output goes to stdout and to benchmarks/results/profile-*.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .run import KEY, RESULTS, emulator, freeze_start_up_heap
from .subjects import FLOORS, SUBJECTS, Subject

NAMES = {"livekit": SUBJECTS[0], "client": SUBJECTS[1], "upstream": SUBJECTS[2], "floor": FLOORS[0]}
LONG = "This is a long utterance for measuring the cost of streaming. " * 10


async def _run(cls: type[Subject], url: str, args: argparse.Namespace, profiler: Any) -> tuple[float, float]:
    subj = cls(url, KEY)
    await subj.start()
    await asyncio.gather(*(subj.speak(f"warm up {i}") for i in range(args.streams)))
    freeze_start_up_heap()
    if args.worker:  # tell the parent, and wait until py-spy is attached
        print("warm", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    seconds = 0.0

    async def one(i: int) -> float:
        if args.paced:
            await asyncio.sleep(random.random())
        return (await subj.speak(f"Profiledsentencenumber{i:04d}." if args.paced else LONG)).audio_seconds

    if profiler is not None:
        profiler.start()  # after start-up and warm-up: only the streaming is sampled
    t0 = time.process_time()
    for _ in range(args.rounds):
        seconds += sum(await asyncio.gather(*(one(i) for i in range(args.streams))))
    used = time.process_time() - t0
    if profiler is not None:
        profiler.stop()
    await subj.close()
    return used, seconds


def _py_spy(args: argparse.Namespace) -> str:
    """Run the workload in a child and sample it with py-spy from the moment its warm-up is
    over (the child says so on stdout and waits for a word on stdin) until it exits."""
    argv = [a for a in sys.argv[1:] if a != "--worker"] + ["--worker"]
    worker = subprocess.Popen([sys.executable, "-m", "benchmarks.profile", *argv],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert worker.stdin is not None and worker.stdout is not None
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "stacks.txt"
        try:
            for line in worker.stdout:
                if line.strip() == "warm":
                    break
            spy = subprocess.Popen(["py-spy", "record", "--rate", "2000", "--format", "raw", "--output", str(raw),
                                    "--full-filenames", "--nonblocking", "--pid", str(worker.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
            worker.stdin.write("go\n")
            worker.stdin.flush()
            print(worker.stdout.read(), end="")
            worker.wait(600)
            spy.wait(30)
        finally:
            worker.kill()
        return _summarise(raw)


def _summarise(raw: Path) -> str:
    """Self time per function and per package from py-spy's collapsed stacks, counting only
    samples where the loop was working (not waiting in epoll) and not importing."""
    by_function: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("run_forever" in f for f in frames) or any(
            "_find_and_load" in f or "freeze_start_up_heap" in f for f in frames
        ):
            continue
        if "epoll" in frames[-1] or "select (selectors" in frames[-1]:
            continue
        n = int(count)
        busy += n
        leaf = re.sub(r" \(.*?(site-packages|lib/python3\.\d+|src|main)/", " (", frames[-1])
        by_function[re.sub(r":\d+\)$", ")", leaf)] += n
        path = frames[-1].rpartition("(")[2]
        if "xai_voice" in path:
            package = "xai_voice (ours)"
        elif "livekit/plugins/xai/" in path:
            package = "livekit-plugins-xai (upstream)"
        elif "site-packages/" in path:
            package = path.split("site-packages/")[1].split("/")[0]
        elif "benchmarks/" in path:
            package = "benchmarks (the consumer)"
        else:
            package = "python (asyncio, stdlib, interpreter)"
        by_package[package] += n
    if not busy:
        return "no samples"
    out = [f"{busy} busy samples", "", "| package | share of busy CPU |", "|---|---|"]
    out += [f"| {p} | {n / busy:.1%} |" for p, n in by_package.most_common()]
    out += ["", "| function (self time) | share |", "|---|---|"]
    out += [f"| {f} | {n / busy:.1%} |" for f, n in by_function.most_common(40)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subject", choices=sorted(NAMES), default="livekit")
    p.add_argument("--paced", action="store_true", help="real-time pacing (the capacity scenario)")
    p.add_argument("--streams", type=int, default=1, help="concurrent streams")
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--tool", choices=["py-spy", "pyinstrument"], default="py-spy")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.paced and args.streams == 1:
        args.streams, args.rounds = 400, 1
    stem = RESULTS / f"profile-{args.subject}{'-paced' if args.paced else ''}"
    RESULTS.mkdir(exist_ok=True)
    if args.tool == "py-spy" and not args.worker:
        text = _py_spy(args)
        print(text)
        stem.with_suffix(".md").write_text(
            f"`python -m benchmarks.profile {' '.join(sys.argv[1:])}`\n\n{text}\n"
        )
        print(f"written: {stem}.md")
        return
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    cls = NAMES[args.subject]
    profiler: Any = None
    if args.tool == "pyinstrument":
        from pyinstrument import Profiler

        # plain call stacks: pyinstrument's async mode charges awaited (wall) time to the
        # line that awaits
        profiler = Profiler(interval=0.0005, async_mode="disabled")
    with emulator(realtime=1.0 if args.paced else 0.0) as emu:
        used, seconds = asyncio.run(_run(cls, emu.url, args, profiler))
    print(f"{cls.name}: {used / seconds * 1000:.3f} ms CPU per second of audio over {seconds:.0f} s of audio "
          "(inflated by the profiler; benchmarks.run gives the real figure)\n")  # fmt: skip
    if profiler is not None:
        stem.with_suffix(".html").write_text(profiler.output_html())
        print(f"written: {stem}.html")


if __name__ == "__main__":
    main()
