"""The REST side: one-shot synthesis (``POST /v1/tts``), streamed as the body arrives, and
the voice list."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import RemoteProtocolError, XaiConnectionError, XaiTimeoutError
from ..options import TTSOptions
from ..protocol import AudioChunk, Timestamps
from ..protocol.speedups import Error as Base64Error
from ..protocol.speedups import b64decode, loads
from .deadlines import Timeouts
from .endpoint import Endpoint
from .websocket import status_error

__all__ = ["RestSynthesis", "Voice", "error_detail", "list_voices"]

_MAX_ERROR_BODY = 4096
#: a timestamped REST answer is one JSON document; bound what we are willing to buffer
_MAX_JSON_BODY = 256 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Voice:
    voice_id: str
    name: str


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body up to ``limit`` bytes (one more if there is more), read to EOF: a single
    ``read(n)`` returns only what has arrived so far."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = await resp.content.read(limit + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


async def error_detail(resp: aiohttp.ClientResponse, endpoint: Endpoint) -> str | None:
    """The service's own words from an error response, short and without the key."""
    try:
        raw = (await _read_capped(resp, _MAX_ERROR_BODY))[:_MAX_ERROR_BODY]
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None
    text = raw.decode("utf-8", "replace").strip()
    try:
        obj = loads(text)
    except ValueError:
        return endpoint.scrub(text[:300]) or None
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("message", obj))
        if isinstance(err, dict):
            err = err.get("message", err)
        return endpoint.scrub(str(err))[:300]
    return endpoint.scrub(text[:300])


def _timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=timeouts.completion,
        sock_connect=timeouts.connect,
        sock_read=max(timeouts.first_audio, timeouts.chunk_gap),
    )


def _timeout_error(timeouts: Timeouts, phase: str = "request") -> XaiTimeoutError:
    return XaiTimeoutError(
        phase,
        max(timeouts.first_audio, timeouts.chunk_gap),
        "the REST request timed out (no data within "
        f"{max(timeouts.first_audio, timeouts.chunk_gap):g} s, or over {timeouts.completion:g} s "
        "in all)",
    )


class RestSynthesis:
    """An async iterator of :class:`AudioChunk` for one ``POST /v1/tts``.

    Audio is yielded as the service streams it.  With ``with_timestamps`` the service
    answers one JSON document instead; it is then one chunk with its timestamps.  Use as
    ``async with`` (or call :meth:`aclose`) when you may stop early.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        options: TTSOptions,
        text: str,
        timeouts: Timeouts,
        *,
        ssl: Any = True,
    ) -> None:
        self._body = options.rest_body(text)  # validates before any I/O
        self._session = session
        self._endpoint = endpoint
        self._options = options
        self._timeouts = timeouts
        self._ssl = ssl
        self._resp: aiohttp.ClientResponse | None = None
        self._done = False
        self.content_type: str | None = None

    async def __aenter__(self) -> RestSynthesis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> RestSynthesis:
        return self

    async def __anext__(self) -> AudioChunk:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._resp is None:
                await self._open()
                if self._options.with_timestamps:
                    return await self._read_json()
            assert self._resp is not None
            data = await self._resp.content.readany()
        except asyncio.TimeoutError:
            await self.aclose()
            raise _timeout_error(self._timeouts) from None
        except aiohttp.ClientError as exc:
            await self.aclose()
            raise XaiConnectionError(
                f"the REST request failed: {self._endpoint.scrub(exc) or type(exc).__name__}"
            ) from None
        if not data:
            await self.aclose()
            raise StopAsyncIteration
        return AudioChunk(data)

    async def _open(self) -> None:
        try:
            resp = await self._session.post(
                self._endpoint.http_url("tts"),
                json=self._body,
                headers=self._endpoint.headers,
                timeout=_timeout(self._timeouts),
                ssl=self._ssl,
            )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if isinstance(exc, asyncio.TimeoutError):
                raise
            self._done = True
            raise XaiConnectionError(
                f"could not reach {self._endpoint.base_url}: "
                f"{self._endpoint.scrub(exc) or type(exc).__name__}"
            ) from None
        self._resp = resp
        if resp.status != 200:
            detail = await error_detail(resp, self._endpoint)
            await self.aclose()
            raise status_error(resp.status, "synthesis refused", detail)
        self.content_type = resp.headers.get("Content-Type")

    async def _read_json(self) -> AudioChunk:
        assert self._resp is not None
        raw = await _read_capped(self._resp, _MAX_JSON_BODY)
        await self.aclose()
        if len(raw) > _MAX_JSON_BODY:
            raise RemoteProtocolError("the timestamped REST answer is larger than 256 MiB")
        try:
            obj = loads(raw)
            audio = b64decode(obj["audio"])
            ts = obj.get("audio_timestamps") or {}
            stamps = Timestamps(
                tuple(ts.get("graph_chars", ())),
                tuple((float(a), float(b)) for a, b in ts.get("graph_times", ())),
                float(obj["duration"]) if obj.get("duration") is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError, Base64Error):
            raise RemoteProtocolError("malformed timestamped REST answer") from None
        return AudioChunk(audio, stamps)

    async def aclose(self) -> None:
        self._done = True
        if self._resp is not None:
            self._resp.release()
            self._resp.close()

    async def read_all(self) -> bytes:
        """Every audio byte, concatenated."""
        parts = [chunk.data async for chunk in self]
        return b"".join(parts)


async def list_voices(
    session: aiohttp.ClientSession, endpoint: Endpoint, timeouts: Timeouts, *, ssl: Any = True
) -> list[Voice]:
    try:
        async with session.get(
            endpoint.http_url("tts/voices"),
            headers=endpoint.headers,
            timeout=_timeout(timeouts),
            ssl=ssl,
        ) as resp:
            if resp.status != 200:
                raise status_error(resp.status, "voice list refused", await error_detail(resp, endpoint))
            obj = await resp.json(content_type=None)
    except asyncio.TimeoutError:
        raise _timeout_error(timeouts) from None
    except aiohttp.ClientError as exc:
        raise XaiConnectionError(
            f"could not list voices: {endpoint.scrub(exc) or type(exc).__name__}"
        ) from None
    try:
        return [Voice(str(v["voice_id"]), str(v.get("name", v["voice_id"]))) for v in obj["voices"]]
    except (KeyError, TypeError):
        raise RemoteProtocolError("malformed voice list") from None
