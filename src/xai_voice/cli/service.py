"""Which service a command talks to: xAI with your key, the URL you named, or an emulator
started for the occasion when there is no key."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from ..client import Client
from ..transport import DEFAULT_BASE_URL, is_loopback

__all__ = ["Usage", "allow_insecure", "client_for"]

log = logging.getLogger("xai_voice.cli")


class Usage(Exception):
    """Bad usage: one line on stderr, exit status 2."""


def allow_insecure(flag: bool) -> bool:
    return flag or os.environ.get("XAI_ALLOW_INSECURE", "").strip().lower() in ("1", "true", "yes")


def offline_recognition_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pocketsphinx") is not None


@contextlib.asynccontextmanager
async def client_for(*, insecure: bool, listening: bool = False) -> AsyncIterator[Client]:
    """A client for xAI (``XAI_API_KEY``, ``XAI_BASE_URL``), for an emulator you started
    (``XAI_BASE_URL`` on this machine, no key: the emulator's key is used), or for one
    started here (neither)."""
    key = os.environ.get("XAI_API_KEY")
    url = os.environ.get("XAI_BASE_URL")
    if key:
        async with Client(allow_insecure=insecure) as client:
            log.info("service: %s", client.base_url)
            yield client
        return
    if url:
        host = urlsplit(url).hostname or ""
        if not is_loopback(host):
            raise Usage(
                f"XAI_BASE_URL is set ({url}) but XAI_API_KEY is not; set the key, or unset XAI_BASE_URL "
                "to use the built-in emulator"
            )
        from ..emulator import DEFAULT_KEY

        print(
            f"xai-voice: XAI_API_KEY is not set; using XAI_BASE_URL ({url}) with the emulator's key",
            file=sys.stderr,
        )
        async with Client(api_key=DEFAULT_KEY, base_url=url, allow_insecure=insecure) as client:
            yield client
        return
    from ..emulator import Emulator

    if listening and not offline_recognition_available():
        raise Usage(
            "XAI_API_KEY is not set, and the local emulator needs the 'stt' extra to recognise speech "
            "offline: pip install 'xai-voice[stt]' (or set XAI_API_KEY to use xAI)"
        )
    async with Emulator() as emu:
        print(
            f"xai-voice: XAI_API_KEY is not set; using the local emulator (offline espeak-ng voice) at "
            f"{emu.url} (set XAI_API_KEY to use xAI at {DEFAULT_BASE_URL})",
            file=sys.stderr,
        )
        async with Client(api_key=emu.api_key, base_url=emu.url) as client:
            yield client
