"""Fault injection: what goes wrong, where, and how often.

A :class:`FaultPlan` belongs to one emulator instance.  The emulator asks it at each
point of an utterance's life ("is there a fault for me here?"); a matching fault fires
and counts down.  Faults can be added while the emulator runs (``fail_next``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Fault", "FaultKind", "FaultPlan", "FaultPoint"]


class FaultKind(str, Enum):
    #: stop sending anything (the socket stays open)
    STALL = "stall"
    #: drop the TCP connection with no WebSocket close
    DROP = "drop"
    #: close the WebSocket abruptly (code 1011)
    CLOSE = "close"
    #: send an ``error`` frame
    ERROR = "error"
    #: answer ``text.done`` at once: all audio and ``audio.done`` in one burst
    INSTANT_DONE = "instant_done"
    #: read the client's frames slowly
    SLOW_READ = "slow_read"
    #: refuse the WebSocket upgrade or the REST request with an HTTP status
    REFUSE = "refuse"
    #: a frame that is not JSON
    MALFORMED = "malformed"
    #: a binary frame
    BINARY = "binary"
    #: a JSON frame of an unknown type
    UNKNOWN_TYPE = "unknown_type"
    #: an audio.delta after audio.done
    AUDIO_AFTER_DONE = "audio_after_done"
    #: an audio.done with no utterance in flight
    DONE_WITHOUT_UTTERANCE = "done_without_utterance"
    #: a frame larger than any sane client accepts
    OVERSIZED = "oversized"
    #: the service's ~2,100 s connection deadline: an error frame, then close
    DEADLINE = "deadline"


class FaultPoint(str, Enum):
    #: before the WebSocket upgrade (or the REST response headers)
    UPGRADE = "upgrade"
    #: ``text.done`` received, no audio sent yet
    BEFORE_AUDIO = "before_audio"
    #: after the first audio chunk
    MID_AUDIO = "mid_audio"
    #: all audio sent, ``audio.done`` not yet
    AFTER_AUDIO = "after_audio"
    #: the connection is idle after ``audio.done``: fires when the client next uses it
    #: (so a pooled connection dies exactly when it is reused); AUDIO_AFTER_DONE,
    #: DONE_WITHOUT_UTTERANCE and DEADLINE fire right after ``audio.done`` instead
    IDLE = "idle"


#: the kinds that make sense at each point
_ALL = set(FaultPoint)
_ALLOWED: dict[FaultKind, set[FaultPoint]] = {
    FaultKind.REFUSE: {FaultPoint.UPGRADE},
    FaultKind.STALL: _ALL,
    FaultKind.DROP: _ALL,
    FaultKind.INSTANT_DONE: {FaultPoint.BEFORE_AUDIO},
    FaultKind.SLOW_READ: {FaultPoint.BEFORE_AUDIO},
    FaultKind.AUDIO_AFTER_DONE: {FaultPoint.IDLE},
    FaultKind.DONE_WITHOUT_UTTERANCE: {FaultPoint.IDLE},
}
_WS_POINTS = {p for p in FaultPoint if p is not FaultPoint.UPGRADE}


@dataclass
class Fault:
    """One fault.

    Args:
        kind: what happens.
        at: where in the utterance (or connection) it happens.
        times: how many times it fires (None: every time it matches).
        utterance: fire only for this utterance (0-based, counted over the emulator's
            life in the order their first text arrived); None: any.
        probability: chance of firing at each match (seeded by the plan), for soaks.
        status: the HTTP status for REFUSE.
        seconds: how long a STALL lasts, or the delay per frame for SLOW_READ.
    """

    kind: FaultKind
    at: FaultPoint = FaultPoint.BEFORE_AUDIO
    times: int | None = 1
    utterance: int | None = None
    probability: float = 1.0
    status: int = 503
    seconds: float = 3600.0
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        self.at = FaultPoint(self.at)
        allowed = _ALLOWED.get(self.kind, _WS_POINTS)
        if self.at not in allowed:
            raise ValueError(
                f"fault {self.kind.value} cannot happen at {self.at.value}; allowed: "
                + ", ".join(sorted(p.value for p in allowed))
            )
        if self.kind is FaultKind.SLOW_READ and self.seconds == 3600.0:
            self.seconds = 0.05

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``kind[@point][*N|*][:status]``: ``stall@mid_audio``, ``refuse:401``,
        ``drop@idle*2`` (twice), ``error@mid_audio*`` (every time).  For the CLI."""
        spec = spec.strip()
        status = 503
        times: int | None = 1
        if ":" in spec:
            spec, status_s = spec.rsplit(":", 1)
            status = int(status_s)
        if "*" in spec:
            spec, n = spec.split("*", 1)
            times = int(n) if n.strip() else None
        kind, _, at = spec.strip().partition("@")
        kind = kind.strip()
        if not at:
            at = "upgrade" if kind == "refuse" else "before_audio"
        return cls(FaultKind(kind), FaultPoint(at.strip()), times=times, status=status)


class FaultPlan:
    """The faults of one emulator.  Thread-safe, so a test may add faults from anywhere."""

    def __init__(self, faults: list[Fault] | None = None, *, seed: int = 0) -> None:
        self._faults = list(faults or [])
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        #: (kind, point, utterance) of every fault that fired, in order
        self.log: list[tuple[FaultKind, FaultPoint, int | None]] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(
        self, point: FaultPoint, utterance: int | None = None, *, kinds: Collection[FaultKind] = ()
    ) -> Fault | None:
        """The fault that fires now at ``point`` (of one of ``kinds``, if given), if any,
        counting it."""
        with self._lock:
            for fault in self._faults:
                if fault.at is not point or (kinds and fault.kind not in kinds):
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if fault.utterance is not None and fault.utterance != utterance:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                self.log.append((fault.kind, point, utterance))
                return fault
        return None

    def __bool__(self) -> bool:
        return bool(self._faults)
