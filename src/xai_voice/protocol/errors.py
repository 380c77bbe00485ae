"""The root of the error hierarchy, and the protocol errors.

They live in the protocol layer because the sans-IO core raises them and the core imports
nothing below itself; :mod:`xai_voice.errors` builds the rest of the hierarchy on this base.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "XaiVoiceError"]


class XaiVoiceError(Exception):
    """Base of every error this package raises on purpose.

    Messages are written for the person reading the log: what happened and, where there
    is one, what to do. They never contain the API key.
    """

    #: Whether the same request may succeed if simply tried again.
    retryable: bool = False
    #: The service's id for the request, when it gave one: what xAI support asks for.
    trace_id: str | None = None


class ProtocolError(XaiVoiceError):
    """A message broke the wire protocol (see docs/protocol.md)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal: unknown type, bad JSON, a binary frame, audio
    with no utterance in flight.  The connection is unusable afterwards."""

    retryable = True


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids in the current state, such as
    sending text while a clear is pending.  A bug in the caller, never retried."""
