"""The error hierarchy.

::

    XaiVoiceError
    ├── OptionError (also ValueError)      a bad option or input, caught before any I/O
    │   └── InsecureTransportError         a key would travel in clear text
    ├── XaiConnectionError                 could not connect, or the connection dropped
    ├── XaiStatusError                     an HTTP status from the service (status, retryable)
    ├── XaiTimeoutError                    a deadline passed (phase, seconds)
    ├── XaiServerError                     an ``error`` frame from the service
    └── ProtocolError                      a message broke the protocol
        ├── RemoteProtocolError            ... sent by the peer
        └── LocalProtocolError             ... asked of us by the caller

No message carries the API key: errors are built from our own words plus status codes
and server messages, which are passed through :func:`redact` with the key, and errors
raised from a lower-level exception do not chain to it (aiohttp's exceptions hold the
request headers, and with them the ``Authorization`` header).
"""

from __future__ import annotations

from .protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, XaiVoiceError

__all__ = [
    "InsecureTransportError",
    "LocalProtocolError",
    "OptionError",
    "ProtocolError",
    "RemoteProtocolError",
    "XaiConnectionError",
    "XaiServerError",
    "XaiStatusError",
    "XaiTimeoutError",
    "XaiVoiceError",
    "redact",
]


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by a placeholder."""
    if secret and secret in text:
        return text.replace(secret, "<redacted>")
    return text


class OptionError(XaiVoiceError, ValueError):
    """An option or input the service would refuse; raised before anything is sent."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class InsecureTransportError(OptionError):
    """Refused to send the API key over plain ``ws://`` or ``http://`` to a host that is
    not this machine.  Pass ``allow_insecure=True`` to do it anyway."""


class XaiConnectionError(XaiVoiceError):
    """The connection could not be made, or was lost."""

    retryable = True


class XaiStatusError(XaiVoiceError):
    """The service answered with an HTTP error status."""

    def __init__(self, status: int, message: str, *, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        # 408 and 429 are "try later"; 5xx are the service's own trouble.  A 4xx is about
        # the request (key, voice, text) and fails the same way every time.
        self.retryable = status in (408, 429) or status >= 500

    def __repr__(self) -> str:
        return f"XaiStatusError(status={self.status}, message={str(self)!r})"


class XaiTimeoutError(XaiVoiceError):
    """A deadline passed.  ``phase`` says which one: ``connect``, ``send``,
    ``first_audio``, ``chunk_gap``, ``completion``, ``clear`` or ``request``."""

    retryable = True

    def __init__(self, phase: str, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"no answer from the service within {seconds:g} s ({phase})")
        self.phase = phase
        self.seconds = seconds


class XaiServerError(XaiVoiceError):
    """The service sent an ``error`` frame; the utterance in flight is lost.  Retried,
    on a new connection, because the documented cases (the ~2,100 s pipeline timeout)
    are transient."""

    retryable = True
