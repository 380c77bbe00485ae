"""pytest plugin (registered through the ``pytest11`` entry point): test code that speaks
through xAI, offline.

Fixtures:

* ``xai_emulator`` — an emulator for one test.  ``XAI_BASE_URL`` and ``XAI_API_KEY`` point
  at it for the test's duration (restored after), so code that builds its client from
  the environment (``xai_voice.Client()``, ``livekit.plugins.xai_voice.TTS()``) uses it
  unchanged.
* ``xai_emulator_module`` — one emulator shared by a module's tests.

Configure either with a marker: ``@pytest.mark.xai_emulator(tone=True, realtime=2.0)``
(any :class:`~xai_voice.emulator.EmulatorConfig` field).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .emulator.background import BackgroundEmulator

__all__ = ["xai_emulator", "xai_emulator_module"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "xai_emulator(**config): configure the xai_emulator fixture (EmulatorConfig fields)",
    )


def _config(node: Any) -> dict[str, Any]:
    marker = node.get_closest_marker("xai_emulator") if node is not None else None
    config = dict(marker.kwargs) if marker is not None else {}
    config.setdefault("keep_audio", True)  # a test compares audio; its emulator is short-lived
    return config


def _serve(kwargs: dict[str, Any]) -> Iterator[BackgroundEmulator]:
    with pytest.MonkeyPatch.context() as mp, BackgroundEmulator(**kwargs) as emu:
        mp.setenv("XAI_BASE_URL", emu.url)
        mp.setenv("XAI_API_KEY", emu.api_key)
        yield emu
    if emu.running:  # pragma: no cover - a bug in stop()
        raise RuntimeError("the emulator thread did not stop")


@pytest.fixture
def xai_emulator(request: pytest.FixtureRequest) -> Iterator[BackgroundEmulator]:
    """An xAI TTS emulator for this test, with the environment pointing at it."""
    yield from _serve(_config(request.node))


@pytest.fixture(scope="module")
def xai_emulator_module(request: pytest.FixtureRequest) -> Iterator[BackgroundEmulator]:
    """One emulator for the whole module (configure with a module-level ``pytestmark``)."""
    yield from _serve(_config(request.node))
