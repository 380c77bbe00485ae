"""The LiveKit face of speech to text: livekit-agents' ``stt.STT`` over the
:mod:`xai_voice` engine, a drop-in for the upstream ``livekit.plugins.xai.STT``.

What it maps, and what it will not do:

* one ``FINAL_TRANSCRIPT`` per utterance, with the service's merged ``speech_final`` text
  and its words as ``TimedString``s (never the locked 3-second chunks as finals: they are
  ``INTERIM_TRANSCRIPT``\\ s here), ``START_OF_SPEECH`` before and ``END_OF_SPEECH`` after,
  and ``RECOGNITION_USAGE`` adding up to the audio sent;
* the engine is FINISHING the moment ``audio.done`` is produced, so a close that beats the
  write loses nothing; every wait has a deadline; an ``error`` frame ends the stream with
  an error instead of being logged and forgotten;
* when the service ends a connection (after its ``transcript.done``, or because options
  changed at an utterance boundary) the stream moves to a new one without losing or
  duplicating audio; ``update_options`` never cuts an utterance.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import wave
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import numpy as np
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr, TimedString
from livekit.agents.utils import AudioBuffer

import xai_voice
from livekit import rtc
from xai_voice.protocol.stt import Final, Finished, Interim, SpeechEnded, SpeechStarted, Word

from ._errors import to_livekit
from ._session import SessionSource
from .log import logger

__all__ = ["STT", "SpeechStream"]

#: usage is reported every this many seconds of audio sent, and at the end of every connection
USAGE_EVERY_SECONDS = 5.0
#: options change between utterances only after this much audio with no sample above QUIET_PEAK
QUIET_SECONDS = 0.5
QUIET_PEAK = 1000  # about -30 dBFS
#: the most audio without a final result kept to send again when a connection fails
REPLAY_SECONDS = 60.0
#: of silence between utterances (no speech reported), only this much is kept
IDLE_REPLAY_SECONDS = 1.0


def _speaker(words: Sequence[Word]) -> str | None:
    for w in words:
        if w.speaker is not None:
            return f"S{w.speaker}"
    return None


def _speech_data(
    text: str, words: Sequence[Word], language: str, start: float, end: float, offset: float
) -> stt.SpeechData:
    return stt.SpeechData(
        language=LanguageCode(language),
        text=text,
        start_time=start + offset,
        end_time=end + offset,
        confidence=1.0,
        speaker_id=_speaker(words),
        words=[
            TimedString(
                w.text,
                start_time=w.start + offset,
                end_time=w.end + offset,
                start_time_offset=offset,
                speaker_id=f"S{w.speaker}" if w.speaker is not None else None,
            )
            for w in words
        ],
    )


class STT(stt.STT[Any]):
    """xAI speech to text for LiveKit Agents.

    Args:
        api_key: defaults to ``XAI_API_KEY``.
        base_url: defaults to ``XAI_BASE_URL``, then ``https://api.x.ai/v1``.
        language, sample_rate, enable_interim_results, enable_diarization, endpointing,
            vad_threshold, smart_turn, smart_turn_timeout, keyterm, filler_words,
            encoding: the service's options (see :class:`xai_voice.STTOptions`),
            validated here so a typo fails at startup.  Names follow the upstream plugin,
            so switching is one line.
        http_session: an aiohttp session; defaults to livekit's per-job session.
        timeouts: per-phase deadlines; by default ``conn_options.timeout`` bounds the
            connect, ``transcript.created``, the gap between results of an utterance and
            the final result after the input ends.
        allow_insecure: permit plain ``http://`` to a host that is not loopback.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        language: str | None = "en",
        sample_rate: int = 16000,
        enable_interim_results: bool = True,
        enable_diarization: bool = False,
        endpointing: int = 100,
        vad_threshold: float | None = None,
        smart_turn: float | None = None,
        smart_turn_timeout: int | None = None,
        keyterm: Sequence[str] | None = None,
        filler_words: bool | None = None,
        encoding: str = "pcm",
        http_session: aiohttp.ClientSession | None = None,
        timeouts: xai_voice.Timeouts | None = None,
        allow_insecure: bool = False,
    ) -> None:
        try:
            opts = xai_voice.STTOptions(
                sample_rate=sample_rate,
                encoding=encoding,
                language=language,
                interim_results=enable_interim_results,
                endpointing=endpointing,
                diarize=enable_diarization,
                keyterms=tuple(keyterm or ()),
                vad_threshold=vad_threshold,
                smart_turn=smart_turn,
                smart_turn_timeout=smart_turn_timeout,
                filler_words=filler_words,
            )
        except xai_voice.OptionError as exc:
            raise ValueError(str(exc)) from None
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=enable_interim_results,
                diarization=enable_diarization,
                aligned_transcript="word",
                offline_recognize=True,
            )
        )
        self._opts = opts
        self._timeouts = timeouts
        self._session = SessionSource(http_session, lambda: self._client.base_url)
        self._client = xai_voice.Client(
            api_key, base_url, session=self._session, allow_insecure=allow_insecure
        )
        self._streams: weakref.WeakSet[SpeechStream] = weakref.WeakSet()

    @property
    def model(self) -> str:
        return "stt"

    @property
    def provider(self) -> str:
        return "xAI"

    @property
    def options(self) -> xai_voice.STTOptions:
        return self._opts

    @property
    def client(self) -> xai_voice.Client:
        return self._client

    def _timeouts_for(self, conn_options: APIConnectOptions) -> xai_voice.Timeouts:
        if self._timeouts is not None:
            return self._timeouts
        t = conn_options.timeout
        return dataclasses.replace(self._client.timeouts, connect=t, created=t, result_gap=t, final=t, send=t)

    def update_options(
        self,
        *,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        enable_interim_results: NotGivenOr[bool] = NOT_GIVEN,
        enable_diarization: NotGivenOr[bool] = NOT_GIVEN,
        endpointing: NotGivenOr[int] = NOT_GIVEN,
        vad_threshold: NotGivenOr[float | None] = NOT_GIVEN,
        smart_turn: NotGivenOr[float | None] = NOT_GIVEN,
        smart_turn_timeout: NotGivenOr[int | None] = NOT_GIVEN,
        keyterm: NotGivenOr[Sequence[str]] = NOT_GIVEN,
        filler_words: NotGivenOr[bool | None] = NOT_GIVEN,
    ) -> None:
        """Change options.  A running stream takes them at its next utterance boundary
        (at once when nobody is speaking), never by cutting an utterance; ``sample_rate`` and
        ``encoding`` are fixed for the life of the STT."""
        given = {
            k: v
            for k, v in {
                "language": language,
                "interim_results": enable_interim_results,
                "diarize": enable_diarization,
                "endpointing": endpointing,
                "vad_threshold": vad_threshold,
                "smart_turn": smart_turn,
                "smart_turn_timeout": smart_turn_timeout,
                "keyterms": tuple(keyterm) if utils.is_given(keyterm) else keyterm,
                "filler_words": filler_words,
            }.items()
            if utils.is_given(v)
        }
        if not given:
            return
        try:
            self._opts = self._opts.replace_with(**given)
        except xai_voice.OptionError as exc:
            raise ValueError(str(exc)) from None
        for stream in list(self._streams):
            stream._options_changed()

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        data = io.BytesIO()
        with wave.open(data, "wb") as w:
            w.setnchannels(frame.num_channels)
            w.setsampwidth(2)
            w.setframerate(frame.sample_rate)
            w.writeframes(bytes(frame.data))
        opts = self._opts
        if utils.is_given(language):
            opts = opts.replace_with(language=language)
        opts = opts.replace_with(sample_rate=frame.sample_rate, channels=frame.num_channels)
        try:
            transcript = await self._client.transcribe(
                data.getvalue(), opts, timeouts=self._timeouts_for(conn_options)
            )
        except xai_voice.XaiVoiceError as exc:
            raise to_livekit(exc) from exc
        words = transcript.words
        start = words[0].start if words else 0.0
        end = words[-1].end if words else (transcript.duration or frame.duration)
        lang = transcript.language or opts.language or ""
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=transcript.trace_id or "",
            alternatives=[_speech_data(transcript.text, words, lang, start, end, 0.0)],
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        stream = SpeechStream(stt=self, conn_options=conn_options, language=language)
        self._streams.add(stream)
        return stream

    def prewarm(self) -> None:
        """Nothing to open ahead: each stream's connection serves one user turn and is
        opened as the stream starts, while the user has not started talking yet."""

    async def aclose(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()
        self._streams.clear()
        await self._client.aclose()
        await self._session.aclose()


class _SwitchRequest(stt.RecognizeStream._FlushSentinel):
    """Wakes the pump, through the input channel, to move to a new connection; the serial
    names the connection it is meant for, so one left over is ignored."""

    def __init__(self, serial: int) -> None:
        super().__init__()
        self.serial = serial


class SpeechStream(stt.RecognizeStream):
    """``stream()``: audio frames in (resampled by livekit to the STT's rate), speech events
    out, over as many connections as the service needs.

    Audio is kept as livekit's 16-bit PCM until it is sent (encoded to G.711 there when
    asked) and goes out in frames of 100 ms (the engine's framing).  What was given to a
    connection and is not yet covered by a final result is kept (up to
    :data:`REPLAY_SECONDS` within an utterance, :data:`IDLE_REPLAY_SECONDS` of silence
    between utterances): when a connection fails and livekit retries, or the service ends
    a connection on its own, the next connection hears that audio again, so no words in
    flight are lost and no final is repeated."""

    def __init__(self, *, stt: STT, conn_options: APIConnectOptions, language: NotGivenOr[str]) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=stt._opts.sample_rate)
        self._xai = stt
        self._language = language
        try:
            opts = self._current_options()  # a bad language fails here, not in the task
        except xai_voice.OptionError as exc:
            raise ValueError(str(exc)) from None
        self._align = 2 * opts.channels  # one PCM sample of every channel
        self._bps = float(self._align * opts.sample_rate)  # PCM bytes per second
        self._carry = bytearray()  # audio read from the input but not given to any connection
        self._unfinal = bytearray()  # given to this connection, not yet covered by a final
        self._unfinal_at = 0.0  # where _unfinal starts, in the connection's seconds
        self._given = 0  # bytes given to this connection
        self._replay_at: float | None = None  # stream seconds where the carry starts, after a failure
        self._input_ended = False
        self._speaking = False
        self._new_options = asyncio.Event()
        self._serial = 0  # of the connection being served
        self._unreported = 0.0  # seconds of audio sent but not yet reported as usage
        self._request_id = ""

    def _current_options(self) -> xai_voice.STTOptions:
        opts = self._xai._opts
        if utils.is_given(self._language):
            opts = opts.replace_with(language=self._language)
        return opts

    async def _run(self) -> None:
        self._request_id = request_id = utils.shortuuid()
        timeouts = self._xai._timeouts_for(self._conn_options)
        # where this attempt's first connection starts, in seconds from livekit's offset: a
        # retry starts with the audio that had no final, wherever that was in the stream
        audio_before = 0.0
        if self._replay_at is not None:
            audio_before, self._replay_at = self._replay_at - self.start_time_offset, None
        first = True
        while True:
            # after the first connection, the next one opens when there is audio for it:
            # an input that ends (or is flushed again) right after a flush or a switch
            # costs no connection
            if not first and not self._carry and not await self._await_audio():
                return
            first = False
            self._new_options.clear()
            self._unfinal.clear()
            self._unfinal_at, self._given = 0.0, 0
            rec: xai_voice.Recognition | None = None
            try:
                opts = self._current_options()
                rec = self._xai._client.listen(opts, timeouts=timeouts)
                started = asyncio.get_running_loop().time()
                await rec.start()
                self._report_connection_acquired(asyncio.get_running_loop().time() - started, False)
                more = await self._serve(rec, opts, request_id, audio_before)
            except xai_voice.XaiVoiceError as exc:
                # the next attempt hears again what this connection heard without a final
                self._replay_at = self.start_time_offset + audio_before + self._requeue()
                raise to_livekit(exc) from exc
            finally:
                self._report_usage(request_id)
                if rec is not None:
                    await rec.aclose()
            audio_before += self._requeue() if more else 0.0
            if not more:
                return

    def _requeue(self) -> float:
        """Put what this connection heard without a final back in front of the carry, for
        the next connection; return where that audio starts, in the connection's seconds."""
        at = (self._given - len(self._unfinal)) / self._bps
        if self._unfinal:
            self._carry[:0] = self._unfinal
            self._unfinal.clear()
        return at

    async def _await_audio(self) -> bool:
        """Wait for the next frame of input into the carry; False when the input ended
        first.  Flushes with nothing to flush are dropped."""
        if self._input_ended:
            return False
        while True:
            try:
                item = await self._input_ch.recv()
            except utils.aio.ChanClosed:
                self._input_ended = True
                return False
            if not isinstance(item, self._FlushSentinel):
                self._carry += item.data.cast("b")
                return True

    async def _serve(
        self, rec: xai_voice.Recognition, opts: xai_voice.STTOptions, request_id: str, audio_before: float
    ) -> bool:
        """One connection: send audio, turn results into speech events.  Returns whether
        the stream goes on on a new connection (the service ended this one, options
        changed at an utterance boundary, or the input was flushed)."""
        self._serial += 1
        serial = self._serial
        requested = False

        def switch() -> None:
            # through the input channel: the pump waits on nothing else, one await a frame
            nonlocal requested
            if not requested:
                requested = True
                with contextlib.suppress(utils.aio.ChanClosed):
                    self._input_ch.send_nowait(_SwitchRequest(serial))

        loop = asyncio.get_running_loop()
        pump = loop.create_task(self._pump(rec, serial), name="xai-voice-lk-stt-send")
        receive = loop.create_task(
            self._receive(rec, opts, request_id, audio_before, switch), name="xai-voice-lk-stt-recv"
        )
        watch = loop.create_task(self._watch_options(opts, switch), name="xai-voice-lk-stt-options")
        try:
            done, _ = await asyncio.wait((pump, receive), return_when=asyncio.FIRST_COMPLETED)
            if receive in done:
                receive.result()  # the failure, if it failed
                # the service ended the stream on its own: what it heard without a final,
                # and the rest, go to a new connection
                return not self._input_ended or bool(self._carry) or bool(self._unfinal)
            reason = pump.result()
            await rec.finish()
            await receive  # the last results, up to transcript.done
            self._unfinal.clear()  # the connection is done: all it heard is final
            return reason != "ended" or bool(self._carry)
        finally:
            for task in (pump, receive, watch):
                if not task.done():
                    task.cancel()
            for task in (pump, receive, watch):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _options_changed(self) -> None:
        self._new_options.set()

    async def _watch_options(self, opts: xai_voice.STTOptions, switch: Callable[[], None]) -> None:
        """New options while nobody is speaking: move to a connection with them now (while
        someone speaks, the end of their utterance does it).  "Nobody" is the service's
        word and the audio's: speech the service has not reported yet is still loud in the
        last :data:`QUIET_SECONDS` sent.  While a change waits for quiet, it is looked at
        again every :data:`QUIET_SECONDS` (noise the service never calls speech must not
        hold it back for good)."""
        pending = False
        while True:
            if pending:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._new_options.wait(), QUIET_SECONDS)
            else:
                await self._new_options.wait()
            self._new_options.clear()
            if self._current_options() == opts:
                pending = False
                continue
            if not self._speaking and self._quiet():
                logger.debug("options changed between utterances: moving to a new connection")
                switch()
                return
            pending = True

    def _quiet(self) -> bool:
        """No sample of the last :data:`QUIET_SECONDS` of audio (given or not) reaches
        :data:`QUIET_PEAK`."""
        tail = int(QUIET_SECONDS * self._bps) // self._align * self._align
        recent = (bytes(self._unfinal) + bytes(self._carry))[-tail:]
        samples = np.frombuffer(recent[: len(recent) // 2 * 2], dtype="<i2")
        return samples.size == 0 or int(np.abs(samples.astype(np.int32)).max()) < QUIET_PEAK

    async def _send_carry(self, rec: xai_voice.Recognition) -> None:
        """Give the carry to the connection (the engine frames it, 100 ms a message).  It
        moves to ``_unfinal`` before the write, so a write that fails leaves it there to be
        heard again, never in two places."""
        while self._carry:
            chunk = bytes(self._carry)
            del self._carry[:]
            self._unfinal += chunk
            self._given += len(chunk)
            keep = REPLAY_SECONDS if self._speaking else IDLE_REPLAY_SECONDS
            overflow = len(self._unfinal) - int(keep * self._bps) // self._align * self._align
            if overflow > 0:
                del self._unfinal[:overflow]
                self._unfinal_at += overflow / self._bps
            self._count(len(chunk) / self._bps)
            await rec.send(chunk if rec.options.encoding == "pcm" else np.frombuffer(chunk, dtype="<i2"))

    async def _pump(self, rec: xai_voice.Recognition, serial: int) -> str:
        """Input to the connection until the input ends ("ended"), is flushed ("flush") or
        the receiver asks for a new connection ("switch").  Audio read but not sent when
        this stops is kept for the next connection: none is lost, none is sent twice."""
        while True:
            if self._carry:
                await self._send_carry(rec)
            try:
                item = await self._input_ch.recv()
            except utils.aio.ChanClosed:
                self._input_ended = True
                await self._send_carry(rec)
                return "ended"
            if isinstance(item, _SwitchRequest):
                if item.serial == serial:
                    return "switch"
                continue  # meant for a connection that ended otherwise
            if isinstance(item, self._FlushSentinel):
                await self._send_carry(rec)
                return "flush"
            self._carry += item.data.cast("b")

    def _final_covers(self, end: float) -> None:
        """A final result up to ``end`` (connection seconds): that audio needs no replay."""
        cut = int((end - self._unfinal_at) * self._bps) // self._align * self._align
        cut = min(cut, len(self._unfinal))
        if cut > 0:
            del self._unfinal[:cut]
            self._unfinal_at += cut / self._bps

    def _count(self, seconds: float) -> None:
        self._unreported += seconds
        if self._unreported >= USAGE_EVERY_SECONDS:
            self._report_usage(self._request_id)

    def _report_usage(self, request_id: str) -> None:
        if self._unreported <= 0:
            return
        seconds, self._unreported = self._unreported, 0.0
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=request_id,
                recognition_usage=stt.RecognitionUsage(audio_duration=seconds),
            )
        )

    async def _receive(
        self,
        rec: xai_voice.Recognition,
        opts: xai_voice.STTOptions,
        request_id: str,
        audio_before: float,
        switch: Callable[[], None],
    ) -> None:
        language = opts.language or ""
        async for event in rec:
            offset = self.start_time_offset + audio_before
            if isinstance(event, SpeechStarted):
                self._start_of_speech(request_id)
            elif isinstance(event, Interim):
                if opts.interim_results or event.stable:
                    data = _speech_data(event.text, event.words, language, event.start, event.end, offset)
                    self._send(stt.SpeechEventType.INTERIM_TRANSCRIPT, request_id, data)
            elif isinstance(event, Final):
                ended_before = not self._speaking  # the remainder of transcript.done
                self._start_of_speech(request_id)
                data = _speech_data(event.text, event.words, language, event.start, event.end, offset)
                self._send(stt.SpeechEventType.FINAL_TRANSCRIPT, request_id, data)
                self._final_covers(event.end)
                if event.from_done and ended_before:
                    self._end_of_speech(request_id)
            elif isinstance(event, SpeechEnded):
                self._end_of_speech(request_id)
                if self._current_options() != opts:
                    logger.debug("options changed: moving to a new connection at this utterance boundary")
                    switch()
            elif isinstance(event, Finished):
                # an utterance the service never closed (a retry heard only its end, say)
                self._end_of_speech(request_id)
                return

    def _start_of_speech(self, request_id: str) -> None:
        # once per utterance, also when a retry hears its start again
        if not self._speaking:
            self._speaking = True
            self._send(stt.SpeechEventType.START_OF_SPEECH, request_id)

    def _end_of_speech(self, request_id: str) -> None:
        if self._speaking:
            self._speaking = False
            self._send(stt.SpeechEventType.END_OF_SPEECH, request_id)

    def _send(self, kind: stt.SpeechEventType, request_id: str, data: stt.SpeechData | None = None) -> None:
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=kind, request_id=request_id, alternatives=[data] if data is not None else [])
        )
