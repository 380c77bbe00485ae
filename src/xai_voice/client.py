"""The asyncio client: the engine without LiveKit.

::

    async with xai_voice.Client() as client:               # XAI_API_KEY, XAI_BASE_URL
        async with client.stream(voice="ara") as utt:    # one utterance, over a pooled socket
            await utt.send("Hello from ")
            await utt.send("Grok.")
            await utt.finish()
            async for chunk in utt:                      # AudioChunk(data, timestamps)
                play(chunk.data)

        async for chunk in client.synthesize("Hi."):     # REST, streamed as it arrives
            ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp

from .errors import LocalProtocolError, XaiConnectionError, XaiVoiceError
from .options import TTSOptions, check_text
from .protocol import AudioChunk
from .transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Acquired,
    ConnectionPool,
    Ending,
    Endpoint,
    Inbox,
    RestSynthesis,
    Timeouts,
    Voice,
    WsConnection,
    list_voices,
)

__all__ = ["Client", "Utterance"]

logger = logging.getLogger("xai_voice")


class Client:
    """A connection to the xAI TTS service (or anything speaking its protocol).

    Args:
        api_key: defaults to ``XAI_API_KEY``.
        base_url: defaults to ``XAI_BASE_URL``, then ``https://api.x.ai/v1``.  Both the
            REST and the WebSocket endpoints hang off it (``https`` -> ``wss``).
        options: the defaults for every utterance; override per call.
        timeouts: the deadline on each wait (see :class:`Timeouts`).
        session: an aiohttp session to use (and not close), or a function returning
            one (asked at each use, e.g. a framework's per-job session); otherwise the
            client makes its own.
        max_connection_age: pooled sockets older than this are replaced (the service
            ends a connection after ~2,100 s).
        max_idle_connections: idle sockets always kept per set of options.  More are
            kept while recent concurrency needs them: as many as were in use at once
            during the last ``idle_peak_window`` seconds.
        idle_peak_window: how far back that concurrency is remembered; ``0`` makes
            ``max_idle_connections`` a plain cap.
        allow_insecure: permit plain ``http://`` to a host that is not loopback.
        ssl: passed to aiohttp; ``True`` (verify certificates) unless you say otherwise.
        max_message_bytes: the largest server frame accepted.
        max_buffered_bytes: audio buffered for a slow consumer before the socket is no
            longer read (back-pressure, not an error).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        options: TTSOptions | None = None,
        timeouts: Timeouts | None = None,
        session: aiohttp.ClientSession | Callable[[], aiohttp.ClientSession] | None = None,
        max_connection_age: float = 1800.0,
        max_idle_connections: int = 32,
        idle_peak_window: float = 60.0,
        allow_insecure: bool = False,
        ssl: Any = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_buffered_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._endpoint = Endpoint.resolve(api_key, base_url, allow_insecure=allow_insecure)
        self.options = options if options is not None else TTSOptions()
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self._session_factory = session if callable(session) else None
        self._session = None if callable(session) else session
        self._owns_session = session is None
        self._ssl = ssl
        self.max_message_bytes = max_message_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self.pool = ConnectionPool(
            max_age=max_connection_age, max_idle=max_idle_connections, peak_window=idle_peak_window
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"Client(base_url={self._endpoint.base_url!r}, options={self.options!r})"

    @property
    def base_url(self) -> str:
        return self._endpoint.base_url

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing --------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session_factory is not None:
            return self._session_factory()
        if self._session is None:
            # each WebSocket holds a connector slot for its whole life: aiohttp's default
            # cap of 100 would make the 101st utterance wait out its connect deadline
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    def _options(self, options: TTSOptions | None, overrides: dict[str, Any]) -> TTSOptions:
        base = options if options is not None else self.options
        return base.replace_with(**overrides) if overrides else base

    def connector(
        self, options: TTSOptions, timeouts: Timeouts | None = None
    ) -> Callable[[], Coroutine[Any, Any, WsConnection]]:
        def connect() -> Coroutine[Any, Any, WsConnection]:
            return WsConnection.connect(
                self._http(),
                self._endpoint,
                options,
                timeouts or self.timeouts,
                max_message_bytes=self.max_message_bytes,
                ssl=self._ssl,
            )

        return connect

    # -- public API ------------------------------------------------------------------

    def stream(
        self, options: TTSOptions | None = None, *, timeouts: Timeouts | None = None, **overrides: Any
    ) -> Utterance:
        """A new streaming utterance (WebSocket).  Options are validated here;
        ``timeouts`` replace the client's for this utterance."""
        return Utterance(self, self._options(options, overrides), timeouts or self.timeouts)

    def synthesize(
        self,
        text: str,
        options: TTSOptions | None = None,
        *,
        timeouts: Timeouts | None = None,
        **overrides: Any,
    ) -> RestSynthesis:
        """One-shot synthesis over REST: an async iterator of audio chunks."""
        return RestSynthesis(
            self._http(),
            self._endpoint,
            self._options(options, overrides),
            text,
            timeouts or self.timeouts,
            ssl=self._ssl,
        )

    async def speak(self, text: str, options: TTSOptions | None = None, **overrides: Any) -> bytes:
        """All the audio for ``text``, streamed over the WebSocket (any length)."""
        async with self.stream(options, **overrides) as utt:
            await utt.send(text)
            await utt.finish()
            return await utt.read_all()

    async def voices(self) -> list[Voice]:
        return await list_voices(self._http(), self._endpoint, self.timeouts, ssl=self._ssl)

    def prewarm(self, options: TTSOptions | None = None, **overrides: Any) -> None:
        """Open a connection in the background so the next utterance skips the handshake."""
        opts = self._options(options, overrides)
        self.pool.prewarm(opts.connection_key(), self.connector(opts))

    async def aclose(self) -> None:
        """Close every connection (ending any utterance in flight with an error) and the
        HTTP session if this client made it."""
        if self._closed:
            return
        self._closed = True
        await self.pool.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()


class Utterance:
    """One streamed synthesis: ``send`` text, ``finish``, iterate the audio.

    Sending and reading may happen in different tasks.  Leading whitespace is held back
    until real text arrives, and an utterance that never gets any ends at ``finish()``
    with no audio and no request, so empty input can never hang.

    If the pooled connection it was given turns out to be dead before any audio
    arrived, it reconnects once and replays the text, silently.
    """

    def __init__(self, client: Client, options: TTSOptions, timeouts: Timeouts) -> None:
        self._client = client
        self.options = options
        self.timeouts = timeouts
        self._inbox = Inbox(high_water=client.max_buffered_bytes)
        self._acquired: Acquired | None = None
        self._lock = asyncio.Lock()
        self._held = ""  # leading whitespace, not sent yet
        self._sent: list[str] = []  # text sent so far, kept for a replay until audio comes
        self._has_text = False
        self._finished = False
        self._cancelled = False
        self._released = False
        self._retried = False
        #: seconds spent getting a connection, and whether it came from the pool
        self.acquire_time = 0.0
        self.connection_reused = False

    def __repr__(self) -> str:
        return f"<Utterance {self.options.voice} ending={self.ending}>"

    @property
    def ending(self) -> Ending | None:
        return self._inbox.ending

    @property
    def trace_id(self) -> str | None:
        """The service's id for this utterance (from ``audio.done``), for support tickets."""
        return self._inbox.trace_id

    @property
    def bytes_received(self) -> int:
        return self._inbox.bytes_received

    async def __aenter__(self) -> Utterance:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sending ---------------------------------------------------------------------

    async def start(self) -> None:
        """Get a connection now (otherwise the first ``send`` does)."""
        async with self._lock:
            await self._connection()

    async def send(self, text: str) -> None:
        check_text(text)
        if self._cancelled:
            raise LocalProtocolError("cannot send: the utterance was cancelled")
        if self._finished:
            raise LocalProtocolError("cannot send: finish() was already called")
        if not self._has_text:
            if not text.strip():
                self._held += text
                return
            text, self._held = self._held + text, ""
            self._has_text = True
        self._remember(text)
        await self._guarded(lambda conn: conn.send_text(text))

    async def finish(self) -> None:
        """End the text.  Audio keeps coming until the service's ``audio.done``."""
        if self._finished or self._cancelled:
            return
        self._finished = True  # set before any await: the state this call describes
        if not self._has_text:
            self._inbox.finish(None)  # nothing to say: done, without asking the service
            self._release()
            return
        await self._guarded(lambda conn: conn.finish())

    async def cancel(self) -> None:
        """Stop now (barge-in): ``text.clear``, then wait briefly for ``audio.clear`` so
        the connection can be reused; if that wait fails, or this call is itself
        cancelled, the connection is dropped instead.  Audio not yet read is discarded."""
        if self._cancelled or self._released:
            return
        self._cancelled = True
        inbox = self._inbox
        acquired = self._acquired
        inbox.take_ready()  # drop unread audio: a reader paused for room can read on
        try:
            if inbox.ending is None and acquired is not None and self._has_text:
                await acquired.conn.clear()
                await inbox.wait_ended()  # bounded by the clear deadline
            elif inbox.ending is None:
                inbox.cleared()  # nothing was sent: nothing to clear
        except XaiVoiceError as exc:
            logger.debug("clear failed, dropping the connection: %s", exc)
        finally:
            if inbox.ending is None:  # interrupted mid-clear: the connection is unclean
                inbox.fail(XaiConnectionError("the utterance was cancelled"))
            self._release()

    async def aclose(self) -> None:
        """Cancel if still running, and give the connection back."""
        if self._inbox.ending is None:
            await self.cancel()
        self._release()

    # -- receiving -------------------------------------------------------------------

    def __aiter__(self) -> Utterance:
        return self

    async def __anext__(self) -> AudioChunk:
        while True:
            try:
                chunk = await self._inbox.get()
            except XaiVoiceError:
                if await self._recover() != "failed":
                    continue
                self._release()
                raise
            if chunk is None:
                self._release()
                raise StopAsyncIteration
            if self._sent:
                self._sent.clear()  # audio came: a replay is no longer possible
            return chunk

    async def deliver(self, sink: Callable[[AudioChunk], None]) -> None:
        """Hand every chunk to ``sink`` as it arrives, called from the connection's
        reader (no hand-off between tasks: the lowest latency and CPU there is), and
        return at the end of the audio; raises the utterance's failure.  ``sink`` must
        not block; an exception in it fails the utterance."""
        inbox = self._inbox
        for chunk in inbox.take_ready():  # anything that came before we were asked
            sink(chunk)
        inbox.sink = sink
        try:
            while True:
                if await inbox.wait_ended() is not Ending.FAILED:
                    self._release()
                    return
                if await self._recover() != "failed":
                    continue
                self._release()
                assert inbox.error is not None
                raise inbox.error
        finally:
            # if we are cancelled mid-way, the utterance stays open for cancel()/aclose()
            inbox.sink = None

    async def read_all(self) -> bytes:
        """Every audio byte until the end, concatenated."""
        return b"".join([chunk.data async for chunk in self])

    # -- internals -------------------------------------------------------------------

    def _remember(self, text: str) -> None:
        if self._inbox.chunks_received == 0 and not self._retried:
            self._sent.append(text)

    async def _acquire(self, *, fresh: bool) -> None:
        client = self._client
        opts = self.options
        acquired = await client.pool.acquire(
            opts.connection_key(), client.connector(opts, self.timeouts), fresh=fresh
        )
        conn = acquired.conn
        try:
            wanted = dict(opts.replace or {})
            if conn.replace != wanted:
                await conn.update_session(wanted)
            if self._released or self._cancelled:  # closed while we were connecting
                raise XaiConnectionError("the utterance was cancelled")
            conn.begin(self._inbox, self.timeouts)
        except BaseException:
            client.pool.discard(conn)
            raise
        self._acquired = acquired
        self.acquire_time = acquired.acquire_time
        self.connection_reused = acquired.reused

    async def _connection(self) -> WsConnection:
        """The connection, got if need be.  Call with the lock held."""
        if self._acquired is None:
            if self._released or self._cancelled:
                raise self._inbox.error or XaiConnectionError("the utterance was cancelled")
            await self._acquire(fresh=False)
        assert self._acquired is not None
        return self._acquired.conn

    async def _guarded(self, op: Callable[[WsConnection], Awaitable[None]]) -> None:
        """Run a send on the connection (getting one first if needed), under the lock,
        so sends and a replay never interleave.  If it fails and cannot be recovered,
        the utterance fails too, so a reader in another task is woken with the error
        instead of waiting for audio that will never come."""
        try:
            async with self._lock:
                conn = await self._connection()
                state = await self._recover_locked()  # the reader may have seen it die
                if state == "recovered":
                    return  # the replay included this op (its text and flag came first)
                if state == "failed":
                    raise self._error()
                try:
                    await op(conn)
                except XaiVoiceError:
                    if await self._recover_locked() != "recovered":
                        raise
        except BaseException as exc:
            err = (
                exc
                if isinstance(exc, XaiVoiceError)
                else XaiConnectionError(
                    f"sending was interrupted ({type(exc).__name__}); the utterance is lost"
                )
            )
            self._inbox.fail(err)
            self._release()
            raise

    def _error(self) -> XaiVoiceError:
        acquired = self._acquired
        err = self._inbox.error or (acquired.conn.failure if acquired is not None else None)
        if isinstance(err, XaiVoiceError):
            return err
        return XaiConnectionError("the utterance was closed")

    async def _recover(self) -> str:
        async with self._lock:
            return await self._recover_locked()

    async def _recover_locked(self) -> str:
        """If the connection died, replace it when that is safe: it came from the pool,
        nothing has been heard on it yet and we have not retried.  The text so far is
        replayed.  Returns "healthy" (nothing to do, or another task already did it),
        "recovered", or "failed".  Call with the lock held."""
        inbox = self._inbox
        acquired = self._acquired
        failure = acquired.conn.failure if acquired is not None else None
        if failure is None and inbox.error is None:
            return "healthy"
        if not (
            acquired is not None
            and failure is not None
            and acquired.reused
            and not self._retried
            and not self._cancelled
            and isinstance(failure, XaiConnectionError)
            and inbox.chunks_received == 0
        ):
            return "failed"
        self._retried = True
        logger.info("pooled connection was dead (%s); reconnecting once", failure)
        self._client.pool.discard(acquired.conn)
        self._acquired = None
        inbox.reset()
        try:
            await self._acquire(fresh=True)
            assert self._acquired is not None
            conn = self._acquired.conn
            for text in self._sent:
                await conn.send_text(text)
            if self._finished:
                await conn.finish()
        except BaseException as exc:
            err = (
                exc if isinstance(exc, XaiVoiceError) else XaiConnectionError("reconnecting was interrupted")
            )
            inbox.fail(err)
            self._release()
            raise
        return "recovered"

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        acquired, self._acquired = self._acquired, None
        if acquired is None:
            return
        pool = self._client.pool
        if self._inbox.ending in (Ending.DONE, Ending.CLEARED):
            pool.release(acquired.conn)
        else:
            pool.discard(acquired.conn)
