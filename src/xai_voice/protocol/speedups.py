"""JSON and base64 for the audio path, through C accelerators when they are installed.

Every second of 24 kHz audio arrives as about 64 KB of base64 inside JSON.  The standard
library decodes that base64 at roughly 400 MB/s, which was a third of the LiveKit face's
CPU per audio second in the benchmarks; ``pybase64`` (SIMD) decodes it about 20 times
faster, and ``orjson`` parses the frames about 3 times faster than ``json``.  Both are
optional (the ``fast`` extra, which the ``livekit`` extra includes): without them the
behaviour is the same, only slower.  Where an accelerator is stricter than the standard
library (orjson refuses ``NaN`` and lone surrogate escapes; pybase64 refuses padding after a
complete group), its refusal is checked against the standard library, so both paths accept
exactly the same input; the extra cost falls only on input that is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["ACCELERATED", "b64decode", "b64encode", "dumps", "loads"]

_accelerated: list[str] = []


def _stdlib_b64decode(data: str | bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError as exc:  # non-ASCII text is a ValueError, not a binascii.Error
        raise binascii.Error(str(exc)) from None


try:
    import orjson

    def loads(text: str | bytes) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)  # raises too, unless it is json's more lenient dialect

    def dumps(obj: Any) -> str:
        """Compact JSON, non-ASCII kept as is."""
        return orjson.dumps(obj).decode()

    _accelerated.append("orjson")
except ImportError:  # pragma: no cover - exercised when orjson is absent

    def loads(text: str | bytes) -> Any:
        return json.loads(text)

    def dumps(obj: Any) -> str:
        """Compact JSON, non-ASCII kept as is."""
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


try:
    import pybase64

    def b64decode(data: str | bytes) -> bytes:
        """Standard base64 as the standard library's strict mode reads it (no whitespace,
        no other alphabet); raises :class:`binascii.Error` on anything else."""
        try:
            return pybase64.b64decode(data, validate=True)
        except ValueError:  # binascii.Error included
            return _stdlib_b64decode(data)  # refuses too, unless it is the stdlib's dialect

    def b64encode(data: bytes) -> str:
        return pybase64.b64encode_as_string(data)

    _accelerated.append("pybase64")
except ImportError:  # pragma: no cover - exercised when pybase64 is absent

    def b64decode(data: str | bytes) -> bytes:
        """Standard base64 as the standard library's strict mode reads it (no whitespace,
        no other alphabet); raises :class:`binascii.Error` on anything else."""
        return _stdlib_b64decode(data)

    def b64encode(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")


#: which accelerators are in use (shown by ``xai-voice --version`` and the benchmarks)
ACCELERATED: tuple[str, ...] = tuple(_accelerated)

# binascii.Error is what both decoders raise; re-exported so callers need one import
Error = binascii.Error
