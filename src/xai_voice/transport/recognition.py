"""One speech-to-text stream over its own WebSocket to ``/v1/stt``: the core, one reader
task, one watchdog.

The one place where STT core state becomes I/O, with the rules of the TTS side: every
frame is produced by the core (which changes state) immediately before its write, and
writes go out in order under one lock; every wait on the service has a deadline
(``created``, ``result_gap`` while an utterance is being heard, ``final`` after
``finish()``, ``send`` per write, keepalive pings while the service is silent).  Whatever
the service does after its ``transcript.done`` (closes, keeps the connection open for
another turn, or says nothing), the stream ends cleanly: the connection is not reused.

Memory is bounded: audio waits before ``transcript.created`` up to a bound (then ``send``
waits for the session), and events wait for a slow reader up to a bound (then the socket
is not read until the reader catches up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import aiohttp
import numpy as np

from ..audio import alaw_encode, mulaw_encode
from ..errors import (
    LocalProtocolError,
    RemoteProtocolError,
    XaiConnectionError,
    XaiServerError,
    XaiTimeoutError,
    XaiVoiceError,
)
from ..options.stt import STTOptions
from ..protocol.stt import (
    BufferFull,
    Event,
    Final,
    Finished,
    Interim,
    Ready,
    RecognizerConnection,
    ServerError,
    Skipped,
    SpeechEnded,
    SpeechStarted,
    State,
)
from .deadlines import Timeouts, Watchdog
from .http import Service
from .websocket import DEFAULT_MAX_MESSAGE_BYTES, open_websocket

__all__ = ["Recognition", "to_audio_bytes"]

logger = logging.getLogger("xai_voice")

_TEXT = aiohttp.WSMsgType.TEXT
_BINARY = aiohttp.WSMsgType.BINARY
_PING = aiohttp.WSMsgType.PING
_PONG = aiohttp.WSMsgType.PONG
_ERROR = aiohttp.WSMsgType.ERROR
_END = object()


def to_audio_bytes(audio: Any, encoding: str, channels: int = 1) -> bytes:
    """Audio as the wire wants it.  Bytes are taken as already in ``encoding``; a NumPy
    array of samples (int16, or float in -1..1; shaped (frames, channels) when
    multichannel) is converted: 16-bit little-endian PCM, or G.711 when asked."""
    if isinstance(audio, bytes):
        return audio
    if isinstance(audio, (bytearray, memoryview)):
        return bytes(audio)
    arr = np.asarray(audio)
    if arr.ndim == 2:
        if arr.shape[1] != channels:
            raise LocalProtocolError(f"audio has {arr.shape[1]} channels; this stream has {channels}")
        arr = arr.reshape(-1)  # interleaved, frame by frame
    elif arr.ndim != 1:
        raise LocalProtocolError("audio must be bytes, or an array of samples (one or two dimensions)")
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.round(arr * 32767.0), -32768, 32767).astype("<i2")
    elif arr.dtype != np.dtype("<i2"):
        if not np.issubdtype(arr.dtype, np.integer):
            raise LocalProtocolError(f"audio samples of type {arr.dtype} are neither integers nor floats")
        arr = arr.astype("<i2")
    if encoding == "mulaw":
        return mulaw_encode(arr)
    if encoding == "alaw":
        return alaw_encode(arr)
    return arr.tobytes()


class Recognition:
    """One streamed transcription: ``send`` audio, ``finish``, iterate the events.

    Events: ``SpeechStarted``, ``Interim`` (with interim results), ``Final`` (one per
    utterance), ``SpeechEnded``, and last ``Finished`` (then iteration stops).  Sending
    and reading may happen in different tasks; use ``async with`` (or ``aclose()``).
    """

    def __init__(
        self,
        service: Service,
        options: STTOptions,
        timeouts: Timeouts,
        *,
        frame_ms: int = 100,
        max_pending_seconds: float = 10.0,
        max_events: int = 10_000,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._service = service
        self.options = options
        self.timeouts = timeouts
        rate = options.bytes_per_second
        sample = (2 if options.encoding == "pcm" else 1) * options.channels  # one frame of samples
        frame = max(sample, rate * frame_ms // 1000 // sample * sample)
        self.core = RecognizerConnection(
            channels=options.channels, frame_bytes=frame, max_pending=int(rate * max_pending_seconds)
        )
        self._max_events = max_events
        self._max_message_bytes = max_message_bytes
        self._ws: aiohttp.ClientWebSocketResponse[Any] | None = None
        self._transport: asyncio.Transport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._events: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._ready = asyncio.Event()
        self._failure: XaiVoiceError | None = None
        self._ended = False
        self._closed = False
        self._watchdog: Watchdog | None = None
        self._ping_at: float | None = None
        #: the service's id for the session (``transcript.created``) and for the upgrade
        self.session_id: str | None = None
        self.trace_id: str | None = None
        #: frames skipped as harmless
        self.skipped = 0
        #: seconds of audio the service accounted for (``transcript.done``)
        self.duration: float | None = None

    def __repr__(self) -> str:
        return f"<Recognition {self.core.state.value}>"

    async def __aenter__(self) -> Recognition:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def audio_seconds_sent(self) -> float:
        return self.core.audio_sent / self.options.bytes_per_second

    # -- opening -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connection now (otherwise the first ``send`` does)."""
        if self._ws is not None or self._failure is not None:
            return
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(
                self._open(), name="xai-voice-stt-connect"
            )
        try:
            await asyncio.shield(self._connecting)
        except XaiVoiceError as exc:
            self._fail(exc)  # a reader in another task gets it too
            raise

    async def _open(self) -> None:
        if self._closed:
            raise LocalProtocolError("the recognition is closed")
        ws = await open_websocket(
            self._service,
            "stt",
            self.options.query(),
            self.timeouts,
            max_message_bytes=self._max_message_bytes,
            what="speech-to-text upgrade refused",
        )
        if self._closed:  # closed while we were connecting
            await ws.close()
            raise LocalProtocolError("the recognition is closed")
        self._ws = ws
        self._transport = getattr(getattr(ws, "_conn", None), "transport", None)
        response = getattr(ws, "_response", None)
        self.trace_id = response.headers.get("x-trace-id") if response is not None else None
        self._watchdog = Watchdog(self._expired)
        self._watchdog.arm("created", self.timeouts.created)
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name="xai-voice-stt-reader")

    # -- sending -----------------------------------------------------------------------

    async def send(self, audio: Any) -> None:
        """Audio: bytes in the stream's encoding, or a NumPy array of samples."""
        data = to_audio_bytes(audio, self.options.encoding, self.options.channels)
        if not data:
            return
        self._check_open()
        if self._ws is None:
            await self.start()
        while True:
            self._check_open()
            try:
                self.core.send_audio(data)
                break
            except BufferFull:
                await self._wait_ready()  # the session is not ready and the buffer is full
        if self.core.has_frames:  # most calls add to a frame still filling up
            await self._flush()

    async def finish(self) -> None:
        """No more audio; the service finishes the last utterance and ends the stream."""
        if self._failure is not None:
            raise self._failure
        if self.core.state in (State.FINISHING, State.DONE):
            return
        await self.start()
        self.core.finish()  # from here on, transcript.done ends the stream
        if self._watchdog is not None:
            self._watchdog.arm("final", self.timeouts.final)
        await self._flush()

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise LocalProtocolError("cannot send: the recognition is closed")

    async def _wait_ready(self) -> None:
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait((ready,), timeout=self.timeouts.created)
        finally:
            ready.cancel()
        self._check_open()

    async def _flush(self) -> None:
        """Write what the core produced, in order, one writer at a time."""
        async with self._write_lock:
            for frame in self.core.frames():
                await self._write(frame)

    async def _write(self, frame: bytes | str) -> None:
        ws = self._ws
        assert ws is not None and self._watchdog is not None
        if self._failure is not None:
            raise self._failure
        self._watchdog.arm("send", self.timeouts.send)
        err: XaiVoiceError | None = None
        try:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            err = XaiConnectionError(f"connection lost while sending: {type(exc).__name__}")
        finally:
            self._watchdog.disarm("send")
        if err is not None:
            self._fail(err)
        if self._failure is not None:
            raise self._failure

    # -- receiving ---------------------------------------------------------------------

    def __aiter__(self) -> Recognition:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._events:
                item = self._events.popleft()
                room = self._room
                if room is not None and not room.done() and len(self._events) < self._max_events:
                    room.set_result(None)
                if item is _END:
                    self._events.appendleft(_END)  # stays the end for later reads
                    raise StopAsyncIteration
                if isinstance(item, BaseException):
                    self._events.appendleft(item)
                    raise item
                return item  # type: ignore[no-any-return]
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def events(self) -> list[Event]:
        """Every event until the end (call after ``finish()``)."""
        return [event async for event in self]

    def _push(self, item: Any) -> None:
        self._events.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        core = self.core
        wd = self._watchdog
        assert wd is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.timeouts.keepalive)
                except asyncio.TimeoutError:
                    self._ping_at = loop.time()
                    wd.arm("pong", self.timeouts.pong)
                    await ws.ping()
                    continue
                wd.disarm("pong")
                mtype = msg.type
                if mtype is _TEXT:
                    events = core.receive_text(msg.data)
                elif mtype is _BINARY:
                    events = core.receive_binary(msg.data)
                elif mtype is _PING:
                    await ws.pong(msg.data)
                    continue
                elif mtype is _PONG:
                    continue
                elif mtype is _ERROR:
                    exc = msg.data
                    if isinstance(exc, aiohttp.WebSocketError) and exc.code == 1009:
                        raise RemoteProtocolError(
                            f"the server sent a frame larger than the {self._max_message_bytes} byte limit"
                        )
                    raise XaiConnectionError(f"connection failed: {type(exc).__name__}")
                else:  # CLOSE, CLOSING, CLOSED
                    if core.done:
                        break
                    raise XaiConnectionError(
                        f"the service closed the stream (code {ws.close_code}) before its final result"
                    )
                ready = False
                for event in events:
                    ready = ready or isinstance(event, Ready)
                    self._on_event(event)
                if ready:
                    await self._flush()  # the audio held before the session was ready
                if core.done:
                    break
                if len(self._events) >= self._max_events:
                    self._room = loop.create_future()
                    await self._room
                    self._room = None
        except XaiVoiceError as exc:
            exc.args = tuple(self._service.endpoint.scrub(a) if isinstance(a, str) else a for a in exc.args)
            self._fail(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an aiohttp surprise: never leave a waiter
            logger.debug("xai-voice stt reader failed", exc_info=True)
            self._fail(XaiConnectionError(f"connection failed: {type(exc).__name__}"))
            return
        self._end()
        # the stream is over: the connection is not reused, whatever the service does next
        await self._close_ws()

    def _on_event(self, event: Event) -> None:
        wd = self._watchdog
        assert wd is not None
        if isinstance(event, Ready):
            wd.disarm("created")
            self.session_id = event.id
            self._ready.set()
            return
        if isinstance(event, Skipped):
            self.skipped += 1
            logger.debug("xai-voice skipped a frame: %s", event.reason)
            return
        if isinstance(event, ServerError):
            message = self._service.endpoint.scrub(event.message)
            suffix = (
                f" [trace id {event.trace_id}]" if event.trace_id and event.trace_id not in message else ""
            )
            raise XaiServerError(f"the service reported an error: {message}{suffix}", trace_id=event.trace_id)
        if isinstance(event, (SpeechStarted, Interim)):
            wd.arm("result_gap", self.timeouts.result_gap)
        elif isinstance(event, (Final, SpeechEnded)):
            wd.disarm("result_gap")
        elif isinstance(event, Finished):
            wd.cancel()
            self.duration = event.duration
        self._push(event)

    def _expired(self, phase: str, seconds: float) -> None:
        what = {
            "created": "waiting for transcript.created",
            "result_gap": "waiting for more of an utterance the service had started to hear",
            "final": "waiting for transcript.done after audio.done",
            "send": "writing to the socket (it is not draining)",
            "pong": "waiting for the answer to a keepalive ping",
        }.get(phase, phase)
        if phase == "pong":
            self._fail(
                XaiConnectionError(
                    f"no answer to a keepalive ping within {seconds:g} s; the connection is dead"
                )
            )
            return
        self._fail(XaiTimeoutError(phase, seconds, f"no answer within {seconds:g} s while {what}"))

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._push(_END)

    def _fail(self, exc: XaiVoiceError) -> None:
        if self._failure is not None or self._ended:
            return
        self._failure = exc
        self.core.close(str(exc))
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._ended = True
        self._push(exc)
        self._ready.set()  # wake a sender waiting for the session: it sees the failure
        if self._reader is not None and asyncio.current_task() is not self._reader:
            self._reader.cancel()
        if self._transport is not None:
            self._transport.abort()  # also wakes a write stuck waiting to drain
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    async def _close_ws(self) -> None:
        """Close the socket, within ``Timeouts.clear``, then abort it whatever happened."""
        ws = self._ws
        if ws is None:
            return
        if not ws.closed:
            task = asyncio.get_running_loop().create_task(ws.close(), name="xai-voice-stt-close")
            await asyncio.wait((task,), timeout=self.timeouts.clear)
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._transport is not None:
            self._transport.abort()

    # -- ending ------------------------------------------------------------------------

    async def cancel(self) -> None:
        """Stop now: the connection is closed; no more events come."""
        if self._ended:
            return
        self._fail(XaiConnectionError("the recognition was cancelled"))

    async def aclose(self) -> None:
        """Close the connection (cancelling the stream if it has not ended)."""
        self._closed = True
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        if not self._ended:
            self._fail(XaiConnectionError("the recognition was closed"))
        reader = self._reader
        if reader is not None and not reader.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((reader,), timeout=self.timeouts.clear + 0.5)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._close_ws()
