"""One WebSocket connection to ``/v1/tts``: the protocol core, one reader task, one
watchdog.

The one place where core state becomes I/O.  Two rules make it safe under any task
order:

* every client frame is produced by the core (which changes state) *before* the write is
  awaited, and aiohttp puts an uncompressed frame on the transport before its first
  await, so frames hit the wire in the order they were produced;
* every wait on the service is covered by a watchdog deadline that fails the utterance
  with :class:`XaiTimeoutError` and tears the connection down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import aiohttp

from ..errors import (
    RemoteProtocolError,
    XaiConnectionError,
    XaiServerError,
    XaiStatusError,
    XaiTimeoutError,
    XaiVoiceError,
)
from ..options import TTSOptions
from ..protocol import (
    AudioChunk,
    Cleared,
    ClientConnection,
    ServerError,
    SessionRejected,
    SessionUpdated,
    State,
    UtteranceDone,
)
from .deadlines import Timeouts, Watchdog
from .endpoint import Endpoint
from .inbox import Inbox

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "WsConnection", "status_error"]

logger = logging.getLogger("xai_voice")

#: Largest server frame accepted.  An audio.delta of 1 s of 48 kHz PCM is ~128 KiB of
#: base64; 8 MiB leaves room for anything sane and stops a hostile server early.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_HINTS = {
    400: "the service rejected the request options",
    401: "the API key was refused; check XAI_API_KEY",
    403: "the API key is not allowed to use text-to-speech",
    404: "unknown voice (list them with `xai-voice voices`)",
    408: "the service timed out reading the request",
    429: "too many concurrent sessions or requests (xAI allows 50 per team); retry later",
}


def status_error(status: int, what: str, detail: str | None = None) -> XaiStatusError:
    """A status error with a message a user can act on."""
    hint = _HINTS.get(status) or (
        "the service failed; retry later" if status >= 500 else "the request was refused"
    )
    message = f"{what}: HTTP {status}: {hint}"
    if detail:
        message += f" ({detail})"
    return XaiStatusError(status, message, body=detail)


class WsConnection:
    """A live connection, handed out by the pool to one utterance at a time."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse[Any],
        *,
        key: str,
        timeouts: Timeouts,
        endpoint: Endpoint,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.core = ClientConnection()
        self.key = key
        self.timeouts = timeouts
        self.created_at = loop.time()
        self.utterances = 0
        #: the pronunciation map the server holds for this connection
        self.replace: dict[str, str] = {}
        self._ws = ws
        self._endpoint = endpoint
        self._max_message_bytes = max_message_bytes
        self._writes = 0
        self._inbox: Inbox | None = None
        self._updates: deque[asyncio.Future[None]] = deque()
        self._failure: XaiVoiceError | None = None
        self._watchdog = Watchdog(self._expired)
        self._closing: asyncio.Task[None] | None = None
        self._reader = loop.create_task(self._read_loop(), name="xai-voice-ws-reader")

    def __repr__(self) -> str:
        return f"<WsConnection {self.core.state.value} utterances={self.utterances}>"

    # -- opening ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        options: TTSOptions,
        timeouts: Timeouts,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        ssl: Any = True,
    ) -> WsConnection:
        url = endpoint.ws_url("tts")
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(
                    url,
                    params=options.query(),
                    headers=endpoint.headers,
                    autoping=True,
                    autoclose=True,
                    compress=0,  # uncompressed frames are written before any await
                    max_msg_size=max_message_bytes,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeouts.clear),
                    ssl=ssl,
                ),
                timeouts.connect,
            )
        except asyncio.TimeoutError:
            raise XaiTimeoutError(
                "connect", timeouts.connect, f"could not connect to {url} within "
                f"{timeouts.connect:g} s"
            ) from None  # fmt: skip
        except aiohttp.WSServerHandshakeError as exc:
            # never chain: aiohttp's exception holds the request headers, key included
            raise status_error(exc.status, "WebSocket upgrade refused") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise XaiConnectionError(
                f"could not connect to {url}: {endpoint.scrub(exc) or type(exc).__name__}"
            ) from None
        return cls(
            ws,
            key=options.connection_key(),
            timeouts=timeouts,
            endpoint=endpoint,
            max_message_bytes=max_message_bytes,
        )

    # -- state -----------------------------------------------------------------------

    @property
    def failure(self) -> XaiVoiceError | None:
        return self._failure

    @property
    def usable(self) -> bool:
        """Idle, clean and open: safe to hand to a new utterance."""
        return (
            self._failure is None
            and self._closing is None
            and self.core.reusable
            and not self._ws.closed
            and not self._reader.done()
        )

    def age(self) -> float:
        return asyncio.get_running_loop().time() - self.created_at

    # -- the utterance in flight ------------------------------------------------------

    def begin(self, inbox: Inbox, timeouts: Timeouts | None = None) -> None:
        """Attach the inbox that receives the next utterance's audio; ``timeouts`` (if
        given) govern this utterance's waits."""
        if self._failure is not None:
            raise self._failure
        if not self.core.reusable or self._inbox is not None:
            raise RuntimeError(f"{self!r} is not idle")
        self._inbox = inbox
        if timeouts is not None:
            self.timeouts = timeouts
        self.utterances += 1

    def detach(self) -> None:
        self._inbox = None

    async def send_text(self, text: str) -> None:
        frames = self.core.send_text(text)
        for i, frame in enumerate(frames):
            if i and self.core.state is not State.SENDING:
                # cleared (or failed) while an earlier piece was draining: the rest of
                # this text belongs to a cancelled utterance and must not follow the
                # text.clear, or the server would start a new utterance with it
                return
            await self._write(frame)

    async def finish(self) -> None:
        frame = self.core.finish()  # from here on audio.done completes the utterance
        inbox = self._inbox
        wd = self._watchdog
        wd.arm("completion", self.timeouts.completion)
        if inbox is not None and inbox.chunks_received:
            wd.arm("chunk_gap", self.timeouts.chunk_gap)
        else:
            wd.arm("first_audio", self.timeouts.first_audio)
        await self._write(frame)

    async def clear(self) -> None:
        """Send ``text.clear``; the inbox ends as CLEARED when ``audio.clear`` arrives, or
        FAILED (and the connection is dropped) if it does not arrive in time."""
        frame = self.core.clear()
        if frame is None:
            return
        wd = self._watchdog
        wd.disarm("completion", "first_audio", "chunk_gap")
        wd.arm("clear", self.timeouts.clear)
        await self._write(frame)

    async def update_session(self, replace: Mapping[str, str]) -> None:
        """Send a pronunciation map and wait until the server confirms it."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        frame = self.core.update_session(replace)
        self._updates.append(fut)
        self._watchdog.arm("session_update", self.timeouts.session_update)
        await self._write(frame)
        await fut
        self.replace = dict(replace)

    # -- I/O -------------------------------------------------------------------------

    async def _write(self, frame: str) -> None:
        if self._failure is not None:
            raise self._failure
        wd = self._watchdog
        self._writes += 1
        name = f"send:{self._writes}"  # one deadline per write: concurrent writes each have theirs
        wd.arm(name, self.timeouts.send)
        try:
            await self._ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            self._fail(XaiConnectionError(f"connection lost while sending: {type(exc).__name__}"))
            assert self._failure is not None
            raise self._failure from None
        finally:
            wd.disarm(name)
        if self._failure is not None:  # the write went out, but the connection died meanwhile
            raise self._failure

    async def _read_loop(self) -> None:
        ws = self._ws
        core = self.core
        wd = self._watchdog
        text_type = aiohttp.WSMsgType.TEXT
        finishing = State.FINISHING
        try:
            while True:
                msg = await ws.receive()
                if msg.type is text_type:
                    event = core.receive_text(msg.data)
                    if type(event) is AudioChunk:
                        inbox = self._inbox
                        assert inbox is not None
                        inbox.push(event)
                        if core.state is finishing:
                            wd.disarm("first_audio")
                            wd.arm("chunk_gap", self.timeouts.chunk_gap)
                        if inbox.full:
                            # the consumer is behind: stop reading, and stop the clock,
                            # until it catches up
                            wd.disarm("chunk_gap", "completion")
                            await inbox.wait_for_room()
                            if core.state is finishing:
                                wd.arm("chunk_gap", self.timeouts.chunk_gap)
                                wd.arm("completion", self.timeouts.completion)
                        # this frame lives as long as the connection: a finished
                        # utterance's inbox (and its sink's closure) must not
                        del inbox, event
                    elif event is not None:
                        self._on_event(event)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    core.receive_binary(msg.data)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    exc = msg.data
                    if isinstance(exc, aiohttp.WebSocketError) and exc.code == 1009:
                        raise RemoteProtocolError(
                            f"the server sent a frame larger than the {self._max_message_bytes} byte limit"
                        )
                    raise XaiConnectionError(
                        f"connection failed: {self._endpoint.scrub(exc) or type(exc).__name__}"
                    )
                else:  # CLOSE, CLOSING, CLOSED
                    code = ws.close_code
                    if self._inbox is None and not self._updates:
                        raise XaiConnectionError(f"the service closed the idle connection ({code})")
                    raise XaiConnectionError(
                        f"the service closed the connection during an utterance (code {code})"
                    )
        except XaiVoiceError as exc:
            # remote text (a frame preview, an error message) may echo anything back,
            # the key included
            exc.args = tuple(self._endpoint.scrub(a) if isinstance(a, str) else a for a in exc.args)
            self._fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an aiohttp surprise: never leave a waiter
            logger.debug("xai-voice reader failed", exc_info=True)
            self._fail(XaiConnectionError(f"connection failed: {type(exc).__name__}"))

    def _on_event(self, event: object) -> None:
        wd = self._watchdog
        inbox = self._inbox
        if isinstance(event, UtteranceDone):
            wd.disarm("completion", "first_audio", "chunk_gap")
            self._inbox = None
            if inbox is not None:
                inbox.finish(event.trace_id)
        elif isinstance(event, Cleared):
            wd.disarm("clear")
            self._inbox = None
            if inbox is not None:
                inbox.cleared()
        elif isinstance(event, SessionUpdated):
            self._answer_update(None)
        elif isinstance(event, SessionRejected):
            message = self._endpoint.scrub(event.message)
            self._answer_update(XaiServerError(f"pronunciation map refused: {message}"))
        elif isinstance(event, ServerError):
            err = XaiServerError(f"the service reported an error: {self._endpoint.scrub(event.message)}")
            self._fail(err)

    def _answer_update(self, exc: XaiVoiceError | None) -> None:
        if self._updates:
            fut = self._updates.popleft()
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)
        if not self._updates:
            self._watchdog.disarm("session_update")

    def _expired(self, phase: str, seconds: float) -> None:
        phase = phase.partition(":")[0]
        what = {
            "first_audio": "waiting for the first audio after text.done",
            "chunk_gap": "waiting for more audio",
            "completion": "waiting for audio.done",
            "clear": "waiting for audio.clear after text.clear",
            "session_update": "waiting for session.updated",
            "send": "writing to the socket (it is not draining)",
        }.get(phase, phase)
        self._fail(XaiTimeoutError(phase, seconds, f"no answer within {seconds:g} s while {what}"))

    def _fail(self, exc: XaiVoiceError, *, abort: bool = True) -> None:
        """Fail everything waiting on this connection, once.  The connection is dead:
        unless this is an orderly close, the socket is aborted at once, which also wakes
        a write stuck waiting to drain."""
        if self._failure is not None:
            return
        self._failure = exc
        self.core.close(str(exc))
        self._watchdog.cancel()
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.fail(exc)
        while self._updates:
            fut = self._updates.popleft()
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: nobody may be awaiting it any more
        if asyncio.current_task() is not self._reader:
            self._reader.cancel()
        if abort:
            self._abort()

    def _abort(self) -> None:
        # aiohttp has no public abort for a client WebSocket; its connection does
        conn = getattr(self._ws, "_conn", None)
        transport = getattr(conn, "transport", None)
        if transport is not None:
            transport.abort()

    # -- closing ---------------------------------------------------------------------

    def close_soon(self) -> asyncio.Task[None]:
        """Start closing (idempotent); the returned task ends when the socket is closed."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(), name="xai-voice-ws-close")
        return self._closing

    async def aclose(self) -> None:
        await asyncio.shield(self.close_soon())

    async def _close(self) -> None:
        if self._failure is None:
            self._fail(XaiConnectionError("the connection was closed"), abort=False)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        with contextlib.suppress(Exception):
            # bounded by ClientWSTimeout.ws_close (= timeouts.clear)
            await self._ws.close()
