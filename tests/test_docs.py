"""Every sample in the README and docs runs as written, in a fresh project.

A sample is a fenced block right after a ``<!-- sample: NAME -->`` line:

* ``NAME.py`` is written to an empty directory and run with ``python NAME.py``;
* ``test_NAME.py`` is run with ``python -m pytest`` in that directory, which has no
  ``pyproject.toml`` or ``conftest.py`` of ours (as in a user's project);
* ``shell`` runs each line with bash there (a line starting ``xai-voice emulate`` runs for
  a few seconds and must have started listening).

Each runs without ``XAI_API_KEY``, so everything goes through the emulator, offline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SAMPLE = re.compile(r"<!-- sample: (\S+) -->\s*\n```[a-z]*\n(.*?)\n```", re.S)


def samples() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for name, code in _SAMPLE.findall(doc.read_text()):
            found.append((f"{doc.name}:{name}", name, code))
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "PYTEST_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def test_there_are_samples() -> None:
    names = [s[0] for s in samples()]
    assert any(n.startswith("README.md:") for n in names)
    assert any(n.startswith("testing.md:test_") for n in names)


@pytest.mark.parametrize(("where", "name", "code"), samples(), ids=[s[0] for s in samples()])
def test_the_sample_runs_as_written(tmp_path: Path, where: str, name: str, code: str) -> None:
    env = _env()
    if name == "shell":
        for line in code.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("xai-voice emulate"):
                r = subprocess.run(["timeout", "4", "bash", "-c", line], cwd=tmp_path, env=env,
                                   capture_output=True, text=True)  # fmt: skip
                assert r.returncode == 124 and "listening on" in r.stderr, (line, r.stderr)
                continue
            r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
            assert r.returncode == 0, (line, r.stderr)
        return
    (tmp_path / name).write_text(code)
    if name.startswith("test_"):
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
    else:
        cmd = [sys.executable, name]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"{where}\n{r.stdout}\n{r.stderr}"
    assert "Unclosed client session" not in r.stderr + r.stdout
