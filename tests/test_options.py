"""Options validate at construction, render both request forms, and errors keep the key
out of every message."""

from __future__ import annotations

import logging
import pickle
import traceback

import pytest

import xai_voice
from xai_voice import OptionError, TTSOptions
from xai_voice.audio import alaw_decode, alaw_encode, mulaw_decode, mulaw_encode, resample
from xai_voice.emulator import Emulator, FaultKind, FaultPoint
from xai_voice.transport import Endpoint

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(
    ("kwargs", "param", "needle"),
    [
        ({"sample_rate": 12345}, "sample_rate", "8000, 16000, 22050, 24000, 44100, 48000"),
        ({"codec": "flac"}, "codec", "mp3, wav, pcm, mulaw, alaw"),
        ({"language": "english!"}, "language", "auto, en"),
        ({"voice": "not a voice!"}, "voice", "ara, eve"),
        ({"speed": 2.0}, "speed", "0.7 to 1.5"),
        ({"speed": float("nan")}, "speed", "0.7 to 1.5"),
        ({"bit_rate": 64000}, "bit_rate", "mp3 codec only"),
        ({"codec": "mp3", "bit_rate": 1}, "bit_rate", "32000, 64000"),
        ({"optimize_streaming_latency": 3}, "optimize_streaming_latency", "0, 1, 2"),
        ({"with_timestamps": "yes"}, "with_timestamps", "not a bool"),
        ({"replace": {"": "x"}}, "replace", "blank"),
        ({"replace": {"a-b": "x"}}, "replace", "letters, digits, apostrophes and spaces"),
        ({"replace": {"a" * 101: "x"}}, "replace", "100 characters"),
        ({"replace": {"a": "x" * 129}}, "replace", "128 characters"),
        ({"replace": {"Word": "x", "word": "y"}}, "replace", "appears twice"),
        ({"replace": {f"w{i}": "x" for i in range(201)}}, "replace", "at most 200"),
    ],
)
def test_bad_options_name_the_parameter_and_the_choices(kwargs: dict, param: str, needle: str) -> None:
    with pytest.raises(OptionError) as info:
        TTSOptions(**kwargs)
    assert info.value.parameter == param
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_limits_are_inclusive() -> None:
    TTSOptions(speed=0.7)
    TTSOptions(speed=1.5)
    TTSOptions(replace={f"w{i}": "x" * 128 for i in range(200)})
    TTSOptions(replace={"a" * 100: "ok", "it's a b": "fine"})


def test_normalisation() -> None:
    opts = TTSOptions(voice="ARA", language="PT-br", codec="ulaw")
    assert (opts.voice, opts.language, opts.codec) == ("ara", "pt-BR", "mulaw")


def test_query_and_body() -> None:
    opts = TTSOptions(voice="rex", language="en", codec="mp3", sample_rate=44100, bit_rate=64000,
                      speed=1.2, optimize_streaming_latency=2, text_normalization=True,
                      with_timestamps=True, replace={"GPU": "gee pee you"})  # fmt: skip
    assert opts.query() == {
        "language": "en", "voice": "rex", "codec": "mp3", "sample_rate": "44100",
        "bit_rate": "64000", "speed": "1.2", "optimize_streaming_latency": "2",
        "text_normalization": "true", "with_timestamps": "true",
    }  # fmt: skip
    body = opts.rest_body("Hi.")
    assert body == {
        "text": "Hi.", "language": "en", "voice_id": "rex",
        "output_format": {"codec": "mp3", "sample_rate": 44100, "bit_rate": 64000},
        "speed": 1.2, "optimize_streaming_latency": 2, "text_normalization": True,
        "with_timestamps": True, "replace": {"GPU": "gee pee you"},
    }  # fmt: skip
    assert TTSOptions().query() == {
        "language": "auto",
        "voice": "eve",
        "codec": "pcm",
        "sample_rate": "24000",
    }


@pytest.mark.parametrize(("text", "needle"), [("", "empty"), ("  ", "empty"), ("a" * 15001, "15000"),
                                              ("bad \ud800 surrogate", "surrogate")])  # fmt: skip
def test_bad_rest_text(text: str, needle: str) -> None:
    with pytest.raises(OptionError, match=needle):
        TTSOptions().rest_body(text)


def test_timeouts_validate() -> None:
    with pytest.raises(OptionError, match=r"timeouts\.connect"):
        xai_voice.Timeouts(connect=0)


# -- codecs --------------------------------------------------------------------------------


def test_g711_matches_the_reference() -> None:
    import numpy as np

    audioop = pytest.importorskip("audioop")  # in the stdlib until 3.13
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert mulaw_encode(every) == audioop.lin2ulaw(every.tobytes(), 2)
    assert alaw_encode(every) == audioop.lin2alaw(every.tobytes(), 2)
    codes = bytes(range(256))
    assert mulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


def test_g711_round_trip_and_resample() -> None:
    import numpy as np

    x = (10000 * np.sin(np.arange(800) / 10)).astype(np.int16)
    for enc, dec in ((mulaw_encode, mulaw_decode), (alaw_encode, alaw_decode)):
        y = dec(enc(x)).astype(np.int32)
        assert np.max(np.abs(y - x)) < 400  # 8-bit companding error at this level
    assert len(resample(x, 8000, 24000)) == 2400


# -- the key -------------------------------------------------------------------------------

SENTINEL = "xai-SENTINEL-KEY-0123456789"


def test_endpoint_and_client_never_show_the_key() -> None:
    ep = Endpoint.resolve(SENTINEL, "http://127.0.0.1:9/v1")
    assert SENTINEL not in repr(ep) and SENTINEL not in str(ep)
    client = xai_voice.Client(api_key=SENTINEL, base_url="http://127.0.0.1:9/v1")
    assert SENTINEL not in repr(client)
    assert ep.scrub(f"oops {SENTINEL}") == "oops <redacted>"


def test_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(xai_voice.InsecureTransportError, match="allow_insecure"):
        Endpoint.resolve("k", "http://api.example.com/v1")
    Endpoint.resolve("k", "http://api.example.com/v1", allow_insecure=True)
    for url in ("http://127.0.0.1:1/v1", "http://localhost:1/v1", "http://[::1]:1/v1", "https://api.x.ai/v1"):
        Endpoint.resolve("k", url)
    assert Endpoint.resolve("k", "https://api.x.ai/v1").ws_url() == "wss://api.x.ai/v1/tts"


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    with pytest.raises(OptionError, match="XAI_API_KEY"):
        xai_voice.Client()


@pytest.mark.asyncio
async def test_no_error_or_log_carries_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    captured: list[BaseException] = []
    async with Emulator(tone=True, api_key="the-right-key") as emu:
        # a refused key, on both transports
        async with xai_voice.Client(api_key=SENTINEL, base_url=emu.url) as client:
            for call in (
                lambda: client.speak("Hi."),
                lambda: client.synthesize("Hi.").read_all(),
                client.voices,
            ):
                with pytest.raises(xai_voice.XaiStatusError) as info:
                    await call()
                assert info.value.status == 401 and not info.value.retryable
                captured.append(info.value)
        # failures after a good handshake: a drop, an error frame, a timeout
        async with xai_voice.Client(api_key="the-right-key", base_url=emu.url,
                                  timeouts=xai_voice.Timeouts.uniform(0.3)) as client:  # fmt: skip
            for kind, at in ((FaultKind.DROP, FaultPoint.MID_AUDIO), (FaultKind.ERROR, FaultPoint.MID_AUDIO),
                             (FaultKind.STALL, FaultPoint.BEFORE_AUDIO)):  # fmt: skip
                emu.fail_next(kind, at)
                with pytest.raises(xai_voice.XaiVoiceError) as info:
                    await client.speak("A sentence long enough for a few chunks.")
                captured.append(info.value)
    # nothing we raised, logged or chained mentions the key
    for exc in captured:
        text = "".join(traceback.format_exception(exc)) + repr(exc) + str(pickle.dumps(exc, 0))
        assert SENTINEL not in text
        assert exc.__cause__ is None
    assert all(SENTINEL not in r.getMessage() for r in caplog.records)
