"""The asyncio client: the engine without LiveKit.

::

    async with xai_voice.Client() as client:             # XAI_API_KEY, XAI_BASE_URL
        async with client.stream(voice="ara") as utt:    # one utterance, over a pooled socket
            await utt.send("Hello from ")
            await utt.send("Grok.")
            await utt.finish()
            async for chunk in utt:                      # AudioChunk(data, timestamps)
                play(chunk.data)

        async for chunk in client.synthesize("Hi."):     # REST, streamed as it arrives
            ...
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from .errors import ClientClosedError
from .options import TTSOptions
from .options.stt import STTOptions
from .transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    AudioSource,
    ConnectionPool,
    Endpoint,
    MapSupport,
    Recognition,
    RestSynthesis,
    Service,
    Timeouts,
    Transcript,
    Utterance,
    Voice,
    WsConnection,
    create_custom_voice,
    delete_custom_voice,
    list_voices,
    new_session,
    proxy_from_environment,
    transcribe,
)

__all__ = ["Client", "Recognition", "Utterance"]

logger = logging.getLogger("xai_voice")


class Client:
    """A connection to the xAI voice service (or anything speaking its protocol).

    Args:
        api_key: defaults to ``XAI_API_KEY``.
        base_url: defaults to ``XAI_BASE_URL``, then ``https://api.x.ai/v1``.  Both the
            REST and the WebSocket endpoints hang off it (``https`` -> ``wss``).
        options: the defaults for every utterance; override per call.
        timeouts: the deadline on each wait (see :class:`Timeouts`).
        session: an aiohttp session to use (and not close), or a function returning
            one (asked at each use, e.g. a framework's per-job session); otherwise the
            client makes its own, which honours ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``.
        max_connection_age: pooled sockets older than this are replaced (the service
            ends a connection after ~2,100 s).
        max_idle_connections: idle sockets always allowed per set of options.  More are
            kept while recent concurrency needs them: as many as were in use at once
            during the last ``idle_peak_window`` seconds.
        idle_peak_window: how far back that concurrency is remembered; ``0`` makes
            ``max_idle_connections`` a plain cap.
        max_idle_time: an idle socket unused this long is closed (each one holds one of
            the team's concurrent sessions).
        allow_insecure: permit plain ``http://`` to a host that is not loopback.
        ssl: passed to aiohttp; ``True`` (verify certificates) unless you say otherwise.
        max_message_bytes: the largest server frame accepted.
        max_buffered_bytes: audio buffered for a slow consumer before the socket is no
            longer read (back-pressure, not an error).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        options: TTSOptions | None = None,
        timeouts: Timeouts | None = None,
        session: aiohttp.ClientSession | Callable[[], aiohttp.ClientSession] | None = None,
        max_connection_age: float = 1800.0,
        max_idle_connections: int = 4,
        idle_peak_window: float = 60.0,
        max_idle_time: float = 300.0,
        allow_insecure: bool = False,
        ssl: Any = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_buffered_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        endpoint = Endpoint.resolve(api_key, base_url, allow_insecure=allow_insecure)
        self.options = options if options is not None else TTSOptions()
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self._session_factory = session if callable(session) else None
        self._session = None if callable(session) else session
        self._owns_session = session is None
        self.service = Service(endpoint, self._http, ssl=ssl)
        self.max_message_bytes = max_message_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self.map_support = MapSupport()
        self.pool = ConnectionPool(
            max_age=max_connection_age,
            max_idle=max_idle_connections,
            peak_window=idle_peak_window,
            max_idle_time=max_idle_time,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, options={self.options!r})"

    @property
    def base_url(self) -> str:
        return self.service.base_url

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing --------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError()
        if self._session_factory is not None:
            return self._session_factory()
        if self._session is None:
            # the environment's proxy applies to sessions we make; a session you pass is yours
            self._session = new_session(proxy_from_environment(self.service.base_url))
        return self._session

    def _options(self, options: TTSOptions | None, overrides: dict[str, Any]) -> TTSOptions:
        base = options if options is not None else self.options
        return base.replace_with(**overrides) if overrides else base

    def connector(
        self, options: TTSOptions, timeouts: Timeouts | None = None
    ) -> Callable[[], Coroutine[Any, Any, WsConnection]]:
        """A function that opens one TTS WebSocket with ``options`` (for the pool)."""

        def connect() -> Coroutine[Any, Any, WsConnection]:
            return WsConnection.connect(
                self.service, options, timeouts or self.timeouts, max_message_bytes=self.max_message_bytes
            )

        return connect

    # -- public API ------------------------------------------------------------------

    def stream(
        self,
        options: TTSOptions | None = None,
        *,
        timeouts: Timeouts | None = None,
        lenient_text: bool = False,
        **overrides: Any,
    ) -> Utterance:
        """A new streaming utterance (WebSocket).  Options are validated here;
        ``timeouts`` replace the client's for this utterance."""
        if self._closed:
            raise ClientClosedError()
        return Utterance(
            self, self._options(options, overrides), timeouts or self.timeouts, lenient_text=lenient_text
        )

    def synthesize(
        self,
        text: str,
        options: TTSOptions | None = None,
        *,
        timeouts: Timeouts | None = None,
        **overrides: Any,
    ) -> RestSynthesis:
        """One-shot synthesis over REST: an async iterator of audio chunks."""
        if self._closed:
            raise ClientClosedError()
        return RestSynthesis(self.service, self._options(options, overrides), text, timeouts or self.timeouts)

    async def speak(self, text: str, options: TTSOptions | None = None, **overrides: Any) -> bytes:
        """All the audio for ``text``, streamed over the WebSocket (any length), as raw
        bytes in the options' codec (16-bit PCM at 24 kHz unless you say otherwise)."""
        async with self.stream(options, **overrides) as utt:
            await utt.send(text)
            await utt.finish()
            return await utt.read_all()

    async def voices(self, *, custom: bool = True) -> list[Voice]:
        """The built-in voices and, with ``custom``, your team's custom voices
        (``Voice.kind`` tells which)."""
        return await list_voices(self.service, self.timeouts, custom=custom)

    async def create_custom_voice(
        self,
        name: str,
        audio: bytes | str | os.PathLike[str],
        *,
        description: str | None = None,
        language: str | None = None,
    ) -> Voice:
        """Clone a voice from up to 120 s of reference audio (bytes, or a path to a
        file).  The service allows this on Enterprise plans only; elsewhere it is an
        ``XaiStatusError`` with status 403 that says so."""
        filename = "reference.wav"
        if not isinstance(audio, bytes):
            path = Path(audio)
            filename = path.name
            audio = await asyncio.to_thread(path.read_bytes)
        return await create_custom_voice(
            self.service,
            self.timeouts,
            name,
            audio,
            filename=filename,
            description=description,
            language=language,
        )

    async def delete_custom_voice(self, voice_id: str) -> None:
        """Delete one of your team's custom voices (Enterprise plans only)."""
        await delete_custom_voice(self.service, self.timeouts, voice_id)

    # -- speech to text --------------------------------------------------------------

    def listen(
        self,
        options: STTOptions | None = None,
        *,
        timeouts: Timeouts | None = None,
        frame_ms: int = 100,
        **overrides: Any,
    ) -> Recognition:
        """A streamed transcription over the WebSocket: ``send`` audio, ``finish``,
        iterate the events.  Options are validated here (``STTOptions`` or keywords)."""
        if self._closed:
            raise ClientClosedError()
        opts = options if options is not None else STTOptions()
        if overrides:
            opts = opts.replace_with(**overrides)
        return Recognition(
            self.service,
            opts,
            timeouts or self.timeouts,
            frame_ms=frame_ms,
            max_message_bytes=self.max_message_bytes,
        )

    async def transcribe(
        self,
        source: AudioSource,
        options: STTOptions | None = None,
        *,
        url: bool = False,
        timeouts: Timeouts | None = None,
        **overrides: Any,
    ) -> Transcript:
        """What was said in ``source``: audio bytes, a path to a file (streamed up), or
        with ``url=True`` a URL the service fetches.  Containers (WAV, MP3, OGG, FLAC,
        M4A, WebM) speak for themselves; raw audio is ``options.encoding`` at
        ``options.sample_rate``.  One REST request."""
        if self._closed:
            raise ClientClosedError()
        opts = options if options is not None else STTOptions()
        if overrides:
            opts = opts.replace_with(**overrides)
        return await transcribe(self.service, source, opts, timeouts or self.timeouts, url=url)

    def prewarm(self, options: TTSOptions | None = None, **overrides: Any) -> None:
        """Open a connection in the background so the next utterance skips the handshake."""
        opts = self._options(options, overrides)
        self.pool.prewarm(opts.connection_key(), self.connector(opts))

    async def aclose(self) -> None:
        """Close every connection (ending any utterance in flight with an error) and the
        HTTP session if this client made it."""
        if self._closed:
            return
        self._closed = True
        await self.pool.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()
