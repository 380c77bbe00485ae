"""The LiveKit face: livekit-agents' ``tts.TTS`` over the :mod:`xai_voice` engine.

The engine does the protocol, deadlines and pooling; this module maps them onto
livekit's machinery: options, segments on the ``AudioEmitter``, metrics
(``_mark_started``, ``acquire_time``, ``connection_reused``), errors (``APIStatusError``,
``APITimeoutError``, ``APIConnectionError``) and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import aiohttp
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    tokenize,
    tts,
    utils,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr

import xai_voice
from xai_voice.audio import alaw_decode, mulaw_decode
from xai_voice.protocol import AudioChunk
from xai_voice.words import WordAssembler

from ._captions import timed_strings
from ._errors import retry_after_wait, to_livekit
from ._session import SessionSource
from .log import logger
from .models import TTSCodecs, TTSLanguages, TTSSampleRates, TTSVoices

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream"]


class _Decoder:
    """What the emitter is told and how bytes are turned into what it can take.  The
    emitter decodes mp3 and wav itself but not G.711, so mu-law and A-law become PCM
    here."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.mime_type = {"mp3": "audio/mpeg", "wav": "audio/wav"}.get(codec, "audio/pcm")
        self._g711 = {"mulaw": mulaw_decode, "alaw": alaw_decode}.get(codec)

    def __call__(self, data: bytes) -> bytes:
        if self._g711 is not None:
            return self._g711(data).tobytes()
        return data


class TTS(tts.TTS[Any]):
    """xAI text-to-speech for LiveKit Agents.

    Args:
        api_key: defaults to ``XAI_API_KEY``.
        base_url: defaults to ``XAI_BASE_URL``, then ``https://api.x.ai/v1``.
        voice, language, codec, sample_rate, bit_rate, speed, optimize_streaming_latency,
            text_normalization, with_timestamps, replace: the service's options (see
            :class:`xai_voice.TTSOptions`); validated here, so a typo fails at startup.
            ``with_timestamps`` also turns on aligned transcripts.
        tokenizer: how pushed text is grouped before it is sent; None (the default)
            forwards text exactly as it is pushed, which gives the service the most
            context soonest.  A ``tokenize.SentenceTokenizer`` or ``WordTokenizer`` sends
            whole sentences or words instead.
        http_session: an aiohttp session; defaults to livekit's per-job session.
        timeouts: per-phase deadlines; by default ``conn_options.timeout`` bounds the
            connect, the first audio and each gap between chunks.
        max_connection_age: pooled connections older than this are replaced.
        allow_insecure: permit plain ``http://`` to a host that is not loopback.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        voice: TTSVoices | str = "eve",
        language: TTSLanguages | str = "auto",
        codec: TTSCodecs | str = "pcm",
        sample_rate: TTSSampleRates | int = 24000,
        bit_rate: int | None = None,
        speed: float | None = None,
        optimize_streaming_latency: int | None = None,
        text_normalization: bool | None = None,
        with_timestamps: bool = False,
        replace: Mapping[str, str] | None = None,
        tokenizer: tokenize.SentenceTokenizer | tokenize.WordTokenizer | None = None,
        http_session: aiohttp.ClientSession | None = None,
        timeouts: xai_voice.Timeouts | None = None,
        max_connection_age: float = 1800.0,
        allow_insecure: bool = False,
    ) -> None:
        try:
            opts = xai_voice.TTSOptions(
                voice=voice,
                language=language,
                codec=codec,
                sample_rate=sample_rate,
                bit_rate=bit_rate,
                speed=speed,
                optimize_streaming_latency=optimize_streaming_latency,
                text_normalization=text_normalization,
                with_timestamps=with_timestamps,
                replace=replace,
            )
        except xai_voice.OptionError as exc:
            raise ValueError(str(exc)) from None
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=with_timestamps),
            sample_rate=opts.sample_rate,
            num_channels=1,
        )
        self._opts = opts
        self._tokenizer = tokenizer
        self._timeouts = timeouts
        self._session = SessionSource(http_session, lambda: self._client.base_url)
        self._client = xai_voice.Client(
            api_key,
            base_url,
            options=opts,
            timeouts=timeouts,
            session=self._session,
            max_connection_age=max_connection_age,
            allow_insecure=allow_insecure,
        )
        self._streams: weakref.WeakSet[SynthesizeStream] = weakref.WeakSet()

    class Markup(tts.TTS.Markup):
        """xAI's speech tags (``[laugh]``, ``<whisper>...</whisper>``) for livekit's
        markup handling."""

        def _provider_key(self) -> str:
            return "xai"

    @property
    def model(self) -> str:
        return "tts"

    @property
    def provider(self) -> str:
        return "xAI"

    @property
    def options(self) -> xai_voice.TTSOptions:
        return self._opts

    @property
    def client(self) -> xai_voice.Client:
        """The engine underneath, for what livekit has no words for."""
        return self._client

    def _timeouts_for(self, conn_options: APIConnectOptions) -> xai_voice.Timeouts:
        if self._timeouts is not None:
            return self._timeouts
        t = conn_options.timeout
        return dataclasses.replace(self._client.timeouts, connect=t, send=t, first_audio=t, chunk_gap=t)

    def update_options(
        self,
        *,
        voice: NotGivenOr[TTSVoices | str] = NOT_GIVEN,
        language: NotGivenOr[TTSLanguages | str] = NOT_GIVEN,
        speed: NotGivenOr[float | None] = NOT_GIVEN,
        bit_rate: NotGivenOr[int | None] = NOT_GIVEN,
        optimize_streaming_latency: NotGivenOr[int | None] = NOT_GIVEN,
        text_normalization: NotGivenOr[bool | None] = NOT_GIVEN,
        replace: NotGivenOr[Mapping[str, str] | None] = NOT_GIVEN,
    ) -> None:
        """Change options for the next utterance.  Options that live in the
        connection's query (all but ``replace``) retire the pooled connections; streams
        already running keep the options they started with.  ``codec`` and
        ``sample_rate`` are fixed for the life of a TTS (livekit reads them once)."""
        given = {
            k: v
            for k, v in {
                "voice": voice,
                "language": language,
                "speed": speed,
                "bit_rate": bit_rate,
                "optimize_streaming_latency": optimize_streaming_latency,
                "text_normalization": text_normalization,
                "replace": replace,
            }.items()
            if utils.is_given(v)
        }
        if not given:
            return
        old = self._opts
        try:
            new = old.replace_with(**given)
        except xai_voice.OptionError as exc:
            raise ValueError(str(exc)) from None
        self._opts = self._client.options = new
        if new.connection_key() != old.connection_key():
            logger.debug("options changed; retiring pooled connections", extra={"changed": list(given)})
            self._client.pool.retire(old.connection_key())

    def prewarm(self) -> None:
        self._client.prewarm(self._opts)

    async def list_voices(self) -> list[xai_voice.Voice]:
        """Built-in and custom voices (``Voice.kind`` tells which)."""
        try:
            return await self._client.voices()
        except xai_voice.XaiVoiceError as exc:
            raise to_livekit(exc) from exc

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        return ChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> SynthesizeStream:
        stream = SynthesizeStream(tts=self, conn_options=conn_options)
        self._streams.add(stream)
        return stream

    async def aclose(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()
        self._streams.clear()
        await self._client.aclose()
        await self._session.aclose()


class ChunkedStream(tts.ChunkedStream):
    """``synthesize()``: one REST request, its body pushed as it streams in.

    After audio has gone out a failure is final (livekit would retry a chunked stream and
    say the start twice), and its message says what happened.
    """

    def __init__(self, *, tts: TTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._tts: TTS = tts
        self._opts = tts._opts
        self._attempt = 0

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        self._attempt += 1
        opts = self._opts
        decode = _Decoder(opts.codec)
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=opts.sample_rate,
            num_channels=1,
            mime_type=decode.mime_type,
        )
        client = self._tts._client
        pushed = False
        words = WordAssembler()
        timeouts = self._tts._timeouts_for(self._conn_options)
        try:
            async with client.synthesize(self._input_text, opts, timeouts=timeouts) as rest:
                async for chunk in rest:
                    if chunk.timestamps is not None:
                        output_emitter.push_timed_transcript(
                            timed_strings(words.feed(chunk.timestamps) + words.flush())
                        )
                    if chunk.data:
                        output_emitter.push(decode(chunk.data))
                        pushed = True
            output_emitter.flush()
        except xai_voice.XaiVoiceError as exc:
            err = to_livekit(exc)
            if pushed:
                # livekit retries a chunked stream even after audio went out; a retry
                # would say the start twice, so after audio the failure is final
                err.retryable = False
            else:
                await asyncio.sleep(retry_after_wait(err, exc, self._conn_options, self._attempt))
            raise err from exc


class SynthesizeStream(tts.SynthesizeStream):
    """``stream()``: text pushed as it comes over a pooled WebSocket; each ``flush()``
    ends a segment (one utterance), ``end_input()`` ends the stream."""

    def __init__(self, *, tts: TTS, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._tts: TTS = tts
        self._opts = dataclasses.replace(tts._opts)
        self._attempt = 0

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        self._attempt += 1
        opts = self._opts
        decode = _Decoder(opts.codec)
        request_id = utils.shortuuid()
        output_emitter.initialize(
            request_id=request_id,
            sample_rate=opts.sample_rate,
            num_channels=1,
            mime_type=decode.mime_type,
            stream=True,
        )
        client = self._tts._client
        timeouts = self._tts._timeouts_for(self._conn_options)
        # read the channel afresh: on a retry livekit refills a new one
        segments = self._segments(self._input_ch)
        first = True
        try:
            while True:
                utt: xai_voice.Utterance | None = None
                try:
                    utt = client.stream(opts, timeouts=timeouts, lenient_text=True)
                    if first:
                        # connect while the LLM is still thinking
                        await utt.start()
                        self._acquire_time = utt.acquire_time
                        self._connection_reused = utt.connection_reused
                        first = False
                    more = await self._segment(utt, segments, output_emitter, decode)
                except xai_voice.XaiVoiceError as exc:
                    err = to_livekit(exc)
                    if output_emitter.pushed_duration() == 0.0:
                        await asyncio.sleep(retry_after_wait(err, exc, self._conn_options, self._attempt))
                    raise err from exc
                finally:
                    # on any way out, a stream interrupted mid-segment is cleared: the
                    # connection is closed after a text.clear and a warm one replaces it
                    if utt is not None:
                        await utt.aclose()
                if not more:
                    return
        finally:
            await segments.aclose()

    async def _segments(self, input_ch: Any) -> AsyncGenerator[str | None, None]:
        """Pushed text, grouped by the tokenizer if there is one; ``None`` marks a flush.

        With a tokenizer, input is fed to it by a task of its own while its tokens are
        yielded as they come: the first sentence goes out while the LLM is still writing
        the rest, and ``flush()`` ends the tokenizer's stream so its tail follows at once.
        """
        tokenizer = self._tts._tokenizer
        if tokenizer is None:
            async for data in input_ch:
                yield None if isinstance(data, self._FlushSentinel) else data
            return
        while True:
            stream = tokenizer.stream()
            ending = {"flush": False, "ended": True}

            async def feed(stream: Any = stream, ending: dict[str, bool] = ending) -> None:
                async for data in input_ch:
                    if isinstance(data, self._FlushSentinel):
                        ending["flush"], ending["ended"] = True, False
                        break
                    stream.push_text(data)
                stream.end_input()

            feeder = asyncio.get_running_loop().create_task(feed(), name="xai-voice-lk-tokenize")
            try:
                async for token in stream:  # tokens come trimmed: a space keeps words apart
                    yield token.token + " "
                await feeder  # its error, if any, is the stream's
            finally:
                if not feeder.done():
                    feeder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeder
                await stream.aclose()
            if ending["flush"]:
                yield None
            if ending["ended"]:
                return

    async def _segment(
        self,
        utt: xai_voice.Utterance,
        segments: AsyncGenerator[str | None, None],
        emitter: tts.AudioEmitter,
        decode: Callable[[bytes], bytes],
    ) -> bool:
        """One segment: send its text while its audio is pushed.  Returns False when the
        input has ended.  Sender and receiver are tasks owned here; the first failure
        of either ends both."""
        started = False
        more = False
        words = WordAssembler()
        align = self._opts.with_timestamps

        async def send() -> None:
            nonlocal started, more
            async for text in segments:
                if text is None:  # flush: the segment ends here
                    more = True
                    break
                if not started and text.strip():
                    started = True  # before the first text that can bring audio back
                    emitter.start_segment(segment_id=utils.shortuuid())
                    self._mark_started()
                await utt.send(text)  # leading whitespace is held back by the utterance
            await utt.finish()

        # Audio read in one burst (the service often sends faster than real time, and one
        # socket read holds several frames) goes to the emitter as one push: livekit's
        # emitter does work per push (a re-armed flush timer, a channel hop), so this
        # saves CPU without delaying anything past the reader's current step.
        pending: list[bytes] = []
        loop = asyncio.get_running_loop()

        def flush_audio() -> None:
            if pending:
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                emitter.push(data)

        def on_audio(chunk: AudioChunk) -> None:
            # called by the connection's reader as each chunk arrives: no task hand-off
            if align and chunk.timestamps is not None:
                flush_audio()  # words go with the audio that came before them
                emitter.push_timed_transcript(timed_strings(words.feed(chunk.timestamps)))
            if chunk.data:
                if not pending:
                    loop.call_soon(flush_audio)
                pending.append(decode(chunk.data))

        async def receive() -> None:
            await utt.deliver(on_audio)
            flush_audio()  # before end_segment, whatever order the callbacks ran in
            if align:
                emitter.push_timed_transcript(timed_strings(words.flush()))

        sender = loop.create_task(send(), name="xai-voice-lk-send")
        receiver = loop.create_task(receive(), name="xai-voice-lk-receive")
        try:
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_EXCEPTION)
            for task in (receiver, sender):  # the receiver's error is the cause, if any
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if started:
                emitter.end_segment()
            return more
        finally:
            for task in (sender, receiver):
                if not task.done():
                    task.cancel()
            for task in (sender, receiver):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
