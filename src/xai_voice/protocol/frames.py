"""What both services' JSON frames share: parsing a frame into an object, previews of
foreign text for error messages, and the trace id a server may embed in its words.

The rule of tolerance (docs/protocol.md) starts here: a frame that is not JSON, or JSON
that is not an object, is an error, because we cannot tell what it was meant to be (it
might have been audio); anything else is for the per-service decoders to judge.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import RemoteProtocolError
from .speedups import loads

__all__ = ["load_object", "preview", "trace_id_in"]

# the service's error texts embed it as "(trace_id=5f0c...)"
_TRACE_ID = re.compile(r"trace_id[=:]\s*([A-Za-z0-9-]{8,64})")


def load_object(text: str | bytes, side: str) -> dict[str, Any]:
    """The JSON object in one frame; :class:`RemoteProtocolError` if it is not one."""
    try:
        obj = loads(text)
    except ValueError:
        raise RemoteProtocolError(f"{side} sent a frame that is not JSON: {preview(text)}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"{side} sent JSON that is not an object: {preview(text)}")
    return obj


def preview(text: str | bytes, limit: int = 80) -> str:
    """A short, quoted rendering of foreign text, for error and log messages."""
    s = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return repr(s if len(s) <= limit else s[:limit] + "...")


def trace_id_in(obj: dict[str, Any], message: str | None = None) -> str | None:
    """The trace id of a frame: its ``trace_id`` field, or one embedded in ``message``."""
    value = obj.get("trace_id")
    if isinstance(value, str) and value:
        return value
    if message:
        m = _TRACE_ID.search(message)
        if m:
            return m.group(1)
    return None
