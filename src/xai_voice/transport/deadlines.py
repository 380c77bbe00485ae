"""Deadlines: the configured limits, and one cheap watchdog per connection.

Every wait on the network ends: a connection has at most one timer scheduled on the event
loop, however many deadlines are armed.  Moving a deadline later (once per audio chunk)
is a float assignment; only moving one earlier reschedules the timer.  This keeps the
per-chunk cost flat, which matters at hundreds of streams per core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import OptionError

__all__ = ["Timeouts", "Watchdog"]


@dataclass(frozen=True)
class Timeouts:
    """Limits, in seconds, on each wait for the service.

    ``first_audio`` and ``chunk_gap`` start counting when ``text.done`` has been queued:
    before that, silence may simply mean the service is waiting for more text, and how
    fast text comes is the caller's business.
    """

    #: TCP + TLS + WebSocket upgrade (or the REST request up to its headers).
    connect: float = 10.0
    #: one frame written to a socket that will not drain.
    send: float = 10.0
    #: ``text.done`` sent -> first audio.
    first_audio: float = 10.0
    #: between two audio chunks, after ``text.done``.
    chunk_gap: float = 10.0
    #: ``text.done`` sent -> ``audio.done``.  PROTOCOL.md: one huge utterance fails at 600 s.
    completion: float = 660.0
    #: ``text.clear`` sent -> ``audio.clear``; past it the connection is discarded.
    clear: float = 2.0
    #: ``session.update`` -> ``session.updated``.
    session_update: float = 5.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise OptionError(f"timeouts.{name}", f"{value!r} must be a positive number of seconds")

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        """Every limit set to ``seconds`` (``completion`` at least that)."""
        return cls(seconds, seconds, seconds, seconds, max(seconds, 1.0), seconds, seconds)


class Watchdog:
    """Named deadlines that share one loop timer; calls ``on_expire(name, seconds)`` once,
    for the first that passes, and then stays quiet."""

    __slots__ = ("_at", "_deadlines", "_handle", "_loop", "_on_expire", "_spans", "fired")

    def __init__(self, on_expire: Callable[[str, float], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_expire = on_expire
        self._deadlines: dict[str, float] = {}
        self._spans: dict[str, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")
        self.fired = False

    def arm(self, name: str, seconds: float) -> None:
        """(Re)start deadline ``name``: it passes ``seconds`` from now unless disarmed."""
        if self.fired:
            return
        when = self._loop.time() + seconds
        self._deadlines[name] = when
        self._spans[name] = seconds
        if when < self._at:
            self._schedule(when)

    def disarm(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)
        # the timer stays: when it fires early it finds nothing due and reschedules

    def is_armed(self, name: str) -> bool:
        return name in self._deadlines

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
        name, when = min(self._deadlines.items(), key=lambda kv: kv[1])
        if when > now:
            self._schedule(when)
            return
        self.fired = True
        self._deadlines.clear()
        self._on_expire(name, self._spans[name])
