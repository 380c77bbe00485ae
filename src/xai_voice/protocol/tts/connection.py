"""The client side of one xAI TTS WebSocket connection, as a state machine without I/O.

Everything that decides how a server message is handled lives in this file.  Two rules
make the connection safe under any task order:

* **State changes when a frame is produced.**  Every method that produces a client frame
  changes the state before it returns the frame, so by the time the caller awaits the
  network write, the machine already expects the answer: an ``audio.done`` that beats the
  write of ``text.done`` completes the utterance like any other.
* **Ownership is explicit.**  There is no utterance id on the wire, so the machine hands
  out one: :meth:`ClientConnection.begin` starts the next cycle (as h11's
  ``start_next_cycle()`` does) and returns an *epoch*; every frame an utterance produces
  names its epoch, and a frame of any other epoch is refused with :class:`StaleUtterance`.
  A send loop of a cancelled utterance that resumes late can therefore never write its
  leftover text into the utterance that took the connection next.

::

    IDLE --begin--> IDLE (owned) --send_text--> SENDING --finish--> FINISHING
    FINISHING --audio.done--> IDLE (released)
    SENDING | FINISHING --clear--> CLEARING --audio.clear--> IDLE (released, *tainted*)
    any --unusable frame / error frame / transport failure--> CLOSED

A cleared connection is *tainted*: the wire cannot prove that no audio of the cleared
utterance is still on its way (a server may send some after ``audio.clear``), so it is
never :attr:`~ClientConnection.reusable` again.  Session updates are orthogonal: each
``session.update`` is answered, in order, by one ``session.updated`` or one ``error``.

Frames this version does not understand are :class:`Skipped`, not fatal (docs/protocol.md,
"the rule of tolerance"); only what would make the outcome wrong closes the connection:
audio that no utterance of ours can own, a frame that is not JSON, audio that is not
base64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NoReturn

from ..errors import LocalProtocolError, RemoteProtocolError
from .messages import (
    MAX_DELTA_CHARS,
    AudioClear,
    AudioDelta,
    AudioDone,
    ErrorMessage,
    ServerMessage,
    SessionUpdate,
    SessionUpdated,
    TextClear,
    TextDelta,
    TextDone,
    Timestamps,
    UnknownMessage,
    decode_server,
    encode_client,
)

__all__ = [
    "AudioChunk",
    "Cleared",
    "ClientConnection",
    "Event",
    "ServerError",
    "SessionRejected",
    "SessionUpdated",
    "Skipped",
    "StaleUtterance",
    "State",
    "UtteranceDone",
]


class State(Enum):
    #: No utterance in flight (one may own the connection, having sent nothing yet).
    IDLE = "idle"
    #: Text of an utterance has been sent; ``text.done`` has not.
    SENDING = "sending"
    #: ``text.done`` is produced; waiting for ``audio.done``.
    FINISHING = "finishing"
    #: ``text.clear`` is produced; waiting for ``audio.clear``.
    CLEARING = "clearing"
    #: Failed or closed; nothing more may be sent or received.
    CLOSED = "closed"


class StaleUtterance(LocalProtocolError):
    """A frame was produced for an utterance that no longer owns the connection (it was
    cancelled, or it ended).  Refused: it would have reached the next utterance."""


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio of the utterance in flight, in the connection's codec.  ``data`` may be
    empty when the service sent timings alone."""

    data: bytes = field(repr=False)
    timestamps: Timestamps | None = None


@dataclass(frozen=True, slots=True)
class UtteranceDone:
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    """The server confirmed ``text.clear``."""


@dataclass(frozen=True, slots=True)
class SessionRejected:
    """The server refused a ``session.update``; the previous map stays in force."""

    message: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` frame that was not the answer to a session update.  It ends the
    utterance in flight and the connection (its state is unknown afterwards)."""

    message: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A frame that was understood well enough to know it can be ignored, and was:
    an unknown type, a binary frame, an answer to nothing, timings that do not parse."""

    reason: str


Event = AudioChunk | UtteranceDone | Cleared | SessionUpdated | SessionRejected | ServerError | Skipped


class ClientConnection:
    """Sans-IO client for one WebSocket connection.

    Call :meth:`begin` to own the connection for one utterance; produce frames with
    :meth:`send_text`, :meth:`finish` and :meth:`clear` (each names the epoch that
    :meth:`begin` returned) and :meth:`update_session`; write them in the order produced.
    Feed every server frame to :meth:`receive_text` or :meth:`receive_binary` and act on
    the event returned.
    """

    __slots__ = (
        "_done_sent",
        "_error",
        "_late_answers",
        "epoch",
        "owner",
        "pending_updates",
        "state",
        "tainted",
    )

    def __init__(self) -> None:
        self.state = State.IDLE
        #: the epoch of the last utterance that began; ``owner`` is it while it lasts
        self.epoch = 0
        self.owner: int | None = None
        #: a clear happened: stale audio may still come, so the connection is never reused
        self.tainted = False
        #: session.update frames not yet answered
        self.pending_updates = 0
        # answers to updates we stopped waiting for, still to be absorbed if they come
        self._late_answers = 0
        # whether text.done went out for the utterance being cleared (then a late
        # audio.done for it is legal while CLEARING)
        self._done_sent = False
        self._error: str | None = None

    def __repr__(self) -> str:
        owner = f" owner={self.owner}" if self.owner is not None else ""
        return f"<ClientConnection {self.state.value}{owner} pending_updates={self.pending_updates}>"

    @property
    def reusable(self) -> bool:
        """True when a new utterance may :meth:`begin`: idle, unowned, never cleared, no
        session update outstanding."""
        return (
            self.state is State.IDLE and self.owner is None and not self.tainted and self.pending_updates == 0
        )

    # -- ownership -----------------------------------------------------------------

    def begin(self) -> int:
        """Start the next cycle: the caller owns the connection until its utterance ends
        (``audio.done``), is cleared, or it calls :meth:`release`.  Returns the epoch every
        frame of that utterance must name."""
        if not self.reusable:
            raise LocalProtocolError(f"cannot begin an utterance: {self!r} is not reusable")
        self.epoch += 1
        self.owner = self.epoch
        return self.epoch

    def release(self, epoch: int) -> None:
        """Give the connection back having sent nothing (an utterance with no text)."""
        if self.owner != epoch:
            return  # already ended, and released with it
        self._require(State.IDLE, action="release the connection")
        self.owner = None

    def owns(self, epoch: int) -> bool:
        return self.owner == epoch and self.state is not State.CLOSED

    # -- client actions ------------------------------------------------------------

    def send_text(self, epoch: int, text: str) -> str:
        """The ``text.delta`` frame for ``text`` (at most 15,000 characters: split longer
        text with :func:`split_text` and produce one frame per piece, just before writing
        it, so that each write is checked against the owner)."""
        self._own(epoch, "send text")
        self._require(State.IDLE, State.SENDING, action="send text")
        if not text:
            raise LocalProtocolError("cannot send empty text")
        if len(text) > MAX_DELTA_CHARS:
            raise LocalProtocolError(f"a text.delta holds at most {MAX_DELTA_CHARS} characters")
        self.state = State.SENDING
        return encode_client(TextDelta(text))

    def finish(self, epoch: int) -> str:
        """The ``text.done`` frame.  From here on, ``audio.done`` completes the utterance,
        even if it arrives before the caller's write of this frame returns."""
        self._own(epoch, "finish an utterance")
        self._require(State.SENDING, action="finish an utterance")
        self.state = State.FINISHING
        return encode_client(TextDone())

    def clear(self, epoch: int) -> str | None:
        """The ``text.clear`` frame, or None when there is nothing to clear (no text was
        sent: the connection is simply released).  Either way the utterance no longer
        owns the connection; a connection that was cleared is never reusable."""
        self._own(epoch, "clear")
        self._require(State.IDLE, State.SENDING, State.FINISHING, action="clear")
        self.owner = None
        if self.state is State.IDLE:
            return None
        self._done_sent = self.state is State.FINISHING
        self.state = State.CLEARING
        self.tainted = True
        return encode_client(TextClear())

    def update_session(self, replace: Mapping[str, str]) -> str:
        """The ``session.update`` frame; the map applies from the next utterance on."""
        self._require(State.IDLE, State.SENDING, State.FINISHING, State.CLEARING, action="update session")
        self.pending_updates += 1
        return encode_client(SessionUpdate(dict(replace)))

    def abandon_updates(self) -> None:
        """Stop waiting for the answers to outstanding updates (they took too long); if
        they come later they are absorbed instead of being mistaken for other frames."""
        self._late_answers += self.pending_updates
        self.pending_updates = 0

    def close(self, reason: str = "closed") -> None:
        """Mark the connection unusable (the transport closed or failed)."""
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.owner = None
            self._error = reason

    # -- server input --------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> Event | None:
        """Handle one server text frame.  Returns the event it means, or None for audio
        of an utterance that is being cleared (discarded on purpose: the user asked to
        stop it).  Raises :class:`RemoteProtocolError`, and moves to CLOSED, when the frame
        cannot be handled without risking a wrong outcome."""
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"connection is closed ({self._error}); nothing to receive")
        try:
            msg = decode_server(text)
        except RemoteProtocolError as exc:
            self.close(str(exc))
            raise
        return self.receive(msg)

    def receive_binary(self, data: bytes) -> Skipped:
        """The service sends no binary frames (docs/protocol.md); one is skipped."""
        return Skipped(f"a binary frame of {len(data)} bytes")

    def receive(self, msg: ServerMessage) -> Event | None:
        """Handle one decoded server message (see :meth:`receive_text`)."""
        state = self.state
        if state is State.CLOSED:
            raise LocalProtocolError(f"connection is closed ({self._error}); nothing to receive")
        if isinstance(msg, AudioDelta):
            if state is State.SENDING or state is State.FINISHING:
                if msg.bad_timestamps and not msg.audio:
                    return Skipped("audio.delta with malformed audio_timestamps and no audio")
                return AudioChunk(msg.audio, msg.timestamps)
            if state is State.CLEARING:
                return None
            if not msg.audio:
                return Skipped("audio.delta without audio and no utterance in flight")
            # audio nobody can own: an utterance that begins now must not get it
            self._illegal("audio.delta with no utterance in flight")
        if isinstance(msg, AudioDone):
            if state is State.FINISHING:
                self.state = State.IDLE
                self.owner = None
                return UtteranceDone(msg.trace_id)
            if state is State.CLEARING and self._done_sent:
                # the server finished before it saw our clear; audio.clear still follows
                self._done_sent = False
                return None
            if state is State.SENDING:
                return Skipped("audio.done before text.done was sent")
            return Skipped("audio.done with no utterance in flight")
        if isinstance(msg, AudioClear):
            if state is State.CLEARING:
                self.state = State.IDLE
                self._done_sent = False
                return Cleared()
            return Skipped("audio.clear without a text.clear")
        if isinstance(msg, SessionUpdated):
            if self.pending_updates > 0:
                self.pending_updates -= 1
                return msg
            if self._late_answers > 0:
                self._late_answers -= 1
                return Skipped("a late session.updated")
            return Skipped("session.updated without a session.update")
        if isinstance(msg, ErrorMessage):
            if self.pending_updates > 0:
                self.pending_updates -= 1
                return SessionRejected(msg.message)
            if self._late_answers > 0:
                self._late_answers -= 1
                return Skipped(f"a late refusal of a session.update: {msg.message}")
            self.close(f"server error: {msg.message}")
            return ServerError(msg.message, msg.trace_id)
        if isinstance(msg, UnknownMessage):
            return Skipped(f"unknown message type {msg.type!r}")
        raise TypeError(f"not a server message: {msg!r}")  # pragma: no cover

    # -- helpers -------------------------------------------------------------------

    def _own(self, epoch: int, action: str) -> None:
        if self.owner != epoch or self.state is State.CLOSED:
            if self.state is State.CLOSED:
                raise LocalProtocolError(f"cannot {action}: the connection is closed ({self._error})")
            raise StaleUtterance(
                f"cannot {action}: utterance {epoch} no longer owns this connection"
                + (f" (utterance {self.owner} does)" if self.owner is not None else "")
            )

    def _require(self, *states: State, action: str) -> None:
        if self.state not in states:
            raise LocalProtocolError(f"cannot {action} while the connection is {self.state.value}")

    def _illegal(self, what: str) -> NoReturn:
        self.close(what)
        raise RemoteProtocolError(f"the server broke the protocol: {what}")
