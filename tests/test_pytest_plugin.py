"""The ``xai_emulator`` fixture leaves nothing behind: no server, thread, socket or
environment change."""

from __future__ import annotations

import os
import socket
import threading

import pytest

pytest_plugins = ["pytester"]

INNER = """
import os
import xai_voice

async def test_inner(xai_emulator):
    assert os.environ["XAI_BASE_URL"] == xai_emulator.url
    open("port.txt", "w").write(str(xai_emulator.port))
    async with xai_voice.Client() as client:
        assert await client.speak("inside")
    await xai_emulator.wait_for_utterances(1)

def test_sync_use(xai_emulator):
    assert xai_emulator.open_connections == 0
"""


def test_fixture_cleans_up(pytester: pytest.Pytester) -> None:
    env_before = {k: v for k, v in os.environ.items() if k.startswith("XAI_")}
    threads_before = {t.name for t in threading.enumerate()}
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("-p", "asyncio", "-q")
    result.assert_outcomes(passed=2)
    assert {k: v for k, v in os.environ.items() if k.startswith("XAI_")} == env_before
    assert not [t for t in threading.enumerate() if t.name == "xai-voice-emulator"]
    assert {t.name for t in threading.enumerate()} <= threads_before | {"asyncio_0"}
    port = int((pytester.path / "port.txt").read_text())
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nobody listens there any more
