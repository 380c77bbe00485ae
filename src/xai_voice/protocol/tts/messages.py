"""Every message of the xAI TTS WebSocket protocol, as frozen dataclasses, with encoders
and decoders for both directions.

The client encodes client messages and decodes server messages; the emulator does the
opposite.  We are strict in what we send (every client frame is built here, checked) and
liberal in what we accept: see :func:`decode_server`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import RemoteProtocolError
from ..frames import load_object, preview, trace_id_in
from ..speedups import Error as Base64Error
from ..speedups import b64decode, b64encode, dumps

__all__ = [
    "MAX_DELTA_CHARS",
    "AudioClear",
    "AudioDelta",
    "AudioDone",
    "ClientMessage",
    "ErrorMessage",
    "ServerMessage",
    "SessionUpdate",
    "SessionUpdated",
    "TextClear",
    "TextDelta",
    "TextDone",
    "Timestamps",
    "UnknownMessage",
    "decode_client",
    "decode_server",
    "encode_client",
    "encode_server",
    "split_text",
]

#: docs/protocol.md: at most 15,000 characters per delta.
MAX_DELTA_CHARS = 15_000


# -- client -> server ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    delta: str


@dataclass(frozen=True, slots=True)
class TextDone:
    pass


@dataclass(frozen=True, slots=True)
class TextClear:
    pass


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    replace: Mapping[str, str]


ClientMessage = Union[TextDelta, TextDone, TextClear, SessionUpdate]


# -- server -> client ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timestamps:
    """Character timings for one audio chunk: ``chars[i]`` is heard from ``times[i][0]``
    to ``times[i][1]`` seconds (relative to the start of the utterance)."""

    chars: tuple[str, ...]
    times: tuple[tuple[float, float], ...]
    duration: float | None = None

    def __post_init__(self) -> None:
        if len(self.chars) != len(self.times):
            raise RemoteProtocolError(
                f"audio_timestamps has {len(self.chars)} graph_chars but {len(self.times)} graph_times"
            )


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """Audio (possibly none: the service sends timing-only frames) and timings, which
    arrive in batches decoupled from the audio they describe."""

    audio: bytes = field(repr=False)
    timestamps: Timestamps | None = None
    #: timings were present but malformed (dropped; the audio is still good)
    bad_timestamps: bool = False


@dataclass(frozen=True, slots=True)
class AudioDone:
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class AudioClear:
    pass


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    replace: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    message: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A frame of a type this version does not know; skipped, never fatal."""

    type: str


ServerMessage = Union[AudioDelta, AudioDone, AudioClear, SessionUpdated, ErrorMessage, UnknownMessage]


# -- text splitting ------------------------------------------------------------------


def split_text(text: str, limit: int = MAX_DELTA_CHARS) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, cutting after
    whitespace where possible so that no word is broken across two deltas.

    Joining the pieces gives back ``text`` exactly: the server sees the same characters
    whichever way they were cut.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pieces: list[str] = []
    start = 0
    n = len(text)
    while n - start > limit:
        end = start + limit
        cut = -1
        # the last whitespace inside the window: cut just after it
        for i in range(end - 1, start, -1):
            if text[i].isspace():
                cut = i + 1
                break
        if cut <= start:  # one word longer than the limit: a hard cut is all we can do
            cut = end
        pieces.append(text[start:cut])
        start = cut
    if start < n or not pieces:
        pieces.append(text[start:])
    return pieces


# -- encoding ------------------------------------------------------------------------


def encode_client(msg: ClientMessage) -> str:
    """Render one client message as the JSON text of a WebSocket frame."""
    if isinstance(msg, TextDelta):
        if len(msg.delta) > MAX_DELTA_CHARS:
            raise ValueError(
                f"a text.delta holds at most {MAX_DELTA_CHARS} characters; use split_text() first"
            )
        return dumps({"type": "text.delta", "delta": msg.delta})
    if isinstance(msg, TextDone):
        return '{"type":"text.done"}'
    if isinstance(msg, TextClear):
        return '{"type":"text.clear"}'
    if isinstance(msg, SessionUpdate):
        return dumps({"type": "session.update", "replace": dict(msg.replace)})
    raise TypeError(f"not a client message: {msg!r}")


def encode_server(msg: ServerMessage) -> str:
    """Render one server message (used by the emulator)."""
    if isinstance(msg, AudioDelta):
        obj: dict[str, Any] = {
            "type": "audio.delta",
            "delta": b64encode(msg.audio),
        }
        ts = msg.timestamps
        if ts is not None:
            obj["audio_timestamps"] = {
                "graph_chars": list(ts.chars),
                "graph_times": [list(t) for t in ts.times],
            }
            if ts.duration is not None:
                obj["audio_duration"] = ts.duration
        return dumps(obj)
    if isinstance(msg, AudioDone):
        if msg.trace_id is None:
            return '{"type":"audio.done"}'
        return dumps({"type": "audio.done", "trace_id": msg.trace_id})
    if isinstance(msg, AudioClear):
        return '{"type":"audio.clear"}'
    if isinstance(msg, SessionUpdated):
        return dumps({"type": "session.updated", "replace": dict(msg.replace)})
    if isinstance(msg, ErrorMessage):
        if msg.trace_id is None:
            return dumps({"type": "error", "message": msg.message})
        return dumps({"type": "error", "message": msg.message, "trace_id": msg.trace_id})
    if isinstance(msg, UnknownMessage):
        return dumps({"type": msg.type})
    raise TypeError(f"not a server message: {msg!r}")


# -- decoding ------------------------------------------------------------------------


def _str_field(obj: dict[str, Any], key: str, kind: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{kind} without a string {key!r} field")
    return value


def _replace_field(obj: dict[str, Any], kind: str) -> dict[str, str]:
    value = obj.get("replace", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise RemoteProtocolError(f"{kind} whose 'replace' is not a map of strings")
    return value


def _timestamps(obj: dict[str, Any]) -> tuple[Timestamps | None, bool]:
    """The frame's timings, and whether they were present but unusable.  Timings only
    feed captions: bad ones are dropped (and counted), the audio still plays."""
    raw = obj.get("audio_timestamps")
    if raw is None:
        return None, False
    try:
        chars = tuple(str(c) for c in raw["graph_chars"])
        times = tuple((float(a), float(b)) for a, b in raw["graph_times"])
        duration = obj.get("audio_duration")
        return Timestamps(chars, times, None if duration is None else float(duration)), False
    except (KeyError, TypeError, ValueError, RemoteProtocolError):
        return None, True


def decode_server(text: str | bytes) -> ServerMessage:
    """Parse one server frame.

    Liberal where being liberal cannot make the outcome wrong: an unknown ``type`` becomes
    :class:`UnknownMessage`, an ``audio.delta`` without ``delta`` (the service sends
    timing-only frames) carries no audio, unusable timings are dropped.  Strict where it
    could: a frame that is not a JSON object, or audio that is not base64, raises
    :class:`RemoteProtocolError`.
    """
    obj = load_object(text, "the server")
    kind = obj.get("type")
    if kind == "audio.delta":
        raw = obj.get("delta")
        if raw is None or raw == "":
            audio = b""
        else:
            if not isinstance(raw, str):
                raise RemoteProtocolError("audio.delta whose 'delta' is not a string")
            try:
                audio = b64decode(raw)
            except Base64Error:
                raise RemoteProtocolError("audio.delta whose 'delta' is not base64") from None
        stamps, bad = _timestamps(obj)
        return AudioDelta(audio, stamps, bad_timestamps=bad)
    if kind == "audio.done":
        return AudioDone(trace_id_in(obj))
    if kind == "audio.clear":
        return AudioClear()
    if kind == "session.updated":
        return SessionUpdated(_replace_field(obj, "session.updated"))
    if kind == "error":
        message = obj.get("message")
        if not isinstance(message, str):
            message = preview(str(obj.get("error", obj)), 200)
        return ErrorMessage(message, trace_id_in(obj, message))
    return UnknownMessage(kind if isinstance(kind, str) else str(kind)[:40])


def decode_client(text: str | bytes) -> ClientMessage:
    """Parse one client frame (used by the emulator)."""
    obj = load_object(text, "the client")
    kind = obj.get("type")
    if kind == "text.delta":
        return TextDelta(_str_field(obj, "delta", "text.delta"))
    if kind == "text.done":
        return TextDone()
    if kind == "text.clear":
        return TextClear()
    if kind == "session.update":
        return SessionUpdate(_replace_field(obj, "session.update"))
    raise RemoteProtocolError(f"the client sent an unknown message type {kind!r}")
