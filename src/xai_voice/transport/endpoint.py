"""Where requests go and with which credentials.

Holds the API key so nothing else has to: the key leaves this object only as the value of
an ``Authorization`` header, and its ``repr`` never shows it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import InsecureTransportError, OptionError

__all__ = ["DEFAULT_BASE_URL", "Endpoint", "is_loopback"]

DEFAULT_BASE_URL = "https://api.x.ai/v1"


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = field(repr=False)

    @classmethod
    def resolve(
        cls, api_key: str | None = None, base_url: str | None = None, *, allow_insecure: bool = False
    ) -> Endpoint:
        """Fill in ``XAI_API_KEY`` / ``XAI_BASE_URL`` and check the pair is safe to use.

        Plain ``http://`` is accepted for loopback hosts (the emulator) and otherwise only
        with ``allow_insecure=True``: a key sent in clear text is a key given away.
        """
        key = api_key if api_key is not None else os.environ.get("XAI_API_KEY", "")
        if not key:
            raise OptionError(
                "api_key", "no API key: pass api_key=... or set the XAI_API_KEY environment variable"
            )
        url = (base_url or os.environ.get("XAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise OptionError("base_url", f"{url!r} is not an http(s) URL")
        if parts.scheme in ("ws", "wss"):  # accept the WebSocket form too
            parts = parts._replace(scheme="https" if parts.scheme == "wss" else "http")
            url = urlunsplit(parts)
        if parts.scheme == "http" and not allow_insecure and not is_loopback(parts.hostname or ""):
            raise InsecureTransportError(
                "base_url",
                f"{url!r} is plain http to a host that is not this machine; the API key would "
                "travel unencrypted. Use https, or allow it explicitly (allow_insecure=True; "
                "for the CLI, --allow-insecure or XAI_ALLOW_INSECURE=1) if you mean it",
            )
        return cls(url, key)

    def __repr__(self) -> str:
        return f"Endpoint(base_url={self.base_url!r})"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def http_url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def ws_url(self, path: str = "tts") -> str:
        url = self.http_url(path)
        return "wss" + url[5:] if url.startswith("https") else "ws" + url[4:]

    def scrub(self, text: Any) -> str:
        """``str(text)`` with the key removed, for messages built from foreign text."""
        s = str(text)
        # a key of a few characters is no secret, and scrubbing it would mangle words
        if len(self.api_key) >= 8 and self.api_key in s:
            return s.replace(self.api_key, "<redacted>")
        return s
