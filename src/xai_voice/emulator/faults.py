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
    #: audio.delta frames of a cleared utterance after its audio.clear (at ``clear``;
    #: ``seconds`` after the audio.clear, 0 for at once)
    STALE_AUDIO = "stale_audio"
    #: the connection goes silent while idle: no FIN, no RST, no pong, nothing (a NAT or
    #: proxy that dropped it)
    SILENT = "silent"
    #: audio forever, never audio.done (stops by itself after ``seconds``)
    ENDLESS = "endless"
    #: REST: the response headers dripped a byte every ``seconds``
    DRIP = "drip"
    #: speech to text: every final result sent twice
    RESEND_FINALS = "resend_finals"
    #: speech to text: at audio.done, the open utterance's words go out as locked chunks
    #: only, and transcript.done is empty (the client must still make a final of them)
    EMPTY_DONE = "empty_done"
    #: speech to text: the service ends the stream on its own, as if audio.done had come:
    #: what it heard is finalised, transcript.done, then it closes
    ENDS_EARLY = "ends_early"


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
    #: DONE_WITHOUT_UTTERANCE, DEADLINE and SILENT fire right after ``audio.done`` instead
    IDLE = "idle"
    #: a ``text.clear`` arrived (STALE_AUDIO)
    CLEAR = "clear"
    #: a ``session.update`` arrived: STALL leaves it unanswered, ERROR refuses it
    SESSION_UPDATE = "session_update"
    #: speech to text: before ``transcript.created``
    CREATED = "created"
    #: speech to text: after the first result
    MID_STREAM = "mid_stream"
    #: speech to text: ``audio.done`` arrived
    FINISH = "finish"
    #: speech to text: ``transcript.done`` sent
    AFTER_DONE = "after_done"


#: the kinds that make sense at each point
_UTTERANCE = {FaultPoint.BEFORE_AUDIO, FaultPoint.MID_AUDIO, FaultPoint.AFTER_AUDIO, FaultPoint.IDLE}
_STT = {FaultPoint.CREATED, FaultPoint.MID_STREAM, FaultPoint.FINISH, FaultPoint.AFTER_DONE}
_ALLOWED: dict[FaultKind, set[FaultPoint]] = {
    FaultKind.REFUSE: {FaultPoint.UPGRADE},
    FaultKind.STALL: _UTTERANCE | _STT | {FaultPoint.UPGRADE, FaultPoint.SESSION_UPDATE},
    FaultKind.DROP: _UTTERANCE | _STT | {FaultPoint.UPGRADE},
    FaultKind.CLOSE: _UTTERANCE | _STT,
    FaultKind.ERROR: _UTTERANCE | {FaultPoint.SESSION_UPDATE, FaultPoint.CREATED, FaultPoint.MID_STREAM},
    FaultKind.RESEND_FINALS: {FaultPoint.MID_STREAM},
    FaultKind.EMPTY_DONE: {FaultPoint.FINISH},
    FaultKind.ENDS_EARLY: {FaultPoint.MID_STREAM},
    FaultKind.INSTANT_DONE: {FaultPoint.BEFORE_AUDIO},
    FaultKind.SLOW_READ: {FaultPoint.BEFORE_AUDIO},
    FaultKind.AUDIO_AFTER_DONE: {FaultPoint.IDLE},
    FaultKind.DONE_WITHOUT_UTTERANCE: {FaultPoint.IDLE},
    FaultKind.STALE_AUDIO: {FaultPoint.CLEAR},
    FaultKind.SILENT: {FaultPoint.IDLE},
    FaultKind.ENDLESS: {FaultPoint.BEFORE_AUDIO, FaultPoint.MID_AUDIO},
    FaultKind.DRIP: {FaultPoint.UPGRADE},
}
_WS_POINTS = _UTTERANCE


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
        service: ``"tts"`` or ``"stt"`` to fire only for that service (an upgrade fault
            otherwise hits whichever connects next); None: either.
        status: the HTTP status for REFUSE.
        seconds: how long a STALL lasts; the delay per frame for SLOW_READ, per byte for
            DRIP; how late STALE_AUDIO comes after the audio.clear; how long ENDLESS
            audio goes on.
    """

    kind: FaultKind
    at: FaultPoint = FaultPoint.BEFORE_AUDIO
    times: int | None = 1
    utterance: int | None = None
    probability: float = 1.0
    status: int = 503
    seconds: float = 3600.0
    service: str | None = None
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
        if self.seconds == 3600.0:
            self.seconds = {
                FaultKind.SLOW_READ: 0.05,
                FaultKind.STALE_AUDIO: 0.0,
                FaultKind.ENDLESS: 60.0,
                FaultKind.DRIP: 1.0,
            }.get(self.kind, self.seconds)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``kind[@point][*N|*][:status]``: ``stall@mid_audio``, ``refuse:401``,
        ``drop@idle*2`` (twice), ``error@mid_audio*`` (every time).  For the CLI; raises
        ValueError naming what is wrong."""
        spec = spec.strip()
        status = 503
        times: int | None = 1
        if ":" in spec:
            spec, status_s = spec.rsplit(":", 1)
            if not status_s.strip().isdigit() or not 100 <= int(status_s) <= 599:
                raise ValueError(f"{status_s!r} is not an HTTP status (100 to 599)")
            status = int(status_s)
        if "*" in spec:
            spec, n = spec.split("*", 1)
            if n.strip() and not n.strip().isdigit():
                raise ValueError(f"{n!r} is not a number of times")
            times = int(n) if n.strip() else None
        kind, _, at = spec.strip().partition("@")
        kind = kind.strip()
        if kind not in {k.value for k in FaultKind}:
            raise ValueError(f"unknown fault {kind!r}; kinds: {', '.join(k.value for k in FaultKind)}")
        if not at:
            at = {
                "refuse": "upgrade",
                "drip": "upgrade",
                "stale_audio": "clear",
                "silent": "idle",
                "resend_finals": "mid_stream",
                "empty_done": "finish",
            }.get(kind, "before_audio")
        if at.strip() not in {p.value for p in FaultPoint}:
            raise ValueError(f"unknown point {at!r}; points: {', '.join(p.value for p in FaultPoint)}")
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
        self,
        point: FaultPoint,
        utterance: int | None = None,
        *,
        kinds: Collection[FaultKind] = (),
        service: str | None = None,
    ) -> Fault | None:
        """The fault that fires now at ``point`` (of one of ``kinds``, if given, and for
        ``service``), if any, counting it."""
        with self._lock:
            for fault in self._faults:
                if fault.at is not point or (kinds and fault.kind not in kinds):
                    continue
                if fault.service is not None and service is not None and fault.service != service:
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
