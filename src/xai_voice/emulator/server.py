"""A local server that speaks xAI's TTS protocol, with real offline speech.

Endpoints, as PROTOCOL.md describes them: ``/v1/tts`` (WebSocket upgrade and POST),
``/v1/tts/voices`` and ``/v1/tts/voices/{id}``.  Built on the protocol layer's message
types only, never on the client, so the client is tested against an independent peer.

Where PROTOCOL.md is silent the emulator does what the service most plausibly does, and
says so where it does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import OptionError
from ..options import BIT_RATES, CODECS, LANGUAGES, SAMPLE_RATES, VOICES, validate_replace
from ..protocol import (
    MAX_DELTA_CHARS,
    AudioClear,
    AudioDelta,
    AudioDone,
    ErrorMessage,
    RemoteProtocolError,
    ServerMessage,
    SessionUpdate,
    SessionUpdated,
    TextClear,
    TextDelta,
    TextDone,
    decode_client,
    encode_server,
)
from ..protocol.speedups import b64encode
from .faults import Fault, FaultKind, FaultPlan, FaultPoint
from .render import MP3_AVAILABLE, Rendered, RenderRequest, apply_replace, render

__all__ = ["EmulatorConfig", "EmulatorServer", "UtteranceRecord"]

logger = logging.getLogger("xai_voice.emulator")

_LANG_BY_LOWER = {lang.lower(): lang for lang in LANGUAGES}
# IDLE faults that fire right after audio.done; the others fire when the idle connection
# is next used (so a pooled connection dies exactly as it is reused)
_AT_ONCE = frozenset({FaultKind.AUDIO_AFTER_DONE, FaultKind.DONE_WITHOUT_UTTERANCE, FaultKind.DEADLINE})
_ON_USE = frozenset(set(FaultKind) - _AT_ONCE)


@dataclass
class EmulatorConfig:
    """How the emulator behaves.

    Args:
        api_key: the one key accepted; None accepts any non-empty bearer token.
        tone: a tone instead of speech (cheap, for load tests).
        chunk_ms: audio per ``audio.delta``.
        realtime: pacing, as a multiple of real time (2.0: audio comes twice as fast as it
            plays); 0 sends as fast as it can.
        first_audio_delay: seconds between ``text.done`` and the first audio.
        max_sessions: concurrent sessions allowed (PROTOCOL.md: 50 per team); past it, 429.
        connection_deadline: seconds before a connection is ended with the service's
            "TTS pipeline timed out" error frame (observed at ~2,100 s).
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
    #: keep every audio byte sent in the records (``audio_crc`` is kept either way)
    keep_audio: bool = True


@dataclass
class UtteranceRecord:
    """What the emulator heard and did for one utterance, for assertions in tests."""

    index: int
    connection: int
    transport: str  # "websocket" or "rest"
    options: dict[str, Any]
    replace: dict[str, str]
    text: str = ""
    started_at: float = 0.0
    text_done_at: float | None = None
    audio_done_at: float | None = None
    first_audio_at: float | None = None
    cleared: bool = False
    audio_bytes: int = 0
    audio_chunks: int = 0
    trace_id: str | None = None
    error: str | None = None
    #: every audio byte sent (kept so tests can compare what the client received)
    audio: bytearray = field(default_factory=bytearray, repr=False)
    #: CRC-32 of the audio sent, for comparisons when the bytes are not kept
    audio_crc: int = 0
    #: with pacing, the most the emulator woke up after a chunk was due (seconds): its
    #: own lateness, so a benchmark can tell it from the client's
    pacing_lateness: float = 0.0

    def add_audio(self, chunk: bytes, keep: bool) -> None:
        if keep:
            self.audio += chunk
        self.audio_crc = zlib.crc32(chunk, self.audio_crc)
        self.audio_bytes += len(chunk)
        self.audio_chunks += 1

    @property
    def voice(self) -> str:
        return str(self.options.get("voice", ""))

    @property
    def completed(self) -> bool:
        return self.audio_done_at is not None

    def summary(self) -> dict[str, Any]:
        """Everything but the audio bytes, as JSON-ready values."""
        return {k: v for k, v in self.__dict__.items() if k != "audio"}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_response(status: int, message: str) -> web.Response:
    code = {400: "invalid_argument", 401: "unauthenticated", 404: "not_found",
            429: "rate_limited"}.get(status, "internal")  # fmt: skip
    return web.json_response({"error": message, "code": code}, status=status)


def parse_options(params: Mapping[str, Any], *, rest: bool) -> dict[str, Any]:
    """Validate request options like the service does: 400 for a bad value, 404 for an
    unknown voice.  Returns normalised options."""
    get = params.get
    lang_raw = get("language")
    if lang_raw is None:
        raise _Refused(400, "language is required")
    language = _LANG_BY_LOWER.get(str(lang_raw).lower())
    if language is None:
        raise _Refused(400, f"unsupported language {lang_raw!r}")
    voice = str(get("voice_id" if rest else "voice") or "eve").lower()
    if voice not in VOICES:
        raise _Refused(404, f"voice {voice!r} not found")
    fmt = get("output_format") or {} if rest else params
    if not isinstance(fmt, Mapping):
        raise _Refused(400, "output_format must be an object")
    codec = str(fmt.get("codec") or "mp3").lower()
    codec = "mulaw" if codec == "ulaw" else codec
    if codec not in CODECS:
        raise _Refused(400, f"unsupported codec {codec!r}")
    if codec == "mp3" and not MP3_AVAILABLE:
        # the emulator's own limit, not the service's
        raise _Refused(400, "this emulator cannot encode mp3: install the 'lameenc' package "
                       "(pip install 'xai-voice[mp3]')")  # fmt: skip
    try:
        sample_rate = int(fmt.get("sample_rate") or 24000)
        bit_rate = int(fmt.get("bit_rate") or 128000)
        speed = float(get("speed") or 1.0)
        latency = int(get("optimize_streaming_latency") or 0)
    except (TypeError, ValueError):
        raise _Refused(400, "a numeric option is not a number") from None
    if sample_rate not in SAMPLE_RATES:
        raise _Refused(400, f"unsupported sample_rate {sample_rate}")
    if bit_rate not in BIT_RATES:
        raise _Refused(400, f"unsupported bit_rate {bit_rate}")
    if not 0.7 <= speed <= 1.5:
        raise _Refused(400, f"speed {speed} is outside 0.7..1.5")
    if latency not in (0, 1, 2):
        raise _Refused(400, f"unsupported optimize_streaming_latency {latency}")

    def flag(name: str) -> bool:
        value = get(name, False)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise _Refused(400, f"{name} must be true or false")

    return {
        "voice": voice,
        "language": language,
        "codec": codec,
        "sample_rate": sample_rate,
        "bit_rate": bit_rate,
        "speed": speed,
        "optimize_streaming_latency": latency,
        "text_normalization": flag("text_normalization"),
        "with_timestamps": flag("with_timestamps"),
    }


class EmulatorServer:
    """The aiohttp application and its state: sessions, records, faults."""

    def __init__(self, config: EmulatorConfig | None = None, faults: FaultPlan | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults = faults if faults is not None else FaultPlan()
        self.utterances: list[UtteranceRecord] = []
        self.connections = 0
        self.active_sessions = 0
        self._sessions: set[_WsSession] = set()
        self._changed = asyncio.Event()
        self.app = web.Application(client_max_size=1024 * 1024)
        self.app.router.add_get("/v1/tts", self._websocket)
        self.app.router.add_post("/v1/tts", self._rest)
        self.app.router.add_get("/v1/tts/voices", self._voices)
        self.app.router.add_get("/v1/tts/voices/{voice_id}", self._voice)
        # not part of xAI's API: the records, for tests and benchmarks in other processes
        self.app.router.add_get("/v1/_emulator/utterances", self._records)
        self.app.on_shutdown.append(self._on_shutdown)

    # -- records -----------------------------------------------------------------------

    def _new_record(
        self, conn: int, transport: str, opts: dict[str, Any], replace: dict[str, str]
    ) -> UtteranceRecord:
        rec = UtteranceRecord(len(self.utterances), conn, transport, dict(opts), dict(replace))
        rec.started_at = time.monotonic()
        self.utterances.append(rec)
        self._notify()
        return rec

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (checked on every change of the records)."""

        async def wait() -> None:
            while not predicate():
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    # -- auth and limits ---------------------------------------------------------------

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "missing bearer token")
        if self.config.api_key is not None and token.strip() != self.config.api_key:
            raise _Refused(401, "invalid API key")

    async def _upgrade_fault(self, request: web.Request) -> web.StreamResponse | None:
        fault = self.faults.take(FaultPoint.UPGRADE)
        if fault is None:
            return None
        if fault.kind is FaultKind.REFUSE:
            return _error_response(fault.status, f"injected fault: HTTP {fault.status}")
        if fault.kind is FaultKind.STALL:
            await asyncio.sleep(fault.seconds)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    # -- handlers ----------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_auth(request)
            opts = parse_options(request.query, rest=False)
        except _Refused as exc:
            return _error_response(exc.status, str(exc))
        refused = await self._upgrade_fault(request)
        if refused is not None:
            return refused
        if self.active_sessions >= self.config.max_sessions:
            return _error_response(429, f"too many concurrent sessions (limit {self.config.max_sessions})")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=self.config.max_message_bytes)
        await ws.prepare(request)
        self.active_sessions += 1
        self.connections += 1
        session = _WsSession(self, ws, request, opts, self.connections - 1)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self.active_sessions -= 1
            self._notify()
        return ws

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_auth(request)
            try:
                body = await request.json()
            except ValueError:
                raise _Refused(400, "the body is not JSON") from None
            if not isinstance(body, dict):
                raise _Refused(400, "the body must be a JSON object")
            opts = parse_options(body, rest=True)
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                raise _Refused(400, "text is required and must not be empty")
            if len(text) > MAX_DELTA_CHARS:
                raise _Refused(400, f"text is longer than {MAX_DELTA_CHARS} characters")
            try:
                replace = validate_replace(body.get("replace") or {})
            except OptionError as exc:
                raise _Refused(400, str(exc)) from None
        except _Refused as exc:
            return _error_response(exc.status, str(exc))
        refused = await self._upgrade_fault(request)
        if refused is not None:
            return refused
        if self.active_sessions >= self.config.max_sessions:
            return _error_response(429, "too many concurrent requests")
        self.active_sessions += 1
        self.connections += 1
        rec = self._new_record(self.connections - 1, "rest", opts, replace)
        rec.text = text
        rec.text_done_at = time.monotonic()
        try:
            return await self._rest_answer(request, rec, opts, text, replace)
        finally:
            self.active_sessions -= 1
            self._notify()

    async def _rest_answer(self, request: web.Request, rec: UtteranceRecord, opts: dict[str, Any],
                           text: str, replace: dict[str, str]) -> web.StreamResponse:  # fmt: skip
        rendered = await asyncio.to_thread(render, self._render_request(apply_replace(text, replace), opts))
        mime = {"pcm": "audio/pcm", "wav": "audio/wav", "mp3": "audio/mpeg",
                "mulaw": "audio/basic", "alaw": "audio/alaw"}[opts["codec"]]  # fmt: skip
        rec.trace_id = str(uuid.uuid4())
        if opts["with_timestamps"]:
            chars: list[str] = []
            times: list[list[float]] = []
            for ts in rendered.timestamps:
                if ts is not None:
                    chars.extend(ts.chars)
                    times.extend([list(t) for t in ts.times])
            audio = rendered.audio
            rec.add_audio(audio, self.config.keep_audio)
            rec.audio_done_at = time.monotonic()
            return web.json_response({
                "audio": b64encode(audio),
                "content_type": mime,
                "duration": rendered.duration,
                "audio_timestamps": {"graph_chars": chars, "graph_times": times},
            })  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": mime, "x-trace-id": rec.trace_id})
        fault = self.faults.take(FaultPoint.BEFORE_AUDIO, rec.index)
        if fault is not None and await self._rest_fault(request, fault):
            return resp
        await resp.prepare(request)
        for i, chunk in enumerate(rendered.chunks):
            if i == 1:
                fault = self.faults.take(FaultPoint.MID_AUDIO, rec.index)
                if fault is not None and await self._rest_fault(request, fault):
                    return resp
            await self._pace(rec, i, rendered)
            await resp.write(chunk)
            rec.add_audio(chunk, self.config.keep_audio)
        await resp.write_eof()
        rec.audio_done_at = time.monotonic()
        return resp

    async def _rest_fault(self, request: web.Request, fault: Fault) -> bool:
        if fault.kind is FaultKind.STALL:
            await asyncio.sleep(fault.seconds)
        if request.transport is not None:
            request.transport.abort()  # REST has no error frame: any other fault is a drop
        return True

    async def _voices(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except _Refused as exc:
            return _error_response(exc.status, str(exc))
        return web.json_response({"voices": [{"voice_id": v, "name": v.capitalize()} for v in VOICES]})

    async def _voice(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except _Refused as exc:
            return _error_response(exc.status, str(exc))
        voice = request.match_info["voice_id"].lower()
        if voice not in VOICES:
            return _error_response(404, f"voice {voice!r} not found")
        return web.json_response({"voice_id": voice, "name": voice.capitalize()})

    async def _records(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except _Refused as exc:
            return _error_response(exc.status, str(exc))
        return web.json_response([rec.summary() for rec in self.utterances])

    async def _on_shutdown(self, app: web.Application) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"emulator shutting down")

    # -- shared by both transports ----------------------------------------------------

    def _render_request(self, text: str, opts: dict[str, Any]) -> RenderRequest:
        return RenderRequest(
            text=text,
            voice=opts["voice"],
            language=opts["language"],
            codec=opts["codec"],
            sample_rate=opts["sample_rate"],
            bit_rate=opts["bit_rate"],
            speed=opts["speed"],
            with_timestamps=opts["with_timestamps"],
            tone=self.config.tone,
            tone_char_seconds=self.config.tone_char_seconds,
            chunk_ms=self.config.chunk_ms,
        )

    async def _pace(self, rec: UtteranceRecord, i: int, rendered: Rendered) -> None:
        cfg = self.config
        if i == 0:
            if cfg.first_audio_delay > 0:
                await asyncio.sleep(cfg.first_audio_delay)
            rec.first_audio_at = time.monotonic()
            return
        if cfg.realtime > 0 and rec.first_audio_at is not None:
            due = rec.first_audio_at + i * rendered.chunk_seconds / cfg.realtime
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                # how late the emulator's own loop woke up; a chunk already overdue was
                # held up by a send the client did not read (or by a fault), not by us
                late = time.monotonic() - due
                if late > rec.pacing_lateness:
                    rec.pacing_lateness = late


class _WsSession:
    """One WebSocket connection: a reader (this coroutine) and one speaker task that
    voices finished utterances in order."""

    def __init__(self, server: EmulatorServer, ws: web.WebSocketResponse, request: web.Request,
                 opts: dict[str, Any], index: int) -> None:  # fmt: skip
        self.server = server
        self.ws = ws
        self.request = request
        self.opts = opts
        self.index = index
        self.replace: dict[str, str] = {}
        self.current: UtteranceRecord | None = None  # collecting text
        self.pending: deque[UtteranceRecord] = deque()  # text.done received, not voiced yet
        self.generation = 0  # bumped by text.clear: the speaker drops older work
        self.idle_after_done = False
        self.speaking: UtteranceRecord | None = None
        self._fault_before_audio: Fault | None = None  # taken at the first text.delta
        self._faults_for: dict[int, Fault] = {}
        self._last_index: int | None = None
        self._wake = asyncio.Event()
        self._closed = False

    async def send(self, msg: ServerMessage) -> None:
        if not self.ws.closed:
            await self.ws.send_str(encode_server(msg))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        speaker = loop.create_task(self._speaker())
        deadline = loop.call_later(self.server.config.connection_deadline, self._deadline_passed)
        try:
            await self._reader()
        finally:
            self._closed = True
            deadline.cancel()
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaker

    def _deadline_passed(self) -> None:
        secs = self.server.config.connection_deadline
        asyncio.get_running_loop().create_task(self._end_with_deadline(secs))

    async def _end_with_deadline(self, seconds: float) -> None:
        with contextlib.suppress(Exception):
            await self.send(ErrorMessage(f"TTS pipeline timed out after {seconds:.0f}s"))
            await self.ws.close(code=1011)

    async def _reader(self) -> None:
        slow: float = 0.0
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT:
                await self.send(ErrorMessage("binary frames are not supported"))
                continue
            if self.idle_after_done:
                self.idle_after_done = False
                fault = self.server.faults.take(FaultPoint.IDLE, self._last_index, kinds=_ON_USE)
                if fault is not None and await self._apply(fault, None):
                    return
            if slow:
                await asyncio.sleep(slow)
            try:
                cmsg = decode_client(msg.data)
            except RemoteProtocolError as exc:
                await self.send(ErrorMessage(str(exc)))
                continue
            if isinstance(cmsg, TextDelta):
                if len(cmsg.delta) > MAX_DELTA_CHARS:
                    await self.send(ErrorMessage(
                        f"text.delta is longer than {MAX_DELTA_CHARS} characters"))  # fmt: skip
                    await self.ws.close(code=1009)
                    return
                if self.current is None:
                    self.current = self.server._new_record(self.index, "websocket", self.opts, self.replace)
                    fault = self.server.faults.take(FaultPoint.BEFORE_AUDIO, self.current.index)
                    if fault is not None:
                        if fault.kind is FaultKind.SLOW_READ:
                            slow = fault.seconds
                        else:
                            self._fault_before_audio = fault
                self.current.text += cmsg.delta
            elif isinstance(cmsg, TextDone):
                rec = self.current
                if rec is None:
                    # PROTOCOL.md is silent; an empty utterance most plausibly just ends
                    rec = self.server._new_record(self.index, "websocket", self.opts, self.replace)
                self.current = None
                rec.text_done_at = time.monotonic()
                fault, self._fault_before_audio = self._fault_before_audio, None
                if fault is not None and fault.kind is FaultKind.INSTANT_DONE:
                    await self._answer_instantly(rec)
                else:
                    self.pending.append(rec)
                    if fault is not None:
                        self._faults_for[rec.index] = fault
                    self._wake.set()
            elif isinstance(cmsg, TextClear):
                self.generation += 1
                for rec in [*self.pending, *([self.current] if self.current else [])]:
                    rec.cleared = True
                if self.speaking is not None:
                    self.speaking.cleared = True
                self.pending.clear()
                self.current = None
                await self.send(AudioClear())
                self.server._notify()
            elif isinstance(cmsg, SessionUpdate):
                try:
                    self.replace = validate_replace(cmsg.replace)
                except OptionError as exc:
                    await self.send(ErrorMessage(f"invalid replace map: {exc}"))
                else:
                    await self.send(SessionUpdated(self.replace))

    async def _speaker(self) -> None:
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            rec = self.pending.popleft()
            self.speaking = rec
            try:
                if await self._voice(rec, self.generation, self._faults_for.pop(rec.index, None)):
                    return
            finally:
                self.speaking = None

    async def _voice(self, rec: UtteranceRecord, gen: int, fault: Fault | None) -> bool:
        """Speak one utterance; True if the connection ended."""
        server = self.server
        if fault is not None and await self._apply(fault, rec):
            return True
        req = server._render_request(apply_replace(rec.text, rec.replace), self.opts)
        rendered = await asyncio.to_thread(render, req)
        for i, chunk in enumerate(rendered.chunks):
            if i == 1:
                fault = server.faults.take(FaultPoint.MID_AUDIO, rec.index)
                if fault is not None and await self._apply(fault, rec):
                    return True
            await server._pace(rec, i, rendered)
            if gen != self.generation or self._closed:
                return False
            if not chunk:
                continue
            await self.send(AudioDelta(chunk, rendered.timestamps[i]))
            rec.add_audio(chunk, server.config.keep_audio)
        fault = server.faults.take(FaultPoint.AFTER_AUDIO, rec.index)
        if fault is not None and await self._apply(fault, rec):
            return True
        if gen != self.generation:
            return False
        return await self._done(rec)

    async def _answer_instantly(self, rec: UtteranceRecord) -> None:
        """All the audio and audio.done with no await in between (rendered inline), the
        fastest answer any server could give."""
        req = self.server._render_request(apply_replace(rec.text, rec.replace), self.opts)
        rendered = render(req)
        rec.first_audio_at = time.monotonic()
        for chunk, ts in zip(rendered.chunks, rendered.timestamps, strict=True):
            if chunk:
                await self.send(AudioDelta(chunk, ts))
                rec.add_audio(chunk, self.server.config.keep_audio)
        await self._done(rec)

    async def _done(self, rec: UtteranceRecord) -> bool:
        rec.trace_id = str(uuid.uuid4())
        await self.send(AudioDone(rec.trace_id))
        rec.audio_done_at = time.monotonic()
        self.server._notify()
        self._last_index = rec.index
        fault = self.server.faults.take(FaultPoint.IDLE, rec.index, kinds=_AT_ONCE)
        if fault is not None:
            return await self._apply(fault, rec)
        self.idle_after_done = True
        return False

    async def _apply(self, fault: Fault, rec: UtteranceRecord | None) -> bool:
        """Carry out a fault; True if the connection is over."""
        kind = fault.kind
        if rec is not None:
            rec.error = f"fault:{kind.value}"
        if kind is FaultKind.STALL:
            await asyncio.sleep(fault.seconds)
            return False
        if kind is FaultKind.DROP:
            if self.request.transport is not None:
                self.request.transport.abort()
            return True
        if kind is FaultKind.CLOSE:
            await self.ws.close(code=1011, message=b"injected fault")
            return True
        if kind is FaultKind.ERROR:
            await self.send(ErrorMessage("injected fault: internal error"))
            return False
        if kind is FaultKind.DEADLINE:
            await self._end_with_deadline(self.server.config.connection_deadline)
            return True
        if kind is FaultKind.MALFORMED:
            await self.ws.send_str("{this is not json")
            return False
        if kind is FaultKind.BINARY:
            await self.ws.send_bytes(b"\x00\x01binary")
            return False
        if kind is FaultKind.UNKNOWN_TYPE:
            await self.ws.send_str('{"type":"audio.surprise"}')
            return False
        if kind is FaultKind.AUDIO_AFTER_DONE:
            await self.send(AudioDelta(b"\x00\x00" * 160))
            return False
        if kind is FaultKind.DONE_WITHOUT_UTTERANCE:
            await self.send(AudioDone(str(uuid.uuid4())))
            return False
        if kind is FaultKind.OVERSIZED:
            await self.ws.send_str('{"type":"audio.delta","delta":"' + "A" * (9 * 1024 * 1024) + '"}')
            return False
        return False
