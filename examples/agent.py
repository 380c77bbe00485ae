"""A voice agent that speaks with Grok's voices through ``livekit.plugins.xai_voice``.

Run it as a LiveKit worker (it needs LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
plus XAI_API_KEY for speech and keys for your STT and LLM):

    python examples/agent.py dev

The TTS part runs anywhere: ``python examples/agent.py speak "Hello"`` speaks through
the plugin to ``agent-hello.wav``, against the local emulator when XAI_API_KEY is unset.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import wave

from livekit.agents import Agent, AgentSession, JobContext, WorkerOptions, cli

from livekit.plugins import xai_voice

logger = logging.getLogger("xai-voice-example")


def make_tts() -> xai_voice.TTS:
    return xai_voice.TTS(
        voice="ara",
        language="en",
        sample_rate=24000,
        with_timestamps=True,  # word timings for aligned transcripts
        replace={"LiveKit": "live kit"},  # a pronunciation map, sent once per connection
    )


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a friendly assistant. Keep answers short.")


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    tts = make_tts()
    tts.prewarm()  # open the WebSocket now so the first reply skips the handshake
    session = AgentSession(
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


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "speak":
        asyncio.run(speak_to_file(" ".join(sys.argv[2:]), "agent-hello.wav"))
    else:
        cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))
