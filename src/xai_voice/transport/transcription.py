"""Speech to text in one request: ``POST /v1/stt`` (multipart), the file streamed up.

A bad status is an error (``XaiStatusError`` with the service's words), never an empty
transcript; an answer that is not the documented JSON is a ``RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from ..errors import (
    LocalProtocolError,
    RemoteProtocolError,
    XaiConnectionError,
    XaiTimeoutError,
    XaiVoiceError,
)
from ..options.stt import STTOptions
from ..protocol.speedups import loads
from ..protocol.stt import Word
from .deadlines import Timeouts
from .http import Service, read_capped
from .rest import post

__all__ = ["AudioSource", "ChannelTranscript", "Transcript", "transcribe"]

#: the service takes files up to 500 MB
MAX_UPLOAD_BYTES = 500 * 1024 * 1024
_MAX_ANSWER = 64 * 1024 * 1024

AudioSource = bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class ChannelTranscript:
    channel: int
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What was said: ``text``, its ``words`` with times (and ``speaker`` when diarizing),
    per channel when multichannel; ``trace_id`` for support."""

    text: str
    words: tuple[Word, ...] = ()
    language: str | None = None
    duration: float | None = None
    channels: tuple[ChannelTranscript, ...] = ()
    trace_id: str | None = field(default=None, compare=False)


def _is_container(head: bytes) -> bool:
    """Whether the audio speaks for itself (WAV, MP3, OGG, FLAC, M4A/MP4, WebM)."""
    return (
        head[:4] in (b"RIFF", b"OggS", b"fLaC", b"\x1aE\xdf\xa3")
        or head[:3] == b"ID3"
        or _mpeg_frame(head)
        or head[4:8] == b"ftyp"
    )


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header (an MP3 with no ID3 tag), checked closely enough that
    raw G.711 silence (0xFF bytes) is not taken for one."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _words(raw: Any) -> tuple[Word, ...]:
    out = []
    for w in raw or ():
        if isinstance(w, dict) and isinstance(w.get("text"), str):
            speaker = w.get("speaker")
            out.append(
                Word(
                    w["text"],
                    float(w.get("start") or 0.0),
                    float(w.get("end") or 0.0),
                    int(speaker) if isinstance(speaker, int) and not isinstance(speaker, bool) else None,
                    float(w["confidence"]) if isinstance(w.get("confidence"), (int, float)) else None,
                )
            )
    return tuple(out)


def _index(c: dict[str, Any], default: int) -> int:
    value = c.get("channel_index", c.get("channel", default))
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _parse(raw: bytes, trace_id: str | None) -> Transcript:
    try:
        obj = loads(raw)
        if not isinstance(obj, dict) or not isinstance(obj.get("text", ""), str):
            raise TypeError
        channels = tuple(
            ChannelTranscript(_index(c, i), str(c.get("text", "")), _words(c.get("words")))
            for i, c in enumerate(obj.get("channels") or [])
            if isinstance(c, dict)
        )
        duration = obj.get("duration")
        language = obj.get("language")
        return Transcript(
            obj.get("text") or "",
            _words(obj.get("words")),
            language if isinstance(language, str) and language else None,
            float(duration) if isinstance(duration, (int, float)) else None,
            channels,
            trace_id,
        )
    except (ValueError, TypeError, AttributeError):
        raise RemoteProtocolError("the transcription answer is not the documented JSON") from None


async def transcribe(
    service: Service, source: AudioSource, options: STTOptions, timeouts: Timeouts, *, url: bool = False
) -> Transcript:
    """Transcribe ``source``: audio bytes, a path to a file, or (``url=True``) a URL the
    service fetches.  Raw audio (no container) is described by ``options.encoding`` and
    ``options.sample_rate``."""
    form = aiohttp.FormData()
    handle: BinaryIO | None = None
    try:
        if url:
            if not isinstance(source, str):
                raise LocalProtocolError("with url=True the source is a URL string")
            for name, value in options.rest_fields(raw=False):
                form.add_field(name, value)
            form.add_field("url", source)
        else:
            if isinstance(source, bytes):
                head, size, name = source[:12], len(source), "audio"
            else:
                path = Path(source)
                size = await asyncio.to_thread(os.path.getsize, path)
                handle = await asyncio.to_thread(path.open, "rb")
                head = await asyncio.to_thread(handle.read, 12)
                await asyncio.to_thread(handle.seek, 0)
                name = path.name
            if size > MAX_UPLOAD_BYTES:
                raise LocalProtocolError(
                    f"{name} has {size} bytes; the service takes at most {MAX_UPLOAD_BYTES}"
                )
            for field_name, value in options.rest_fields(raw=not _is_container(head)):
                form.add_field(field_name, value)
            # the file goes last, as the service asks; a path is streamed, not read whole
            form.add_field("file", handle if handle is not None else source, filename=name,
                           content_type="application/octet-stream")  # fmt: skip
        resp = await post(service, "stt", timeouts, what="transcription refused", data=form)
        err: XaiVoiceError | None = None
        raw = b""
        try:
            raw = await read_capped(resp, _MAX_ANSWER)
        except asyncio.TimeoutError:
            err = XaiTimeoutError(
                "request", timeouts.completion, "the transcription answer did not come in time"
            )
        except aiohttp.ClientError as exc:
            err = XaiConnectionError(f"the transcription answer broke off: {type(exc).__name__}")
        finally:
            resp.close()
        if err is not None:
            raise err
        if len(raw) > _MAX_ANSWER:
            raise RemoteProtocolError("the transcription answer is larger than 64 MiB")
        return _parse(raw, resp.headers.get("x-trace-id"))
    finally:
        if handle is not None:
            await asyncio.to_thread(handle.close)
