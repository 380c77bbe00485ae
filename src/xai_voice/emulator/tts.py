"""The emulator's text to speech: option validation, one WebSocket session, REST.

A session is a reader (the handler's own coroutine) and a speaker task that voices work in
order.  Speech streams as a streaming service makes it: with ``stream_phrases`` a phrase is
spoken as soon as it is complete (a sentence end or a clause mark followed by a space),
before ``text.done``, so time to first audio measured from the first pushed text means
what it means against xAI.  Timings go out in batches decoupled from the audio unless the
config asks for the tidy per-chunk model.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import OptionError
from ..options import BIT_RATES, CODECS, LANGUAGES, SAMPLE_RATES, validate_replace
from ..pronunciation import apply_replace
from ..protocol.errors import RemoteProtocolError
from ..protocol.speedups import b64encode
from ..protocol.tts import (
    MAX_DELTA_CHARS,
    AudioClear,
    AudioDelta,
    AudioDone,
    ErrorMessage,
    ServerMessage,
    SessionUpdate,
    SessionUpdated,
    TextClear,
    TextDelta,
    TextDone,
    decode_client,
    encode_server,
)
from .app import EmulatorServer, Refused
from .faults import Fault, FaultKind, FaultPoint
from .records import UtteranceRecord
from .render import MP3_AVAILABLE, Rendered, RenderRequest, render, timed_frames

__all__ = ["TtsSession", "install", "parse_options"]

_LANG_BY_LOWER = {lang.lower(): lang for lang in LANGUAGES}
_WELL_FORMED_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
# IDLE faults that fire right after audio.done; the others fire when the idle connection
# is next used (so a pooled connection dies exactly as it is reused)
_AT_ONCE = frozenset(
    {FaultKind.AUDIO_AFTER_DONE, FaultKind.DONE_WITHOUT_UTTERANCE, FaultKind.DEADLINE, FaultKind.SILENT}
)
_ON_USE = frozenset(set(FaultKind) - _AT_ONCE)
#: where a phrase ends: a sentence or clause mark followed by a space, or a line break
_PHRASE_END = re.compile(r"[.!?;:,\u3002\uff01\uff1f](?=\s)|\n")
_MIME = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "mulaw": "audio/basic",
    "alaw": "audio/alaw",
}


def parse_options(
    params: Mapping[str, Any], *, rest: bool, known_voice: Callable[[str], bool]
) -> dict[str, Any]:
    """Validate request options like the service does: 400 for a bad value, 404 for an
    unknown voice.  Returns normalised options.  Any well-formed language code is taken
    ("additional languages may work"); custom voices are voices."""
    get = params.get
    lang_raw = get("language")
    if lang_raw is None:
        raise Refused(400, "language is required")
    language = _LANG_BY_LOWER.get(str(lang_raw).lower())
    if language is None:
        if not _WELL_FORMED_LANGUAGE.fullmatch(str(lang_raw)):
            raise Refused(400, f"unsupported language {lang_raw!r}")
        language = str(lang_raw)
    voice = str(get("voice_id" if rest else "voice") or "eve").lower()
    if not known_voice(voice):
        raise Refused(404, f"voice {voice!r} not found")
    fmt = get("output_format") or {} if rest else params
    if not isinstance(fmt, Mapping):
        raise Refused(400, "output_format must be an object")
    codec = str(fmt.get("codec") or "mp3").lower()
    codec = "mulaw" if codec == "ulaw" else codec
    if codec not in CODECS:
        raise Refused(400, f"unsupported codec {codec!r}")
    if codec == "mp3" and not MP3_AVAILABLE:
        # the emulator's own limit, not the service's
        raise Refused(400, "this emulator cannot encode mp3: install the 'lameenc' package")
    try:
        sample_rate = int(fmt.get("sample_rate") or 24000)
        bit_rate = int(fmt.get("bit_rate") or 128000)
        speed = float(get("speed") or 1.0)
        latency = int(get("optimize_streaming_latency") or 0)
    except (TypeError, ValueError):
        raise Refused(400, "a numeric option is not a number") from None
    if sample_rate not in SAMPLE_RATES:
        raise Refused(400, f"unsupported sample_rate {sample_rate}")
    if bit_rate not in BIT_RATES:
        raise Refused(400, f"unsupported bit_rate {bit_rate}")
    if not 0.7 <= speed <= 1.5:
        raise Refused(400, f"speed {speed} is outside 0.7..1.5")
    if latency not in (0, 1, 2):
        raise Refused(400, f"unsupported optimize_streaming_latency {latency}")

    def flag(name: str) -> bool:
        value = get(name, False)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise Refused(400, f"{name} must be true or false")

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


def _render_request(server: EmulatorServer, text: str, opts: dict[str, Any], **kw: Any) -> RenderRequest:
    cfg = server.config
    return RenderRequest(
        text=text,
        voice=opts["voice"],
        language=opts["language"],
        codec=opts["codec"],
        sample_rate=opts["sample_rate"],
        bit_rate=opts["bit_rate"],
        speed=opts["speed"],
        with_timestamps=opts["with_timestamps"],
        tone=cfg.tone,
        tone_char_seconds=cfg.tone_char_seconds,
        chunk_ms=cfg.chunk_ms,
        **kw,
    )


async def _pace(server: EmulatorServer, rec: UtteranceRecord, chunk_seconds: float) -> None:
    """Wait until the utterance's next audio chunk is due."""
    cfg = server.config
    i = rec.audio_chunks
    if i == 0:
        if cfg.first_audio_delay > 0:
            await asyncio.sleep(cfg.first_audio_delay)
        rec.first_audio_at = time.monotonic()
        return
    if cfg.realtime > 0 and rec.first_audio_at is not None:
        due = rec.first_audio_at + i * chunk_seconds / cfg.realtime
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            # how late the emulator's own loop woke up; a chunk already overdue was held
            # up by a send the client did not read (or by a fault), not by us
            late = time.monotonic() - due
            if late > rec.pacing_lateness:
                rec.pacing_lateness = late


def install(server: EmulatorServer) -> None:
    """Add ``/v1/tts`` (WebSocket and POST) to the emulator."""
    server.app.router.add_get("/v1/tts", websocket_handler(server))
    server.app.router.add_post("/v1/tts", rest_handler(server))


# -- WebSocket -----------------------------------------------------------------------------


def websocket_handler(server: EmulatorServer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.check_auth(request)
        opts = parse_options(request.query, rest=False, known_voice=server.known_voice)
        refused = await server.upgrade_fault(request, "tts")
        if refused is not None:
            return refused
        server.check_capacity()
        # pings are answered by the session itself, so a "silent" connection can stop
        ws = web.WebSocketResponse(autoping=False, max_msg_size=server.config.max_message_bytes)
        try:
            await ws.prepare(request)
        except ConnectionError:  # the client gave up during the upgrade
            return ws
        server.active_sessions += 1
        server.connections += 1
        session = TtsSession(server, ws, request, opts, server.connections - 1)
        server.sessions.add(session)
        try:
            await session.run()
        finally:
            server.sessions.discard(session)
            server.active_sessions -= 1
            server.notify()
        return ws

    return handle


@dataclass
class _Job:
    """A piece of an utterance to voice: a complete phrase, or (``final``) the rest of it
    after ``text.done``."""

    rec: UtteranceRecord
    text: str
    final: bool
    generation: int


class TtsSession:
    """One WebSocket connection of the emulated service."""

    def __init__(
        self,
        server: EmulatorServer,
        ws: web.WebSocketResponse,
        request: web.Request,
        opts: dict[str, Any],
        index: int,
    ) -> None:
        self.server = server
        self.ws = ws
        self.request = request
        self.opts = opts
        self.index = index
        self.replace: dict[str, str] = {}
        self.current: UtteranceRecord | None = None  # collecting text
        self.queued_upto = 0  # characters of current.text handed to the speaker
        self.jobs: deque[_Job] = deque()
        self.generation = 0  # bumped by text.clear: the speaker drops older work
        self.idle_after_done = False
        self.silent = False
        self.speaking: UtteranceRecord | None = None
        self._seconds: dict[int, float] = {}  # audio seconds sent, per utterance
        self._fault_before_audio: dict[int, Fault] = {}
        self._last_index: int | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        cfg = server.config
        self._phrases = cfg.stream_phrases and opts["codec"] in ("pcm", "mulaw", "alaw")

    async def send(self, msg: ServerMessage) -> None:
        if not self.ws.closed and not self.silent:
            try:
                await self.ws.send_str(encode_server(msg))
            except ConnectionResetError:
                pass  # the client left (its close is on its way): nothing to answer

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        speaker = loop.create_task(self._speaker())
        deadline = loop.call_later(self.server.config.connection_deadline, self._deadline_passed)
        try:
            await self._reader()
        finally:
            self._closed = True
            deadline.cancel()
            for task in (speaker, *self._tasks):
                task.cancel()
            for task in (speaker, *self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _deadline_passed(self) -> None:
        self._spawn(self._end_with_deadline(self.server.config.connection_deadline))

    async def _end_with_deadline(self, seconds: float) -> None:
        with contextlib.suppress(Exception):
            trace = uuid.uuid4()
            await self.send(ErrorMessage(f"TTS pipeline timed out after {seconds:.0f}s (trace_id={trace}) "
                                         "(Deadline expired before operation could complete)"))  # fmt: skip
            await self.ws.close(code=1011)

    # -- reading ---------------------------------------------------------------------

    async def _reader(self) -> None:
        slow: float = 0.0
        async for msg in self.ws:
            if self.silent:
                continue  # a dead NAT mapping: nothing gets through, nothing comes back
            if msg.type is WSMsgType.PING:
                await self.ws.pong(msg.data)
                continue
            if msg.type is WSMsgType.PONG:
                continue
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
                    await self.send(ErrorMessage(f"text.delta is longer than {MAX_DELTA_CHARS} characters"))
                    await self.ws.close(code=1009)
                    return
                slow = self._on_delta(cmsg.delta) or slow
            elif isinstance(cmsg, TextDone):
                await self._on_done()
            elif isinstance(cmsg, TextClear):
                await self._on_clear()
            elif isinstance(cmsg, SessionUpdate):
                await self._on_session_update(cmsg.replace)

    def _on_delta(self, delta: str) -> float:
        """Collect text; hand complete phrases to the speaker.  Returns a slow-read delay
        if a fault asks for one."""
        slow = 0.0
        rec = self.current
        if rec is None:
            rec = self.current = self.server.new_utterance(self.index, "websocket", self.opts, self.replace)
            self.queued_upto = 0
            fault = self.server.faults.take(FaultPoint.BEFORE_AUDIO, rec.index)
            if fault is not None:
                if fault.kind is FaultKind.SLOW_READ:
                    slow = fault.seconds
                else:
                    self._fault_before_audio[rec.index] = fault
        rec.text += delta
        if self._phrases and FaultKind.INSTANT_DONE is not getattr(
            self._fault_before_audio.get(rec.index), "kind", None
        ):
            end = 0
            for m in _PHRASE_END.finditer(rec.text, self.queued_upto):
                end = m.end()
            if end > self.queued_upto:
                self._queue(_Job(rec, rec.text[self.queued_upto : end], False, self.generation))
                self.queued_upto = end
        return slow

    async def _on_done(self) -> None:
        rec = self.current
        if rec is None:
            # the docs are silent; an empty utterance most plausibly just ends
            rec = self.server.new_utterance(self.index, "websocket", self.opts, self.replace)
            self.queued_upto = 0
        self.current = None
        rec.text_done_at = time.monotonic()
        fault = self._fault_before_audio.get(rec.index)
        if fault is not None and fault.kind is FaultKind.INSTANT_DONE:
            del self._fault_before_audio[rec.index]
            await self._answer_instantly(rec)
            return
        self._queue(_Job(rec, rec.text[self.queued_upto :], True, self.generation))

    async def _on_clear(self) -> None:
        self.generation += 1
        cleared = [job.rec for job in self.jobs]
        if self.current is not None:
            cleared.append(self.current)
        if self.speaking is not None:
            cleared.append(self.speaking)
        for rec in cleared:
            rec.cleared = True
        self.jobs.clear()
        self.current = None
        await self.send(AudioClear())
        self.server.notify()
        fault = self.server.faults.take(FaultPoint.CLEAR, cleared[0].index if cleared else None)
        if fault is not None and fault.kind is FaultKind.STALE_AUDIO:
            self._spawn(self._stale_audio(cleared[0] if cleared else None, fault.seconds))

    async def _stale_audio(self, rec: UtteranceRecord | None, delay: float) -> None:
        """Audio of the cleared utterance after audio.clear: three chunks of it."""
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = b"\x11\x22" * (self.opts["sample_rate"] // 20)
        for _ in range(3):
            await self.send(AudioDelta(chunk))
            if rec is not None:
                rec.stale_after_clear += 1

    async def _on_session_update(self, replace: Mapping[str, str]) -> None:
        fault = self.server.faults.take(FaultPoint.SESSION_UPDATE)
        if fault is not None and fault.kind is FaultKind.STALL:
            return  # never answered; the map does not apply
        if fault is not None and fault.kind is FaultKind.ERROR:
            await self.send(ErrorMessage("session.update is not supported"))
            return
        try:
            self.replace = validate_replace(replace)
        except OptionError as exc:
            await self.send(ErrorMessage(f"invalid replace map: {exc}"))
        else:
            await self.send(SessionUpdated(self.replace))

    # -- speaking --------------------------------------------------------------------

    def _queue(self, job: _Job) -> None:
        self.jobs.append(job)
        self._wake.set()

    async def _speaker(self) -> None:
        while True:
            while not self.jobs:
                self._wake.clear()
                await self._wake.wait()
            job = self.jobs.popleft()
            if job.generation != self.generation:
                continue
            self.speaking = job.rec
            try:
                if await self._voice(job):
                    return
            finally:
                self.speaking = None

    async def _voice(self, job: _Job) -> bool:
        """Speak one piece of an utterance; True if the connection ended."""
        server = self.server
        rec = job.rec
        fault = self._fault_before_audio.pop(rec.index, None)
        if fault is not None and await self._apply(fault, rec):
            return True
        offset = self._seconds.get(rec.index, 0.0)
        req = _render_request(
            server, apply_replace(job.text, rec.replace), self.opts, offset=offset, wav_header=offset == 0.0
        )
        rendered = await asyncio.to_thread(render, req) if job.text.strip() else None
        if rendered is not None:
            rec.timings.extend(rendered.chars)
            if await self._send_rendered(job, rendered):
                return True
            self._seconds[rec.index] = offset + rendered.duration
        if not job.final:
            return False
        self._seconds.pop(rec.index, None)
        fault = server.faults.take(FaultPoint.AFTER_AUDIO, rec.index)
        if fault is not None and await self._apply(fault, rec):
            return True
        if job.generation != self.generation:
            return False
        return await self._done(rec)

    async def _send_rendered(self, job: _Job, rendered: Rendered) -> bool:
        server = self.server
        rec = job.rec
        mode = server.config.timestamps
        frames = timed_frames(
            rendered, mode=mode, seed=server.config.seed * 1_000_003 + rec.index,
            batch_seconds=server.config.timestamp_batch_seconds,
        )  # fmt: skip
        for audio, stamps in frames:
            if audio and rec.audio_chunks == 1:
                fault = server.faults.take(FaultPoint.MID_AUDIO, rec.index)
                if fault is not None and await self._apply(fault, rec):
                    return True
            if audio:
                await _pace(server, rec, rendered.chunk_seconds)
            if job.generation != self.generation or self._closed:
                return False
            if not audio and stamps is None:
                continue
            await self.send(AudioDelta(audio, stamps))
            if audio:
                rec.add_audio(audio, server.config.keep_audio)
        return False

    async def _answer_instantly(self, rec: UtteranceRecord) -> None:
        """All the audio and audio.done with no await in between (rendered inline), the
        fastest answer any server could give."""
        rendered = render(_render_request(self.server, apply_replace(rec.text, rec.replace), self.opts))
        rec.timings.extend(rendered.chars)
        rec.first_audio_at = time.monotonic()
        mode = self.server.config.timestamps
        for audio, stamps in timed_frames(rendered, mode=mode, seed=rec.index):
            if audio or stamps is not None:
                await self.send(AudioDelta(audio, stamps))
            if audio:
                rec.add_audio(audio, self.server.config.keep_audio)
        await self._done(rec)

    async def _done(self, rec: UtteranceRecord) -> bool:
        rec.trace_id = str(uuid.uuid4())
        await self.send(AudioDone(rec.trace_id))
        rec.audio_done_at = time.monotonic()
        self.server.notify()
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
            await self.send(ErrorMessage(f"injected fault: internal error (trace_id={uuid.uuid4()})"))
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
            await self.ws.send_str('{"type":"audio.surprise","detail":{"new":"field"}}')
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
        if kind is FaultKind.SILENT:
            self.silent = True
            return False
        if kind is FaultKind.ENDLESS:
            await self._endless(rec, fault.seconds)
            return False
        return False

    async def _endless(self, rec: UtteranceRecord | None, seconds: float) -> None:
        """Audio as fast as the socket takes it, never an audio.done (for ``seconds``)."""
        chunk = b"\x00\x10" * (self.opts["sample_rate"] // 10)
        stop = time.monotonic() + seconds
        gen = self.generation
        while time.monotonic() < stop and not self._closed and gen == self.generation and not self.ws.closed:
            await self.send(AudioDelta(chunk))
            if rec is not None:
                rec.audio_bytes += len(chunk)
        if not self.ws.closed:
            await asyncio.sleep(3600)  # and then silence


# -- REST ----------------------------------------------------------------------------------


def rest_handler(server: EmulatorServer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.check_auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object")
        opts = parse_options(body, rest=True, known_voice=server.known_voice)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refused(400, "text is required and must not be empty")
        if len(text) > MAX_DELTA_CHARS:
            raise Refused(400, f"text is longer than {MAX_DELTA_CHARS} characters")
        try:
            replace = validate_replace(body.get("replace") or {})
        except OptionError as exc:
            raise Refused(400, str(exc)) from None
        refused = await server.upgrade_fault(request, "tts")
        if refused is not None:
            return refused
        server.check_capacity()
        server.active_sessions += 1
        server.connections += 1
        rec = server.new_utterance(server.connections - 1, "rest", opts, replace)
        rec.text = text
        rec.text_done_at = time.monotonic()
        try:
            return await _rest_answer(server, request, rec, opts, text, replace)
        finally:
            server.active_sessions -= 1
            server.notify()

    return handle


async def _rest_answer(
    server: EmulatorServer,
    request: web.Request,
    rec: UtteranceRecord,
    opts: dict[str, Any],
    text: str,
    replace: dict[str, str],
) -> web.StreamResponse:
    rendered = await asyncio.to_thread(render, _render_request(server, apply_replace(text, replace), opts))
    rec.timings.extend(rendered.chars)
    mime = _MIME[opts["codec"]]
    rec.trace_id = str(uuid.uuid4())
    keep = server.config.keep_audio
    if opts["with_timestamps"]:
        audio = rendered.audio
        rec.add_audio(audio, keep)
        rec.audio_done_at = time.monotonic()
        return web.json_response(
            {
                "audio": b64encode(audio),
                "content_type": mime,
                "duration": rendered.duration,
                "audio_timestamps": {
                    "graph_chars": [c for c, _, _ in rendered.chars],
                    "graph_times": [[a, b] for _, a, b in rendered.chars],
                },
            },
            headers={"x-trace-id": rec.trace_id},
        )
    resp = web.StreamResponse(headers={"Content-Type": mime, "x-trace-id": rec.trace_id})
    fault = server.faults.take(FaultPoint.BEFORE_AUDIO, rec.index)
    if fault is not None and await _rest_fault(request, fault):
        return resp
    await resp.prepare(request)
    for i, chunk in enumerate(rendered.chunks):
        if i == 1:
            fault = server.faults.take(FaultPoint.MID_AUDIO, rec.index)
            if fault is not None:
                await asyncio.sleep(0.1)  # mid-audio means the client has had some audio
                if await _rest_fault(request, fault):
                    return resp
        await _pace(server, rec, rendered.chunk_seconds)
        await resp.write(chunk)
        rec.add_audio(chunk, keep)
    await resp.write_eof()
    rec.audio_done_at = time.monotonic()
    return resp


async def _rest_fault(request: web.Request, fault: Fault) -> bool:
    if fault.kind is FaultKind.STALL:
        await asyncio.sleep(fault.seconds)
    if request.transport is not None:
        request.transport.abort()  # REST has no error frame: any other fault is a drop
    return True
