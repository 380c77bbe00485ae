"""Side-by-side benchmarks: our LiveKit face, our bare client and the upstream
``livekit-plugins-xai`` plugin against the same emulator (tone mode, own process).

    python -m benchmarks.run            # everything, ~10 minutes on 2 cores
    python -m benchmarks.run --quick    # fewer repeats, for a smoke run

Writes benchmarks/results/RESULTS.md (tables), results.json and PNG plots.  The client
runs pinned to CPU 0 and the emulators to CPU 1, so "one core" means one core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import aiohttp

from . import conversation as conversation_bench
from . import stt as stt_bench
from .subjects import FLOORS, SUBJECTS, LiveKitFloor, OursLiveKit, Subject, Upstream

RESULTS = Path(__file__).parent / "results"
ALL = {"ttfa", "cpu", "capacity", "memory", "hang", "stt", "conversation"}
KEY = "bench-key"


# -- infrastructure ----------------------------------------------------------------------


@dataclass
class EmulatorProc:
    url: str
    proc: subprocess.Popen[bytes]

    async def records(self) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(self.url + "/_emulator/utterances", headers={"Authorization": f"Bearer {KEY}"}) as resp,
        ):
            return cast(list[dict[str, Any]], await resp.json())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def emulator(*extra: str, realtime: float = 0.0) -> Any:
    port = _free_port()
    cmd = [sys.executable, "-m", "xai_voice.cli", "emulate", "--tone", "--port", str(port), "--key", KEY,
           "--realtime", str(realtime), "--max-sessions", "100000", *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
            os.sched_setaffinity(proc.pid, {1})
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield EmulatorProc(f"http://127.0.0.1:{port}/v1", proc)
    finally:
        proc.terminate()
        proc.wait(10)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- 1. time to first audio ----------------------------------------------------------------


async def ttfa(emu: EmulatorProc, n: int) -> dict[str, Any]:
    """Warm: one prewarmed subject each, utterances interleaved A/B/C.  Cold: a new subject
    (new connection) per utterance.  Overhead = client's end_input->first audio minus the
    emulator's own text.done->first audio."""
    out: dict[str, Any] = {}
    for mode in ("warm", "cold"):
        runs: dict[str, list[Any]] = {cls.name: [] for cls in SUBJECTS}
        count = n if mode == "warm" else max(20, n // 4)
        async with AsyncExitStack() as stack:
            warm: dict[str, Subject] = {}
            if mode == "warm":
                for cls in SUBJECTS:
                    subj = cls(emu.url, KEY)
                    await subj.start()
                    await subj.prewarm()
                    stack.push_async_callback(subj.close)
                    warm[cls.name] = subj
            for i in range(count):
                for cls in SUBJECTS:
                    text = f"{mode} {cls.__name__} {i} hello there."
                    if mode == "warm":
                        await warm[cls.name].prewarm()
                        runs[cls.name].append(await warm[cls.name].speak(text))
                    else:
                        subj = cls(emu.url, KEY)
                        await subj.start()
                        runs[cls.name].append(await subj.speak(text))
                        await subj.close()
        # upstream sends words without the spaces between them: match on the letters
        recs = {"".join(r["text"].split()): r for r in await emu.records()}
        table = {}
        for name, rs in runs.items():
            over = []
            for r in rs:
                rec = recs["".join(r.text.split())]
                own = rec["first_audio_at"] - rec["text_done_at"]
                over.append((r.first_audio_at - r.end_input_at - own) * 1000)
            table[name] = {
                "n": len(over),
                "p50": pct(over, 50),
                "p90": pct(over, 90),
                "p99": pct(over, 99),
                "all": over,
            }
        out[mode] = table
    return out


# -- 2. CPU per second of audio ----------------------------------------------------------


async def cpu(emu: EmulatorProc, repeats: int) -> dict[str, Any]:
    cases = [
        (
            "24 kHz PCM, long",
            "pcm",
            24000,
            "This is a long utterance for measuring the cost of streaming. " * 10,
            3,
        ),
        ("24 kHz PCM, short", "pcm", 24000, "A short reply.", 40),
        (
            "8 kHz mu-law, long",
            "mulaw",
            8000,
            "This is a long utterance for measuring the cost of streaming. " * 10,
            3,
        ),
    ]
    out: dict[str, Any] = {}
    for label, codec, rate, text, count in cases:
        samples: dict[str, list[float]] = {}
        for _ in range(repeats):
            for cls in SUBJECTS + FLOORS:  # interleaved, so drift hits everyone alike
                subj = cls(emu.url, KEY, codec=codec, sample_rate=rate)
                try:
                    await subj.start()
                except NotImplementedError:
                    continue
                await subj.speak("warm up")
                gc.collect()
                t0 = time.process_time()
                seconds = 0.0
                for _ in range(count):
                    seconds += (await subj.speak(text)).audio_seconds
                used = time.process_time() - t0
                await subj.close()
                samples.setdefault(cls.name, []).append(used / seconds * 1000)
        out[label] = {name: med(v) for name, v in samples.items()}
    return out


# -- 3. capacity -----------------------------------------------------------------------------


def freeze_start_up_heap() -> None:
    """Move the heap built at start-up out of the collector's reach, as livekit-agents'
    job processes do: it is not what is measured."""
    gc.collect()
    gc.freeze()


class GcPauses:
    """Collector pauses while a scenario runs (``gc.callbacks``): the usual cause of a
    stall that no line of our code shows."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._start = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._start) * 1000)


async def capacity(emu: EmulatorProc, levels: list[int], repeats: int, *, frozen: bool) -> dict[str, Any]:
    """N concurrent streams paced at real time, over a warm pool; lateness of each audio
    piece against real-time playback of its stream from its first piece.  Each cell is
    the median over ``repeats`` runs, subjects interleaved.

    ``frozen``: the heap present after start-up is moved out of the collector's reach
    (``gc.freeze()``), as livekit-agents' worker does in its job processes; without it,
    full collections walk every object livekit-agents imported."""
    out: dict[str, Any] = {}
    for n in levels:
        runs: dict[str, list[dict[str, float]]] = {}
        for _ in range(repeats):
            for cls in SUBJECTS + FLOORS:
                runs.setdefault(cls.name, []).append(await _capacity_once(emu, cls, n, frozen))
        out[str(n)] = {name: {k: med([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()}
    return out


async def _capacity_once(emu: EmulatorProc, cls: type[Subject], n: int, frozen: bool) -> dict[str, float]:
    # one word, so that upstream (which sends words without the spaces between them) gets
    # exactly as much audio as the others: ~2.4 s of tone
    text = "Realtimecapacitytestsentencenumber"
    subj = cls(emu.url, KEY)
    await subj.start()
    if frozen:
        freeze_start_up_heap()
    # fill the pool first: a voice agent reuses its connections, so what is measured is
    # streaming, not a storm of handshakes
    await asyncio.gather(*(subj.speak(f"warm up {i}") for i in range(n)), return_exceptions=True)
    seen = len(await emu.records())

    async def one(i: int) -> Any:
        await asyncio.sleep(random.random())  # arrivals spread over a second
        return await subj.speak(f"{text}{i:04d}.")

    with GcPauses() as gcp:
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    await subj.close()
    gc.unfreeze()
    delays: list[float] = []
    errors = 0
    for r in results:
        if isinstance(r, BaseException):
            errors += 1
            continue
        if not r.arrivals:
            continue
        # played from its first piece on, each piece is due when playback reaches the
        # audio position where it starts; lateness is an underrun
        t_first = r.arrivals[0][0]
        before = r.arrivals[0][1]
        for t, s in r.arrivals[1:]:
            delays.append(max(0.0, (t - t_first) - before) * 1000)
            before = s
    # the emulator's own lateness in sending (its process is a bottleneck too)
    emu_late = [rec["pacing_lateness"] * 1000 for rec in (await emu.records())[seen:]]
    # how many streams really played at once: a client that starts streams late plays
    # fewer at a time, and pays in time to first audio instead of in delay
    ok = [r for r in results if not isinstance(r, BaseException) and r.arrivals]
    edges = sorted([(r.arrivals[0][0], 1) for r in ok] + [(r.arrivals[-1][0], -1) for r in ok])
    playing = overlap = 0
    for _, step in edges:
        playing += step
        overlap = max(overlap, playing)
    first = [(r.first_audio_at - r.end_input_at) * 1000 for r in ok if r.first_audio_at is not None]
    gc.collect()
    return {
        "p50": pct(delays, 50), "p99": pct(delays, 99), "errors": errors,
        "emulator_late_p99": pct(emu_late, 99), "gc_max_ms": max(gcp.pauses, default=0.0),
        "overlap": overlap, "first_audio_p99": pct(first, 99),
    }  # fmt: skip


# -- 4. hang rate ----------------------------------------------------------------------------


def hang_rate(emu_url: str, counts: dict[str, int], limit: float) -> dict[str, Any]:
    """Sends that wait to drain + an instant audio.done + shuffled task order (the
    reliability harness), one utterance per seed."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.harness import run_seeds

    out: dict[str, Any] = {}
    for cls in (OursLiveKit, Upstream):
        n = counts[cls.name]

        def factory(seed: int, cls: type[Subject] = cls) -> Awaitable[None]:
            async def go() -> None:
                subj = cls(emu_url, KEY)
                await subj.start()
                try:
                    await subj.speak(f"Race seed {seed}.")
                finally:
                    await asyncio.wait_for(subj.close(), 2)

            return go()

        t0 = time.perf_counter()
        hung = run_seeds(range(n), factory, limit=limit)
        out[cls.name] = {"utterances": n, "hangs": len(hung), "per_1000": 1000 * len(hung) / n,
                         "seconds": time.perf_counter() - t0}  # fmt: skip
    return out


# -- 5. memory -------------------------------------------------------------------------------


async def memory(idle_emu: EmulatorProc, paced_emu: EmulatorProc, n: int) -> dict[str, Any]:
    """Python heap (tracemalloc) per idle pooled connection and per active stream; RSS
    moves in pages and arenas too coarse for a few hundred sockets."""
    out: dict[str, Any] = {}
    tracemalloc.start()
    try:
        for cls in SUBJECTS:
            out[cls.name] = await _memory_one(cls, idle_emu, paced_emu, n)
    finally:
        tracemalloc.stop()
    return out


def _heap() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _memory_one(
    cls: type[Subject], idle_emu: EmulatorProc, paced_emu: EmulatorProc, n: int
) -> dict[str, float]:
    # idle pooled connections: n concurrent tiny utterances leave n idle sockets
    subj = cls(idle_emu.url, KEY)
    await subj.start()
    await subj.speak("warm up")
    base, before = _heap(), subj.idle_connections()
    await asyncio.gather(*(subj.speak(f"idle {i}") for i in range(n)))
    kept = subj.idle_connections() - before  # what the pool chose to keep of the n
    idle = (_heap() - base) / max(1, kept)
    await subj.close()
    # active streams: n streams half way through a paced utterance
    subj = cls(paced_emu.url, KEY)
    await subj.start()
    await subj.speak("warm up")
    base = _heap()
    tasks = [
        asyncio.ensure_future(subj.speak("An active stream for the memory test, long enough."))
        for _ in range(n)
    ]
    await asyncio.sleep(1.5)
    active = (_heap() - base) / n
    await asyncio.gather(*tasks, return_exceptions=True)
    await subj.close()
    return {"idle_kib": idle / 1024, "active_kib": active / 1024, "idle_kept": kept}


# -- report ----------------------------------------------------------------------------------


def _commit() -> str:
    """The code measured: the commit, marked when the tree had changes."""
    root = Path(__file__).parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def machine() -> dict[str, Any]:
    versions = {}
    for dist in ("xai-voice", "livekit-agents", "livekit-plugins-xai", "aiohttp", "orjson", "pybase64"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def ratio(ours: float, theirs: float) -> str:
    if not theirs or theirs != theirs or ours != ours:
        return "n/a"
    return f"{ours / theirs:.2f}"


def report(res: dict[str, Any], command: str) -> str:
    up = Upstream.name
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}`",
        "",
        "Machine: " + json.dumps(res["machine"]),
        "",
    ]
    if res.get("measured"):
        lines += ["Measured: " + ", ".join(f"{k} on {v['date']} (code {v['commit']})"
                                           for k, v in sorted(res["measured"].items())), ""]  # fmt: skip
    for mode in ("warm", "cold") if "ttfa" in res else ():
        t = res["ttfa"][mode]
        lines += [f"## Time to first audio, {mode} (ms above the emulator's own time to first audio)", "",
                  "| subject | n | p50 | p90 | p99 | p50 vs upstream |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, row in t.items():
            lines.append(f"| {name} | {row['n']} | {row['p50']:.2f} | {row['p90']:.2f} | {row['p99']:.2f} | "
                         f"{ratio(row['p50'], t[up]['p50'])} |")  # fmt: skip
        lines.append("")
    fl = LiveKitFloor.name
    cols = SUBJECTS + FLOORS
    lines += ["## Client CPU per second of audio (ms CPU / s audio, median of repeats)", "",
              "| case | " + " | ".join(c.name for c in cols) + " | LiveKit face vs upstream | same, above the floor |",
              "|---|" + "---|" * (len(cols) + 2)]  # fmt: skip
    for case, row in res.get("cpu", {}).items():
        cells = [f"{row[c.name]:.3f}" if c.name in row else "n/a" for c in cols]
        ours, theirs, floor = (row.get(k, float("nan")) for k in (OursLiveKit.name, up, fl))
        lines.append(
            f"| {case} | "
            + " | ".join(cells)
            + f" | {ratio(ours, theirs)} | {ratio(ours - floor, theirs - floor)} |"
        )
    lines += ["", f"*{fl}*: livekit's emitter and stream fed over an aiohttp WebSocket, one push per "
              "audio.delta, no JSON or base64: what any LiveKit plugin pays for this audio here.", ""]  # fmt: skip
    for key, title in (("capacity", "start-up heap frozen, as in livekit-agents' job processes"),
                       ("capacity_default_gc", "default garbage collection")):  # fmt: skip
        if key not in res:
            continue
        lines += ["", f"## Capacity: concurrent real-time streams on one core, {title}", "",
                  "Delay of each audio piece behind real-time playback, ms: p50 / p99 (errors) "
                  "[p99 of the emulator's own lateness in sending; longest GC pause in the client] "
                  "{most streams playing at once; p99 of end of input to first audio, ms}. "
                  + ("Median of repeats." if key == "capacity" else "One run."), "",
                  "| N | " + " | ".join(c.name for c in cols) + " |",
                  "|---|" + "---|" * len(cols)]  # fmt: skip
        best: dict[str, int] = {}
        together: dict[str, int] = {}
        for n, row in res[key].items():
            cells = []
            for c in cols:
                if c.name not in row:
                    cells.append("n/a")
                    continue
                r = row[c.name]
                late, pause = r.get("emulator_late_p99", float("nan")), r.get("gc_max_ms", float("nan"))
                cells.append(f"{r['p50']:.1f} / {r['p99']:.1f} ({r['errors']:.0f}) [{late:.1f}; {pause:.1f}] "
                             f"{{{r.get('overlap', float('nan')):.0f}; {r.get('first_audio_p99', float('nan')):.0f}}}")  # fmt: skip
                if r["p99"] < 20 and r["errors"] == 0:
                    best[c.name] = max(best.get(c.name, 0), int(n))
                    if r.get("overlap", 0) >= 0.9 * int(n):
                        together[c.name] = max(together.get(c.name, 0), int(n))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines += ["", "Largest N with p99 < 20 ms and no errors: "
                  + ", ".join(f"{c.name}: {best.get(c.name, 0)}" for c in cols), "",
                  "The same, counting only runs where at least 90 % of the N streams played at once: "
                  + ", ".join(f"{c.name}: {together.get(c.name, 0)}" for c in cols), ""]  # fmt: skip
    lines += ["## Hang rate (drained sends + instant audio.done + shuffled task order)", "",
              "| subject | utterances | hangs | per 1,000 |", "|---|---|---|---|"]  # fmt: skip
    for name, row in res.get("hang", {}).items():
        lines.append(f"| {name} | {row['utterances']} | {row['hangs']} | {row['per_1000']:.1f} |")
    lines += ["", "## Memory (KiB of Python heap, tracemalloc)", "",
              "| subject | per idle pooled connection | idle connections kept of the burst | per active stream |",
              "|---|---|---|---|"]  # fmt: skip
    for name, row in res.get("memory", {}).items():
        lines.append(
            f"| {name} | {row['idle_kib']:.0f} | {row.get('idle_kept', 'n/a')} | {row['active_kib']:.0f} |"
        )
    if "stt" in res:
        lines += ["", *stt_bench.report(res["stt"])]
    if "conversation" in res:
        lines += ["", *conversation_bench.report(res["conversation"])]
    return "\n".join(lines) + "\n"


def plots(res: dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return
    if "ttfa" not in res or "capacity" not in res:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, row in res["ttfa"]["warm"].items():
        xs = sorted(row["all"])
        ax.plot(xs, [i / len(xs) for i in range(len(xs))], label=name)
    ax.set_xlabel("time to first audio above the emulator's own (ms), warm")
    ax.set_ylabel("fraction of utterances")
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ttfa_cdf.png", dpi=120)
    fig, ax = plt.subplots(figsize=(7, 4))
    levels = sorted(int(n) for n in res["capacity"])
    for c in SUBJECTS + FLOORS:
        if all(c.name in res["capacity"][str(n)] for n in levels):
            ax.plot(
                levels, [res["capacity"][str(n)][c.name]["p99"] for n in levels], marker="o", label=c.name
            )
    ax.axhline(20, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("concurrent real-time streams on one core (start-up heap frozen)")
    ax.set_ylabel("p99 delay of audio pieces (ms)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "capacity.png", dpi=120)


async def main_async(args: argparse.Namespace, res: dict[str, Any]) -> None:
    res["machine"] = machine()
    with emulator() as fast, emulator(realtime=1.0) as paced:
        if "ttfa" in args.only:
            print("time to first audio ...", file=sys.stderr)
            res["ttfa"] = await ttfa(fast, args.utterances)
        if "cpu" in args.only:
            print("cpu ...", file=sys.stderr)
            res["cpu"] = await cpu(fast, args.repeats)
        if "capacity" in args.only:
            print("capacity ...", file=sys.stderr)
            res["capacity"] = await capacity(paced, args.levels, args.capacity_repeats, frozen=True)
            res["capacity_default_gc"] = await capacity(paced, args.levels, 1, frozen=False)
        if "memory" in args.only:
            print("memory ...", file=sys.stderr)
            res["memory"] = await memory(fast, paced, args.memory_n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--quick", action="store_true", help="a short run, written to --out (default results/quick)"
    )
    p.add_argument("--out", type=Path, help="where results go (default: benchmarks/results)")
    p.add_argument("--utterances", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[50, 100, 200, 400, 800]
    )
    p.add_argument("--capacity-repeats", type=int, default=3)
    p.add_argument("--memory-n", type=int, default=100)
    p.add_argument("--hang-ours", type=int, default=10_000)
    p.add_argument("--hang-upstream", type=int, default=300)
    p.add_argument("--stt-repeats", type=int, default=10)
    p.add_argument("--stt-race-ours", type=int, default=1000)
    p.add_argument("--stt-race-upstream", type=int, default=300)
    p.add_argument(
        "--rtts",
        type=lambda s: [int(x) / 1000 for x in s.split(",")],
        default=[0.05, 0.15],
        help="round trips (ms) of the delay proxy for stt and conversation",
    )
    p.add_argument("--replies", type=int, default=12, help="replies per conversation")
    p.add_argument("--conversation-repeats", type=int, default=3)
    p.add_argument(
        "--only",
        type=lambda v: set(v.split(",")),
        default=ALL,
        help="scenarios to run (others are kept from the last results): " + ",".join(sorted(ALL)),
    )
    args = p.parse_args()
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit()}  # the code as the run starts
    if args.quick:
        args.utterances, args.repeats, args.levels, args.memory_n = 40, 2, [50, 200], 30
        args.capacity_repeats = 1
        args.hang_ours, args.hang_upstream = 300, 50
        args.stt_repeats, args.stt_race_ours, args.stt_race_upstream = 3, 200, 50
        args.replies, args.conversation_repeats = 6, 1
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    # a quick run never overwrites the committed results unless asked to
    out: Path = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    # --only re-runs some scenarios and keeps the others from the last results.json
    previous = out / "results.json"
    res: dict[str, Any] = {}
    if args.only != ALL and previous.exists():
        res = json.loads(previous.read_text())
    else:
        res["commands"] = []
    asyncio.run(main_async(args, res))
    if "hang" in args.only:
        print("hang rate ...", file=sys.stderr)
        with emulator("--fault", "instant_done*") as instant:
            counts = {OursLiveKit.name: args.hang_ours, Upstream.name: args.hang_upstream}
            res["hang"] = hang_rate(instant.url, counts, 2.0)
    if "stt" in args.only:
        print("speech to text ...", file=sys.stderr)
        res["stt"] = stt_bench.run(
            rtts=[0.0, *args.rtts], repeats=args.stt_repeats,
            race_counts={stt_bench.OursStt.name: args.stt_race_ours,
                         stt_bench.UpstreamStt.name: args.stt_race_upstream},
        )  # fmt: skip
    if "conversation" in args.only:
        print("conversation ...", file=sys.stderr)
        res["conversation"] = conversation_bench.run(
            rtts=args.rtts, replies=args.replies, repeats=args.conversation_repeats
        )
    for scenario in sorted(args.only):
        res.setdefault("measured", {})[scenario] = stamp
    res.setdefault("commands", []).append(("python -m benchmarks.run " + " ".join(sys.argv[1:])).strip())
    command = " ; ".join(res["commands"])
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
    text = report(res, command)
    (out / "RESULTS.md").write_text(text)
    plots(res, out)
    print(text)


if __name__ == "__main__":
    main()
