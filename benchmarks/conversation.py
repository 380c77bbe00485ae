"""The scenario users feel: a conversation over a link with a real round trip (TLS on the
emulator with a throwaway certificate the clients are told to trust, :mod:`.delay` in
between), the agent's replies streamed as an LLM produces them, every other reply
interrupted by the user (barge-in) a moment after it starts to play.  Measured: the
first audio of each reply, in round trips, after a reply that played out and after one
that was interrupted, and the connections each subject opened.

Our LiveKit ``TTS`` and the upstream ``livekit.plugins.xai.TTS``, both prewarmed, both
through livekit's own stream machinery.  Run through
``python -m benchmarks.run --only conversation``.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import time
from typing import Any

import aiohttp

from xai_voice.emulator.background import BackgroundEmulator

from .delay import DelayProxy

REPLY = ["Sure, ", "a table ", "for two ", "at eight ", "tonight. ", "Anything else?"]
USER_TURN = 0.5  # seconds between one reply ending (or being cut) and the next starting
BARGE_IN_AFTER = 0.3  # seconds of a reply played before the user cuts in


def _tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    import trustme

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def _ours(url: str, key: str, session: aiohttp.ClientSession) -> Any:
    from livekit.plugins import xai_voice

    return xai_voice.TTS(api_key=key, base_url=url, http_session=session)


def _upstream(url: str, key: str, session: aiohttp.ClientSession) -> Any:
    from livekit.plugins.xai import tts as upstream

    upstream.XAI_WEBSOCKET_URL = url.replace("https", "wss", 1) + "/tts"  # a module constant
    return upstream.TTS(api_key=key, http_session=session)


SUBJECTS = {"ours (LiveKit)": _ours, "upstream livekit-plugins-xai": _upstream}


async def _conversation(tts: Any, replies: int) -> list[tuple[bool, float]]:
    """(was the previous reply interrupted, seconds from the reply's first text to its
    first audio) per reply."""
    out: list[tuple[bool, float]] = []
    interrupted = False
    for i in range(replies):
        await asyncio.sleep(USER_TURN)
        stream = tts.stream()
        started = time.perf_counter()
        first: float | None = None

        async def feed(stream: Any = stream) -> None:
            for piece in REPLY:  # as an LLM's tokens come
                stream.push_text(piece)
                await asyncio.sleep(0.02)
            stream.end_input()

        feeder = asyncio.ensure_future(feed())
        cut = i % 2 == 1
        async for _ in stream:
            now = time.perf_counter()
            if first is None:
                first = now
            if cut and now - first >= BARGE_IN_AFTER:
                break
        feeder.cancel()
        await stream.aclose()  # what an agent does on barge-in
        if first is not None:
            out.append((interrupted, first - started))
        interrupted = cut
    return out


async def _one(
    name: str, emu: BackgroundEmulator, client_ctx: ssl.SSLContext, rtt: float, replies: int
) -> dict[str, Any]:
    with DelayProxy(emu.port, rtt=rtt) as link:
        url = f"https://127.0.0.1:{link.port}/v1"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
            tts = SUBJECTS[name](url, emu.api_key, session)
            tts.prewarm()
            await asyncio.sleep(1.0 + 6 * rtt)  # the prewarmed connection is open
            peak = 0

            async def sample() -> None:  # sessions the emulator holds open for us
                nonlocal peak
                while True:
                    peak = max(peak, emu.open_connections)
                    await asyncio.sleep(0.005)

            sampler = asyncio.ensure_future(sample())
            try:
                runs = await _conversation(tts, replies)
            finally:
                sampler.cancel()
                await tts.aclose()
        after_cut = [t / rtt for was_cut, t in runs[1:] if was_cut]
        after_full = [t / rtt for was_cut, t in runs[1:] if not was_cut]
        return {
            "first_reply": runs[0][1] / rtt if runs else float("nan"),
            "after_played_out": statistics.median(after_full),
            "after_barge_in": statistics.median(after_cut),
            "replies": len(runs),
            "connections": link.connections,
            "peak_sessions": peak,
        }


async def _all(rtts: list[float], replies: int, repeats: int) -> dict[str, Any]:
    server_ctx, client_ctx = _tls()
    out: dict[str, Any] = {}
    with BackgroundEmulator(tone=True, realtime=1.0, keep_audio=False, ssl_context=server_ctx) as emu:
        for rtt in rtts:
            rows: dict[str, list[dict[str, Any]]] = {}
            for _ in range(repeats):
                for name in SUBJECTS:  # interleaved
                    rows.setdefault(name, []).append(await _one(name, emu, client_ctx, rtt, replies))
            out[f"{rtt * 1000:.0f}"] = {
                name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rows.items()
            }
    return out


def run(*, rtts: list[float], replies: int, repeats: int) -> dict[str, Any]:
    return asyncio.run(_all(rtts, replies, repeats))


def report(res: dict[str, Any]) -> list[str]:
    lines = ["## A conversation over TLS with a real round trip, every other reply interrupted", "",
             f"First audio of each reply in round trips, from its first text (median of replies, then of "
             f"repeats). Replies stream in {len(REPLY)} pieces 20 ms apart; the user cuts in "
             f"{BARGE_IN_AFTER * 1000:.0f} ms into every other reply and the next reply starts "
             f"{USER_TURN * 1000:.0f} ms later. Connections: TCP+TLS+WebSocket handshakes over the "
             "whole conversation, prewarm included.", "",
             "| round trip | subject | first reply | after a reply that played out | after a barge-in | replies | connections | most sessions open at once |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rtt, table in res.items():
        for name, row in table.items():
            lines.append(f"| {rtt} ms | {name} | {row['first_reply']:.2f} | {row['after_played_out']:.2f} | "
                         f"{row['after_barge_in']:.2f} | {row['replies']:.0f} | {row['connections']:.0f} | "
                         f"{row.get('peak_sessions', float('nan')):.0f} |")  # fmt: skip
    return [*lines, ""]
