"""What an ``AgentSession`` needs around our plugins to run in a test, with no room and no
network beyond loopback: an LLM that says what the test scripts, audio output that records
(and plays in real time when asked), a transcript sink, and an audio input.

livekit-agents' own tests have such fakes in its repository, not in the wheel; these are
ours, written against the 1.8 ``voice.io`` and ``llm`` interfaces.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from livekit.agents import Agent, AgentSession, llm, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities, TextOutput

from livekit import rtc

__all__ = ["PlaybackOutput", "ScriptedLLM", "SilentInput", "TranscriptOutput", "start_session"]


class ScriptedLLM(llm.LLM):
    """Answers each turn with the next scripted reply, streamed a few characters at a
    time (``delay`` between pieces, like tokens)."""

    def __init__(self, *replies: str, piece: int = 6, delay: float = 0.0) -> None:
        super().__init__()
        self.replies = list(replies)
        self.piece = piece
        self.delay = delay
        self.calls = 0

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return _ScriptedStream(self, reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, reply: str, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._owner = owner
        self._reply = reply

    async def _run(self) -> None:
        n = self._owner.piece
        for i in range(0, len(self._reply), n):
            if self._owner.delay:
                await asyncio.sleep(self._owner.delay)
            piece = self._reply[i : i + n]
            self._event_ch.send_nowait(
                llm.ChatChunk(id="scripted", delta=llm.ChoiceDelta(role="assistant", content=piece))
            )


class PlaybackOutput(AudioOutput):
    """Records every frame.  With ``realtime`` a segment "plays" for its duration after
    its first frame (barge-in then has something to interrupt); otherwise at once."""

    def __init__(self, *, realtime: bool = False) -> None:
        super().__init__(label="PlaybackOutput", capabilities=AudioOutputCapabilities(pause=False))
        self.realtime = realtime
        self.frames: list[rtc.AudioFrame] = []
        #: one (audio seconds, played seconds, interrupted) per segment
        self.segments: list[tuple[float, float, bool]] = []
        self._started: float | None = None
        self._seconds = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)  # counts the segment
        self.frames.append(frame)
        if self._started is None:
            self._started = time.monotonic()
            self.on_playback_started(created_at=time.time())
        self._seconds += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._started is None:
            return
        delay = max(0.0, self._seconds - (time.monotonic() - self._started)) if self.realtime else 0.0
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._finished, self._seconds, False)

    def clear_buffer(self) -> None:
        if self._started is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        played = min(self._seconds, time.monotonic() - self._started) if self.realtime else self._seconds
        self._finished(played, True)

    def _finished(self, played: float, interrupted: bool) -> None:
        self._timer = None
        self.segments.append((self._seconds, played, interrupted))
        self._seconds, self._started = 0.0, None
        self.on_playback_finished(playback_position=played, interrupted=interrupted)

    def audio(self, first: int = 0) -> bytes:
        return b"".join(bytes(f.data) for f in self.frames[first:])


class TranscriptOutput(TextOutput):
    def __init__(self) -> None:
        super().__init__(label="TranscriptOutput", next_in_chain=None)
        self.current = ""
        self.messages: list[str] = []

    async def capture_text(self, text: str) -> None:
        self.current += text

    def flush(self) -> None:
        self.messages.append(self.current)
        self.current = ""


class SilentInput(AudioInput):
    """Microphone audio pushed by the test (silence by default)."""

    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__(label="SilentInput")
        self.sample_rate = sample_rate
        self._ch = utils.aio.Chan[rtc.AudioFrame]()

    async def __anext__(self) -> rtc.AudioFrame:
        return await self._ch.__anext__()

    def push(self, pcm: bytes) -> None:
        n = len(pcm) // 2
        self._ch.send_nowait(rtc.AudioFrame(pcm, self.sample_rate, 1, n))

    def close(self) -> None:
        self._ch.close()


FAST_TURNS: dict[str, Any] = {
    # an explicit turn detection keeps the local turn-detector model out of the test
    "turn_detection": "manual",
    "endpointing": {"min_delay": 0.0, "max_delay": 0.5},
    "preemptive_generation": {"enabled": False},
    "interruption": {"resume_false_interruption": False, "false_interruption_timeout": None},
}


async def start_session(
    *,
    tts: Any = None,
    stt: Any = None,
    llm: Any = None,
    realtime: bool = False,
    turn_handling: dict[str, Any] | None = None,
    tts_conn_options: APIConnectOptions | None = None,
    instructions: str = "You are a test agent.",
) -> tuple[AgentSession, PlaybackOutput, TranscriptOutput, SilentInput]:
    """An ``AgentSession`` with no VAD (nothing local to load), the test's I/O attached,
    started with a plain agent."""
    options = SessionConnectOptions(
        tts_conn_options=tts_conn_options or APIConnectOptions(max_retry=0, timeout=3.0)
    )
    session: AgentSession = AgentSession(
        llm=llm,
        tts=tts,
        stt=stt,
        vad=None,
        turn_handling=turn_handling or FAST_TURNS,  # type: ignore[arg-type]
        aec_warmup_duration=None,
        session_close_transcript_timeout=0.1,
        user_away_timeout=None,
        conn_options=options,
    )
    out, transcript, mic = PlaybackOutput(realtime=realtime), TranscriptOutput(), SilentInput()
    session.input.audio = mic
    session.output.audio = out
    session.output.transcription = transcript
    await session.start(agent=Agent(instructions=instructions))
    return session, out, transcript, mic
