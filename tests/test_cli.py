"""The ``xai-voice`` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import io
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from xai_voice.emulator.background import BackgroundEmulator


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XAI_")}
    if isinstance(stdin, bytes):
        r = subprocess.run(
            [sys.executable, "-m", "xai_voice.cli", *args],
            capture_output=True, timeout=60, env={**base, **(env or {})}, input=stdin, cwd=cwd,
        )  # fmt: skip
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode("latin1"), r.stderr.decode())
    return subprocess.run(
        [sys.executable, "-m", "xai_voice.cli", *args],
        capture_output=True, text=True, timeout=60, env={**base, **(env or {})}, input=stdin, cwd=cwd,
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


# -- the output, whatever it is (issue 13) --------------------------------------------------


@pytest.fixture(scope="module")
def tone() -> Iterator[BackgroundEmulator]:
    with BackgroundEmulator(tone=True, keep_audio=True) as emu:
        yield emu


def tone_env(emu: BackgroundEmulator) -> dict[str, str]:
    return {"XAI_API_KEY": emu.api_key, "XAI_BASE_URL": emu.url}


def test_a_symlink_is_written_through(tmp_path: Path, tone: BackgroundEmulator) -> None:
    target = tmp_path / "real.wav"
    target.write_bytes(b"old")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    r = run("say", "Through the link.", "-o", str(link), env=tone_env(tone))
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and wav_seconds(target) > 0.5


def test_a_fifo_is_written_into(tmp_path: Path, tone: BackgroundEmulator) -> None:
    fifo = tmp_path / "pipe.pcm"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = run("say", "Into a pipe.", "-o", str(fifo), env=tone_env(tone))
    reader.join(10)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode) and len(got[0]) > 1000


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_is_written_into_not_replaced(tmp_path: Path, tone: BackgroundEmulator) -> None:
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a copy of /dev/null
    r = run("say", "Into the void.", "-o", str(null), "--codec", "pcm", env=tone_env(tone))
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(null.stat().st_mode)


def test_standard_output(tone: BackgroundEmulator) -> None:
    r = subprocess.run([sys.executable, "-m", "xai_voice.cli", "say", "To stdout.", "-o", "-"],
                       capture_output=True, timeout=60, env={**os.environ, **tone_env(tone)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    with wave.open(io.BytesIO(r.stdout)) as w:
        assert w.getnframes() * 2 == len(r.stdout) - 44
    r = subprocess.run([sys.executable, "-m", "xai_voice.cli", "say", "Raw.", "-o", "-", "--codec", "mulaw"],
                       capture_output=True, timeout=60, env={**os.environ, **tone_env(tone)})  # fmt: skip
    assert r.returncode == 0 and r.stdout and r.stdout[:4] != b"RIFF"


def test_a_long_text_is_one_valid_wav_file(tmp_path: Path, tone: BackgroundEmulator) -> None:
    out = tmp_path / "long.wav"
    text = "A sentence for a long text that becomes several utterances. " * 80  # > 4,000 characters
    r = run("say", "-", "-o", str(out), "--codec", "wav", env=tone_env(tone), stdin=text)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data.count(b"RIFF") == 1
    with wave.open(str(out)) as w:
        assert w.getnframes() * 2 == len(data) - 44
    assert f"({len(data)} bytes" in r.stderr  # the file's size, header included


def test_permissions_follow_the_umask_and_the_file_replaced(tmp_path: Path, tone: BackgroundEmulator) -> None:
    new = tmp_path / "new.wav"
    r = subprocess.run([sys.executable, "-c", "import os, sys; os.umask(0o022); from xai_voice.cli import main; "
                        f"sys.exit(main(['say', 'Umask.', '-o', {str(new)!r}]))"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, **tone_env(tone)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    new.chmod(0o640)
    assert run("say", "Again.", "-o", str(new), env=tone_env(tone)).returncode == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    new.chmod(0o444)
    before = new.read_bytes()
    r = run("say", "Not over a read-only file.", "-o", str(new), env=tone_env(tone))
    assert r.returncode == 1 and "read-only" in r.stderr and new.read_bytes() == before


def test_errors_name_the_users_path_and_leave_nothing(tmp_path: Path, tone: BackgroundEmulator) -> None:
    afile = tmp_path / "hello.wav"
    afile.write_bytes(b"x")
    r = run("say", "hi", "-o", str(afile / "x.wav"), env=tone_env(tone))
    assert r.returncode == 1 and f"cannot write {afile / 'x.wav'}" in r.stderr and ".part" not in r.stderr
    r = run("say", "hi", "-o", str(tmp_path), env=tone_env(tone))
    assert r.returncode == 2 and "is a directory" in r.stderr
    deep = tmp_path / "made" / "for" / "it.wav"
    r = run("say", "hi", "-o", str(deep), env={"XAI_API_KEY": "wrong", "XAI_BASE_URL": tone.url})
    assert r.returncode == 1 and not (tmp_path / "made").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello.wav"]


def test_sigterm_leaves_no_temporary_file(tmp_path: Path) -> None:
    with BackgroundEmulator(tone=True, realtime=1.0) as slow:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xai_voice.cli", "say", "A slow sentence. " * 20, "-o", str(tmp_path / "x.wav")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **tone_env(slow)},
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob(".*.part")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(tmp_path.glob(".*.part"))
        time.sleep(0.3)  # some audio is written
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143 and b"terminated" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("attempt", range(3))
def test_sigterm_ends_an_emulator_as_it_accepts_a_connection(attempt: int) -> None:
    """SIGTERM landing while the event loop runs a callback (accepting a connection, as a
    readiness probe makes it do just before a benchmark stops it) still ends the process:
    it used to be logged by asyncio and ignored."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xai_voice.cli", "emulate", "--tone", "--port", str(port), "--key", "k"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err.decode()[-500:]
    assert b"Traceback" not in err


# -- input and usage -------------------------------------------------------------------------


def test_latin1_on_stdin_is_refused_before_anything_starts(tmp_path: Path) -> None:
    r = run("say", "-", "-o", str(tmp_path / "x.wav"), stdin="Caf\xe9 au lait".encode("latin1"))
    assert r.returncode == 2 and "not UTF-8" in r.stderr and "emulator" not in r.stderr


def test_codec_and_extension_must_agree_and_dash_text(tmp_path: Path, tone: BackgroundEmulator) -> None:
    r = run("say", "hi", "-o", str(tmp_path / "x.wav"), "--codec", "mp3")
    assert r.returncode == 2 and "does not go in a .wav file" in r.stderr
    r = run("say", "hi", "-o", str(tmp_path / "x.pcm"), "--codec", "mulaw")
    assert r.returncode == 2 and "does not match" in r.stderr
    r = run("say", "-o", str(tmp_path / "dash.wav"), "--", "-5 degrees today.", env=tone_env(tone))
    assert r.returncode == 0, r.stderr
    assert tone.utterances[-1].text == "-5 degrees today."


def test_verbose_anywhere_shows_what_a_debugger_needs(tmp_path: Path, tone: BackgroundEmulator) -> None:
    r = run("say", "Verbose.", "-o", str(tmp_path / "v.wav"), "-v", env=tone_env(tone))
    assert r.returncode == 0, r.stderr
    assert tone.url in r.stderr and "options:" in r.stderr and "trace id" in r.stderr
    assert "connection opened" in r.stderr and tone.api_key not in r.stderr
    assert run("-v", "voices", env=tone_env(tone)).returncode == 0


def test_the_progress_bar_ends_full(tmp_path: Path, tone: BackgroundEmulator) -> None:
    r = run("say", "A bar that ends full. " * 10, "-o", str(tmp_path / "p.wav"), "--progress", "always",
            env=tone_env(tone))  # fmt: skip
    bars = [line for line in r.stderr.splitlines() if " s of ~" in line]  # text mode: \r is a newline
    assert bars and "#" * 30 in bars[-1]


def test_insecure_urls_name_the_way_to_allow_them(tmp_path: Path) -> None:
    env = {"XAI_API_KEY": "k", "XAI_BASE_URL": "http://example.invalid/v1"}
    r = run("say", "hi", "-o", str(tmp_path / "x.wav"), env=env)
    assert r.returncode == 2 and "--allow-insecure" in r.stderr and "XAI_ALLOW_INSECURE=1" in r.stderr
    for extra_args, extra_env in ((["--allow-insecure"], {}), ([], {"XAI_ALLOW_INSECURE": "1"})):
        r = run("say", "hi", "-o", str(tmp_path / "x.wav"), *extra_args, env={**env, **extra_env})
        assert r.returncode == 1 and "could not connect" in r.stderr  # allowed: it tried


def test_a_base_url_without_v1_says_which_url(tone: BackgroundEmulator) -> None:
    root = tone.url.removesuffix("/v1")
    r = run("voices", env={"XAI_API_KEY": tone.api_key, "XAI_BASE_URL": root})
    assert r.returncode == 1 and f"{root}/tts/voices" in r.stderr and "/v1" in r.stderr
    assert "xai-voice voices" not in r.stderr


def test_a_base_url_without_a_key_is_used(tmp_path: Path, tone: BackgroundEmulator) -> None:
    n = len(tone.utterances)
    r = run(
        "say", "To the emulator you started.", "-o", str(tmp_path / "x.wav"), env={"XAI_BASE_URL": tone.url}
    )
    assert r.returncode == 0, r.stderr
    assert len(tone.utterances) == n + 1 and "using XAI_BASE_URL" in r.stderr
    r = run("say", "hi", "-o", str(tmp_path / "y.wav"), env={"XAI_BASE_URL": "https://api.example.com/v1"})
    assert r.returncode == 2 and "XAI_API_KEY is not" in r.stderr


def test_the_services_own_words_on_a_refused_upgrade(tmp_path: Path, tone: BackgroundEmulator) -> None:
    tone.fail_next("refuse", at="upgrade", status=400)
    r = run("say", "hi", "-o", str(tmp_path / "x.wav"), env=tone_env(tone))
    assert r.returncode == 1 and "HTTP 400" in r.stderr and "the service said: injected fault" in r.stderr


def test_mp3_works_after_a_plain_install() -> None:
    from importlib.metadata import requires

    assert any(req.startswith("lameenc") and "extra" not in req for req in requires("xai-voice") or [])


def test_voices_lists_custom_ones(tone: BackgroundEmulator) -> None:
    voice_id = tone.emulator.add_custom_voice("Narrator")
    r = run("voices", env=tone_env(tone))
    assert (
        r.returncode == 0 and f"{voice_id}\tNarrator\tcustom" in r.stdout and "ara\tAra\tbuiltin" in r.stdout
    )


# -- emulate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "needle"), [
    (["--port", "99999"], "not a port"),
    (["--port", "-1"], "not a port"),
    (["--chunk-ms", "0"], "at least 1"),
    (["--realtime", "-1"], "0 or more"),
])  # fmt: skip
def test_emulate_validates_its_options(args: list[str], needle: str) -> None:
    r = run("emulate", *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_emulate_help_shows_defaults_and_a_busy_port_is_named() -> None:
    r = run("emulate", "--help")
    assert "--host" in r.stdout and "(default: 8765)" in r.stdout
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run("emulate", "--port", str(port))
    assert r.returncode == 2 and f"port {port}" in r.stderr and "already in use" in r.stderr


def test_a_bare_command_prints_help() -> None:
    r = run()
    assert r.returncode == 0 and "usage: xai-voice" in r.stdout and "say" in r.stdout


# -- listen ----------------------------------------------------------------------------------


def test_say_then_listen_round_trips_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XAI_")}
    say = subprocess.Popen([sys.executable, "-m", "xai_voice.cli", "say", "Please call my mother tomorrow morning.",
                            "--voice", "cosmo", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    listen = subprocess.run([sys.executable, "-m", "xai_voice.cli", "listen", "-"], stdin=say.stdout,
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    say.wait(30)
    assert listen.returncode == 0, listen.stderr
    heard = listen.stdout.lower().split()
    assert len({"please", "call", "mother", "tomorrow", "morning"} & {w.strip(".") for w in heard}) >= 3


def test_listen_prints_scripted_words_as_json(tmp_path: Path, tone: BackgroundEmulator) -> None:
    out = tmp_path / "in.wav"
    assert run("say", "Book a table.", "-o", str(out), "--rate", "16000", env=tone_env(tone)).returncode == 0
    tone.script_transcripts(["book a table"])
    r = run("listen", str(out), "--json", env=tone_env(tone))
    assert r.returncode == 0, r.stderr
    import json

    result = json.loads(r.stdout)
    assert result["text"] == "Book a table." and [w["text"] for w in result["words"]] == [
        "book",
        "a",
        "table",
    ]
    tone.script_transcripts(["book a table"])
    r = run("listen", str(out), "--stream", env=tone_env(tone))
    assert r.returncode == 0 and r.stdout.strip() == "Book a table.", (
        r.stderr,
        [(t.transport, t.utterances) for t in tone.transcripts],
    )


@pytest.mark.parametrize(("args", "needle"), [
    (["listen", "nowhere.wav"], "is not a file"),
    (["listen", "raw.bin"], "not a WAV file"),
])  # fmt: skip
def test_listen_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "raw.bin").write_bytes(b"\x01\x02" * 100)
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
