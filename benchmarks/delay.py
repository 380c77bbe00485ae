"""A link with a real round trip, on loopback: a TCP relay that holds every byte for half
a round trip in each direction, and the client's first bytes for one more round trip
(the TCP handshake the client's loopback connect skipped).  TLS, the WebSocket upgrade
and everything after pay the round trips they would pay over a network.

It runs on its own thread and event loop, so its timers do not queue behind the client's
work, nor the client's behind its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future


class DelayProxy:
    """``with DelayProxy(target_port, rtt=0.1) as proxy:`` connect to ``proxy.port``."""

    def __init__(self, target_port: int, *, rtt: float, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.rtt = rtt
        self.port = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> DelayProxy:
        ready: Future[int] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        self.port = ready.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, ready: Future[int]) -> None:
        self._stop = asyncio.Event()
        pipes: set[asyncio.Task[None]] = set()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            accepted = asyncio.get_running_loop().time()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            for src, dst, not_before in ((reader, up_writer, accepted + self.rtt), (up_reader, writer, 0.0)):
                task = asyncio.ensure_future(self._pipe(src, dst, not_before))
                pipes.add(task)
                task.add_done_callback(pipes.discard)

        server = await asyncio.start_server(client, "127.0.0.1", 0)
        ready.set_result(server.sockets[0].getsockname()[1])
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(pipes):
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, not_before: float) -> None:
        """Bytes from ``src`` reach ``dst`` half a round trip after they were read (and not
        before ``not_before`` plus that), in order; the end of the stream too."""
        loop = asyncio.get_running_loop()
        half = self.rtt / 2
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    due, data = await queue.get()
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if not data:
                        dst.close()
                        return
                    dst.write(data)
                    await dst.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    queue.put_nowait((max(loop.time(), not_before) + half, data))
            queue.put_nowait((max(loop.time(), not_before) + half, b""))
            await delivering
        finally:
            delivering.cancel()
            dst.close()
