"""The ``xai-voice`` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from xai_voice.emulator.background import BackgroundEmulator


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XAI_")}
    return subprocess.run(
        [sys.executable, "-m", "xai_voice.cli", *args],
        capture_output=True, text=True, timeout=60, env={**base, **(env or {})}, input=stdin,
    )  # fmt: skip


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getnframes() / w.getframerate()


def test_say_without_a_key_uses_the_emulator(tmp_path: Path) -> None:
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    r = run("say", "Hello from Grok.", "-o", str(short))
    assert r.returncode == 0, r.stderr
    assert "XAI_API_KEY is not set; using the local emulator" in r.stderr
    assert r.stderr.count("\n") == 2  # the one emulator line, and the summary
    r = run("say", "-", "-o", str(long), stdin="Hello from Grok. " * 6)
    assert r.returncode == 0, r.stderr
    assert 0.5 < wav_seconds(short) < 3.0
    assert wav_seconds(long) > 4 * wav_seconds(short)


@pytest.mark.parametrize(
    ("ext", "size_per_second"), [(".pcm", 48000), (".ulaw", 24000), (".alaw", 24000), (".mp3", None)]
)
def test_say_codecs_from_the_extension(tmp_path: Path, ext: str, size_per_second: int | None) -> None:
    out = tmp_path / f"out{ext}"
    r = run("say", "Codec from the extension.", "-o", str(out))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    if size_per_second:
        assert 0.8 < len(data) / size_per_second < 4
    else:
        assert data[:3] == b"ID3" or data[0] == 0xFF


@pytest.mark.xai_emulator(tone=True)
def test_say_against_a_running_emulator_with_options(
    tmp_path: Path, xai_emulator: BackgroundEmulator
) -> None:
    emu = xai_emulator
    # the fixture set XAI_API_KEY and XAI_BASE_URL; the child process gets them too
    out = tmp_path / "x.wav"
    env = {"XAI_API_KEY": os.environ["XAI_API_KEY"], "XAI_BASE_URL": os.environ["XAI_BASE_URL"]}
    r = run("say", "Options reach the service.", "-o", str(out), "--voice", "rex",
            "--language", "en", "--rate", "16000", "--speed", "1.2", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "emulator" not in r.stderr
    rec = emu.utterances[0]
    assert (rec.voice, rec.options["language"], rec.options["sample_rate"], rec.options["speed"]) == (
        "rex",
        "en",
        16000,
        1.2,
    )
    with wave.open(str(out)) as w:
        assert w.getframerate() == 16000
    r = run("say", "Over REST.", "-o", str(out), "--rest", env=env)
    assert r.returncode == 0 and emu.utterances[-1].transport == "rest"
    r = run("voices", env=env)
    assert r.returncode == 0 and "ara\tAra" in r.stdout


@pytest.mark.parametrize(("args", "env", "code", "needle"), [
    (["say", "hi", "-o", "x.wav", "--rate", "12345"], {}, 2, "sample_rate: 12345 is not supported"),
    (["say", "hi", "-o", "x.xyz"], {}, 2, "cannot tell the codec"),
    (["say", "  ", "-o", "x.wav"], {}, 2, "no text"),
    (["say", "hi", "-o", "x.wav"], {"XAI_API_KEY": "k", "XAI_BASE_URL": "http://example.com/v1"}, 2, "unencrypted"),
    (["say", "hi", "-o", "x.wav"], {"XAI_API_KEY": "k", "XAI_BASE_URL": "http://127.0.0.1:9/v1"}, 1, "could not connect"),
])  # fmt: skip
def test_expected_failures_are_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, needle: str
) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    r = run(*args, env=env)
    assert r.returncode == code
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") <= 1


def test_refused_key_is_one_line(tmp_path: Path) -> None:
    with BackgroundEmulator(tone=True, keep_audio=True) as emu:
        r = run(
            "say", "hi", "-o", str(tmp_path / "x.wav"), env={"XAI_API_KEY": "wrong", "XAI_BASE_URL": emu.url}
        )
    assert r.returncode == 1
    assert "HTTP 401" in r.stderr and "XAI_API_KEY" in r.stderr
    assert "Traceback" not in r.stderr and "wrong" not in r.stderr
    assert not (tmp_path / "x.wav").exists()
