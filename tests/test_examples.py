"""examples/agent.py runs as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

AGENT = Path(__file__).resolve().parents[1] / "examples" / "agent.py"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "LIVEKIT_"))}


def test_its_speech_runs_offline(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(AGENT), "speak", "Hello from the example."], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    with wave.open(str(tmp_path / "agent-hello.wav")) as w:
        assert w.getnframes() / w.getframerate() > 0.5


def test_without_a_livekit_server_it_says_so_in_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(AGENT), "dev"], cwd=tmp_path, env=_env(), capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "LIVEKIT_URL is not set" in r.stderr and "Traceback" not in r.stderr
    assert "lk agent dev" in r.stderr


def test_its_ears_hear_its_voice_offline(tmp_path: Path) -> None:
    """speak, then hear what it said: the STT plugin through the emulator's PocketSphinx."""
    said = "Book a table for two at eight tonight."
    r = subprocess.run([sys.executable, str(AGENT), "speak", said], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, str(AGENT), "hear", "agent-hello.wav"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    heard = r.stdout.lower().replace(".", "").split()
    assert len(set(heard) & {"book", "table", "two", "eight", "tonight"}) >= 4, r.stdout


def test_hear_names_a_missing_file(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(AGENT), "hear", "nope.wav"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == "agent.py: nope.wav: no such file"
