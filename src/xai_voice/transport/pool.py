"""A pool of TTS WebSocket connections, keyed by their query (options fixed at connect).

The rules:

* **Proven clean or closed.**  A connection goes back to the pool only when it is idle,
  clean and open (``WsConnection.usable``: never cleared, nothing outstanding); anything
  else is closed.  A connection whose utterance was cleared mid-way is closed and, so the
  next reply still finds a warm socket, a replacement is opened in the background
  (:meth:`ConnectionPool.replenish`); a caller that arrives while it is still opening
  takes it over instead of opening its own.
* **Bounded.**  For each key the pool keeps as many idle connections as were in use at
  once during the last ``peak_window`` seconds, and at least ``max_idle``; across all keys
  no more than were in use at once overall (or ``max_idle``); none idle longer than
  ``max_idle_time``; none older than ``max_age`` (the service ends a connection at
  ~2,100 s).  A key retired by an options change is closed on release.  Every session held
  counts against the team's limit (50 at xAI), so what is not needed is closed, by a timer,
  with no traffic needed.
* **Owned.**  Every connect and every close runs in a task the pool owns and awaits or
  cancels on ``aclose()``; a connection that opens for a caller who has gone (cancelled)
  is closed, never leaked.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import ClientClosedError
from .deadlines import dispose_later
from .websocket import WsConnection

__all__ = ["Acquired", "ConnectionPool"]

logger = logging.getLogger("xai_voice")

Connector = Callable[[], Coroutine[Any, Any, WsConnection]]


class Acquired:
    """What ``acquire`` hands out: the connection and how it was obtained (for metrics)."""

    __slots__ = ("acquire_time", "conn", "reused")

    def __init__(self, conn: WsConnection, reused: bool, acquire_time: float) -> None:
        self.conn = conn
        self.reused = reused
        self.acquire_time = acquire_time


class _RecentPeak:
    """The most connections in use at once over a recent window: a sliding-window
    maximum (a deque of samples with decreasing counts)."""

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
    def __init__(
        self,
        *,
        max_age: float = 1800.0,
        max_idle: int = 4,
        peak_window: float = 60.0,
        max_idle_time: float = 300.0,
    ) -> None:
        self.max_age = max_age
        self.max_idle = max_idle
        self.peak_window = peak_window
        self.max_idle_time = max_idle_time
        self._peaks: dict[str, _RecentPeak] = {}
        self._total = _RecentPeak()
        self._idle: dict[str, deque[WsConnection]] = {}
        self._busy: set[WsConnection] = set()
        self._retired: set[str] = set()
        #: background connects not yet claimed, per key (a caller may take one over)
        self._arriving: dict[str, list[asyncio.Task[WsConnection]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False
        #: counters, for tests and benchmarks
        self.connects = 0
        self.reuses = 0
        self.replenished = 0

    def __repr__(self) -> str:
        return f"<ConnectionPool idle={self.idle_count} busy={len(self._busy)}>"

    @property
    def idle_count(self) -> int:
        return sum(len(q) for q in self._idle.values())

    @property
    def busy_count(self) -> int:
        return len(self._busy)

    @property
    def open_count(self) -> int:
        """Connections held open (busy, idle or closing): sessions counted by the service."""
        return self.idle_count + len(self._busy) + len(self._closing)

    def arriving_count(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._arriving.get(key, ()))
        return sum(len(v) for v in self._arriving.values())

    # -- handing out -----------------------------------------------------------------

    async def acquire(self, key: str, connect: Connector, *, fresh: bool = False) -> Acquired:
        """An idle, live connection for ``key``; one being opened in the background; or a
        new one.  ``fresh`` skips the first two (to retry after a reused one died)."""
        if self._closed:
            raise ClientClosedError()
        self._retired.discard(key)  # someone wants these options again
        loop = asyncio.get_running_loop()
        start = loop.time()
        if not fresh:
            queue = self._idle.get(key)
            while queue:
                conn = queue.pop()  # most recently used first: the likeliest to be alive
                conn.on_dead = None
                if conn.usable and conn.age() < self.max_age:
                    self._set_busy(conn, True)
                    self.reuses += 1
                    return Acquired(conn, True, loop.time() - start)
                self._close(conn)
            arriving = self._arriving.get(key)
            while arriving:
                task = arriving.pop()  # claimed: its completion no longer goes to idle
                try:
                    conn = await self._take(task)
                except ClientClosedError:
                    raise
                except Exception:  # the background connect failed: make our own
                    continue
                return self._hand_out(conn, loop.time() - start)
        task = self._start(connect)
        conn = await self._take(task)
        return self._hand_out(conn, loop.time() - start)

    def _start(self, connect: Connector) -> asyncio.Task[WsConnection]:
        task: asyncio.Task[WsConnection] = asyncio.get_running_loop().create_task(
            connect(), name="xai-voice-connect"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _take(self, task: asyncio.Task[WsConnection]) -> WsConnection:
        """Wait for a connect task; if we stop waiting (our caller was cancelled), the
        connection it makes is closed instead of being lost."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            cancelling = getattr(me, "cancelling", lambda: 0)()  # 3.11+: were *we* cancelled?
            if self._closed and task.cancelled() and not cancelling:
                raise ClientClosedError() from None  # aclose() stopped it, not our caller
            dispose_later(task, self._close)
            raise

    def _hand_out(self, conn: WsConnection, acquire_time: float) -> Acquired:
        if self._closed:  # closed while we were connecting
            self._close(conn)
            raise ClientClosedError()
        self.connects += 1
        self._set_busy(conn, True)
        return Acquired(conn, False, acquire_time)

    # -- taking back -----------------------------------------------------------------

    def release(self, conn: WsConnection) -> None:
        """Give a connection back: kept if clean, young and wanted; closed otherwise."""
        self._set_busy(conn, False)
        self._keep_or_close(conn)

    def discard(self, conn: WsConnection) -> None:
        self._set_busy(conn, False)
        self._close(conn)

    def _keep_or_close(self, conn: WsConnection) -> None:
        key = conn.key
        if self._closed or key in self._retired or not conn.usable or conn.age() >= self.max_age:
            self._close(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        conn.on_dead = self._dead_while_idle
        self._idle.setdefault(key, deque()).append(conn)
        self._trim()

    def _dead_while_idle(self, conn: WsConnection) -> None:
        queue = self._idle.get(conn.key)
        if queue is not None and conn in queue:
            queue.remove(conn)
        self._close(conn)

    # -- opening ahead of need -------------------------------------------------------

    def prewarm(self, key: str, connect: Connector) -> None:
        """Open one connection for ``key`` in the background, unless one is idle or on
        its way."""
        if self._closed or self._idle.get(key) or self._arriving.get(key):
            return
        self._open_ahead(key, connect)

    def replenish(self, key: str, connect: Connector) -> None:
        """Open a connection for ``key`` in the background to take the place of one that
        was closed mid-utterance (a barge-in), so the next reply finds a warm one."""
        if self._closed or key in self._retired:
            return
        self.replenished += 1
        self._open_ahead(key, connect)

    def _open_ahead(self, key: str, connect: Connector) -> None:
        task = self._start(connect)
        self._arriving.setdefault(key, []).append(task)

        def arrived(t: asyncio.Task[WsConnection]) -> None:
            waiting = self._arriving.get(key)
            if waiting is None or t not in waiting:
                return  # claimed by a caller, who handles the outcome
            waiting.remove(t)
            if not waiting:
                del self._arriving[key]
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:  # not an error: the next use connects again
                logger.debug("opening a connection ahead of need failed: %s", exc)
                return
            self.connects += 1
            self._keep_or_close(t.result())

        task.add_done_callback(arrived)

    # -- options changes -------------------------------------------------------------

    def retire(self, key: str | None = None) -> None:
        """Close idle connections (for ``key``, or all): their options are out of date.
        Busy ones with that key are closed when released, and ones still opening when
        they arrive, unless a caller asks for that key again meanwhile."""
        keys = [key] if key is not None else list(self._idle)
        for k in keys:
            self._retired.add(k)
            for conn in self._idle.pop(k, deque()):
                self._close(conn)

    # -- bounds ----------------------------------------------------------------------

    def _set_busy(self, conn: WsConnection, busy: bool) -> None:
        """Move ``conn`` in or out of the busy set, keeping the recent peaks."""
        if busy == (conn in self._busy):
            return
        peak = self._peaks.get(conn.key)
        if peak is None:
            peak = self._peaks[conn.key] = _RecentPeak()
        now = asyncio.get_running_loop().time()
        total = self._total
        if busy:
            self._busy.add(conn)
            peak.busy += 1
            total.busy += 1
            peak.note(now)
            total.note(now)
        else:
            peak.note(now)  # the one being released was in use until now
            total.note(now)
            self._busy.discard(conn)
            peak.busy -= 1
            total.busy -= 1

    def _caps(self, key: str, now: float) -> int:
        if self.peak_window <= 0:
            return self.max_idle
        peak = self._peaks.get(key)
        return max(self.max_idle, peak.value(now, self.peak_window) if peak is not None else 0)

    def _trim(self) -> None:
        """Close what the bounds do not allow, oldest first, and set the timer for the
        next time a bound will change."""
        if self._closed:
            return
        now = asyncio.get_running_loop().time()
        for key in list(self._idle):
            queue = self._idle[key]
            while queue and now - queue[0].idle_since >= self.max_idle_time:
                self._close(queue.popleft())
            cap = self._caps(key, now)
            while len(queue) > cap:
                self._close(queue.popleft())
            if not queue:
                del self._idle[key]
        total_cap = self.max_idle
        if self.peak_window > 0:
            total_cap = max(total_cap, self._total.value(now, self.peak_window))
        while self.idle_count > total_cap:
            oldest = min((q for q in self._idle.values() if q), key=lambda q: q[0].idle_since)
            self._close(oldest.popleft())
        for key in [k for k, q in self._idle.items() if not q]:
            del self._idle[key]
        # when is the next bound due to change?
        due = float("inf")
        for queue in self._idle.values():
            due = min(due, queue[0].idle_since + self.max_idle_time)
        if self.peak_window > 0 and (
            self.idle_count > self.max_idle or any(len(q) > self.max_idle for q in self._idle.values())
        ):
            due = min(due, now + self.peak_window)
        self._schedule(due)

    def _schedule(self, when: float) -> None:
        if when == float("inf") or when >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._trim()

    # -- closing ---------------------------------------------------------------------

    def _close(self, conn: WsConnection) -> None:
        conn.on_dead = None
        task = conn.close_soon()
        if not task.done():
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every connection, idle or busy, and wait until all are closed."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, WsConnection):  # finished before the cancel landed
                self._close(result)
        self._arriving.clear()
        for queue in self._idle.values():
            for conn in queue:
                self._close(conn)
        self._idle.clear()
        for conn in list(self._busy):
            self._close(conn)
        self._busy.clear()
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
