"""One streamed TTS utterance over a pooled connection: ownership, replay, bounds.

An :class:`Utterance` owns its connection through the epoch the core issued, so nothing
it does after losing the connection (a send loop resuming after a cancel, a replay racing
a cancel) can reach the utterance that took the connection next.  Around that:

* **barge-in** (:meth:`Utterance.cancel`) ends at once: a connection with text in flight
  is closed (after a ``text.clear``) rather than reused, since the wire cannot prove that
  no more audio of the cleared utterance is on its way, and the pool opens a replacement
  in the background so the next reply still starts on a warm socket;
* **silent replay**: if a connection taken from the pool turns out dead before any audio
  came (it failed, or did not answer its liveness ping), the text so far is replayed on a
  new connection, once;
* **bounds**: audio per utterance is limited by what its text could take to say;
* **text as it streams**: surrogate halves split across sends are joined, and a
  pronunciation map the service would not take is applied on our side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import (
    LocalProtocolError,
    OptionError,
    XaiConnectionError,
    XaiVoiceError,
)
from ..options import TTSOptions
from ..pronunciation import StreamingReplacer
from ..protocol.tts import AudioChunk, StaleUtterance
from ..text import SurrogateJoiner, check_text, replace_lone
from ..words import Word, WordAssembler
from .deadlines import Timeouts
from .inbox import Ending, Inbox
from .pool import Acquired, ConnectionPool
from .websocket import SessionUpdate, WsConnection

__all__ = ["MapSupport", "Utterance", "UtteranceHost"]

logger = logging.getLogger("xai_voice")

#: audio an utterance may bring: this much, plus so much per character of its text, at
#: most the ceiling (the service itself ends an utterance at about 600 s)
AUDIO_SECONDS_BASE = 60.0
AUDIO_SECONDS_PER_CHAR = 0.5
AUDIO_SECONDS_CEILING = 900.0


@dataclass
class MapSupport:
    """Whether the service applies pronunciation maps sent with ``session.update`` on
    the WebSocket (unverified): None until one is answered.  Shared by a client's
    utterances, so a refusal is met once, warned about once, and not asked again."""

    server_side: bool | None = None
    warned: bool = False


class UtteranceHost(Protocol):
    """What an utterance needs from the client that made it."""

    pool: ConnectionPool
    max_buffered_bytes: int
    map_support: MapSupport

    def connector(
        self, options: TTSOptions, timeouts: Timeouts | None = None
    ) -> Callable[[], Coroutine[Any, Any, WsConnection]]: ...


class Utterance:
    """One streamed synthesis: ``send`` text, ``finish``, iterate the audio.

    Sending and reading may happen in different tasks.  Leading whitespace is held back
    until real text arrives, and an utterance that never gets any ends at ``finish()``
    with no audio and no request, so empty input can never hang.

    Args:
        lenient_text: replace unpaired surrogates with U+FFFD instead of refusing them
            (a voice agent would rather say something than fail on one bad character).
    """

    def __init__(
        self, host: UtteranceHost, options: TTSOptions, timeouts: Timeouts, *, lenient_text: bool = False
    ) -> None:
        self._host = host
        self.options = options
        self.timeouts = timeouts
        self._inbox = Inbox(high_water=host.max_buffered_bytes, limit=self._audio_limit(0))
        self._acquired: Acquired | None = None
        self._epoch = 0
        self._lock = asyncio.Lock()
        self._joiner = SurrogateJoiner()
        self._lenient = lenient_text
        self._replacer: StreamingReplacer | None = None
        self._held = ""  # leading whitespace, not sent yet
        self._sent: list[str] = []  # text sent so far, kept for a replay until audio comes
        self._chars = 0
        self._has_text = False
        self._finished = False
        self._cancelled = False
        self._released = False
        self._retried = False
        #: seconds spent getting a connection, and whether it came from the pool
        self.acquire_time = 0.0
        self.connection_reused = False
        #: whether the pronunciation map is applied here rather than by the service
        self.map_applied_locally = False
        #: word timings so far (``with_timestamps``), complete once the audio has ended
        self.words: list[Word] = []
        self._assembler = WordAssembler()

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

    @property
    def frames_skipped(self) -> int:
        """Frames the service sent that were skipped as harmless (on the current
        connection)."""
        return self._acquired.conn.skipped if self._acquired is not None else 0

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
        if not isinstance(text, str):
            raise OptionError("text", f"must be a str, not {type(text).__name__}")
        if self._cancelled:
            raise LocalProtocolError("cannot send: the utterance was cancelled")
        if self._finished:
            raise LocalProtocolError("cannot send: finish() was already called")
        text = self._clean(self._joiner.feed(text))
        await self._send_clean(text)

    async def finish(self) -> None:
        """End the text.  Audio keeps coming until the service's ``audio.done``."""
        if self._finished or self._cancelled:
            return
        rest = self._clean(self._joiner.flush())
        if self._replacer is not None or rest:
            await self._send_clean(rest, last=True)
        if self._finished or self._cancelled:
            return
        self._finished = True  # set before any await: the state this call describes
        if not self._has_text:
            self._inbox.finish(None)  # nothing to say: done, without asking the service
            self._release()
            return
        await self._guarded(lambda conn: conn.finish(self._epoch))

    def _clean(self, text: str) -> str:
        if self._lenient:
            return replace_lone(text)
        return check_text(text)

    async def _send_clean(self, text: str, *, last: bool = False) -> None:
        if not self._has_text:
            if not text.strip() and not last:
                self._held += text
                return
            text, self._held = self._held + text, ""
        if self._replacer is not None or self._acquired is None:
            # the connection (got now, if need be) decides whether the map is ours to apply
            async with self._lock:
                await self._connection()
            if self._replacer is not None:
                text = self._replacer.feed(text)
                if last:
                    text += self._replacer.flush()
        if not self._has_text:
            if not text.strip():
                self._held = text
                return
            self._has_text = True
        if not text:
            return
        self._remember(text)
        self._chars += len(text)
        self._inbox.limit = self._audio_limit(self._chars)
        await self._guarded(lambda conn: conn.send_text(self._epoch, text))

    def _audio_limit(self, chars: int) -> int:
        seconds = min(AUDIO_SECONDS_CEILING, AUDIO_SECONDS_BASE + AUDIO_SECONDS_PER_CHAR * chars)
        return int(seconds * self.options.max_bytes_per_second * 1.05) + 1024

    async def cancel(self) -> None:
        """Stop now (barge-in).  Audio not yet read is discarded.  If text was in flight
        the connection is closed after a ``text.clear`` (it cannot be proven clean) and a
        replacement is opened in the background; otherwise it goes back to the pool."""
        if self._cancelled or self._released:
            return
        self._cancelled = True
        inbox = self._inbox
        inbox.take_ready()  # drop unread audio: a reader paused for room can read on
        if inbox.ending is None:
            acquired = self._acquired
            if acquired is not None and not acquired.conn.abandon(self._epoch):
                self._release(replenish=True)
            inbox.cleared()
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
                self.words.extend(self._assembler.flush())
                self._release()
                raise StopAsyncIteration
            if self._sent:
                self._sent.clear()  # audio came: a replay is no longer possible
            if chunk.timestamps is not None:
                self.words.extend(self._assembler.feed(chunk.timestamps))
            return chunk

    async def deliver(self, sink: Callable[[AudioChunk], None]) -> None:
        """Hand every chunk to ``sink`` as it arrives, called from the connection's
        reader (no hand-off between tasks: the lowest latency and CPU there is), and
        return at the end of the audio; raises the utterance's failure.  ``sink`` must
        not block; an exception it raises ends the utterance and is raised here as is."""
        inbox = self._inbox
        if self.options.with_timestamps:
            user_sink, words, assembler = sink, self.words, self._assembler

            def sink(chunk: AudioChunk) -> None:
                if chunk.timestamps is not None:
                    words.extend(assembler.feed(chunk.timestamps))
                user_sink(chunk)

        try:
            for chunk in inbox.take_ready():  # anything that came before we were asked
                sink(chunk)
        except Exception as exc:
            inbox.fail(exc)
        inbox.sink = sink
        try:
            while True:
                if await inbox.wait_ended() is not Ending.FAILED:
                    self.words.extend(self._assembler.flush())
                    self._release()
                    return
                if isinstance(inbox.error, XaiVoiceError) and await self._recover() != "failed":
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
        host = self._host
        opts = self.options
        connect = host.connector(opts, self.timeouts)
        acquired = await host.pool.acquire(opts.connection_key(), connect, fresh=fresh)
        conn = acquired.conn
        try:
            await self._agree_map(conn)
            if self._released or self._cancelled:  # closed while we were connecting
                raise XaiConnectionError("the utterance was cancelled")
            self._epoch = await conn.begin(self._inbox, self.timeouts, probe=acquired.reused)
        except XaiConnectionError:
            host.pool.discard(conn)
            if acquired.reused and not fresh and not (self._released or self._cancelled):
                # a pooled connection that died before we could use it: take a new one
                await self._acquire(fresh=True)
                return
            raise
        except BaseException:
            host.pool.discard(conn)
            raise
        self._acquired = acquired
        self.acquire_time = acquired.acquire_time
        self.connection_reused = acquired.reused

    async def _agree_map(self, conn: WsConnection) -> None:
        """Make the pronunciation map apply: sent with ``session.update`` while the
        service is not known to refuse that; otherwise applied here, to the text."""
        wanted = dict(self.options.replace or {})
        support = self._host.map_support
        if self._replacer is not None or conn.replace == wanted:
            return
        if support.server_side is not False:
            result = await conn.update_session(wanted)
            if result is SessionUpdate.CONFIRMED:
                support.server_side = True
                return
            support.server_side = False
            if not support.warned:
                support.warned = True
                logger.warning(
                    "the service %s the pronunciation map (session.update); applying it to the "
                    "text before sending instead",
                    "refused" if result is SessionUpdate.REFUSED else "did not answer",
                )
        if wanted:
            self._replacer = StreamingReplacer(wanted)
            self.map_applied_locally = True

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
                except StaleUtterance:
                    raise LocalProtocolError("cannot send: the utterance was cancelled") from None
                except XaiVoiceError:
                    if await self._recover_locked() != "recovered":
                        raise
        except BaseException as exc:
            if self._cancelled:
                if isinstance(exc, XaiVoiceError):  # whatever broke, it broke because of that
                    raise LocalProtocolError("cannot send: the utterance was cancelled") from None
                raise
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
            and type(failure) is XaiConnectionError
            and inbox.chunks_received == 0
        ):
            return "failed"
        self._retried = True
        logger.info("pooled connection was dead (%s); reconnecting once", failure)
        self._host.pool.discard(acquired.conn)
        self._acquired = None
        inbox.reset()
        try:
            await self._acquire(fresh=True)
            assert self._acquired is not None
            conn = self._acquired.conn
            for text in self._sent:
                await conn.send_text(self._epoch, text)
            if self._finished:
                await conn.finish(self._epoch)
        except BaseException as exc:
            err = (
                exc if isinstance(exc, XaiVoiceError) else XaiConnectionError("reconnecting was interrupted")
            )
            inbox.fail(err)
            self._release()
            raise
        return "recovered"

    def _release(self, *, replenish: bool = False) -> None:
        """Give the connection back: to the pool if it is clean (the utterance is done,
        or never sent anything), closed otherwise; ``replenish`` opens a replacement."""
        if self._released:
            return
        self._released = True
        acquired, self._acquired = self._acquired, None
        if acquired is None:
            return
        pool = self._host.pool
        conn = acquired.conn
        conn.release(self._epoch)  # a no-op unless nothing was sent
        if conn.usable and not replenish:
            pool.release(conn)
            return
        pool.discard(conn)
        if replenish:
            pool.replenish(conn.key, self._host.connector(self.options, self.timeouts))
