"""The client side of one xAI TTS WebSocket connection, as a state machine without I/O.

Everything that decides how a server message is handled lives in this file.  The rule
that makes the "dropped audio.done" hang impossible is structural: every method that
*produces* a client frame changes the state before it returns the frame, so by the time
the caller awaits the network write, the machine already expects the answer.  A server
that answers before the write returns is therefore handled like any other.

Utterances on one connection are strictly sequential (there is no utterance id on the
wire), so one ``state`` describes the connection::

    IDLE --send_text--> SENDING --finish--> FINISHING --audio.done--> IDLE
    IDLE | SENDING | FINISHING --clear--> CLEARING --audio.clear--> IDLE
    any  --illegal server message / fatal error--> CLOSED

Session updates are orthogonal: each ``session.update`` is answered, in order, by one
``session.updated`` or by one ``error`` frame (PROTOCOL.md: "an invalid map gets an error
frame and the old map stays").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NoReturn

from .errors import LocalProtocolError, RemoteProtocolError
from .messages import (
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
    decode_server,
    encode_client,
    split_text,
)

__all__ = [
    "AudioChunk",
    "Cleared",
    "ClientConnection",
    "Event",
    "ServerError",
    "SessionRejected",
    "SessionUpdated",
    "State",
    "UtteranceDone",
]


class State(Enum):
    #: No utterance in flight; the connection may be reused.
    IDLE = "idle"
    #: Text of an utterance has been sent; ``text.done`` has not.
    SENDING = "sending"
    #: ``text.done`` is queued; waiting for ``audio.done``.
    FINISHING = "finishing"
    #: ``text.clear`` is queued; waiting for ``audio.clear``.
    CLEARING = "clearing"
    #: Failed or closed; nothing more may be sent or received.
    CLOSED = "closed"


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio of the utterance in flight, in the connection's codec."""

    data: bytes = field(repr=False)
    timestamps: Timestamps | None = None


@dataclass(frozen=True, slots=True)
class UtteranceDone:
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    """The server confirmed ``text.clear``: the connection is idle and clean."""


@dataclass(frozen=True, slots=True)
class SessionRejected:
    """The server refused a ``session.update``; the previous map stays in force."""

    message: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` frame that was not the answer to a session update.  It ends the
    utterance in flight and the connection (its state is unknown afterwards)."""

    message: str


Event = AudioChunk | UtteranceDone | Cleared | SessionUpdated | SessionRejected | ServerError


class ClientConnection:
    """Sans-IO client for one WebSocket connection.

    Produce frames with :meth:`send_text`, :meth:`finish`, :meth:`clear` and
    :meth:`update_session`; write them in the order produced.  Feed every server text
    frame to :meth:`receive_text` and act on the event it returns.
    """

    __slots__ = ("_done_sent", "_error", "pending_updates", "state")

    def __init__(self) -> None:
        self.state = State.IDLE
        #: session.update frames not yet answered.
        self.pending_updates = 0
        # whether text.done went out for the utterance being cleared (then a late
        # audio.done for it is legal while CLEARING)
        self._done_sent = False
        self._error: str | None = None

    def __repr__(self) -> str:
        return f"<ClientConnection {self.state.value} pending_updates={self.pending_updates}>"

    @property
    def reusable(self) -> bool:
        """True when the connection is idle and clean enough to start a new utterance."""
        return self.state is State.IDLE and self.pending_updates == 0

    # -- client actions ------------------------------------------------------------

    def send_text(self, text: str) -> list[str]:
        """Frames for ``text`` (split to the 15,000-character limit); starts an utterance
        when idle.  Empty text produces no frame and changes nothing."""
        self._require(State.IDLE, State.SENDING, action="send text")
        if not text:
            return []
        self.state = State.SENDING
        return [encode_client(TextDelta(piece)) for piece in split_text(text)]

    def finish(self) -> str:
        """The ``text.done`` frame.  From here on, ``audio.done`` completes the utterance,
        even if it arrives before the caller's write of this frame returns."""
        self._require(State.SENDING, action="finish an utterance")
        self.state = State.FINISHING
        return encode_client(TextDone())

    def clear(self) -> str | None:
        """The ``text.clear`` frame, or None when a clear is already pending."""
        self._require(State.IDLE, State.SENDING, State.FINISHING, State.CLEARING, action="clear")
        if self.state is State.CLEARING:
            return None
        self._done_sent = self.state is State.FINISHING
        self.state = State.CLEARING
        return encode_client(TextClear())

    def update_session(self, replace: Mapping[str, str]) -> str:
        """The ``session.update`` frame; the map applies from the next utterance on."""
        self._require(State.IDLE, State.SENDING, State.FINISHING, State.CLEARING, action="update session")
        self.pending_updates += 1
        return encode_client(SessionUpdate(dict(replace)))

    def close(self, reason: str = "closed") -> None:
        """Mark the connection unusable (the transport closed or failed)."""
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self._error = reason

    # -- server input --------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> Event | None:
        """Handle one server text frame.  Returns the event it means, or None for audio
        of an utterance that is being cleared (discarded on purpose: the user asked to
        stop it).  Raises :class:`RemoteProtocolError`, and moves to CLOSED, if the frame
        is malformed or illegal in the current state."""
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"connection is closed ({self._error}); nothing to receive")
        try:
            msg = decode_server(text)
        except RemoteProtocolError as exc:
            self.close(str(exc))
            raise
        return self.receive(msg)

    def receive_binary(self, data: bytes) -> None:
        """PROTOCOL.md: the server sends no binary frames.  One is a protocol error."""
        err = RemoteProtocolError(f"the server sent a binary frame ({len(data)} bytes)")
        self.close(str(err))
        raise err

    def receive(self, msg: ServerMessage) -> Event | None:
        """Handle one decoded server message (see :meth:`receive_text`)."""
        state = self.state
        if state is State.CLOSED:
            raise LocalProtocolError(f"connection is closed ({self._error}); nothing to receive")
        if isinstance(msg, AudioDelta):
            if state is State.SENDING or state is State.FINISHING:
                return AudioChunk(msg.audio, msg.timestamps)
            if state is State.CLEARING:
                return None
            self._illegal("audio.delta with no utterance in flight")
        if isinstance(msg, AudioDone):
            if state is State.FINISHING:
                self.state = State.IDLE
                return UtteranceDone(msg.trace_id)
            if state is State.CLEARING and self._done_sent:
                # the server finished before it saw our clear; audio.clear still follows
                self._done_sent = False
                return None
            if state is State.SENDING:
                self._illegal("audio.done before text.done was sent")
            self._illegal("audio.done with no utterance in flight")
        if isinstance(msg, AudioClear):
            if state is State.CLEARING:
                self.state = State.IDLE
                self._done_sent = False
                return Cleared()
            self._illegal("audio.clear without a text.clear")
        if isinstance(msg, SessionUpdated):
            if self.pending_updates == 0:
                self._illegal("session.updated without a session.update")
            self.pending_updates -= 1
            return msg
        if isinstance(msg, ErrorMessage):
            if self.pending_updates > 0:
                self.pending_updates -= 1
                return SessionRejected(msg.message)
            self.close(f"server error: {msg.message}")
            return ServerError(msg.message)
        raise TypeError(f"not a server message: {msg!r}")  # pragma: no cover

    # -- helpers -------------------------------------------------------------------

    def _require(self, *states: State, action: str) -> None:
        if self.state not in states:
            raise LocalProtocolError(f"cannot {action} while the connection is {self.state.value}")

    def _illegal(self, what: str) -> NoReturn:
        self.close(what)
        raise RemoteProtocolError(f"the server broke the protocol: {what}")
