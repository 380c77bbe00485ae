"""The REST side of text to speech: one-shot synthesis (``POST /v1/tts``), streamed as
the body arrives, and the voice lists.

Every wait is bounded: the response headers by ``Timeouts.connect + first_audio`` (a
server that drips header bytes cannot stretch that), each read of the body by
``first_audio``/``chunk_gap``, the whole request by ``completion``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import RemoteProtocolError, XaiConnectionError, XaiTimeoutError, XaiVoiceError
from ..options import TTSOptions
from ..protocol.speedups import Error as Base64Error
from ..protocol.speedups import b64decode, loads
from ..protocol.tts import AudioChunk, Timestamps
from .deadlines import DeadlinePassed, Timeouts, within
from .http import Service, connection_error, error_detail, read_capped, status_error

__all__ = ["RestSynthesis", "Voice", "create_custom_voice", "delete_custom_voice", "list_voices", "post"]

_ENTERPRISE = {
    403: "creating, changing and deleting custom voices needs an xAI Enterprise plan; this team does "
    "not have one (listing them and speaking with them work on any plan)"
}

#: a timestamped REST answer is one JSON document; bound what we are willing to buffer
_MAX_JSON_BODY = 256 * 1024 * 1024
_MAX_LIST_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Voice:
    """A voice the service offers.  ``kind`` is ``"builtin"`` or ``"custom"`` (cloned for
    your team); custom voices may also carry a ``description`` and ``created_at``."""

    voice_id: str
    name: str
    kind: str = "builtin"
    description: str | None = None
    language: str | None = None
    created_at: str | None = None


def _timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=timeouts.completion,
        sock_connect=timeouts.connect,
        sock_read=max(timeouts.first_audio, timeouts.chunk_gap),
    )


def _read_timeout(timeouts: Timeouts) -> XaiTimeoutError:
    gap = max(timeouts.first_audio, timeouts.chunk_gap)
    return XaiTimeoutError(
        "request",
        gap,
        f"the REST request timed out (no data within {gap:g} s, or over {timeouts.completion:g} s in all)",
    )


async def post(
    service: Service,
    path: str,
    timeouts: Timeouts,
    *,
    what: str,
    voice: str | None = None,
    hints: dict[int, str] | None = None,
    method: str = "POST",
    **kwargs: Any,
) -> aiohttp.ClientResponse:
    """``POST`` to the service and return the response once its headers are in (within
    ``connect + first_audio``); a refusal is a typed error with the service's words.  A
    response that arrives after we stopped waiting is closed.  Errors are raised outside
    any ``except`` block, so aiohttp's (which hold the key) never ride along."""
    endpoint = service.endpoint
    url = endpoint.http_url(path)
    limit = timeouts.connect + timeouts.first_audio

    async def request() -> aiohttp.ClientResponse:
        return await service.session().request(
            method,
            url,
            headers=endpoint.headers,
            timeout=_timeout(timeouts),
            ssl=service.ssl,
            **kwargs,
        )

    err: XaiVoiceError
    try:
        resp = await within(request(), limit, dispose=lambda r: r.close(), name="xai-voice-rest")
    except DeadlinePassed:
        err = XaiTimeoutError("headers", limit, f"{url} sent no complete response headers within {limit:g} s")
    except asyncio.TimeoutError:
        err = _read_timeout(timeouts)
    except (aiohttp.ClientError, OSError, RuntimeError) as exc:
        err = connection_error(exc, f"could not reach {url}", endpoint)
    else:
        if resp.status < 400:
            return resp
        detail = await error_detail(resp, endpoint)
        resp.close()
        err = status_error(
            resp.status, what, url, detail=detail, headers=resp.headers, voice=voice, hints=hints
        )
    raise err


class RestSynthesis:
    """An async iterator of :class:`AudioChunk` for one ``POST /v1/tts``.

    Audio is yielded as the service streams it.  With ``with_timestamps`` the service
    answers one JSON document instead; it is then one chunk with its timestamps.  Use as
    ``async with`` (or call :meth:`aclose`) when you may stop early.
    """

    def __init__(self, service: Service, options: TTSOptions, text: str, timeouts: Timeouts) -> None:
        self._body = options.rest_body(text)  # validates before any I/O
        self._service = service
        self._options = options
        self._timeouts = timeouts
        self._resp: aiohttp.ClientResponse | None = None
        self._done = False
        self.content_type: str | None = None
        #: the service's id for this request (its ``x-trace-id`` header)
        self.trace_id: str | None = None
        #: audio bytes received so far
        self.bytes_received = 0

    async def __aenter__(self) -> RestSynthesis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> RestSynthesis:
        return self

    async def __anext__(self) -> AudioChunk:
        if self._done:
            raise StopAsyncIteration
        if self._resp is None:
            await self._open()
            if self._options.with_timestamps:
                return await self._read_json()
        assert self._resp is not None
        err: XaiVoiceError | None = None
        data = b""
        try:
            data = await self._resp.content.readany()
        except asyncio.TimeoutError:
            err = _read_timeout(self._timeouts)
        except (aiohttp.ClientError, OSError) as exc:
            err = self._broken(exc)
        if err is not None:
            await self.aclose()
            raise err
        if not data:
            await self.aclose()
            raise StopAsyncIteration
        self.bytes_received += len(data)
        return AudioChunk(data)

    def _broken(self, exc: BaseException) -> XaiConnectionError:
        """The body broke off: say so in our words (aiohttp's quote an internal "400" of
        its parser as if it were an HTTP status)."""
        kind = (
            "the service closed the connection"
            if isinstance(exc, aiohttp.ClientPayloadError)
            else (f"the connection failed ({type(exc).__name__})")
        )
        got = f"after {self.bytes_received} bytes of audio" if self.bytes_received else "before any audio"
        trace = f" [trace id {self.trace_id}]" if self.trace_id else ""
        err = XaiConnectionError(f"the REST response broke off {got}: {kind}{trace}")
        err.trace_id = self.trace_id
        return err

    async def _open(self) -> None:
        try:
            self._resp = resp = await post(
                self._service, "tts", self._timeouts, what="synthesis refused", voice=self._options.voice,
                json=self._body,
            )  # fmt: skip
        except BaseException:
            self._done = True
            raise
        self.content_type = resp.headers.get("Content-Type")
        self.trace_id = resp.headers.get("x-trace-id")

    async def _read_json(self) -> AudioChunk:
        assert self._resp is not None
        err: XaiVoiceError | None = None
        raw = b""
        try:
            raw = await read_capped(self._resp, _MAX_JSON_BODY)
        except asyncio.TimeoutError:
            err = _read_timeout(self._timeouts)
        except (aiohttp.ClientError, OSError) as exc:
            err = self._broken(exc)
        await self.aclose()
        if err is not None:
            raise err
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
        except (ValueError, KeyError, TypeError, AttributeError, Base64Error, RemoteProtocolError):
            err = RemoteProtocolError("malformed timestamped REST answer")
        if err is not None:
            raise err
        self.bytes_received = len(audio)
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


async def _get_json(service: Service, path: str, timeouts: Timeouts, what: str) -> Any:
    endpoint = service.endpoint
    url = endpoint.http_url(path)
    err: XaiVoiceError
    try:
        async with service.session().get(
            url, headers=endpoint.headers, timeout=_timeout(timeouts), ssl=service.ssl
        ) as resp:
            if resp.status != 200:
                detail = await error_detail(resp, endpoint)
                err = status_error(resp.status, what, url, detail=detail, headers=resp.headers)
            else:
                raw = await read_capped(resp, _MAX_LIST_BODY)
                try:
                    return loads(raw)
                except ValueError:
                    err = RemoteProtocolError(f"{url} answered something that is not JSON")
    except asyncio.TimeoutError:
        err = _read_timeout(timeouts)
    except (aiohttp.ClientError, OSError, RuntimeError) as exc:
        err = connection_error(exc, f"{what}: could not reach {url}", endpoint)
    raise err


async def list_voices(service: Service, timeouts: Timeouts, *, custom: bool = True) -> list[Voice]:
    """Built-in voices (``GET /v1/tts/voices``) and, with ``custom``, the team's custom
    voices (``GET /v1/custom-voices``, every page).  A service (or emulator) without the
    custom-voice endpoint (404) just has none."""
    obj = await _get_json(service, "tts/voices", timeouts, "voice list refused")
    try:
        voices = [Voice(str(v["voice_id"]), str(v.get("name") or v["voice_id"])) for v in obj["voices"]]
    except (KeyError, TypeError):
        raise RemoteProtocolError("malformed voice list") from None
    if not custom:
        return voices
    token: str | None = None
    for _ in range(100):  # pages of up to 1,000: far more voices than a team can have
        path = "custom-voices?limit=1000" + (f"&pagination_token={token}" if token else "")
        try:
            page = await _get_json(service, path, timeouts, "custom voice list refused")
        except XaiVoiceError as exc:
            if getattr(exc, "status", None) == 404:
                break
            raise
        try:
            voices.extend(_voice_from(v, "custom") for v in page.get("voices") or [])
        except (KeyError, TypeError, AttributeError):
            raise RemoteProtocolError("malformed custom voice list") from None
        token = page.get("pagination_token")
        if not token:
            break
    return voices


def _voice_from(v: dict[str, Any], kind: str) -> Voice:
    return Voice(
        str(v["voice_id"]),
        str(v.get("name") or v["voice_id"]),
        kind=kind,
        description=v.get("description"),
        language=v.get("language"),
        created_at=v.get("created_at"),
    )


async def create_custom_voice(
    service: Service,
    timeouts: Timeouts,
    name: str,
    audio: bytes,
    *,
    filename: str = "reference.wav",
    description: str | None = None,
    language: str | None = None,
) -> Voice:
    """Clone a voice from up to 120 s of reference audio (``POST /v1/custom-voices``,
    Enterprise plans only: a 403 says so)."""
    form = aiohttp.FormData()
    form.add_field("name", name)
    if description:
        form.add_field("description", description)
    if language:
        form.add_field("language", language)
    form.add_field("file", audio, filename=filename, content_type="application/octet-stream")
    what = "creating a custom voice refused"
    resp = await post(service, "custom-voices", timeouts, what=what, hints=_ENTERPRISE, data=form)
    try:
        raw = await read_capped(resp, _MAX_LIST_BODY)
    finally:
        resp.close()
    try:
        return _voice_from(loads(raw), "custom")
    except (ValueError, KeyError, TypeError):
        raise RemoteProtocolError("malformed answer to a custom voice creation") from None


async def delete_custom_voice(service: Service, timeouts: Timeouts, voice_id: str) -> None:
    """Delete one of the team's custom voices (Enterprise plans only)."""
    what = "deleting a custom voice refused"
    resp = await post(
        service, f"custom-voices/{voice_id}", timeouts, what=what, hints=_ENTERPRISE, method="DELETE"
    )
    resp.close()
