"""Deadlines: the configured limits, one cheap watchdog per connection, and a bounded wait
that never loses what it stopped waiting for.

Every wait on the network ends: a connection has at most one timer scheduled on the event
loop, however many deadlines are armed.  Moving a deadline later (once per audio chunk)
is a float assignment; only moving one earlier reschedules the timer.  This keeps the
per-chunk cost flat, which matters at hundreds of streams per core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ..errors import OptionError

__all__ = ["DeadlinePassed", "Timeouts", "Watchdog", "dispose_later", "within"]

T = TypeVar("T")


class DeadlinePassed(Exception):
    """Raised by :func:`within` (distinct from the timeouts that the awaited code may
    raise itself, such as aiohttp's)."""


@dataclass(frozen=True)
class Timeouts:
    """Limits, in seconds, on each wait for the service.

    ``first_audio`` and ``chunk_gap`` start counting when ``text.done`` has been queued:
    before that, silence may simply mean the service is waiting for more text, and how
    fast text comes is the caller's business.
    """

    #: TCP + TLS + WebSocket upgrade; for REST, the connection (the response headers get
    #: ``connect + first_audio``: a service may answer only once its first audio is ready).
    connect: float = 10.0
    #: one frame written to a socket that will not drain.
    send: float = 10.0
    #: ``text.done`` sent -> first audio.
    first_audio: float = 10.0
    #: between two audio chunks, after ``text.done``.
    chunk_gap: float = 10.0
    #: ``text.done`` sent -> ``audio.done``, not counting time paused by a slow consumer.
    completion: float = 660.0
    #: ``text.clear`` sent -> ``audio.clear``; also the closing handshake.
    clear: float = 2.0
    #: ``session.update`` -> ``session.updated``; past it the map is applied on our side
    #: (and, for the client's life, without asking the service again).
    session_update: float = 2.0
    #: an idle connection silent this long is pinged (keepalive through NATs and proxies).
    keepalive: float = 20.0
    #: a keepalive ping's pong; past it the idle connection is dead and is dropped.
    pong: float = 5.0
    #: at most this long for a reused connection to answer a ping (the actual wait is
    #: about four round trips, measured on that connection); past it the connection is
    #: taken for dead and the utterance moves to a new one, replaying its text.
    probe: float = 0.75
    #: speech to text: the upgrade -> ``transcript.created``.
    created: float = 10.0
    #: speech to text: between two results of an utterance the service has started to
    #: hear (silence with no speech in it is not timed: a user may say nothing for long).
    result_gap: float = 10.0
    #: speech to text: ``audio.done`` sent -> the last ``transcript.done``.
    final: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise OptionError(f"timeouts.{f.name}", f"{value!r} must be a positive number of seconds")

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        """Every wait on the service limited to ``seconds`` (``completion`` at least 1 s);
        keepalive and probing keep their defaults."""
        return cls(
            connect=seconds,
            send=seconds,
            first_audio=seconds,
            chunk_gap=seconds,
            completion=max(seconds, 1.0),
            clear=seconds,
            session_update=seconds,
            created=seconds,
            result_gap=seconds,
            final=seconds,
        )


class Watchdog:
    """Named deadlines that share one loop timer; calls ``on_expire(name, seconds)`` once,
    for the first that passes, and then stays quiet.  Memory is one entry per armed
    deadline: disarming forgets it."""

    __slots__ = ("_at", "_deadlines", "_handle", "_loop", "_on_expire", "fired")

    def __init__(self, on_expire: Callable[[str, float], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_expire = on_expire
        #: name -> (when it passes, the span it was armed with)
        self._deadlines: dict[str, tuple[float, float]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")
        self.fired = False

    def arm(self, name: str, seconds: float) -> None:
        """(Re)start deadline ``name``: it passes ``seconds`` from now unless disarmed."""
        if self.fired:
            return
        when = self._loop.time() + seconds
        self._deadlines[name] = (when, seconds)
        if when < self._at:
            self._schedule(when)

    def disarm(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)
        # the timer stays: when it fires early it finds nothing due and reschedules

    def remaining(self, name: str) -> float | None:
        """Seconds left on ``name``, or None when it is not armed."""
        entry = self._deadlines.get(name)
        return None if entry is None else max(0.0, entry[0] - self._loop.time())

    def is_armed(self, name: str) -> bool:
        return name in self._deadlines

    def __len__(self) -> int:
        return len(self._deadlines)

    def cancel(self) -> None:
        self._deadlines.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = float("inf")

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = when
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        self._at = float("inf")
        if not self._deadlines or self.fired:
            return
        now = self._loop.time()
        name, (when, span) = min(self._deadlines.items(), key=lambda kv: kv[1][0])
        if when > now:
            self._schedule(when)
            return
        self.fired = True
        self._deadlines.clear()
        self._on_expire(name, span)


def dispose_later(task: asyncio.Future[T], dispose: Callable[[T], None]) -> None:
    """Nobody will take ``task``'s result: stop it, and if it succeeds anyway (it was
    already done, or finished before the cancel landed) hand the result to ``dispose``.
    This is how a connection made for a caller that gave up is closed instead of leaked."""

    def settle(t: asyncio.Future[T]) -> None:
        if t.cancelled():
            return
        if t.exception() is None:
            dispose(t.result())

    if task.done():
        settle(task)
    else:
        task.cancel()
        task.add_done_callback(settle)


async def within(
    coro: Coroutine[Any, Any, T],
    seconds: float,
    *,
    dispose: Callable[[T], None],
    name: str = "xai-voice-bounded",
) -> T:
    """``await coro`` for at most ``seconds`` (raises :class:`DeadlinePassed`).  Whether we
    stop waiting because the deadline passed or because we were cancelled, a result that
    ``coro`` produces anyway is handed to ``dispose`` instead of being lost (the race that
    ``asyncio.wait_for`` has on Python 3.11)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    try:
        done, _ = await asyncio.wait((task,), timeout=seconds)
    except asyncio.CancelledError:
        dispose_later(task, dispose)
        raise
    if not done:
        dispose_later(task, dispose)
        raise DeadlinePassed
    return task.result()
