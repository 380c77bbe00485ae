"""Which aiohttp session a plugin's requests go through, for both faces.

The user's, when given; inside a livekit job, the job's (``http_context``), so the
framework's connection limits and proxy settings apply; outside a job, one of our own,
made with no cap on connections (each WebSocket holds one for its life), the
environment's proxy and the service's words kept when an upgrade is refused, and closed
with the plugin.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from livekit.agents import utils

from xai_voice.transport import new_session, proxy_from_environment

__all__ = ["SessionSource"]


class SessionSource:
    """Called at each use (a framework may hand out a session per job)."""

    def __init__(self, given: aiohttp.ClientSession | None, base_url: Callable[[], str]) -> None:
        self._given = given
        self._base_url = base_url
        self._own: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._given is not None:
            return self._given
        try:
            return utils.http_context.http_session()
        except RuntimeError:  # outside a job
            if self._own is None or self._own.closed:
                self._own = new_session(proxy_from_environment(self._base_url()))
            return self._own

    async def aclose(self) -> None:
        """Close our own session, if one was made (never the user's or livekit's)."""
        if self._own is not None:
            await self._own.close()
            self._own = None
