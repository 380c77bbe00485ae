"""How the service is reached over HTTP, and what its refusals mean.

:class:`Service` bundles what every request needs (where, which session, TLS, proxy);
sessions this package makes itself come from :func:`new_session`: no cap on connections
(each WebSocket holds one for its whole life), the proxy that the environment names
(``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``), and a middleware that keeps the body of a
refused WebSocket upgrade, which aiohttp otherwise throws away, so that the service's own
words reach the error message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl as ssl_module
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ClientRequest, ClientResponse

from ..errors import (
    CertificateError,
    ClientClosedError,
    XaiConnectionError,
    XaiStatusError,
    parse_retry_after,
)
from ..protocol.speedups import loads
from .endpoint import Endpoint

__all__ = [
    "Service",
    "connection_error",
    "error_detail",
    "new_session",
    "proxy_from_environment",
    "read_capped",
    "status_error",
]

logger = logging.getLogger("xai_voice")

MAX_ERROR_BODY = 4096

#: the body of the last refused upgrade in this task (set by the middleware, read by the
#: code that made the request, which runs in the same task)
refusal_body: contextvars.ContextVar[str | None] = contextvars.ContextVar("xai_voice_refusal", default=None)


@dataclass(frozen=True)
class Service:
    """Where requests go and how: the endpoint (URL and key), the session to use (asked
    for at each use: a framework may hand out a session per job), and TLS."""

    endpoint: Endpoint
    session: Callable[[], aiohttp.ClientSession]
    ssl: Any = True

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url


def proxy_from_environment(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY`` for https and wss,
    ``HTTP_PROXY`` for http and ws, unless ``NO_PROXY`` covers the host), or None."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return proxies.get(scheme) or proxies.get("all")


async def _keep_refusal_body(req: ClientRequest, handler: Any) -> ClientResponse:
    resp: ClientResponse = await handler(req)
    if resp.status != 101 and req.headers.get("Upgrade", "").lower() == "websocket":
        try:
            raw = await asyncio.wait_for(read_capped(resp, MAX_ERROR_BODY), 2.0)
            refusal_body.set(raw[:MAX_ERROR_BODY].decode("utf-8", "replace"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            refusal_body.set(None)
    return resp


def new_session(proxy: str | None = None) -> aiohttp.ClientSession:
    """A session for this package's own use (see the module docstring); ``proxy`` (from
    :func:`proxy_from_environment`) is used for every request it makes."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        middlewares=(_keep_refusal_body,),
        proxy=proxy,
    )


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body up to ``limit`` bytes (one more if there is more), read to EOF: a single
    ``read(n)`` returns only what has arrived so far."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = await resp.content.read(limit + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def explain_body(raw: str | None, endpoint: Endpoint) -> str | None:
    """The service's own words from an error body (``{"error": "..."}`` and its kin),
    short and without the key."""
    if not raw:
        return None
    text = raw.strip()
    try:
        obj = loads(text)
    except ValueError:
        return endpoint.scrub(text[:300]) or None
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("message", obj))
        if isinstance(err, dict):
            err = err.get("message", err)
        return endpoint.scrub(str(err))[:300] or None
    return endpoint.scrub(text[:300]) or None


async def error_detail(resp: aiohttp.ClientResponse, endpoint: Endpoint) -> str | None:
    """The service's own words from an error response."""
    try:
        raw = (await read_capped(resp, MAX_ERROR_BODY))[:MAX_ERROR_BODY]
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None
    return explain_body(raw.decode("utf-8", "replace"), endpoint)


_HINTS = {
    400: "the service rejected the request options",
    401: "the API key was refused; check XAI_API_KEY",
    403: "the API key is not allowed to do this",
    408: "the service timed out reading the request",
    429: "too many concurrent sessions or requests (xAI allows 50 sessions per team); retry later",
}


def status_error(
    status: int,
    what: str,
    url: str,
    *,
    detail: str | None = None,
    headers: Any = None,
    voice: str | None = None,
    hints: dict[int, str] | None = None,
) -> XaiStatusError:
    """A status error with a message a user can act on: what was refused, the service's
    own words, what to do, the trace id and, for a 404, which URL was not found.
    ``hints`` replace the generic advice for statuses the caller knows better."""
    if hints and status in hints:
        hint = hints[status]
    elif status == 404:
        said = (detail or "").lower()
        if voice is not None and ("voice" in said or not said):
            hint = (
                f"no voice {voice!r} at {url} (list them with `xai-voice voices`; if this is not "
                "the service you meant, check XAI_BASE_URL, which must end in /v1)"
            )
        else:
            hint = f"nothing at {url}; check XAI_BASE_URL (it must end in /v1, like https://api.x.ai/v1)"
    else:
        hint = _HINTS.get(status) or (
            "the service failed; retry later" if status >= 500 else "the request was refused"
        )
    message = f"{what}: HTTP {status}: {hint}"
    if detail:
        message += f" (the service said: {detail})"
    trace_id = retry_after = None
    if headers is not None:
        trace_id = headers.get("x-trace-id") or None
        retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is not None:
        message += f"; retry after {retry_after:g} s"
    if trace_id:
        message += f" [trace id {trace_id}]"
    return XaiStatusError(status, message, body=detail, retry_after=retry_after, trace_id=trace_id)


def connection_error(
    exc: BaseException, what: str, endpoint: Endpoint
) -> XaiConnectionError | ClientClosedError:
    """Our error for one of aiohttp's (or the OS's).  Call it inside the ``except`` block
    but raise what it returns outside it, so the result's ``__context__`` stays empty."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) or isinstance(
        getattr(exc, "os_error", None) or getattr(exc, "__cause__", None), ssl_module.SSLCertVerificationError
    ):
        return CertificateError(
            f"{what}: the TLS certificate of {endpoint.host} was refused "
            f"({endpoint.scrub(getattr(exc, 'certificate_error', exc))}); retrying will not help"
        )
    if isinstance(exc, RuntimeError) and "closed" in str(exc).lower():
        return ClientClosedError(f"{what}: the HTTP session is closed")
    return XaiConnectionError(f"{what}: {endpoint.scrub(exc) or type(exc).__name__}")
