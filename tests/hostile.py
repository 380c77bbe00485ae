"""A TTS server on loopback whose misbehaviour a test scripts, written with plain aiohttp
and independent of our emulator, so a regression test holds against any version of it.

Each utterance's audio is made of one byte repeated (its number on the connection, plus
one), so a test can tell whose audio reached whom; stale audio after a clear is ``0x63``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

STALE = 0x63


@dataclass
class Script:
    #: audio frames per utterance, and the pause between them
    frames: int = 5
    frame_bytes: int = 960
    pause: float = 0.0
    #: after answering text.clear with audio.clear, send 3 stale audio frames this late
    stale_after_clear: float | None = None
    #: after the first utterance on a connection, swallow everything (no pong either)
    silent_after_first: bool = False
    #: never end an utterance: audio until the client goes
    endless: bool = False
    #: REST: response headers one byte at a time, this many seconds apart
    drip: float | None = None
    #: accept the upgrade, then stop reading at the TCP level (our writes stop draining)
    deaf: bool = False
    #: refuse the upgrade with this status (and these headers)
    refuse: int | None = None
    refuse_headers: dict[str, str] = field(default_factory=dict)


class HostileServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.texts: list[str] = []  # every utterance's text, as heard
        self.connections = 0
        self.open = 0
        self.upgrades = 0
        self.upgrade_times: list[float] = []
        self.url = ""
        self.ssl_context: object = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HostileServer:
        app = web.Application()
        app.router.add_get("/v1/tts", self._ws)
        app.router.add_post("/v1/tts", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock, ssl_context=self.ssl_context)  # type: ignore[arg-type]
        await site.start()
        scheme = "https" if self.ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.upgrades += 1
        self.upgrade_times.append(asyncio.get_running_loop().time())
        s = self.script
        if s.refuse is not None:
            return web.json_response(
                {"error": "refused by script"}, status=s.refuse, headers=s.refuse_headers
            )
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        if s.deaf and request.transport is not None:
            request.transport.pause_reading()
            await asyncio.sleep(30)
            return ws
        self.connections += 1
        self.open += 1
        number = 0
        text = ""
        speaking: asyncio.Task[None] | None = None
        silent = False
        try:
            async for msg in ws:
                if silent:
                    continue
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                    continue
                if msg.type is not WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                if m["type"] == "text.delta":
                    text += m["delta"]
                elif m["type"] == "text.done":
                    self.texts.append(text)
                    text = ""
                    number += 1
                    speaking = asyncio.ensure_future(self._speak(ws, number))
                    if s.silent_after_first:
                        await speaking
                        silent = True
                elif m["type"] == "text.clear":
                    if text:
                        self.texts.append(text)
                        text = ""
                    if speaking is not None:
                        speaking.cancel()
                    await ws.send_json({"type": "audio.clear"})
                    if s.stale_after_clear is not None:
                        self._tasks.add(asyncio.ensure_future(self._stale(ws, s.stale_after_clear)))
        finally:
            self.open -= 1
            if speaking is not None:
                speaking.cancel()
        return ws

    async def _speak(self, ws: web.WebSocketResponse, number: int) -> None:
        s = self.script
        chunk = base64.b64encode(bytes([number]) * s.frame_bytes).decode()
        i = 0
        while s.endless or i < s.frames:
            if ws.closed:
                return
            await ws.send_json({"type": "audio.delta", "delta": chunk})
            i += 1
            await asyncio.sleep(s.pause)
        await ws.send_json({"type": "audio.done", "trace_id": f"trace-{number}"})

    async def _stale(self, ws: web.WebSocketResponse, delay: float) -> None:
        await asyncio.sleep(delay)
        chunk = base64.b64encode(bytes([STALE]) * self.script.frame_bytes).decode()
        with contextlib.suppress(Exception):
            for _ in range(3):
                await ws.send_json({"type": "audio.delta", "delta": chunk})

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        s = self.script
        if s.drip is not None and request.transport is not None:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: audio/pcm\r\nX-Slow: " + b"." * 400
            for i in range(len(head)):
                if request.transport.is_closing():
                    break
                request.transport.write(head[i : i + 1])
                await asyncio.sleep(s.drip)
            request.transport.abort()
            return web.Response()
        body = await request.json()
        self.texts.append(body["text"])
        return web.Response(body=b"\x01\x00" * 4800, content_type="audio/pcm")


@contextlib.asynccontextmanager
async def hostile(*, ssl_context: object = None, **script: object) -> AsyncIterator[HostileServer]:
    server = HostileServer(Script(**script))  # type: ignore[arg-type]
    server.ssl_context = ssl_context
    async with server:
        yield server
