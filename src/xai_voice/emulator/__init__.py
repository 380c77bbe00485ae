"""A local stand-in for xAI's TTS service: same endpoints, same protocol, real offline
speech, and faults on demand.

::

    async with Emulator() as emu:                 # 127.0.0.1, a free port
        client = xai_voice.Client(api_key=emu.api_key, base_url=emu.url)
        ...
        assert emu.utterances[0].text == "Hello."
        emu.fail_next("stall", at="mid_audio")
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from aiohttp import web

from .app import CustomVoice, EmulatorConfig, EmulatorServer, make_server
from .faults import Fault, FaultKind, FaultPlan, FaultPoint
from .recognition import ScriptEntry
from .records import TranscriptRecord, UtteranceRecord

__all__ = [
    "DEFAULT_KEY",
    "CustomVoice",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultPoint",
    "ScriptEntry",
    "TranscriptRecord",
    "UtteranceRecord",
]

#: the key the emulator accepts unless told otherwise
DEFAULT_KEY = "xai-emulator-key"


class Emulator:
    """The emulator as an async context manager, bound to 127.0.0.1.

    Args:
        config: behaviour (see :class:`EmulatorConfig`); ``api_key`` defaults to a fixed
            emulator key.
        faults: the fault plan; more can be added while running with :meth:`fail_next`.
        port: 0 picks a free port.
        host: the address to listen on (loopback unless you say otherwise).
        ssl_context: serve TLS (``https``/``wss``) with this context.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        faults: FaultPlan | list[Fault] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        **config_kwargs: Any,
    ) -> None:
        if config is None:
            config_kwargs.setdefault("api_key", DEFAULT_KEY)
            config = EmulatorConfig(**config_kwargs)
        elif config_kwargs:
            raise TypeError("pass either config or keyword options, not both")
        plan = faults if isinstance(faults, FaultPlan) else FaultPlan(faults)
        self._server: EmulatorServer | None = None
        self._config = config
        self._plan = plan
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> Emulator:
        if self._runner is not None:
            return self
        self._server = make_server(self._config, self._plan)
        runner = web.AppRunner(self._server.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        site = web.SockSite(runner, sock, backlog=2048, ssl_context=self._ssl)
        await site.start()
        self._port = sock.getsockname()[1]
        self._runner = runner
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what tests use ----------------------------------------------------------------

    @property
    def server(self) -> EmulatorServer:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give a client: ``http://127.0.0.1:PORT/v1`` (``https`` when it
        serves TLS)."""
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self._host}:{self._port}/v1"

    @property
    def api_key(self) -> str:
        return self._config.api_key or DEFAULT_KEY

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    @property
    def faults(self) -> FaultPlan:
        return self._plan

    @property
    def utterances(self) -> list[UtteranceRecord]:
        """Every utterance heard so far (at most ``max_records``, the latest), in the order
        its first text arrived."""
        return list(self.server.utterances)

    @property
    def completed(self) -> list[UtteranceRecord]:
        return [u for u in self.server.utterances if u.completed]

    @property
    def transcripts(self) -> list[TranscriptRecord]:
        """Every speech-to-text stream (or request) heard so far, in order."""
        return list(self.server.transcripts)

    def script_transcripts(self, lines: list[str | tuple[str, int] | ScriptEntry]) -> None:
        """What the speaker says, utterance by utterance: each utterance the emulator
        detects in the audio it hears takes the next line (``(text, speaker)`` with
        diarization; a :class:`ScriptEntry` may name the channel too)."""
        self.server.script.add([_entry(line) for line in lines])

    async def wait_for_transcripts(self, n: int, *, timeout: float = 10.0) -> list[TranscriptRecord]:
        """Wait until ``n`` speech-to-text streams have ended (``transcript.done`` sent)."""
        server = self.server
        await server.wait_for(lambda: sum(t.completed for t in server.transcripts) >= n, timeout)
        return [t for t in server.transcripts if t.completed]

    def add_custom_voice(self, name: str, **kwargs: Any) -> str:
        """A custom voice, as if your team had cloned one; returns its id."""
        return self.server.add_custom_voice(name, **kwargs)

    @property
    def connections_total(self) -> int:
        """Connections (WebSocket or REST) accepted so far."""
        return self.server.connections

    @property
    def open_connections(self) -> int:
        return self.server.active_sessions

    def fail_next(self, kind: FaultKind | str, at: FaultPoint | str = FaultPoint.BEFORE_AUDIO,
                  **kwargs: Any) -> Fault:  # fmt: skip
        """Inject one fault (``times=1`` unless given): ``fail_next("stall", at="mid_audio")``,
        ``fail_next("refuse", at="upgrade", status=401)``."""
        kind = FaultKind(kind)
        if at == FaultPoint.BEFORE_AUDIO:
            at = {
                FaultKind.REFUSE: FaultPoint.UPGRADE,
                FaultKind.DRIP: FaultPoint.UPGRADE,
                FaultKind.STALE_AUDIO: FaultPoint.CLEAR,
                FaultKind.SILENT: FaultPoint.IDLE,
            }.get(kind, at)
        return self._plan.add(Fault(kind, FaultPoint(at), **kwargs))

    async def wait_for_utterances(self, n: int, *, timeout: float = 10.0) -> list[UtteranceRecord]:
        """Wait until ``n`` utterances have completed (``audio.done`` sent)."""
        server = self.server
        await server.wait_for(lambda: sum(u.completed for u in server.utterances) >= n, timeout)
        return self.completed

    async def wait_idle(self, *, timeout: float = 10.0) -> None:
        """Wait until no connection is open."""
        server = self.server
        await server.wait_for(lambda: server.active_sessions == 0, timeout)


def _entry(line: str | tuple[str, int] | ScriptEntry) -> ScriptEntry:
    if isinstance(line, ScriptEntry):
        return line
    if isinstance(line, tuple):
        return ScriptEntry(line[0], speaker=line[1])
    return ScriptEntry(line)
