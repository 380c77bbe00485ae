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

#: how often usage is reported while audio flows (and at the end of every connection)
USAGE_EVERY_SECONDS = 5.0
#: options change between utterances only after this much audio with no sample above QUIET_PEAK
QUIET_SECONDS = 0.5
QUIET_PEAK = 1000  # about -30 dBFS
#: the most audio without a final result kept to send again when a connection fails
REPLAY_SECONDS = 60.0


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

    Audio is sent in frames of 100 ms (the engine's framing).  What was sent on a connection and is not yet
    covered by a final result is kept (up to :data:`REPLAY_SECONDS`), so when a connection
    fails and livekit retries, the retry hears that audio again: a retry never repeats a
    final and never loses the words in flight."""

    def __init__(self, *, stt: STT, conn_options: APIConnectOptions, language: NotGivenOr[str]) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=stt._opts.sample_rate)
        self._xai = stt
        self._language = language
        opts = stt._opts
        align = 2 * opts.channels if opts.encoding == "pcm" else opts.channels
        self._align = align
        self._carry = bytearray()  # audio read from the input but not yet sent anywhere
        self._unfinal = bytearray()  # sent on this connection, not yet covered by a final
        self._unfinal_at = 0.0  # where _unfinal starts, in the connection's seconds
        self._replayed = 0.0  # seconds of audio put back for a retry to send again
        self._input_ended = False
        self._speaking = False
        self._new_options = asyncio.Event()
        self._serial = 0  # of the connection being served
        self._unreported = 0.0  # seconds of audio sent but not yet reported as usage

    def _current_options(self) -> xai_voice.STTOptions:
        opts = self._xai._opts
        if utils.is_given(self._language):
            opts = opts.replace_with(language=self._language)
        return opts

    async def _run(self) -> None:
        request_id = utils.shortuuid()
        timeouts = self._xai._timeouts_for(self._conn_options)
        # seconds of audio sent on earlier connections of this attempt; a retry starts with
        # the replayed audio, which livekit's offset (the wall time of the failed attempt)
        # already passed
        audio_before = -min(self._replayed, self.start_time_offset)
        self._replayed = 0.0
        first = True
        while True:
            # after the first connection, the next one opens when there is audio for it:
            # an input that ends (or is flushed again) right after a flush or a switch
            # costs no connection
            if not first and not self._carry and not await self._await_audio():
                return
            first = False
            self._new_options.clear()
            opts = self._current_options()
            rec = self._xai._client.listen(opts, timeouts=timeouts)
            self._unfinal.clear()
            self._unfinal_at = 0.0
            try:
                started = asyncio.get_running_loop().time()
                await rec.start()
                self._report_connection_acquired(asyncio.get_running_loop().time() - started, False)
                more = await self._serve(rec, opts, request_id, audio_before)
            except xai_voice.XaiVoiceError as exc:
                self._keep_for_retry()
                raise to_livekit(exc) from exc
            finally:
                self._report_usage(request_id)
                await rec.aclose()
            audio_before += rec.audio_seconds_sent
            if not more:
                return

    def _keep_for_retry(self) -> None:
        """The connection failed: what it heard without a final goes first to the next
        attempt."""
        if self._unfinal:
            self._replayed = len(self._unfinal) / self._xai._opts.bytes_per_second
            self._carry[:0] = self._unfinal
            self._unfinal.clear()

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
                # the service ended the stream on its own: the rest goes to a new connection
                return not self._input_ended or bool(self._carry)
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
        last :data:`QUIET_SECONDS` sent."""
        while True:
            await self._new_options.wait()
            self._new_options.clear()
            if not self._speaking and self._quiet() and self._current_options() != opts:
                logger.debug("options changed between utterances: moving to a new connection")
                switch()
                return

    def _quiet(self) -> bool:
        """No sample of the last :data:`QUIET_SECONDS` of audio (sent or not) reaches
        :data:`QUIET_PEAK`.  Only 16-bit PCM is judged; other encodings wait for the end
        of an utterance."""
        opts = self._xai._opts
        if opts.encoding != "pcm":
            return False
        tail = int(QUIET_SECONDS * opts.bytes_per_second) // self._align * self._align
        recent = (bytes(self._unfinal) + bytes(self._carry))[-tail:]
        if not recent:
            return True
        samples = np.frombuffer(recent[: len(recent) // 2 * 2], dtype="<i2")
        return samples.size == 0 or int(np.abs(samples.astype(np.int32)).max()) < QUIET_PEAK

    async def _send_carry(self, rec: xai_voice.Recognition) -> None:
        """Send the carry (the engine frames it, 100 ms a message), taken from the carry
        only once it is written."""
        bytes_per_second = rec.options.bytes_per_second
        while self._carry:
            chunk = bytes(self._carry)
            await rec.send(chunk)
            del self._carry[: len(chunk)]
            self._unfinal += chunk
            keep = int(REPLAY_SECONDS * bytes_per_second) // self._align * self._align
            overflow = len(self._unfinal) - keep
            if overflow > 0:
                del self._unfinal[:overflow]
                self._unfinal_at += overflow / bytes_per_second
            self._count(len(chunk) / bytes_per_second)

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
        cut = int((end - self._unfinal_at) * self._xai._opts.bytes_per_second) // self._align * self._align
        if cut > 0:
            del self._unfinal[:cut]
            self._unfinal_at += cut / self._xai._opts.bytes_per_second

    def _count(self, seconds: float) -> None:
        self._unreported += seconds

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
                if self._unreported >= USAGE_EVERY_SECONDS:
                    self._report_usage(request_id)
                if self._current_options() != opts:
                    logger.debug("options changed: moving to a new connection at this utterance boundary")
                    switch()
            elif isinstance(event, Finished):
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
