"""The error hierarchy.

::

    XaiVoiceError
    ├── OptionError (also ValueError)      a bad option or input, caught before any I/O
    │   └── InsecureTransportError         a key would travel in clear text
    ├── ClientClosedError                  the client (or LiveKit plugin) was closed
    ├── XaiConnectionError                 could not connect, or the connection dropped
    │   └── CertificateError               the server's TLS certificate was refused
    ├── XaiStatusError                     an HTTP status (status, retryable, retry_after)
    ├── XaiTimeoutError                    a deadline passed (phase, seconds)
    ├── XaiServerError                     an ``error`` frame from the service
    └── ProtocolError                      a message broke the protocol
        ├── RemoteProtocolError            ... sent by the peer
        └── LocalProtocolError             ... asked of us by the caller

Every error may carry the service's ``trace_id`` (the ``x-trace-id`` header of an HTTP
answer, the ``trace_id`` of a frame): it is what xAI support asks for, so it is also in
the message.

No error carries the API key: messages are built from our own words plus status codes
and server text passed through :meth:`~xai_voice.transport.Endpoint.scrub`, and errors
made while handling a lower-level exception are raised outside the ``except`` block, so
neither ``__cause__`` nor ``__context__`` leads to aiohttp's exceptions (which hold the
request headers, and with them the ``Authorization`` header).
"""

from __future__ import annotations

import email.utils
import time

from .protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, XaiVoiceError

__all__ = [
    "CertificateError",
    "ClientClosedError",
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
    "parse_retry_after",
    "redact",
]


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by a placeholder."""
    if secret and secret in text:
        return text.replace(secret, "<redacted>")
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)


class OptionError(XaiVoiceError, ValueError):
    """An option or input the service would refuse; raised before anything is sent."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class InsecureTransportError(OptionError):
    """Refused to send the API key over plain ``ws://`` or ``http://`` to a host that is
    not this machine.  Pass ``allow_insecure=True`` (CLI: ``--allow-insecure``, or
    ``XAI_ALLOW_INSECURE=1``) to do it anyway."""


class ClientClosedError(XaiVoiceError):
    """The client was closed; nothing can be sent through it any more.  Not a connection
    failure, and never worth retrying."""

    def __init__(self, message: str = "the client is closed") -> None:
        super().__init__(message)


class XaiConnectionError(XaiVoiceError):
    """The connection could not be made, or was lost."""

    retryable = True


class CertificateError(XaiConnectionError):
    """The server's TLS certificate was refused.  Retrying cannot help: fix the trust
    store (or the URL), or pass an ``ssl`` context that trusts the certificate."""

    retryable = False


class XaiStatusError(XaiVoiceError):
    """The service answered with an HTTP error status.

    ``retry_after`` is the service's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: str | None = None,
        retry_after: float | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.trace_id = trace_id
        # 408 and 429 are "try later"; 5xx are the service's own trouble.  A 4xx is about
        # the request (key, voice, text) and fails the same way every time.
        self.retryable = status in (408, 429) or status >= 500

    def __repr__(self) -> str:
        return f"XaiStatusError(status={self.status}, message={str(self)!r})"


class XaiTimeoutError(XaiVoiceError):
    """A deadline passed.  ``phase`` says which one: ``connect``, ``send``,
    ``first_audio``, ``chunk_gap``, ``completion``, ``clear``, ``headers`` or ``request``."""

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

    def __init__(self, message: str, *, trace_id: str | None = None) -> None:
        super().__init__(message)
        self.trace_id = trace_id
