"""One WebSocket connection to ``/v1/tts``: the protocol core, one reader task, one
watchdog, and the liveness checks that let a pooled connection be trusted.

The one place where TTS core state becomes I/O.  The rules that make it safe under any
task order:

* every client frame is produced by the core (which changes state, and checks that the
  utterance producing it still owns the connection) *immediately* before its write, and
  aiohttp puts an uncompressed frame on the transport before its first await, so frames
  hit the wire in the order they were produced and never on behalf of a former owner;
* every wait on the service is covered by a watchdog deadline that fails the utterance
  with :class:`XaiTimeoutError` (or, for liveness, :class:`XaiConnectionError`) and tears
  the connection down;
* an idle connection is pinged after ``Timeouts.keepalive`` of silence and dropped if no
  pong comes; a reused one is pinged as it is handed out and, if nothing at all comes
  back within a few round trips, taken for dead so the utterance can move to a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import aiohttp

from ..errors import (
    RemoteProtocolError,
    XaiConnectionError,
    XaiServerError,
    XaiTimeoutError,
    XaiVoiceError,
)
from ..options import TTSOptions
from ..protocol.tts import (
    AudioChunk,
    Cleared,
    ClientConnection,
    ServerError,
    SessionRejected,
    SessionUpdated,
    Skipped,
    State,
    UtteranceDone,
    split_text,
)
from .deadlines import DeadlinePassed, Timeouts, Watchdog, within
from .endpoint import Endpoint
from .http import Service, connection_error, explain_body, refusal_body, status_error

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SessionUpdate", "WsConnection", "open_websocket"]

logger = logging.getLogger("xai_voice")

#: Largest server frame accepted.  An audio.delta of 1 s of 48 kHz PCM is ~128 KiB of
#: base64; 8 MiB leaves room for anything sane and stops a hostile server early.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

#: a connection heard from this recently needs no ping before it is reused
_FRESH = 1.0
_TEXT = aiohttp.WSMsgType.TEXT
_BINARY = aiohttp.WSMsgType.BINARY
_PING = aiohttp.WSMsgType.PING
_PONG = aiohttp.WSMsgType.PONG
_ERROR = aiohttp.WSMsgType.ERROR


class SessionUpdate(Enum):
    """How a ``session.update`` ended."""

    CONFIRMED = "confirmed"
    REFUSED = "refused"
    UNANSWERED = "unanswered"


async def open_websocket(
    service: Service,
    path: str,
    params: Any,
    timeouts: Timeouts,
    *,
    max_message_bytes: int,
    what: str,
    voice: str | None = None,
) -> aiohttp.ClientWebSocketResponse[Any]:
    """The upgrade, under the connect deadline, with every failure typed.  A socket that
    opens after we stopped waiting (deadline or cancellation) is closed, never leaked.
    Errors are raised outside any ``except`` block: aiohttp's exceptions hold the request
    headers, the key included, and must not ride along as ``__context__``."""
    endpoint = service.endpoint
    url = endpoint.ws_url(path)

    def dispose(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
        asyncio.get_running_loop().create_task(ws.close(), name="xai-voice-ws-dispose")

    err: XaiVoiceError
    try:
        return await within(
            _upgrade(service, url, params, timeouts, max_message_bytes, what, voice),
            timeouts.connect,
            dispose=dispose,
            name="xai-voice-ws-upgrade",
        )
    except DeadlinePassed:
        err = XaiTimeoutError(
            "connect", timeouts.connect, f"could not connect to {url} within {timeouts.connect:g} s"
        )
    raise err


async def _upgrade(
    service: Service,
    url: str,
    params: Any,
    timeouts: Timeouts,
    max_message_bytes: int,
    what: str,
    voice: str | None,
) -> aiohttp.ClientWebSocketResponse[Any]:
    endpoint = service.endpoint
    err: XaiVoiceError
    refusal_body.set(None)
    try:
        return await service.session().ws_connect(
            url,
            params=params,
            headers=endpoint.headers,
            autoping=False,  # the reader answers pings and watches pongs itself
            autoclose=True,
            compress=0,  # uncompressed frames are written before any await
            max_msg_size=max_message_bytes,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeouts.clear),
            ssl=service.ssl,
        )
    except aiohttp.WSServerHandshakeError as exc:
        detail = explain_body(refusal_body.get(), endpoint)
        err = status_error(exc.status, what, url, detail=detail, headers=exc.headers, voice=voice)
    except (aiohttp.ClientError, OSError, RuntimeError) as exc:
        err = connection_error(exc, f"could not connect to {url}", endpoint)
    raise err


class WsConnection:
    """A live connection, handed out by the pool to one utterance at a time.

    Ownership is the core's: :meth:`begin` returns the epoch that every later call of
    that utterance names.
    """

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
        self._loop = loop
        self.core = ClientConnection()
        self.key = key
        self.timeouts = timeouts
        self.created_at = loop.time()
        #: when a frame last came in (any frame proves the connection alive)
        self.last_heard = self.created_at
        #: when it last went back to the pool (kept by the pool)
        self.idle_since = self.created_at
        #: round trip of the last answered ping (None until one is answered)
        self.rtt: float | None = None
        self.utterances = 0
        #: frames skipped as harmless (unknown types, binary frames, answers to nothing)
        self.skipped = 0
        #: the pronunciation map the server holds for this connection
        self.replace: dict[str, str] = {}
        #: called (by the reader) when the connection dies while nobody is using it
        self.on_dead: Callable[[WsConnection], None] | None = None
        self._ws = ws
        self._transport: asyncio.Transport | None = getattr(getattr(ws, "_conn", None), "transport", None)
        self._endpoint = endpoint
        self._max_message_bytes = max_message_bytes
        self._writes = 0
        self._inbox: Any = None
        self._updates: deque[asyncio.Future[SessionUpdate]] = deque()
        self._failure: XaiVoiceError | None = None
        self._ping_sent_at: float | None = None
        self._watchdog = Watchdog(self._expired)
        self._closing: asyncio.Task[None] | None = None
        self._reader = loop.create_task(self._read_loop(), name="xai-voice-ws-reader")

    def __repr__(self) -> str:
        return f"<WsConnection {self.core.state.value} utterances={self.utterances}>"

    @classmethod
    async def connect(
        cls,
        service: Service,
        options: TTSOptions,
        timeouts: Timeouts,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> WsConnection:
        ws = await open_websocket(
            service,
            "tts",
            options.query(),
            timeouts,
            max_message_bytes=max_message_bytes,
            what="WebSocket upgrade refused",
            voice=options.voice,
        )
        return cls(
            ws,
            key=options.connection_key(),
            timeouts=timeouts,
            endpoint=service.endpoint,
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
        return self._loop.time() - self.created_at

    @property
    def watchdog_entries(self) -> int:
        """Deadlines currently armed (constant per connection, whatever it has done)."""
        return len(self._watchdog)

    # -- the utterance in flight ------------------------------------------------------

    async def begin(self, inbox: Any, timeouts: Timeouts | None = None, *, probe: bool = False) -> int:
        """Own the connection for one utterance whose audio goes to ``inbox``; returns its
        epoch.  With ``probe`` (a connection taken from the pool), a connection not heard
        from lately is pinged: if nothing comes back within a few round trips the
        connection is failed with :class:`XaiConnectionError`, early enough for the
        utterance to move to a new one."""
        if self._failure is not None:
            raise self._failure
        epoch = self.core.begin()
        self._inbox = inbox
        self.on_dead = None
        if timeouts is not None:
            self.timeouts = timeouts
        self.utterances += 1
        if probe and self.rtt is not None and self._loop.time() - self.last_heard > _FRESH:
            await self._ping("probe", min(self.timeouts.probe, max(0.2, 4 * self.rtt)))
        return epoch

    def release(self, epoch: int) -> None:
        """End ``epoch``'s ownership if it sent nothing (an utterance with no text, or
        cancelled before its first word); otherwise a no-op."""
        core = self.core
        if core.owner == epoch and core.state is State.IDLE:
            core.release(epoch)
            self._inbox = None

    async def send_text(self, epoch: int, text: str) -> None:
        """Write ``text`` (in pieces of at most 15,000 characters).  Each piece is produced
        by the core just before its write, so a piece of an utterance that lost the
        connection meanwhile (it was cancelled) raises instead of being written."""
        for piece in split_text(text):
            await self._write(self.core.send_text(epoch, piece))

    async def finish(self, epoch: int) -> None:
        frame = self.core.finish(epoch)  # from here on audio.done completes the utterance
        inbox = self._inbox
        wd = self._watchdog
        wd.arm("completion", self.timeouts.completion)
        if inbox is not None and inbox.chunks_received:
            wd.arm("chunk_gap", self.timeouts.chunk_gap)
        else:
            wd.arm("first_audio", self.timeouts.first_audio)
        await self._write(frame)

    def abandon(self, epoch: int) -> bool:
        """Stop the utterance now (barge-in).  Returns True when nothing had been sent, so
        the connection is still clean; otherwise ``text.clear`` is written on the way
        out and the connection is closed: the wire has no utterance id, so nothing could
        prove that audio of the cleared utterance will not follow ``audio.clear``."""
        if self._failure is not None or self.core.owner != epoch:
            self._inbox = None
            return False
        frame = self.core.clear(epoch)
        self._inbox = None
        self._watchdog.disarm("completion", "first_audio", "chunk_gap", "probe")
        if frame is None:
            return True
        self.close_soon(farewell=frame)
        return False

    async def update_session(self, replace: Mapping[str, str]) -> SessionUpdate:
        """Send a pronunciation map and wait (at most ``Timeouts.session_update``) for the
        server's answer.  An unanswered update is abandoned: a late answer is absorbed."""
        fut: asyncio.Future[SessionUpdate] = self._loop.create_future()
        frame = self.core.update_session(replace)
        self._updates.append(fut)
        await self._write(frame)
        done, _ = await asyncio.wait((fut,), timeout=self.timeouts.session_update)
        if not done:
            if self._failure is not None:
                raise self._failure
            self.core.abandon_updates()
            for waiting in self._updates:
                if not waiting.done():
                    waiting.set_result(SessionUpdate.UNANSWERED)
            self._updates.clear()
            return SessionUpdate.UNANSWERED
        result = fut.result()
        if result is SessionUpdate.CONFIRMED:
            self.replace = dict(replace)
        return result

    # -- I/O -------------------------------------------------------------------------

    async def _write(self, frame: str) -> None:
        if self._failure is not None:
            raise self._failure
        wd = self._watchdog
        self._writes += 1
        name = f"send:{self._writes}"  # one deadline per write: concurrent writes each have theirs
        wd.arm(name, self.timeouts.send)
        err: XaiVoiceError | None = None
        try:
            await self._ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            err = XaiConnectionError(f"connection lost while sending: {type(exc).__name__}")
        finally:
            wd.disarm(name)
        if err is not None:
            self._fail(err)
        if self._failure is not None:  # the write went out, but the connection died meanwhile
            raise self._failure

    async def _ping(self, deadline: str | None = None, seconds: float = 0.0) -> None:
        """Write a ping; with ``deadline``, something must come back within ``seconds``."""
        if deadline is not None:
            self._watchdog.arm(deadline, seconds)
        self._ping_sent_at = self._loop.time()
        err: XaiVoiceError | None = None
        try:
            await self._ws.ping()
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            err = XaiConnectionError(f"connection lost while pinging: {type(exc).__name__}")
        if err is not None:
            self._fail(err)
        if self._failure is not None:
            raise self._failure

    async def _read_loop(self) -> None:
        ws = self._ws
        core = self.core
        wd = self._watchdog
        loop = self._loop
        finishing = State.FINISHING
        idle = State.IDLE
        try:
            await self._ping()  # the first pong measures the round trip
            while True:
                if core.state is idle and self._inbox is None and not self._updates:
                    try:
                        msg = await ws.receive(timeout=self.timeouts.keepalive)
                    except asyncio.TimeoutError:
                        await self._ping("pong", self.timeouts.pong)
                        continue
                else:
                    msg = await ws.receive()
                self.last_heard = now = loop.time()
                mtype = msg.type
                if mtype is _TEXT:
                    event = core.receive_text(msg.data)
                    if type(event) is AudioChunk:
                        inbox = self._inbox
                        assert inbox is not None
                        inbox.push(event)
                        if core.state is finishing:
                            wd.disarm("first_audio")
                            wd.arm("chunk_gap", self.timeouts.chunk_gap)
                        if inbox.full:
                            await self._pause_for(inbox)
                        # this frame lives as long as the connection: a finished
                        # utterance's inbox (and its sink's closure) must not
                        del inbox, event
                    elif event is not None:
                        self._on_event(event)
                elif mtype is _BINARY:
                    self._on_event(core.receive_binary(msg.data))
                elif mtype is _PING:
                    await ws.pong(msg.data)
                elif mtype is _PONG:
                    sent, self._ping_sent_at = self._ping_sent_at, None
                    if sent is not None:
                        self.rtt = now - sent
                elif mtype is _ERROR:
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
                if wd.is_armed("pong") or wd.is_armed("probe"):
                    wd.disarm("pong", "probe")  # anything at all proves the connection alive
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

    async def _pause_for(self, inbox: Any) -> None:
        """The consumer is behind: stop reading, and stop the clocks, until it catches up.
        The completion deadline resumes with what was left of it, so pauses cannot stretch
        an utterance past it."""
        wd = self._watchdog
        completion = wd.remaining("completion")
        wd.disarm("chunk_gap", "completion")
        await inbox.wait_for_room()
        if self.core.state is State.FINISHING:
            wd.arm("chunk_gap", self.timeouts.chunk_gap)
            if completion is not None:
                wd.arm("completion", completion)

    def _on_event(self, event: object) -> None:
        wd = self._watchdog
        inbox = self._inbox
        if isinstance(event, UtteranceDone):
            wd.disarm("completion", "first_audio", "chunk_gap")
            self._inbox = None
            logger.debug(
                "utterance %d done on this connection (trace id %s)", self.core.epoch, event.trace_id
            )
            if inbox is not None:
                inbox.finish(event.trace_id)
        elif isinstance(event, Skipped):
            self.skipped += 1
            logger.debug("xai-voice skipped a frame: %s", event.reason)
        elif isinstance(event, Cleared):
            wd.disarm("clear")
        elif isinstance(event, SessionUpdated):
            self._answer_update(SessionUpdate.CONFIRMED)
        elif isinstance(event, SessionRejected):
            logger.debug("session.update refused: %s", self._endpoint.scrub(event.message))
            self._answer_update(SessionUpdate.REFUSED)
        elif isinstance(event, ServerError):
            message = self._endpoint.scrub(event.message)
            suffix = (
                f" [trace id {event.trace_id}]" if event.trace_id and event.trace_id not in message else ""
            )
            self._fail(
                XaiServerError(f"the service reported an error: {message}{suffix}", trace_id=event.trace_id)
            )

    def _answer_update(self, result: SessionUpdate) -> None:
        while self._updates:
            fut = self._updates.popleft()
            if not fut.done():
                fut.set_result(result)
                return

    def _expired(self, phase: str, seconds: float) -> None:
        phase = phase.partition(":")[0]
        if phase in ("probe", "pong"):
            self._confirm_dead(phase, seconds, ticks=3)
            return
        what = {
            "first_audio": "waiting for the first audio after text.done",
            "chunk_gap": "waiting for more audio",
            "completion": "waiting for audio.done",
            "clear": "waiting for audio.clear after text.clear",
            "send": "writing to the socket (it is not draining)",
        }.get(phase, phase)
        self._fail(XaiTimeoutError(phase, seconds, f"no answer within {seconds:g} s while {what}"))

    def _confirm_dead(self, phase: str, seconds: float, ticks: int) -> None:
        """A liveness deadline passed.  If this loop was itself stalled, an answer may be
        sitting in the socket, its reader not yet scheduled: look again after a few loop
        iterations before declaring the connection dead."""
        if self._failure is not None or self._loop.time() - self.last_heard < seconds:
            return
        if ticks > 0:
            self._loop.call_soon(self._confirm_dead, phase, seconds, ticks - 1)
            return
        if phase == "probe":
            message = (
                f"the pooled connection did not answer a ping within {seconds:.2g} s; it is dead "
                "(dropped silently by a NAT or proxy?)"
            )
        else:
            message = f"no answer to a keepalive ping within {seconds:g} s; the idle connection is dead"
        self._fail(XaiConnectionError(message))

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
        on_dead, self.on_dead = self.on_dead, None
        if on_dead is not None:
            on_dead(self)

    def _abort(self) -> None:
        # aiohttp has no public abort for a client WebSocket; its connection's transport
        # does (kept from the start: aiohttp lets go of the connection when it closes)
        if self._transport is not None:
            self._transport.abort()

    # -- closing ---------------------------------------------------------------------

    def close_soon(self, *, farewell: str | None = None) -> asyncio.Task[None]:
        """Start closing (idempotent), writing ``farewell`` first if given; the returned
        task ends when the socket is closed, within ``Timeouts.clear`` (then aborted)."""
        if self._closing is None:
            self._closing = self._loop.create_task(self._close(farewell), name="xai-voice-ws-close")
        return self._closing

    async def aclose(self) -> None:
        await asyncio.shield(self.close_soon())

    async def _close(self, farewell: str | None) -> None:
        if self._failure is None:
            self._fail(XaiConnectionError("the connection was closed"), abort=False)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

        async def goodbye() -> None:
            if farewell is not None:
                await self._ws.send_str(farewell)
            await self._ws.close()

        task = self._loop.create_task(goodbye(), name="xai-voice-ws-goodbye")
        await asyncio.wait((task,), timeout=self.timeouts.clear)
        # whether the goodbye finished, failed or ran out of time, the socket is done: an
        # abort also wakes any write of ours still waiting for it to drain
        self._abort()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
