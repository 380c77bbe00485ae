"""The emulator's speech to text: option validation, one WebSocket session, REST.

It listens for real: the audio it receives is decoded, cut into utterances by an energy
voice-activity detector (``vad_threshold``) and ``endpointing`` ms of silence, and each
utterance is recognised (the test's script, or PocketSphinx).  As the service does, it
sends interim results (``interim_results``, about every 500 ms of speech), cuts long
speech into locked chunks (about every 3 s), ends each utterance with a ``speech_final``
that restates it merged and re-punctuated (its last words first going out as a locked
chunk with the same text, as the service has been seen to do), and answers ``audio.done``
with an empty ``transcript.done`` carrying the duration, per channel.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import BodyPartReader, WSMsgType, web

from ..audio import alaw_decode, mulaw_decode, parse_wav_header, resample
from ..protocol.errors import RemoteProtocolError
from ..protocol.stt import (
    AudioDone,
    ErrorMessage,
    Finalize,
    ServerMessage,
    TranscriptCreated,
    TranscriptDone,
    TranscriptPartial,
    Word,
    decode_client,
    encode_server,
)
from .app import EmulatorServer, Refused
from .faults import Fault, FaultKind, FaultPoint
from .recognition import SPHINX_RATE, Heard, NoRecognizer, ScriptEntry, SphinxRecognizer, spread_words
from .records import TranscriptRecord

__all__ = ["install", "parse_stt_options"]

Int16Array = npt.NDArray[np.int16]

_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
_WELL_FORMED_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_FRAME_MS = 20
_SMOOTHING_FRAMES = 5
#: words revealed per this many seconds of speech, for scripted interim results
_SECONDS_PER_WORD = 0.3


def install(server: EmulatorServer) -> None:
    """Add ``/v1/stt`` (WebSocket and POST) to the emulator."""
    server.app.router.add_get("/v1/stt", _websocket_handler(server))
    server.app.router.add_post("/v1/stt", _rest_handler(server))


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise Refused(400, f"{name} must be true or false")


def parse_stt_options(params: Mapping[str, Any], keyterms: list[str]) -> dict[str, Any]:
    """Validate the query (or form) like the service: 400 for anything out of bounds."""
    get = params.get
    try:
        rate = int(get("sample_rate", get("sample_rate_hertz", 16000)))
        endpointing = int(get("endpointing", 10))
        channels = int(get("channels", 1))
    except (TypeError, ValueError):
        raise Refused(400, "a numeric option is not a number") from None
    if rate not in _RATES:
        raise Refused(400, f"unsupported sample_rate {rate}")
    encoding = str(get("encoding", get("audio_format", "pcm"))).lower()
    encoding = "mulaw" if encoding == "ulaw" else encoding
    if encoding not in ("pcm", "mulaw", "alaw"):
        raise Refused(400, f"unsupported encoding {encoding!r}")
    if not 0 <= endpointing <= 5000:
        raise Refused(400, f"endpointing {endpointing} is outside 0..5000")
    multichannel = _flag(get("multichannel", False), "multichannel")
    if multichannel and not 2 <= channels <= 8:
        raise Refused(400, f"channels {channels} is outside 2..8")
    language = get("language")
    if language is not None and not _WELL_FORMED_LANGUAGE.fullmatch(str(language)):
        raise Refused(400, f"unsupported language {language!r}")
    if len(keyterms) > 100 or any(len(k) > 50 or not k.strip() for k in keyterms):
        raise Refused(400, "keyterm: at most 100 terms of up to 50 characters")
    vad = get("vad_threshold")
    smart_turn = get("smart_turn")
    smart_timeout = get("smart_turn_timeout")
    try:
        vad_f = float(vad) if vad is not None else 0.08
        if smart_turn is not None and not 0 <= float(smart_turn) <= 1:
            raise Refused(400, "smart_turn must be from 0 to 1")
        if smart_timeout is not None and not 1 <= int(smart_timeout) <= 5000:
            raise Refused(400, "smart_turn_timeout must be from 1 to 5000")
    except ValueError:
        raise Refused(400, "a numeric option is not a number") from None
    if not 0 <= vad_f <= 1:
        raise Refused(400, "vad_threshold must be from 0 to 1")
    return {
        "sample_rate": rate,
        "encoding": encoding,
        "interim_results": _flag(get("interim_results", False), "interim_results"),
        "endpointing": endpointing,
        "language": str(language) if language is not None else None,
        "diarize": _flag(get("diarize", False), "diarize"),
        "multichannel": multichannel,
        "channels": channels if multichannel else 1,
        "keyterms": list(keyterms),
        "vad_threshold": vad_f,
        "smart_turn": float(smart_turn) if smart_turn is not None else None,
        "filler_words": _flag(get("filler_words", False), "filler_words"),
    }


def _decode(data: bytes, encoding: str) -> Int16Array:
    if encoding == "mulaw":
        return mulaw_decode(data)
    if encoding == "alaw":
        return alaw_decode(data)
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


def _tidy(text: str) -> str:
    """How a final restates an utterance: merged, capitalised, punctuated."""
    text = " ".join(text.split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


@dataclass
class _Utterance:
    channel: int
    start: float  # seconds of the stream
    entry: ScriptEntry | None
    audio: list[Int16Array] = field(default_factory=list)
    speech: float = 0.0  # seconds of speech heard in it
    last_speech_end: float = 0.0
    silence: float = 0.0
    since_interim: float = 0.0
    since_chunk: float = 0.0
    locked: int = 0  # words already sent in locked chunks
    chunk_start: float = 0.0


class _Listener:
    """One channel: voice activity, endpointing, and the utterance being heard."""

    def __init__(self, channel: int, rate: int, opts: dict[str, Any]) -> None:
        self.channel = channel
        self.rate = rate
        self.frame = rate * _FRAME_MS // 1000
        self.threshold = 0.02 * (opts["vad_threshold"] / 0.08) if opts["vad_threshold"] > 0 else 0.0
        self.endpointing = max(opts["endpointing"], _FRAME_MS) / 1000
        self.buffer = np.zeros(0, dtype=np.int16)
        self.t = 0.0  # seconds of audio heard on this channel
        self.open: _Utterance | None = None
        # speech is judged over the last 100 ms, so the stop closures inside a word or
        # between words (espeak makes them 20-140 ms of digital silence) do not end it
        self.recent: deque[float] = deque(maxlen=_SMOOTHING_FRAMES)

    def feed(self, samples: Int16Array) -> list[tuple[str, _Utterance]]:
        """(what happened, to which utterance) for each whole frame: "start", "speech"
        (more of it), "end" (endpointing ended it)."""
        self.buffer = np.concatenate([self.buffer, samples]) if len(self.buffer) else samples
        out: list[tuple[str, _Utterance]] = []
        n = self.frame
        seconds = n / self.rate
        while len(self.buffer) >= n:
            frame, self.buffer = self.buffer[:n], self.buffer[n:]
            rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) / 32768.0
            self.recent.append(rms)
            speech = max(self.recent) > self.threshold
            u = self.open
            if u is None:
                if speech:
                    u = self.open = _Utterance(self.channel, self.t, None, chunk_start=self.t)
                    out.append(("start", u))
                else:
                    self.t += seconds
                    continue
            u.audio.append(frame)
            if speech:
                u.speech += seconds
                u.since_interim += seconds
                u.since_chunk += seconds
                u.silence = 0.0
                u.last_speech_end = self.t + seconds
                out.append(("speech", u))
            else:
                u.silence += seconds
                if u.silence >= self.endpointing:
                    self.open = None
                    out.append(("end", u))
            self.t += seconds
        return out


class SttSession:
    """One WebSocket connection of the emulated speech-to-text service."""

    def __init__(self, server: EmulatorServer, ws: web.WebSocketResponse, request: web.Request,
                 opts: dict[str, Any], index: int) -> None:  # fmt: skip
        self.server = server
        self.ws = ws
        self.request = request
        self.opts = opts
        self.index = index
        self.multichannel = opts["multichannel"]
        self.rec = TranscriptRecord(server.transcripts.total, index, "websocket", dict(opts))
        self.rec.started_at = time.monotonic()
        server.transcripts.append(self.rec)
        server.notify()
        self.listeners = [_Listener(c, opts["sample_rate"], opts) for c in range(opts["channels"])]
        self.heard: dict[int, Heard] = {}  # id(utterance) -> what was recognised, once known
        self.silent = False
        self.results_sent = 0
        self.stalled = False
        self.resend_finals = False
        self.mid_stream_checked = False
        self.pending = b""

    async def send(self, msg: ServerMessage) -> None:
        if self.ws.closed or self.silent or self.stalled:
            return
        text = encode_server(msg, multichannel=self.multichannel)
        try:
            await self.ws.send_str(text)
        except ConnectionResetError:
            return  # the client left (its close is on its way): nothing to answer
        if isinstance(msg, (TranscriptPartial, TranscriptDone)):
            self.rec.results.append(
                {
                    "type": type(msg).__name__,
                    "text": msg.text,
                    "is_final": getattr(msg, "is_final", True),
                    "speech_final": getattr(msg, "speech_final", False),
                    "channel": msg.channel,
                }
            )
            self.server.notify()

    async def run(self) -> None:
        fault = self.server.faults.take(FaultPoint.CREATED, service="stt")
        if fault is not None and await self._apply(fault):
            return
        self.rec.session_id = str(uuid.uuid4())
        await self.send(TranscriptCreated(self.rec.session_id))
        async for msg in self.ws:
            if self.silent:
                continue
            if msg.type is WSMsgType.PING:
                await self.ws.pong(msg.data)
            elif msg.type is WSMsgType.BINARY:
                if await self._audio(msg.data):
                    return
            elif msg.type is WSMsgType.TEXT:
                try:
                    cmsg = decode_client(msg.data)
                except RemoteProtocolError as exc:
                    await self.send(ErrorMessage(str(exc)))  # a bad client message: the session stays
                    continue
                if isinstance(cmsg, AudioDone):
                    if await self._finish():
                        return
                elif isinstance(cmsg, Finalize):
                    for listener in self.listeners:
                        if listener.open is not None:
                            u, listener.open = listener.open, None
                            await self._end(u)

    # -- audio in ------------------------------------------------------------------------

    async def _audio(self, data: bytes) -> bool:
        """Hear some audio; True if the connection is over."""
        self.rec.audio_bytes += len(data)
        self.rec.audio_messages += 1
        width = 2 if self.opts["encoding"] == "pcm" else 1
        data = self.pending + data
        usable = len(data) - len(data) % (width * len(self.listeners))
        data, self.pending = data[:usable], data[usable:]
        samples = _decode(data, self.opts["encoding"])
        channels = len(self.listeners)
        self.rec.audio_seconds += len(samples) / channels / self.opts["sample_rate"]
        for c, listener in enumerate(self.listeners):
            events = listener.feed(samples[c::channels] if channels > 1 else samples)
            for what, u in events:
                if what == "start":
                    u.entry = self.server.script.take(u.channel)
                elif what == "speech":
                    if await self._progress(u):
                        return True
                else:
                    await self._end(u)
        return False

    async def _progress(self, u: _Utterance) -> bool:
        cfg = self.server.config
        if u.since_chunk >= cfg.stt_locked_chunk_seconds:
            u.since_chunk = 0.0
            await self._chunk(u, final_words=False)
        elif self.opts["interim_results"] and u.since_interim >= cfg.stt_interim_seconds:
            u.since_interim = 0.0
            words = await self._words(u, final=False)
            tail = words[u.locked :]
            if tail:
                await self._result(u, tail, is_final=False)
        if self.results_sent and not self.mid_stream_checked:
            self.mid_stream_checked = True
            fault = self.server.faults.take(FaultPoint.MID_STREAM, self.rec.index, service="stt")
            if fault is not None:
                return await self._apply(fault)
        return False

    # -- results out ---------------------------------------------------------------------

    async def _words(self, u: _Utterance, *, final: bool) -> list[Word]:
        """What this utterance says, so far (interim) or in all (final), timed in the stream."""
        if u.entry is not None:
            entry = u.entry
            every = spread_words(entry.text, max(u.last_speech_end - u.start, 0.05))
            if not final:
                every = every[: max(1, int(u.speech / _SECONDS_PER_WORD) + 1)]
            speaker = entry.speaker if entry.speaker is not None else 0
            return [self._word(w, u.start + a, u.start + b, speaker) for w, a, b in every]
        heard = await self._recognise(u)
        return [self._word(w, u.start + a, u.start + b, 0) for w, a, b in heard.words]

    def _word(self, text: str, start: float, end: float, speaker: int) -> Word:
        return Word(text, round(start, 3), round(end, 3), speaker if self.opts["diarize"] else None)

    async def _recognise(self, u: _Utterance) -> Heard:
        audio = np.concatenate(u.audio) if u.audio else np.zeros(0, dtype=np.int16)
        pcm16 = resample(audio, self.opts["sample_rate"], SPHINX_RATE)
        return await asyncio.to_thread(SphinxRecognizer.get().recognize, pcm16)

    async def _result(self, u: _Utterance, words: list[Word], *, is_final: bool, speech_final: bool = False,
                      text: str | None = None) -> None:  # fmt: skip
        start = words[0].start if words else u.start
        end = words[-1].end if words else u.last_speech_end
        msg = TranscriptPartial(
            text if text is not None else " ".join(w.text for w in words),
            tuple(words), is_final, speech_final, start, max(0.0, end - start), u.channel,
        )  # fmt: skip
        await self.send(msg)
        self.results_sent += 1
        if is_final and self.resend_finals:
            await self.send(msg)

    async def _chunk(self, u: _Utterance, *, final_words: bool) -> None:
        """Lock the words heard since the last chunk."""
        words = await self._words(u, final=final_words)
        new = words[u.locked :]
        if new:
            u.locked = len(words)
            await self._result(u, new, is_final=True)

    async def _end(self, u: _Utterance) -> None:
        """Endpointing (or the end of the audio) closed an utterance: its last words go out
        as a locked chunk, then the speech_final restates the whole of it."""
        try:
            words = await self._words(u, final=True)
        except NoRecognizer as exc:
            await self.send(ErrorMessage(str(exc)))
            return
        text = _tidy(" ".join(w.text for w in words))
        self.rec.utterances.append((u.channel, round(u.start, 3), round(u.last_speech_end, 3), text))
        if not words:
            return
        tail = words[u.locked :]
        if tail:
            await self._result(u, tail, is_final=True)
        await self._result(u, words, is_final=True, speech_final=True, text=text)

    async def _finish(self) -> bool:
        """audio.done: close what is open, then transcript.done per channel."""
        self.rec.audio_done_at = time.monotonic()
        if self.stalled:
            return False  # says nothing more, not even goodbye
        fault = self.server.faults.take(FaultPoint.FINISH, self.rec.index, service="stt")
        if fault is not None and fault.kind is not FaultKind.EMPTY_DONE:
            return await self._apply(fault)
        empty = fault is not None and fault.kind is FaultKind.EMPTY_DONE
        for listener in self.listeners:
            u, listener.open = listener.open, None
            if u is None:
                continue
            if empty:  # the words as locked chunks only: the client must make a final of them
                await self._chunk(u, final_words=True)
                text = _tidy(" ".join(w.text for w in await self._words(u, final=True)))
                self.rec.utterances.append((u.channel, round(u.start, 3), round(u.last_speech_end, 3), text))
            else:
                await self._end(u)
        for listener in self.listeners:
            await self.send(TranscriptDone("", (), round(listener.t, 2), listener.channel))
        self.rec.done_at = time.monotonic()
        self.server.notify()
        fault = self.server.faults.take(FaultPoint.AFTER_DONE, self.rec.index, service="stt")
        if fault is not None:
            return await self._apply(fault)
        after = self.server.config.stt_after_done
        if after == "close":
            await self.ws.close()
            return True
        if after == "silent":
            self.silent = True
            return False
        self.listeners = [
            _Listener(c, self.opts["sample_rate"], self.opts) for c in range(self.opts["channels"])
        ]
        return False

    async def _apply(self, fault: Fault) -> bool:
        """Carry out a fault; True if the connection is over."""
        self.rec.error = f"fault:{fault.kind.value}"
        kind = fault.kind
        if kind is FaultKind.STALL:
            self.stalled = True  # reads on, says nothing more
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
            await self.ws.close(code=1011)
            return True
        if kind is FaultKind.RESEND_FINALS:
            self.resend_finals = True
        if kind is FaultKind.ENDS_EARLY:
            for listener in self.listeners:
                u, listener.open = listener.open, None
                if u is not None:
                    await self._end(u)
            for listener in self.listeners:
                await self.send(TranscriptDone("", (), round(listener.t, 2), listener.channel))
            self.rec.done_at = time.monotonic()
            self.server.notify()
            await self.ws.close()
            return True
        return False


def _websocket_handler(server: EmulatorServer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.check_auth(request)
        opts = parse_stt_options(request.query, request.query.getall("keyterm", []))
        refused = await server.upgrade_fault(request, "stt")
        if refused is not None:
            return refused
        server.check_capacity()
        ws = web.WebSocketResponse(autoping=False, max_msg_size=server.config.max_message_bytes)
        try:
            await ws.prepare(request)
        except ConnectionError:
            return ws
        server.active_sessions += 1
        server.connections += 1
        session = SttSession(server, ws, request, opts, server.connections - 1)
        server.sessions.add(session)
        try:
            await session.run()
        finally:
            server.sessions.discard(session)
            server.active_sessions -= 1
            server.notify()
        return ws

    return handle


# -- REST ------------------------------------------------------------------------------


def _rest_handler(server: EmulatorServer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.check_auth(request)
        if not request.content_type.startswith("multipart/"):
            raise Refused(400, "the body must be multipart/form-data")
        fields: dict[str, str] = {}
        keyterms: list[str] = []
        audio: bytes | None = None
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise Refused(400, "nested multipart bodies are not supported")
            if part.name == "file":
                audio = bytes(await part.read())
            elif part.name == "url":
                raise Refused(400, "this emulator fetches no URLs: send the file")
            elif part.name == "keyterm":
                keyterms.append(await part.text())
            elif part.name:
                fields[part.name] = await part.text()
        if not audio:
            raise Refused(400, "file (or url) is required")
        if audio[:4] == b"RIFF":
            try:
                rate, channels, bits, offset = parse_wav_header(audio)
            except ValueError as exc:
                raise Refused(400, f"unreadable WAV file: {exc}") from None
            if bits != 16:
                raise Refused(400, "this emulator reads 16-bit WAV files only")
            fields.update(sample_rate=str(rate), audio_format="pcm")
            if channels > 1:
                fields.update(multichannel="true", channels=str(channels))
            audio = audio[offset:]
        elif "audio_format" not in fields or "sample_rate" not in fields:
            raise Refused(400, "raw audio needs audio_format and sample_rate (or send a WAV file)")
        fields.setdefault("endpointing", "300")  # whole files: sentence pauses end utterances
        opts = parse_stt_options(fields, keyterms)
        refused = await server.upgrade_fault(request, "stt")
        if refused is not None:
            return refused
        server.connections += 1
        rec = TranscriptRecord(server.transcripts.total, server.connections - 1, "rest", dict(opts))
        rec.started_at = time.monotonic()
        server.transcripts.append(rec)
        result = await _transcribe_file(server, rec, audio, opts)
        rec.done_at = time.monotonic()
        server.notify()
        return web.json_response(result)

    return handle


async def _transcribe_file(server: EmulatorServer, rec: TranscriptRecord, audio: bytes,
                           opts: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    samples = _decode(audio, opts["encoding"])
    channels = opts["channels"]
    rate = opts["sample_rate"]
    rec.audio_bytes = len(audio)
    duration = len(samples) / channels / rate
    rec.audio_seconds = duration
    per_channel: list[tuple[int, str, list[Word]]] = []
    for c in range(channels):
        listener = _Listener(c, rate, opts)
        ends = [
            u for what, u in listener.feed(samples[c::channels] if channels > 1 else samples) if what == "end"
        ]
        tail = [] if listener.open is None else [listener.open]  # the file ended mid-utterance
        words: list[Word] = []
        for u in ends + tail:
            u.entry = server.script.take(c)
            if u.entry is not None:
                every = spread_words(u.entry.text, max(u.last_speech_end - u.start, 0.05))
                spk = u.entry.speaker if u.entry.speaker is not None else 0
                got = [Word(w, round(u.start + a, 3), round(u.start + b, 3), spk if opts["diarize"] else None)
                       for w, a, b in every]  # fmt: skip
            else:
                audio_u = np.concatenate(u.audio)
                try:
                    heard = await asyncio.to_thread(
                        SphinxRecognizer.get().recognize, resample(audio_u, rate, SPHINX_RATE)
                    )
                except NoRecognizer as exc:
                    raise Refused(501, str(exc)) from None
                got = [Word(w, round(u.start + a, 3), round(u.start + b, 3), 0 if opts["diarize"] else None)
                       for w, a, b in heard.words]  # fmt: skip
            text = _tidy(" ".join(w.text for w in got))
            rec.utterances.append((c, round(u.start, 3), round(u.last_speech_end, 3), text))
            words += got
        per_channel.append((c, " ".join(t for ch, _, _, t in rec.utterances if ch == c and t), words))

    def word_json(w: Word) -> dict[str, Any]:
        obj: dict[str, Any] = {"text": w.text, "start": w.start, "end": w.end}
        if w.speaker is not None:
            obj["speaker"] = w.speaker
        return obj

    all_words = sorted((w for _, _, ws in per_channel for w in ws), key=lambda w: w.start)
    result: dict[str, Any] = {
        "text": " ".join(t for _, t, _ in per_channel if t),
        "language": "",
        "duration": round(duration, 2),
    }
    if all_words:
        result["words"] = [word_json(w) for w in all_words]
    if channels > 1:
        result["channels"] = [
            {"channel_index": c, "text": t, "words": [word_json(w) for w in ws]} for c, t, ws in per_channel
        ]
    return result
