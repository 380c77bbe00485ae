"""A voice agent that hears and speaks through ``livekit.plugins.xai_voice``: xAI speech
to text for the user's words, a Grok voice for its answers.

As a LiveKit agent it needs a LiveKit server (LIVEKIT_URL, LIVEKIT_API_KEY,
LIVEKIT_API_SECRET), XAI_API_KEY, and an LLM of your choice; run it with the LiveKit CLI
or livekit-agents' own entry point (the ``dev`` subcommand of the old Python CLI is
deprecated in livekit-agents 1.8):

    lk agent dev examples/agent.py
    python -m livekit.agents start examples/agent.py --dev

Its ears and voice run anywhere, with no server and no key (against the local emulator
when XAI_API_KEY is unset):

    python examples/agent.py speak "Hello"      # the TTS plugin into agent-hello.wav
    python examples/agent.py hear agent-hello.wav   # the STT plugin, one line per utterance
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from contextlib import AsyncExitStack

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, utils

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


def make_stt() -> xai_voice.STT:
    return xai_voice.STT(
        language="en",
        endpointing=300,  # milliseconds of silence that end an utterance
        keyterm=["LiveKit"],  # words to listen for
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
        stt=make_stt(),
        tts=tts,
        # llm=..., vad=...: any livekit plugins you use
        use_tts_aligned_transcript=True,
    )
    await session.start(agent=Assistant(), room=ctx.room)
    await session.say("Hello! I speak with a Grok voice. How can I help?")


async def _service(stack: AsyncExitStack) -> None:
    """The real service with XAI_API_KEY; otherwise the local emulator."""
    if not os.environ.get("XAI_API_KEY"):
        from xai_voice.emulator import Emulator

        emu = await stack.enter_async_context(Emulator())
        os.environ.update(XAI_API_KEY=emu.api_key, XAI_BASE_URL=emu.url)
        print(f"no XAI_API_KEY: using the local emulator at {emu.url}", file=sys.stderr)
    await stack.enter_async_context(utils.http_context.open())


async def speak_to_file(text: str, path: str) -> None:
    """The TTS plugin without a room: push text, read frames, write a WAV."""
    async with AsyncExitStack() as stack:
        await _service(stack)
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


async def hear_file(path: str) -> None:
    """The STT plugin without a room: push a 16-bit WAV's frames as a room would (20 ms
    at a time), print each final transcript."""
    from livekit.agents import stt

    from livekit import rtc

    with wave.open(path) as w:
        rate, channels, pcm = w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())
    async with AsyncExitStack() as stack:
        await _service(stack)
        ears = make_stt()
        stream = ears.stream()
        step = rate // 50 * channels * 2
        for i in range(0, len(pcm), step):
            piece = pcm[i : i + step]
            stream.push_frame(rtc.AudioFrame(piece, rate, channels, len(piece) // 2 // channels))
        stream.end_input()
        async for event in stream:
            if event.type is stt.SpeechEventType.FINAL_TRANSCRIPT:
                print(event.alternatives[0].text)
        await stream.aclose()
        await ears.aclose()


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "speak":
        asyncio.run(speak_to_file(" ".join(argv[1:]), "agent-hello.wav"))
        return 0
    if len(argv) == 2 and argv[0] == "hear":
        if not os.path.isfile(argv[1]):
            print(f"agent.py: {argv[1]}: no such file", file=sys.stderr)
            return 2
        asyncio.run(hear_file(argv[1]))
        return 0
    print(
        'usage: python examples/agent.py speak "Some text"   (speech only, no LiveKit server)\n'
        "       python examples/agent.py hear FILE.wav        (speech to text only)\n"
        "       lk agent dev examples/agent.py                (the agent; needs LIVEKIT_URL, "
        "LIVEKIT_API_KEY, LIVEKIT_API_SECRET)",
        file=sys.stderr,
    )
    if argv and not os.environ.get("LIVEKIT_URL"):
        print("agent.py: LIVEKIT_URL is not set: the agent needs a LiveKit server", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
