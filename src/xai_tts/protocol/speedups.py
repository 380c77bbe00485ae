"""JSON and base64 for the audio path, through C accelerators when they are installed.

Every second of 24 kHz audio arrives as about 64 KB of base64 inside JSON.  The standard
library decodes that base64 at roughly 400 MB/s, which was a third of the LiveKit face's
CPU per audio second in the benchmarks; ``pybase64`` (SIMD) decodes it about 20 times
faster, and ``orjson`` parses the frames about 3 times faster than ``json``.  Both are
optional (the ``fast`` extra, which the ``livekit`` extra includes): without them the
behaviour is the same, only slower.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

__all__ = ["ACCELERATED", "b64decode", "b64encode", "dumps", "loads"]

_accelerated: list[str] = []

try:
    import orjson

    loads: Callable[[str | bytes], Any] = orjson.loads

    def dumps(obj: Any) -> str:
        """Compact JSON, non-ASCII kept as is."""
        return orjson.dumps(obj).decode()

    _accelerated.append("orjson")
except ImportError:  # pragma: no cover - exercised when orjson is absent
    loads = json.loads

    def dumps(obj: Any) -> str:
        """Compact JSON, non-ASCII kept as is."""
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


try:
    import pybase64

    def b64decode(data: str | bytes) -> bytes:
        """Strict standard base64 (no whitespace, no other alphabet); raises
        :class:`binascii.Error` on anything else."""
        try:
            return pybase64.b64decode(data, validate=True)
        except ValueError as exc:  # non-ASCII text is a ValueError, not a binascii.Error
            raise binascii.Error(str(exc)) from None

    def b64encode(data: bytes) -> str:
        return pybase64.b64encode_as_string(data)

    _accelerated.append("pybase64")
except ImportError:  # pragma: no cover - exercised when pybase64 is absent

    def b64decode(data: str | bytes) -> bytes:
        """Strict standard base64 (no whitespace, no other alphabet); raises
        :class:`binascii.Error` on anything else."""
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as exc:  # non-ASCII text is a ValueError, not a binascii.Error
            raise binascii.Error(str(exc)) from None

    def b64encode(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")


#: which accelerators are in use (shown by ``xai-tts --version`` and the benchmarks)
ACCELERATED: tuple[str, ...] = tuple(_accelerated)

# binascii.Error is what both decoders raise; re-exported so callers need one import
Error = binascii.Error
