"""A pool of WebSocket connections, keyed by their query (options fixed at connect).

The rule, from the rime plugin's habit: a connection goes back to the pool only when it
is proven idle and clean (``WsConnection.usable``); anything else is closed.  Connections
older than ``max_age`` are rotated out before the service's ~2,100 s limit ends them in
the middle of an utterance.  For each key the pool keeps as many idle connections as were
in use at once during the last ``peak_window`` seconds, and at least ``max_idle``: a worker
that serves 400 calls at once needs 400 warm sockets, not 32 and 368 handshakes on every
wave.  When the window has passed, a timer trims the surplus even if no call comes.
``peak_window=0`` makes ``max_idle`` a plain cap.
Every close runs in a task the pool owns and awaits on ``aclose()``, so nothing outlives
the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import XaiConnectionError
from .websocket import WsConnection

__all__ = ["Acquired", "ConnectionPool"]

logger = logging.getLogger("xai_voice")

Connector = Callable[[], Coroutine[Any, Any, WsConnection]]


def _closed_error() -> XaiConnectionError:
    return XaiConnectionError("the client is closed")


class Acquired:
    """What ``acquire`` hands out: the connection and how it was obtained (for metrics)."""

    __slots__ = ("acquire_time", "conn", "reused")

    def __init__(self, conn: WsConnection, reused: bool, acquire_time: float) -> None:
        self.conn = conn
        self.reused = reused
        self.acquire_time = acquire_time


class _RecentPeak:
    """The most connections of one key in use at once over a recent window: a
    sliding-window maximum (a deque of samples with decreasing counts)."""

    __slots__ = ("_samples", "busy")

    def __init__(self) -> None:
        self.busy = 0
        self._samples: deque[tuple[float, int]] = deque()

    def note(self, now: float) -> None:
        """Record that ``busy`` connections are in use at ``now``."""
        samples = self._samples
        while samples and samples[-1][1] <= self.busy:
            samples.pop()
        samples.append((now, self.busy))

    def value(self, now: float, window: float) -> int:
        samples = self._samples
        while samples and samples[0][0] < now - window:
            samples.popleft()
        return max(samples[0][1] if samples else 0, self.busy)


class ConnectionPool:
    def __init__(self, *, max_age: float = 1800.0, max_idle: int = 32, peak_window: float = 60.0) -> None:
        self.max_age = max_age
        self.max_idle = max_idle
        self.peak_window = peak_window
        self._peaks: dict[str, _RecentPeak] = {}
        self._trim_handle: asyncio.TimerHandle | None = None
        self._idle: dict[str, deque[WsConnection]] = {}
        self._busy: set[WsConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._prewarming: set[asyncio.Task[None]] = set()
        self._connecting: set[asyncio.Task[WsConnection]] = set()
        self._closed = False
        #: counters, for tests and benchmarks
        self.connects = 0
        self.reuses = 0

    def __repr__(self) -> str:
        idle = sum(len(q) for q in self._idle.values())
        return f"<ConnectionPool idle={idle} busy={len(self._busy)}>"

    @property
    def idle_count(self) -> int:
        return sum(len(q) for q in self._idle.values())

    @property
    def busy_count(self) -> int:
        return len(self._busy)

    async def acquire(self, key: str, connect: Connector, *, fresh: bool = False) -> Acquired:
        """An idle, live connection for ``key``, or a new one.  ``fresh`` skips the idle
        ones (used to retry after a reused connection turned out dead)."""
        if self._closed:
            raise _closed_error()
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue = self._idle.get(key)
        while queue and not fresh:
            conn = queue.pop()  # most recently used first: the likeliest to be alive
            if conn.usable and conn.age() < self.max_age:
                self._set_busy(conn, True)
                self.reuses += 1
                return Acquired(conn, True, loop.time() - start)
            self._close(conn)
        # the connect is a task the pool owns, so aclose() can stop it; cancelling
        # the caller cancels it too
        task: asyncio.Task[WsConnection] = loop.create_task(connect(), name="xai-voice-connect")
        self._connecting.add(task)
        try:
            conn = await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            cancelling = getattr(me, "cancelling", lambda: 0)()  # 3.11+: was *we* cancelled?
            if self._closed and not cancelling:
                raise _closed_error() from None  # aclose() stopped the connect, not our caller
            raise
        finally:
            self._connecting.discard(task)
        if self._closed:  # closed while we were connecting
            self._close(conn)
            raise _closed_error()
        self.connects += 1
        self._set_busy(conn, True)
        return Acquired(conn, False, loop.time() - start)

    def release(self, conn: WsConnection) -> None:
        """Give a connection back: kept if clean and young, closed otherwise."""
        self._set_busy(conn, False)
        conn.detach()
        if self._closed or not conn.usable or conn.age() >= self.max_age:
            self._close(conn)
            return
        self._idle.setdefault(conn.key, deque()).append(conn)
        self._trim(conn.key)

    def _set_busy(self, conn: WsConnection, busy: bool) -> None:
        """Move ``conn`` in or out of the busy set, keeping its key's recent peak."""
        if busy == (conn in self._busy):
            return
        peak = self._peaks.get(conn.key)
        if peak is None:
            peak = self._peaks[conn.key] = _RecentPeak()
        now = asyncio.get_running_loop().time()
        if busy:
            self._busy.add(conn)
            peak.busy += 1
            peak.note(now)
        else:
            peak.note(now)  # the one being released was in use until now
            self._busy.discard(conn)
            peak.busy -= 1

    def _cap(self, key: str, now: float) -> int:
        peak = self._peaks.get(key)
        if peak is None or self.peak_window <= 0:
            return self.max_idle
        return max(self.max_idle, peak.value(now, self.peak_window))

    def _trim(self, key: str) -> None:
        """Close the least recently used idle connections of ``key`` above its cap; while
        any key holds more than ``max_idle``, look again when the window has moved on."""
        loop = asyncio.get_running_loop()
        queue = self._idle.get(key)
        if queue:
            cap = self._cap(key, loop.time())
            while len(queue) > cap:
                self._close(queue.popleft())
        if self._trim_handle is None and any(len(q) > self.max_idle for q in self._idle.values()):
            self._trim_handle = loop.call_later(max(self.peak_window, 0.001), self._trim_all)

    def _trim_all(self) -> None:
        self._trim_handle = None
        if not self._closed:
            for key in list(self._idle):
                self._trim(key)

    def discard(self, conn: WsConnection) -> None:
        self._set_busy(conn, False)
        conn.detach()
        self._close(conn)

    def prewarm(self, key: str, connect: Connector) -> None:
        """Open one connection for ``key`` in the background, if none is idle."""
        if self._closed or self._idle.get(key) or self._prewarming:
            return

        async def warm() -> None:
            try:
                conn = await connect()
            except Exception as exc:  # a failed prewarm is not an error: the next use retries
                logger.debug("prewarm failed: %s", exc)
                return
            self.connects += 1
            self.release(conn)

        task = asyncio.get_running_loop().create_task(warm(), name="xai-voice-prewarm")
        self._prewarming.add(task)
        task.add_done_callback(self._prewarming.discard)

    def retire(self, key: str | None = None) -> None:
        """Close idle connections (for ``key``, or all): their options are out of date.
        Busy ones are closed when released if their key no longer matches what callers
        ask for, since nobody will acquire that key again."""
        keys = [key] if key is not None else list(self._idle)
        for k in keys:
            for conn in self._idle.pop(k, deque()):
                self._close(conn)

    def _close(self, conn: WsConnection) -> None:
        task = conn.close_soon()
        if not task.done():
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every connection, idle or busy, and wait until all are closed."""
        self._closed = True
        if self._trim_handle is not None:
            self._trim_handle.cancel()
            self._trim_handle = None
        pending = [*self._prewarming, *self._connecting]
        for task in pending:
            task.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, WsConnection):  # finished before the cancel landed
                self._close(result)
        self.retire()
        for conn in list(self._busy):
            self._close(conn)
        self._busy.clear()
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
