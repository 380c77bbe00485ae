"""Every message of the xAI STT WebSocket protocol (``/v1/stt``), with encoders and
decoders for both directions.

The client sends audio as binary frames and one text frame, ``audio.done``; the server
answers in JSON text frames.  Decoding is liberal (docs/protocol.md): unknown types and
extra fields are fine, words missing optional fields are fine; only a frame that is not a
JSON object, or a result whose text is not text, is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import RemoteProtocolError
from ..frames import load_object, preview, trace_id_in
from ..speedups import dumps

__all__ = [
    "AudioDone",
    "ClientMessage",
    "ErrorMessage",
    "Finalize",
    "ServerMessage",
    "TranscriptCreated",
    "TranscriptDone",
    "TranscriptPartial",
    "UnknownMessage",
    "Word",
    "decode_client",
    "decode_server",
    "encode_client",
    "encode_server",
]


# -- client -> server ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioDone:
    """No more audio: the service finishes and answers ``transcript.done``."""


@dataclass(frozen=True, slots=True)
class Finalize:
    """Force the utterance in progress to end (one source documents it; unverified)."""


ClientMessage = Union[AudioDone, Finalize]


# -- server -> client ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """A recognised word, ``start`` and ``end`` in seconds from the start of the stream."""

    text: str
    start: float
    end: float
    speaker: int | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class TranscriptCreated:
    """The session is ready: audio may flow."""

    id: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    """A result.  ``is_final=False``: interim text that may still change.
    ``is_final`` without ``speech_final``: a locked chunk of a long utterance.
    ``speech_final``: the utterance ended; its text restates the whole of it."""

    text: str
    words: tuple[Word, ...] = field(default=())
    is_final: bool = False
    speech_final: bool = False
    start: float = 0.0
    duration: float = 0.0
    channel: int = 0
    end_of_turn_confidence: float | None = None


@dataclass(frozen=True, slots=True)
class TranscriptDone:
    """After ``audio.done``: what the speech-final results did not cover (often nothing)
    and the audio's duration; one per channel."""

    text: str = ""
    words: tuple[Word, ...] = field(default=())
    duration: float = 0.0
    channel: int = 0


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    message: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    type: str


ServerMessage = Union[TranscriptCreated, TranscriptPartial, TranscriptDone, ErrorMessage, UnknownMessage]


# -- encoding ------------------------------------------------------------------------


def encode_client(msg: ClientMessage) -> str:
    if isinstance(msg, AudioDone):
        return '{"type":"audio.done"}'
    if isinstance(msg, Finalize):
        return '{"type":"finalize"}'
    raise TypeError(f"not a client message: {msg!r}")


def _word_json(w: Word) -> dict[str, Any]:
    obj: dict[str, Any] = {"text": w.text, "start": w.start, "end": w.end}
    if w.speaker is not None:
        obj["speaker"] = w.speaker
    if w.confidence is not None:
        obj["confidence"] = w.confidence
    return obj


def encode_server(msg: ServerMessage, *, multichannel: bool = False) -> str:
    """Render one server message (the emulator).  ``channel_index`` is present only in
    multichannel sessions, as the service does."""
    if isinstance(msg, TranscriptCreated):
        return dumps(
            {"type": "transcript.created", "id": msg.id} if msg.id else {"type": "transcript.created"}
        )
    if isinstance(msg, TranscriptPartial):
        obj: dict[str, Any] = {
            "type": "transcript.partial",
            "text": msg.text,
            "words": [_word_json(w) for w in msg.words],
            "is_final": msg.is_final,
            "speech_final": msg.speech_final,
            "start": round(msg.start, 2),
            "duration": round(msg.duration, 2),
        }
        if multichannel:
            obj["channel_index"] = msg.channel
        if msg.end_of_turn_confidence is not None:
            obj["end_of_turn_confidence"] = msg.end_of_turn_confidence
        return dumps(obj)
    if isinstance(msg, TranscriptDone):
        obj = {
            "type": "transcript.done",
            "text": msg.text,
            "words": [_word_json(w) for w in msg.words],
            "duration": round(msg.duration, 2),
        }
        if multichannel:
            obj["channel_index"] = msg.channel
        return dumps(obj)
    if isinstance(msg, ErrorMessage):
        return dumps({"type": "error", "message": msg.message})
    if isinstance(msg, UnknownMessage):
        return dumps({"type": msg.type})
    raise TypeError(f"not a server message: {msg!r}")


# -- decoding ------------------------------------------------------------------------


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _words(obj: dict[str, Any]) -> tuple[Word, ...]:
    raw = obj.get("words") or []
    if not isinstance(raw, list):
        return ()
    out = []
    for w in raw:
        if not isinstance(w, dict) or not isinstance(w.get("text"), str):
            continue  # a word we cannot read is skipped; the text still carries it
        speaker = w.get("speaker")
        confidence = w.get("confidence")
        out.append(
            Word(
                w["text"],
                _float(w.get("start")),
                _float(w.get("end")),
                int(speaker) if isinstance(speaker, (int, float)) and not isinstance(speaker, bool) else None,
                float(confidence) if isinstance(confidence, (int, float)) else None,
            )
        )
    return tuple(out)


def _text(obj: dict[str, Any], kind: str) -> str:
    text = obj.get("text", "")
    if text is None:
        return ""
    if not isinstance(text, str):
        raise RemoteProtocolError(f"{kind} whose text is not text: {preview(str(text))}")
    return text


def _channel(obj: dict[str, Any]) -> int:
    value = obj.get("channel_index", 0)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def decode_server(text: str | bytes) -> ServerMessage:
    obj = load_object(text, "the server")
    kind = obj.get("type")
    if kind == "transcript.created":
        ident = obj.get("id")
        return TranscriptCreated(ident if isinstance(ident, str) else None)
    if kind == "transcript.partial":
        eot = obj.get("end_of_turn_confidence")
        return TranscriptPartial(
            _text(obj, kind),
            _words(obj),
            bool(obj.get("is_final", False)),
            bool(obj.get("speech_final", False)),
            _float(obj.get("start")),
            _float(obj.get("duration")),
            _channel(obj),
            float(eot) if isinstance(eot, (int, float)) and not isinstance(eot, bool) else None,
        )
    if kind == "transcript.done":
        return TranscriptDone(_text(obj, kind), _words(obj), _float(obj.get("duration")), _channel(obj))
    if kind == "error":
        message = obj.get("message")
        if not isinstance(message, str):
            message = preview(str(obj.get("error", obj)), 200)
        return ErrorMessage(message, trace_id_in(obj, message))
    return UnknownMessage(kind if isinstance(kind, str) else str(kind)[:40])


def decode_client(text: str | bytes) -> ClientMessage:
    """Parse one client text frame (the emulator); audio comes as binary frames."""
    obj = load_object(text, "the client")
    kind = obj.get("type")
    if kind == "audio.done":
        return AudioDone()
    if kind in ("finalize", "Finalize"):
        return Finalize()
    raise RemoteProtocolError(f"the client sent an unknown message type {kind!r}")
