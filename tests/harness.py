"""Schedule exploration: run asyncio code under many seeded task orders, with sends that
wait to drain after their frame is on the wire.

* :class:`ShuffledLoop` permutes the order in which ready *tasks* resume within each
  loop iteration (asyncio promises no order between tasks), leaving every other callback
  where it was.
* :func:`congested_sends` makes ``ClientWebSocketResponse.send_str`` write its frame and
  then wait, as a write does when the socket buffer is full and it waits to drain.
* :func:`run_seeds` runs a coroutine factory once per seed in a fresh loop, each bounded
  by a wall-clock limit, and returns the seeds that hung.

Combined with the emulator's ``instant_done`` fault, the server's ``audio.done`` arrives
while the client's ``text.done`` send is still suspended: the schedule that hangs the
flag-after-send pattern.  :func:`naive_flag_after_send` is that pattern, kept here (and
only here) to show the harness bites.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp

__all__ = ["ShuffledLoop", "congested_sends", "naive_flag_after_send", "run_seeds"]


def _is_task_step(handle: asyncio.Handle) -> bool:
    return isinstance(getattr(handle._callback, "__self__", None), asyncio.Task)  # type: ignore[attr-defined]


class ShuffledLoop(asyncio.SelectorEventLoop):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        # pure-Python tasks: their steps are bound methods we can recognise
        self.set_task_factory(
            lambda loop, coro, **kw: asyncio.tasks._PyTask(coro, loop=loop, **kw)  # type: ignore[attr-defined]
        )

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        if len(ready) > 1:
            slots = [i for i, h in enumerate(ready) if _is_task_step(h)]
            if len(slots) > 1:
                handles = [ready[i] for i in slots]
                self.rng.shuffle(handles)
                for i, h in zip(slots, handles, strict=True):
                    ready[i] = h
        super()._run_once()  # type: ignore[misc]


#: how long a congested send waits after its frame is on the wire (drawn per send)
DRAIN_WAITS = (0.0, 0.0, 0.0005, 0.002, 0.01)


@contextlib.contextmanager
def congested_sends(rng: random.Random, waits: tuple[float, ...] = DRAIN_WAITS) -> Iterator[None]:
    """Every WebSocket send puts its frame on the wire, then waits a random while."""
    original = aiohttp.ClientWebSocketResponse.send_str

    async def send_str(self: aiohttp.ClientWebSocketResponse, data: str, compress: int | None = None) -> None:
        await original(self, data, compress)
        delay = rng.choice(waits)
        if delay:
            await asyncio.sleep(delay)
        else:
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)

    aiohttp.ClientWebSocketResponse.send_str = send_str  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        aiohttp.ClientWebSocketResponse.send_str = original  # type: ignore[method-assign]


def run_seeds(
    seeds: range,
    factory: Callable[[int], Awaitable[None]],
    *,
    limit: float = 5.0,
    waits: tuple[float, ...] = DRAIN_WAITS,
) -> list[int]:
    """Run ``factory(seed)`` for each seed in its own :class:`ShuffledLoop` with congested
    sends; return the seeds that did not finish within ``limit`` seconds."""
    hung: list[int] = []
    for seed in seeds:
        loop = ShuffledLoop(seed)
        try:
            with congested_sends(random.Random(seed), waits):
                loop.run_until_complete(_bounded(factory(seed), limit, hung, seed))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    return hung


async def _bounded(coro: Awaitable[None], limit: float, hung: list[int], seed: int) -> None:
    try:
        await asyncio.wait_for(coro, limit)
    except asyncio.TimeoutError:
        hung.append(seed)


async def naive_flag_after_send(base_url: str, api_key: str, text: str) -> None:
    """The published bug, reduced: "input ended" is set after ``await send(text.done)``
    returns, and ``audio.done`` is ignored until it is set."""
    ws_url = base_url.replace("http", "ws", 1) + "/tts?language=auto&voice=eve&codec=pcm&sample_rate=24000"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url, headers={"Authorization": f"Bearer {api_key}"}) as ws,
    ):
        input_ended = False

        async def sender() -> None:
            nonlocal input_ended
            await ws.send_str(json.dumps({"type": "text.delta", "delta": text}))
            await ws.send_str(json.dumps({"type": "text.done"}))
            input_ended = True  # too late: audio.done may already have been read

        async def receiver() -> None:
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                if json.loads(msg.data)["type"] == "audio.done" and input_ended:
                    return

        await asyncio.gather(sender(), receiver())


async def naive_stt_flag_after_send(base_url: str, api_key: str, audio: bytes) -> bool:
    """The published STT bug, reduced: "closing" is set after ``await send(audio.done)``
    returns, and a close while not closing is taken as a failure.  Returns whether the
    final transcript was received."""
    ws_url = base_url.replace("http", "ws", 1) + "/stt?sample_rate=16000&encoding=pcm&endpointing=5000"
    final = False
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url, headers={"Authorization": f"Bearer {api_key}"}) as ws,
    ):
        closing = False
        ready = asyncio.Event()

        async def sender() -> None:
            nonlocal closing
            await ready.wait()  # it holds the audio until the session is ready, as they do
            for i in range(0, len(audio), 3200):
                await ws.send_bytes(audio[i : i + 3200])
            await ws.send_str(json.dumps({"type": "audio.done"}))
            closing = True  # too late: the close may already have been read

        async def receiver() -> None:
            nonlocal final
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    if not closing:
                        raise ConnectionError("connection closed unexpectedly")
                    return
                obj = json.loads(msg.data)
                if obj["type"] == "transcript.created":
                    ready.set()
                if obj.get("speech_final"):
                    final = True

        try:
            await asyncio.gather(sender(), receiver())
        except ConnectionError:
            return False
    return final
