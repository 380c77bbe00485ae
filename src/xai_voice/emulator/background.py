"""The emulator on its own thread and event loop, behind a plain (sync) context manager.

This is what the pytest fixture uses: it works in sync tests and in async tests under any
event-loop plugin, since the test's code reaches it only through loopback sockets and a
few thread-safe calls.  It also keeps the emulator's CPU time off the loop under test.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any

from . import Emulator
from .faults import Fault, FaultKind, FaultPoint
from .recognition import ScriptEntry
from .records import TranscriptRecord, UtteranceRecord

__all__ = ["BackgroundEmulator"]


class BackgroundEmulator:
    """``with BackgroundEmulator() as emu: ...`` — the same handle as :class:`Emulator`
    (``url``, ``api_key``, ``utterances``, ``fail_next``, ``wait_for_utterances``)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._emulator: Emulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def __enter__(self) -> BackgroundEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> BackgroundEmulator:
        ready: Future[None] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="xai-voice-emulator", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    async def _serve(self, ready: Future[None]) -> None:
        try:
            self._stopped = asyncio.Event()
            self._emulator = await Emulator(**self._kwargs).start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await self._emulator.stop()

    def stop(self) -> None:
        loop, thread, stopped = self._loop, self._thread, self._stopped
        if loop is None or thread is None or stopped is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(stopped.set)
            thread.join(timeout=30)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the handle --------------------------------------------------------------------

    @property
    def emulator(self) -> Emulator:
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def api_key(self) -> str:
        return self.emulator.api_key

    @property
    def port(self) -> int:
        return self.emulator.port

    @property
    def utterances(self) -> list[UtteranceRecord]:
        return list(self.emulator.utterances)

    @property
    def completed(self) -> list[UtteranceRecord]:
        return [u for u in self.utterances if u.completed]

    @property
    def connections_total(self) -> int:
        """Connections (WebSocket or REST) accepted so far."""
        return self.emulator.connections_total

    @property
    def open_connections(self) -> int:
        return self.emulator.open_connections

    @property
    def transcripts(self) -> list[TranscriptRecord]:
        return list(self.emulator.transcripts)

    def script_transcripts(self, lines: list[str | tuple[str, int] | ScriptEntry]) -> None:
        """What the speaker says, utterance by utterance (see ``Emulator.script_transcripts``)."""
        self.emulator.script_transcripts(lines)

    async def wait_for_transcripts(self, n: int, *, timeout: float = 10.0) -> list[TranscriptRecord]:
        """From a test's event loop: wait until ``n`` speech-to-text streams have ended."""
        deadline = time.monotonic() + timeout
        while sum(t.completed for t in self.transcripts) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{sum(t.completed for t in self.transcripts)} of {n} transcripts in {timeout} s"
                )
            await asyncio.sleep(0.005)
        return [t for t in self.transcripts if t.completed]

    def add_custom_voice(self, name: str, **kwargs: Any) -> str:
        return self.emulator.add_custom_voice(name, **kwargs)

    def fail_next(self, kind: FaultKind | str, at: FaultPoint | str = FaultPoint.BEFORE_AUDIO,
                  **kwargs: Any) -> Fault:  # fmt: skip
        return self.emulator.fail_next(kind, at, **kwargs)

    async def wait_for_utterances(self, n: int, *, timeout: float = 10.0) -> list[UtteranceRecord]:
        """From a test's event loop: wait until ``n`` utterances have completed."""
        deadline = time.monotonic() + timeout
        while len(self.completed) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.completed)} of {n} utterances completed in {timeout} s")
            await asyncio.sleep(0.005)
        return self.completed

    def wait_for_utterances_sync(self, n: int, *, timeout: float = 10.0) -> list[UtteranceRecord]:
        deadline = time.monotonic() + timeout
        while len(self.completed) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.completed)} of {n} utterances completed in {timeout} s")
            time.sleep(0.005)
        return self.completed
