"""Text on its way to the service: what cannot be sent, and halves that belong together.

An LLM streams text token by token, and a token boundary can fall inside a UTF-16
surrogate pair (an emoji decoded from a JSON ``\\ud83d`` escape in one chunk and
``\\ude00`` in the next).  Each half alone cannot be encoded as UTF-8, so
:class:`SurrogateJoiner` holds a trailing high surrogate until the next piece brings its
partner.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT_CHARS", "SurrogateJoiner", "check_text", "replace_lone"]

#: REST limit on the text of one request.
MAX_TEXT_CHARS = 15_000

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, *, rest: bool = False) -> str:
    """Refuse text the service cannot take: not a string, lone surrogates (which cannot be
    encoded as UTF-8 on the wire), or, for REST, empty or over 15,000 characters."""
    from .errors import OptionError

    if not isinstance(text, str):
        raise OptionError("text", f"must be a str, not {type(text).__name__}")
    m = _SURROGATE.search(text)
    if m is not None:
        raise OptionError(
            "text",
            f"holds an unpaired surrogate (U+{ord(m.group()):04X}) at index {m.start()}; it cannot "
            "be sent as UTF-8",
        )
    if rest:
        if not text.strip():
            raise OptionError("text", "is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise OptionError(
                "text",
                f"has {len(text)} characters; one REST request takes at most {MAX_TEXT_CHARS} "
                "(stream longer text over the WebSocket)",
            )
    return text


class SurrogateJoiner:
    """Joins surrogate pairs split across pieces of streamed text.

    :meth:`feed` returns the piece with any pair completed and a trailing high surrogate
    held back; :meth:`flush` returns what is held (a lone high surrogate, if the stream
    ended without its partner).  Lone surrogates inside a piece pass through unchanged,
    for the caller to refuse or replace (:func:`replace_lone`).
    """

    __slots__ = ("_high",)

    def __init__(self) -> None:
        self._high = ""

    def feed(self, text: str) -> str:
        if self._high:
            text, self._high = self._high + text, ""
        if not text or _SURROGATE.search(text) is None:
            return text
        if "\ud800" <= text[-1] <= "\udbff":
            text, self._high = text[:-1], text[-1]
        # a valid pair of code units becomes the one character it encodes
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")

    def flush(self) -> str:
        held, self._high = self._high, ""
        return held


def replace_lone(text: str) -> str:
    """``text`` with every unpaired surrogate replaced by U+FFFD."""
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)
