"""The hand-off between a connection's reader task and the one consumer of an utterance.

A deque plus at most one waiting future, instead of an ``asyncio.Queue``: one audio chunk
costs an append and, only when the consumer is already waiting, one ``set_result``.  The
terminal state (done, cleared or failed) is set once and seen by every later read, so a
consumer that arrives late still gets the ending instead of waiting for it.

Memory is bounded twice.  Past ``high_water`` buffered bytes the reader stops reading the
socket until the consumer catches up, so a fast server and a slow consumer cannot exhaust
memory.  And an utterance may bring at most ``limit`` bytes in all (the caller raises it
as text is sent): a server that never ends an utterance fails it with a typed error,
whether the audio is buffered here or handed on to a sink that buffers it elsewhere.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum

from ..errors import RemoteProtocolError
from ..protocol.tts import AudioChunk

__all__ = ["Ending", "Inbox"]


class Ending(Enum):
    DONE = "done"
    CLEARED = "cleared"
    FAILED = "failed"


class Inbox:
    __slots__ = (
        "_buffered",
        "_items",
        "_loop",
        "_room",
        "_waiters",
        "bytes_received",
        "chunks_received",
        "ending",
        "error",
        "high_water",
        "limit",
        "sink",
        "trace_id",
    )

    def __init__(self, high_water: int = 32 * 1024 * 1024, limit: int | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: deque[AudioChunk] = deque()
        self._buffered = 0
        # everyone waiting for news (a reader, and a cancel() waiting for the ending):
        # all are woken on every change, so no waiter can be left behind by another
        self._waiters: list[asyncio.Future[None]] = []
        self._room: asyncio.Future[None] | None = None
        self.high_water = high_water
        #: the most audio bytes this utterance may bring (None: no limit)
        self.limit = limit
        self.ending: Ending | None = None
        self.error: BaseException | None = None
        self.trace_id: str | None = None
        self.bytes_received = 0
        self.chunks_received = 0
        #: when set, chunks go straight to it, from the reader task, instead of the buffer
        self.sink: Callable[[AudioChunk], None] | None = None

    # -- producer side (the connection's reader) ---------------------------------------

    def push(self, chunk: AudioChunk) -> None:
        if self.ending is not None:
            return
        n = len(chunk.data)
        self.bytes_received += n
        self.chunks_received += 1
        limit = self.limit
        if limit is not None and self.bytes_received > limit:
            self.fail(
                RemoteProtocolError(
                    f"the service sent more than {limit} bytes of audio for one utterance, far more "
                    "than its text can take to say; the utterance was stopped"
                )
            )
            return
        sink = self.sink
        if sink is not None:
            try:
                sink(chunk)
            except Exception as exc:  # the caller's own code: its error, not a connection's
                self.fail(exc)
            return
        self._items.append(chunk)
        self._buffered += n
        self._wake()

    @property
    def full(self) -> bool:
        return self._buffered > self.high_water

    async def wait_for_room(self) -> None:
        while self.full and self.ending is None:
            self._room = self._loop.create_future()
            try:
                await self._room
            finally:
                self._room = None

    def finish(self, trace_id: str | None) -> None:
        self._end(Ending.DONE)
        self.trace_id = trace_id

    def cleared(self) -> None:
        self._end(Ending.CLEARED)
        self._items.clear()
        self._buffered = 0

    def fail(self, exc: BaseException) -> None:
        if self.ending is None:
            self.error = exc
            self._end(Ending.FAILED)

    def reset(self) -> None:
        """Forget a failure and stay open, for a silent retry on a new connection (only
        ever used while nothing has been received)."""
        assert self.chunks_received == 0
        self.ending = None
        self.error = None

    # -- consumer side ---------------------------------------------------------------

    async def get(self) -> AudioChunk | None:
        """The next chunk; None at the end (done or cleared); raises the failure."""
        while True:
            if self._items:
                chunk = self._items.popleft()
                self._buffered -= len(chunk.data)
                room = self._room
                if room is not None and not room.done() and not self.full:
                    room.set_result(None)
                return chunk
            if self.ending is not None:
                if self.error is not None:
                    raise self.error
                return None
            await self._wait()

    def take_ready(self) -> list[AudioChunk]:
        """Every chunk already buffered, without waiting (to batch work per wake-up)."""
        items = list(self._items)
        self._items.clear()
        self._buffered = 0
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)
        return items

    async def wait_ended(self) -> Ending:
        """Wait for the ending without consuming audio (used when draining a clear)."""
        while self.ending is None:
            await self._wait()
        return self.ending

    async def _wait(self) -> None:
        fut = self._loop.create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    # -- internals -------------------------------------------------------------------

    def _end(self, ending: Ending) -> None:
        if self.ending is None:
            self.ending = ending
        self._wake()
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def _wake(self) -> None:
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
