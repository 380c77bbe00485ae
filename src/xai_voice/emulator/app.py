"""The emulator's HTTP face: routes, auth, session limits, trace ids, voices, records.

Endpoints, as docs/protocol.md describes them: ``/v1/tts`` (WebSocket upgrade and POST),
``/v1/tts/voices`` and ``/v1/tts/voices/{id}``, ``/v1/custom-voices`` (list, create,
delete).  Built on the protocol layer's message types only, never on the client, so the
client is tested against an independent peer.  Where the public sources are silent the
emulator does the messiest thing they allow, and says so where it does it.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .faults import FaultKind, FaultPlan, FaultPoint
from .recognition import Script
from .records import RecordLog, TranscriptRecord, UtteranceRecord

__all__ = ["CustomVoice", "EmulatorConfig", "EmulatorServer", "Refused", "error_response", "make_server"]


@dataclass
class EmulatorConfig:
    """How the emulator behaves.

    Args:
        api_key: the one key accepted; None accepts any non-empty bearer token.
        tone: a tone instead of speech (cheap, for load tests).
        chunk_ms: audio per ``audio.delta``.
        realtime: pacing, as a multiple of real time (2.0: audio comes twice as fast as it
            plays); 0 sends as fast as it can.
        first_audio_delay: seconds between ``text.done`` (or a complete phrase) and the
            first audio.
        max_sessions: concurrent sessions allowed (50 per team at xAI); past it, 429.
        connection_deadline: seconds before a connection is ended with the service's
            "TTS pipeline timed out" error frame (observed at ~2,100 s).
        keep_audio: keep every audio byte sent in the records (a CRC is kept either way).
        max_records: records kept (the oldest are forgotten past it).
        timestamps: ``"batched"`` (as xAI: batches decoupled from the audio, sometimes in
            timing-only frames) or ``"per_chunk"`` (the tidy model).
        stream_phrases: start speaking a phrase as soon as it is complete, before
            ``text.done`` (raw codecs; wav and mp3 wait for ``text.done``).
        enterprise: whether creating and deleting custom voices is allowed (403 if not).
        stt_after_done: what a speech-to-text session does after ``transcript.done``:
            ``"close"`` the connection, ``"stay"`` open for another turn, or stay open and
            ``"silent"`` (the sources disagree; a client must cope with all three).
        stt_locked_chunk_seconds: long speech is cut into locked chunks this often.
        stt_interim_seconds: interim results this often, when asked for.
    """

    api_key: str | None = None
    tone: bool = False
    #: tone mode: seconds of tone per character of text
    tone_char_seconds: float = 0.06
    chunk_ms: int = 100
    realtime: float = 0.0
    first_audio_delay: float = 0.0
    max_sessions: int = 50
    connection_deadline: float = 2101.0
    max_message_bytes: int = 4 * 1024 * 1024
    keep_audio: bool = False
    max_records: int = 10_000
    timestamps: str = "batched"
    timestamp_batch_seconds: float = 1.5
    stream_phrases: bool = True
    enterprise: bool = True
    #: a seed for the emulator's choices (where timestamp batches go)
    seed: int = 0
    stt_after_done: str = "close"
    stt_locked_chunk_seconds: float = 3.0
    stt_interim_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.timestamps not in ("batched", "per_chunk"):
            raise ValueError(f"timestamps must be 'batched' or 'per_chunk', not {self.timestamps!r}")
        if self.chunk_ms < 1:
            raise ValueError("chunk_ms must be at least 1")
        if self.realtime < 0:
            raise ValueError("realtime must be 0 (no pacing) or more")
        if self.stt_after_done not in ("close", "stay", "silent"):
            raise ValueError(
                f"stt_after_done must be 'close', 'stay' or 'silent', not {self.stt_after_done!r}"
            )


@dataclass
class CustomVoice:
    voice_id: str
    name: str
    created_at: str
    description: str | None = None
    language: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Refused(Exception):
    """A request the emulator refuses with an HTTP status and the service's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str) -> web.Response:
    code = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied",
            404: "not_found", 429: "rate_limited"}.get(status, "internal")  # fmt: skip
    return web.json_response({"error": message, "code": code}, status=status)


@web.middleware
async def _refusals(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Refused as exc:
        return error_response(exc.status, str(exc))


async def _add_trace_id(request: web.Request, response: web.StreamResponse) -> None:
    # the service puts one on every response; support asks for it
    response.headers.setdefault("x-trace-id", str(uuid.uuid4()))


class EmulatorServer:
    """The aiohttp application and its state: sessions, records, faults, voices.  The
    services' own routes are added by their modules (:func:`make_server`)."""

    def __init__(self, config: EmulatorConfig | None = None, faults: FaultPlan | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults = faults if faults is not None else FaultPlan()
        self.utterances: RecordLog[UtteranceRecord] = RecordLog(self.config.max_records)
        self.transcripts: RecordLog[TranscriptRecord] = RecordLog(self.config.max_records)
        #: what the speaker says, in order (when scripted)
        self.script = Script()
        self.custom_voices: dict[str, CustomVoice] = {}
        self.connections = 0
        self.active_sessions = 0
        self.sessions: set[Any] = set()
        self._changed = asyncio.Event()
        self.app = web.Application(client_max_size=1024 * 1024, middlewares=[_refusals])
        self.app.on_response_prepare.append(_add_trace_id)
        r = self.app.router
        r.add_get("/v1/tts/voices", self._voices)
        r.add_get("/v1/tts/voices/{voice_id}", self._voice)
        r.add_get("/v1/custom-voices", self._custom_list)
        r.add_post("/v1/custom-voices", self._custom_create)
        r.add_get("/v1/custom-voices/{voice_id}", self._custom_get)
        r.add_delete("/v1/custom-voices/{voice_id}", self._custom_delete)
        # not part of xAI's API: the records, for tests and benchmarks in other processes
        r.add_get("/v1/_emulator/utterances", self._records)
        r.add_get("/v1/_emulator/transcripts", self._transcript_records)
        self.app.on_shutdown.append(self._on_shutdown)

    # -- changes and waiting -----------------------------------------------------------

    def notify(self) -> None:
        """Wake everyone waiting for a change of the records or sessions."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (checked on every change)."""

        async def wait() -> None:
            while not predicate():
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    def new_utterance(
        self, conn: int, transport: str, opts: dict[str, Any], replace: dict[str, str]
    ) -> UtteranceRecord:
        import time

        rec = UtteranceRecord(self.utterances.total, conn, transport, dict(opts), dict(replace))
        rec.started_at = time.monotonic()
        self.utterances.append(rec)
        self.notify()
        return rec

    # -- auth, limits, faults before the answer ---------------------------------------

    def check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "missing bearer token")
        if self.config.api_key is not None and token.strip() != self.config.api_key:
            raise Refused(401, "invalid API key")

    def check_capacity(self) -> None:
        if self.active_sessions >= self.config.max_sessions:
            raise Refused(429, f"too many concurrent sessions (limit {self.config.max_sessions})")

    async def upgrade_fault(self, request: web.Request, service: str) -> web.StreamResponse | None:
        """A fault before the answer (or the WebSocket upgrade), if one is planned."""
        fault = self.faults.take(FaultPoint.UPGRADE, service=service)
        if fault is None:
            return None
        if fault.kind is FaultKind.REFUSE:
            response = error_response(fault.status, f"injected fault: HTTP {fault.status}")
            if fault.status == 429:
                response.headers["Retry-After"] = "1"
            return response
        if fault.kind is FaultKind.DRIP:
            await self._drip(request, fault.seconds)
            return web.Response(status=500)
        if fault.kind is FaultKind.STALL:
            await asyncio.sleep(fault.seconds)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    async def _drip(self, request: web.Request, per_byte: float) -> None:
        """Response headers, one byte at a time, never finished (stops by itself after
        about a minute)."""
        transport = request.transport
        head = b"HTTP/1.1 200 OK\r\nContent-Type: audio/pcm\r\nX-Slow: " + b"." * 200
        for i in range(len(head)):
            if transport is None or transport.is_closing():
                return
            transport.write(head[i : i + 1])
            await asyncio.sleep(per_byte)
        if transport is not None:
            transport.abort()

    def known_voice(self, voice: str) -> bool:
        from ..options import VOICES

        return voice in VOICES or voice in self.custom_voices

    # -- voices --------------------------------------------------------------------------

    async def _voices(self, request: web.Request) -> web.Response:
        from ..options import VOICES

        self.check_auth(request)
        return web.json_response({"voices": [{"voice_id": v, "name": v.capitalize()} for v in VOICES]})

    async def _voice(self, request: web.Request) -> web.Response:
        from ..options import VOICES

        self.check_auth(request)
        voice = request.match_info["voice_id"].lower()
        if voice not in VOICES:
            raise Refused(404, f"voice {voice!r} not found")
        return web.json_response({"voice_id": voice, "name": voice.capitalize()})

    def add_custom_voice(
        self, name: str, *, description: str | None = None, language: str | None = None
    ) -> str:
        """Create a custom voice as if it had been cloned; returns its id."""
        import datetime

        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        voice_id = "".join(secrets.choice(alphabet) for _ in range(8))
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.custom_voices[voice_id] = CustomVoice(voice_id, name, created, description, language)
        return voice_id

    async def _custom_list(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        try:
            limit = min(1000, max(1, int(request.query.get("limit", "100"))))
            start = int(request.query.get("pagination_token") or "0")
        except ValueError:
            raise Refused(400, "limit and pagination_token must be numbers") from None
        voices = list(self.custom_voices.values())
        page = voices[start : start + limit]
        token = str(start + limit) if start + limit < len(voices) else None
        return web.json_response({"voices": [v.as_json() for v in page], "pagination_token": token})

    async def _custom_get(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        voice = self.custom_voices.get(request.match_info["voice_id"])
        if voice is None:
            raise Refused(404, "custom voice not found")
        return web.json_response(voice.as_json())

    def _check_enterprise(self) -> None:
        if not self.config.enterprise:
            raise Refused(403, "creating and deleting custom voices requires an Enterprise plan")

    async def _custom_create(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        self._check_enterprise()
        form = await request.post()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "file"):
            raise Refused(400, "file is required (up to 120 s of reference audio)")
        name = str(form.get("name") or "").strip()
        if not name:
            raise Refused(400, "name is required")
        description = form.get("description")
        language = form.get("language")
        voice_id = self.add_custom_voice(
            name,
            description=str(description) if description else None,
            language=str(language) if language else None,
        )
        return web.json_response(self.custom_voices[voice_id].as_json(), status=201)

    async def _custom_delete(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        self._check_enterprise()
        if self.custom_voices.pop(request.match_info["voice_id"], None) is None:
            raise Refused(404, "custom voice not found")
        return web.json_response({"deleted": True})

    # -- records and shutdown ---------------------------------------------------------

    async def _records(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        return web.json_response([rec.summary() for rec in self.utterances])

    async def _transcript_records(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        return web.json_response([rec.summary() for rec in self.transcripts])

    async def _on_shutdown(self, app: web.Application) -> None:
        for session in list(self.sessions):
            await session.ws.close(code=1001, message=b"emulator shutting down")


def make_server(config: EmulatorConfig | None = None, faults: FaultPlan | None = None) -> EmulatorServer:
    """The emulator with every service it speaks."""
    from . import stt, tts

    server = EmulatorServer(config, faults)
    tts.install(server)
    stt.install(server)
    return server
