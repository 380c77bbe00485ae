"""The client side of one xAI STT WebSocket connection, as a state machine without I/O.

::

    CONNECTING --transcript.created--> STREAMING --finish--> FINISHING
    FINISHING --transcript.done (every channel)--> DONE
    STREAMING --transcript.done--> DONE (the service ended the stream itself)
    any --error frame / frame that cannot be read--> CLOSED

The same two rules as for TTS: **FINISHING is set when ``audio.done`` is produced**, not
when its write returns, so a ``transcript.done``, or a close, that beats our write is
handled like any other; and frames go out in the order produced (:meth:`frames`).
Audio sent before ``transcript.created`` is kept, up to a bound, and goes out the moment
the session is ready: never dropped.

The service's results are a stream of interim text, locked chunks (long speech is cut
about every 3 s) and a ``speech_final`` that restates the whole utterance, merged and
re-punctuated; the same final may come twice.  This machine turns them into clean events:
:class:`SpeechStarted`, :class:`Interim` (the utterance so far), one :class:`Final` per
utterance (the ``speech_final`` text and words, preferred to the chunks it merges; a final
re-sent is skipped), :class:`SpeechEnded`, and at the end :class:`Finished` with the
remainder of ``transcript.done`` as a last :class:`Final` if there is one.  Per channel
when the audio is multichannel.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from ..errors import LocalProtocolError, RemoteProtocolError
from .messages import (
    AudioDone,
    ErrorMessage,
    ServerMessage,
    TranscriptCreated,
    TranscriptDone,
    TranscriptPartial,
    UnknownMessage,
    Word,
    decode_server,
    encode_client,
)

__all__ = [
    "BufferFull",
    "Event",
    "Final",
    "Finished",
    "Interim",
    "Ready",
    "RecognizerConnection",
    "ServerError",
    "Skipped",
    "SpeechEnded",
    "SpeechStarted",
    "State",
]


class State(Enum):
    #: Waiting for ``transcript.created``; audio is held.
    CONNECTING = "connecting"
    #: Audio flows.
    STREAMING = "streaming"
    #: ``audio.done`` is produced; waiting for ``transcript.done``.
    FINISHING = "finishing"
    #: Every channel's ``transcript.done`` came: nothing more will.
    DONE = "done"
    #: Failed or closed.
    CLOSED = "closed"


class BufferFull(LocalProtocolError):
    """More audio than the bound was sent before the session was ready; wait for it."""


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """``transcript.created``: the session is ready."""

    id: str | None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    channel: int
    start: float


@dataclass(frozen=True, slots=True)
class Interim:
    """The utterance so far (locked chunks and the latest interim text), which may still
    change.  ``stable`` when it ends with a locked chunk (no guess at the tail)."""

    text: str
    words: tuple[Word, ...]
    channel: int
    start: float
    end: float
    stable: bool


@dataclass(frozen=True, slots=True)
class Final:
    """One utterance, final.  ``from_done``: the remainder of ``transcript.done``."""

    text: str
    words: tuple[Word, ...]
    channel: int
    start: float
    end: float
    from_done: bool = False


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    channel: int
    end: float


@dataclass(frozen=True, slots=True)
class Finished:
    """Every channel is done; ``duration`` is the audio the service accounted for."""

    duration: float
    ended_by_service: bool = False


@dataclass(frozen=True, slots=True)
class ServerError:
    message: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


Event = Ready | SpeechStarted | Interim | Final | SpeechEnded | Finished | ServerError | Skipped


@dataclass
class _Channel:
    chunks: list[TranscriptPartial] = field(default_factory=list)
    speaking: bool = False
    last_final: tuple[float, str] | None = None
    done: bool = False
    duration: float = 0.0


def _join(parts: list[str]) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


class RecognizerConnection:
    """Sans-IO client for one STT WebSocket connection.

    Call :meth:`send_audio` and :meth:`finish`; write :meth:`frames` (bytes are binary
    frames, strings text frames) in order after each call and after each received frame.
    Feed server frames to :meth:`receive_text` / :meth:`receive_binary`.

    Args:
        channels: channels in the audio (each gets its ``transcript.done``).
        frame_bytes: audio goes out in frames of this size (about 100 ms).
        max_pending: audio held before ``transcript.created``, at most.
    """

    def __init__(self, *, channels: int = 1, frame_bytes: int = 3200, max_pending: int = 10 * 32000) -> None:
        self.state = State.CONNECTING
        self.frame_bytes = max(1, frame_bytes)
        self.max_pending = max_pending
        self._channels = [_Channel() for _ in range(max(1, channels))]
        self._outbox: deque[bytes | str] = deque()
        self._held = bytearray()  # audio not yet framed (or not yet allowed out)
        self._finish_pending = False
        self._error: str | None = None
        #: audio bytes handed to the wire so far
        self.audio_sent = 0

    def __repr__(self) -> str:
        return f"<RecognizerConnection {self.state.value} held={len(self._held)}>"

    @property
    def pending_bytes(self) -> int:
        """Audio held back (before the session is ready, or short of a whole frame)."""
        return len(self._held)

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    # -- client actions ------------------------------------------------------------

    def send_audio(self, data: bytes) -> None:
        """Queue audio.  Before ``transcript.created`` it is held (at most
        ``max_pending`` bytes: past that, :class:`BufferFull`, and the caller waits for
        the session); afterwards it goes out in whole frames."""
        if self.state is State.FINISHING or self._finish_pending:
            raise LocalProtocolError("cannot send audio after finish()")
        if self.state is State.DONE:
            raise LocalProtocolError("cannot send audio: the service ended this stream")
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"cannot send audio: the connection is closed ({self._error})")
        if self.state is State.CONNECTING:
            if len(self._held) + len(data) > self.max_pending:
                raise BufferFull(
                    f"{len(self._held) + len(data)} bytes of audio before the session was ready "
                    f"(at most {self.max_pending} are held)"
                )
            self._held += data
            return
        self._held += data
        self._emit_frames(final=False)

    def finish(self) -> None:
        """No more audio.  From here on, ``transcript.done`` completes the stream, even if
        it arrives before the caller's write of ``audio.done`` returns."""
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"cannot finish: the connection is closed ({self._error})")
        if self.state in (State.FINISHING, State.DONE) or self._finish_pending:
            return
        if self.state is State.CONNECTING:
            self._finish_pending = True  # sent with the held audio when the session is ready
            return
        self._emit_frames(final=True)
        self._outbox.append(encode_client(AudioDone()))
        self.state = State.FINISHING

    @property
    def has_frames(self) -> bool:
        """Whether :meth:`frames` has anything to write."""
        return bool(self._outbox)

    def frames(self) -> list[bytes | str]:
        """Everything to write now, in order (and forgets it)."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def close(self, reason: str = "closed") -> None:
        if self.state not in (State.CLOSED, State.DONE):
            self.state = State.CLOSED
            self._error = reason

    def _emit_frames(self, *, final: bool) -> None:
        held = self._held
        n = self.frame_bytes
        while len(held) >= n:
            self._outbox.append(bytes(held[:n]))
            self.audio_sent += n
            del held[:n]
        if final and held:
            self._outbox.append(bytes(held))
            self.audio_sent += len(held)
            held.clear()

    # -- server input --------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> list[Event]:
        """Handle one server text frame; the events it means, in order.  Raises
        :class:`RemoteProtocolError` (and moves to CLOSED) for a frame that cannot be read."""
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"connection is closed ({self._error}); nothing to receive")
        try:
            msg = decode_server(text)
        except RemoteProtocolError as exc:
            self.close(str(exc))
            raise
        return self.receive(msg)

    def receive_binary(self, data: bytes) -> list[Event]:
        return [Skipped(f"a binary frame of {len(data)} bytes")]

    def receive(self, msg: ServerMessage) -> list[Event]:
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"connection is closed ({self._error}); nothing to receive")
        if self.state is State.DONE:
            return [Skipped(f"{type(msg).__name__} after the stream ended")]
        if isinstance(msg, TranscriptCreated):
            if self.state is not State.CONNECTING:
                return [Skipped("a second transcript.created")]
            self.state = State.STREAMING
            if self._finish_pending:
                self._finish_pending = False
                self.finish()
            else:
                self._emit_frames(final=False)
            return [Ready(msg.id)]
        if isinstance(msg, TranscriptPartial):
            return self._partial(msg)
        if isinstance(msg, TranscriptDone):
            return self._done(msg)
        if isinstance(msg, ErrorMessage):
            self.close(f"server error: {msg.message}")
            return [ServerError(msg.message, msg.trace_id)]
        if isinstance(msg, UnknownMessage):
            return [Skipped(f"unknown message type {msg.type!r}")]
        raise TypeError(f"not a server message: {msg!r}")  # pragma: no cover

    def _channel(self, index: int) -> _Channel | None:
        return self._channels[index] if 0 <= index < len(self._channels) else None

    def _partial(self, p: TranscriptPartial) -> list[Event]:
        ch = self._channel(p.channel)
        if ch is None:
            return [Skipped(f"a result for channel {p.channel}, which this stream does not have")]
        events: list[Event] = []
        text = p.text.strip()
        if not ch.speaking and (text or ch.chunks):
            ch.speaking = True
            events.append(SpeechStarted(p.channel, p.start))
        end = p.start + p.duration
        if p.speech_final:
            key = (round(p.start, 2), text)
            if key == ch.last_final and not ch.chunks:
                return [Skipped("a final result sent again")]
            words = p.words or tuple(w for c in ch.chunks for w in c.words)
            final_text = text or _join([c.text for c in ch.chunks])
            start = ch.chunks[0].start if ch.chunks and not text else p.start
            ch.chunks.clear()
            ch.last_final = key
            if final_text:
                events.append(Final(final_text, words, p.channel, start, end))
            if ch.speaking:
                ch.speaking = False
                events.append(SpeechEnded(p.channel, end))
            return events
        if p.is_final:  # a locked chunk
            if ch.chunks and (round(ch.chunks[-1].start, 2), ch.chunks[-1].text.strip()) == (
                round(p.start, 2),
                text,
            ):
                return [*events, Skipped("a locked chunk sent again")]
            if not text:
                return events
            ch.chunks.append(p)
            first = ch.chunks[0]
            events.append(
                Interim(
                    _join([c.text for c in ch.chunks]),
                    tuple(w for c in ch.chunks for w in c.words),
                    p.channel,
                    first.start,
                    end,
                    stable=True,
                )
            )
            return events
        if not text:
            return events
        # interim: the tail after the locked chunks, or a restatement of the whole utterance
        chunks = ch.chunks
        if chunks and p.start >= chunks[-1].start + chunks[-1].duration - 0.05:
            joined = _join([*(c.text for c in chunks), text])
            words = tuple(w for c in chunks for w in c.words) + p.words
            start = chunks[0].start
        else:
            joined, words, start = text, p.words, (chunks[0].start if chunks else p.start)
        events.append(Interim(joined, words, p.channel, start, end, stable=False))
        return events

    def _done(self, d: TranscriptDone) -> list[Event]:
        ch = self._channel(d.channel)
        if ch is None:
            return [Skipped(f"transcript.done for channel {d.channel}, which this stream does not have")]
        if ch.done:
            return [Skipped("transcript.done sent again")]
        events: list[Event] = []
        text = d.text.strip()
        chunk_text = _join([c.text for c in ch.chunks])
        remainder = text or chunk_text
        if remainder:
            words = d.words if text else tuple(w for c in ch.chunks for w in c.words)
            start = words[0].start if words else (ch.chunks[0].start if ch.chunks else 0.0)
            end = words[-1].end if words else d.duration
            events.append(Final(remainder, words, d.channel, start, end, from_done=True))
        ch.chunks.clear()
        if ch.speaking:
            ch.speaking = False
            events.append(SpeechEnded(d.channel, d.duration))
        ch.done = True
        ch.duration = d.duration
        if all(c.done for c in self._channels):
            early = self.state is State.STREAMING
            self.state = State.DONE
            events.append(Finished(max(c.duration for c in self._channels), ended_by_service=early))
        return events
