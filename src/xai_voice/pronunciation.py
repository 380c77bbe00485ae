"""Pronunciation maps (``replace``): one set of matching rules, used in three places.

The service applies a map it was given (REST ``replace``; on the WebSocket, a
``session.update`` whose support is unverified).  When the WebSocket refuses the map or
never answers, the client applies it to the text itself before sending, with the same
rules, so the spoken text is what the map says either way; the emulator applies it with
the same rules too.

The rules: a key matches whole words only (not inside a longer word), ignoring case; where
keys overlap, the longest wins; the replacement is inserted as given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["StreamingReplacer", "apply_replace", "compile_replace"]


def compile_replace(replace: Mapping[str, str]) -> re.Pattern[str] | None:
    """The pattern of a map's keys (None for an empty map)."""
    if not replace:
        return None
    keys = sorted(replace, key=len, reverse=True)
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in keys) + r")(?!\w)", re.IGNORECASE)


def _lookup(replace: Mapping[str, str]) -> dict[str, str]:
    return {k.casefold(): v for k, v in replace.items()}


def apply_replace(text: str, replace: Mapping[str, str]) -> str:
    """``text`` with the map applied."""
    pattern = compile_replace(replace)
    if pattern is None:
        return text
    lookup = _lookup(replace)
    return pattern.sub(lambda m: lookup.get(m.group(0).casefold(), m.group(0)), text)


class StreamingReplacer:
    """The map applied to text that arrives in pieces, with the same result as applying
    it to the whole text at once.

    A key may be cut across two pieces ("Live" + "Kit"), and whether a word matches
    depends on what follows it ("kit" is not "kitten"), so :meth:`feed` holds back the
    unfinished last word and any tail that could still grow into a key, and returns the
    rest; :meth:`flush` returns what is held.  With no key in sight, only the word being
    typed is held: a piece is delayed at most until the next one arrives.
    """

    def __init__(self, replace: Mapping[str, str]) -> None:
        self._pattern = compile_replace(replace)
        self._lookup = _lookup(replace)
        self._keys = tuple(self._lookup)
        self._longest = max((len(k) for k in self._keys), default=0)
        self._held = ""

    def feed(self, text: str) -> str:
        if self._pattern is None:
            return text
        buf = self._held + text
        cut = self._safe_cut(buf)
        out: list[str] = []
        pos = 0
        for m in self._pattern.finditer(buf):
            if m.end() > cut:
                cut = min(cut, m.start())
                break
            out.append(buf[pos : m.start()])
            out.append(self._lookup.get(m.group(0).casefold(), m.group(0)))
            pos = m.end()
        out.append(buf[pos:cut])
        self._held = buf[cut:]
        return "".join(out)

    def flush(self) -> str:
        buf, self._held = self._held, ""
        if self._pattern is None or not buf:
            return buf
        return self._pattern.sub(lambda m: self._lookup.get(m.group(0).casefold(), m.group(0)), buf)

    def _safe_cut(self, buf: str) -> int:
        """The earliest position from which what follows might still change the result."""
        n = len(buf)
        cut = n
        if n and (buf[-1].isalnum() or buf[-1] == "_"):
            i = n
            while i > 0 and (buf[i - 1].isalnum() or buf[i - 1] == "_"):
                i -= 1
            cut = i  # the word being typed
        lo = max(0, n - self._longest)
        for p in range(n - 1, lo - 1, -1):
            if not buf[p].isalnum() or (p > 0 and buf[p - 1].isalnum()):
                continue  # not the start of a word
            tail = buf[p:].casefold()
            if any(k.startswith(tail) for k in self._keys):
                cut = min(cut, p)
        return cut
