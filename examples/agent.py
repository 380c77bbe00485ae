"""A voice agent that speaks with a Grok voice through ``livekit.plugins.xai_voice``.

As a LiveKit agent it needs a LiveKit server (LIVEKIT_URL, LIVEKIT_API_KEY,
LIVEKIT_API_SECRET), XAI_API_KEY, and an LLM of your choice; run it with the LiveKit CLI
or livekit-agents' own entry point (the ``dev`` subcommand of the old Python CLI is
deprecated in livekit-agents 1.8):

    lk agent dev examples/agent.py
    python -m livekit.agents start examples/agent.py --dev

Its speech runs anywhere, with no server and no key: ``python examples/agent.py speak
"Hello"`` speaks through the plugin into ``agent-hello.wav``, against the local emulator
when XAI_API_KEY is unset.
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave

from livekit.agents import Agent, AgentServer, AgentSession, JobContext

from livekit.plugins import xai_voice

server = AgentServer()


def make_tts() -> xai_voice.TTS:
    return xai_voice.TTS(
        voice="ara",
        language="en",
        sample_rate=24000,
        with_timestamps=True,  # word timings for aligned transcripts
        replace={"LiveKit": "live kit"},  # a pronunciation map
    )


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a friendly assistant. Keep answers short.")


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    tts = make_tts()
    tts.prewarm()  # open the WebSocket now so the first reply skips the handshake
    session: AgentSession = AgentSession(
        tts=tts,
        # stt=..., llm=..., vad=...: any livekit plugins you use
        use_tts_aligned_transcript=True,
    )
    await session.start(agent=Assistant(), room=ctx.room)
    await session.say("Hello! I speak with a Grok voice. How can I help?")


async def speak_to_file(text: str, path: str) -> None:
    """The plugin without a room: push text, read frames, write a WAV."""
    from contextlib import AsyncExitStack

    from livekit.agents import utils

    async with AsyncExitStack() as stack:
        if not os.environ.get("XAI_API_KEY"):
            from xai_voice.emulator import Emulator

            emu = await stack.enter_async_context(Emulator())
            os.environ.update(XAI_API_KEY=emu.api_key, XAI_BASE_URL=emu.url)
            print(f"no XAI_API_KEY: speaking through the local emulator at {emu.url}", file=sys.stderr)
        await stack.enter_async_context(utils.http_context.open())
        tts = make_tts()
        stream = tts.stream()
        stream.push_text(text)
        stream.end_input()
        with wave.open(path, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(tts.sample_rate)
            async for event in stream:
                out.writeframes(bytes(event.frame.data))
        await stream.aclose()
        await tts.aclose()
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "speak":
        asyncio.run(speak_to_file(" ".join(argv[1:]), "agent-hello.wav"))
        return 0
    print(
        'usage: python examples/agent.py speak "Some text"   (speech only, no LiveKit server)\n'
        "       lk agent dev examples/agent.py                (the agent; needs LIVEKIT_URL, "
        "LIVEKIT_API_KEY, LIVEKIT_API_SECRET)",
        file=sys.stderr,
    )
    if argv and not os.environ.get("LIVEKIT_URL"):
        print("agent.py: LIVEKIT_URL is not set: the agent needs a LiveKit server", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
